"""Settings read from the environment, checked once: a bad value is a ValueError naming the variable."""

from __future__ import annotations

import os

__all__ = ["env_int"]


def env_int(name: str, lo: int, hi: int, *, unit: str = "") -> int | None:
    """``$name`` as a whole number in ``lo..hi`` (``unit`` names it in messages); None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    what = f" {unit}" if unit else ""
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number of{what or ' units'}; allowed {lo}..{hi}") from None
    if not lo <= n <= hi:
        raise ValueError(f"{name}={n} is out of range; allowed {lo}..{hi}{what}")
    return n
