"""Is the dashboard server up? One probe of its ``/liveness`` endpoint, or a wait for it.

The container's ``HEALTHCHECK`` runs ``python -m ppviz.serve_probe``: one GET of the liveness URL
that ``ppviz serve`` would print for the same ``PPVIZ_*`` variables (port, prefix; the server is
probed on loopback), exit status 0 when it answers 200, else 1 with the reason on stderr.
:func:`wait_for_liveness` is the same probe in a loop for whoever has just started a server
(``ppviz serve`` or ``panel serve ... --liveness``) and must wait until it answers: it fails at
once, with the tail of the server's output, when the process has died, and after ``timeout``
seconds otherwise. The tests (serve, wheel, Docker entry script, browser tests) and the browser
and load benchmarks all start servers this way. It lives in the library, not in a test helper,
because the image's health check is built on it and both tests and benchmarks import it by name.

Only the standard library and :mod:`ppviz.serve` (for the settings and the endpoint name).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ppviz.serve import LIVENESS_ENDPOINT, ServeSettings

__all__ = ["liveness_url", "probe", "wait_for_liveness", "main"]

LOOPBACK = "127.0.0.1"


def liveness_url(port: int, *, prefix: str = "", host: str = LOOPBACK) -> str:
    """``http://HOST:PORT[/PREFIX]/liveness`` (``prefix`` with or without slashes)."""
    p = (prefix or "").strip("/")
    return f"http://{host}:{int(port)}{'/' + p if p else ''}/{LIVENESS_ENDPOINT}"


def probe(url: str, timeout: float = 4.0) -> tuple[bool, str]:
    """One GET of ``url``: ``(True, body)`` on status 200, else ``(False, why)``; never raises."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - http(s) URLs we build
            body = r.read().decode("utf-8", "replace")
            return r.status == 200, body if r.status == 200 else f"{url} answered {r.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, reset; a malformed URL
        return False, f"{url} did not answer: {getattr(exc, 'reason', exc)}"


def _tail(log, chars: int = 3000) -> str:
    if log is None:
        return ""
    try:
        return "\n" + Path(log).read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"\n(server log {log} unreadable: {exc})"


def wait_for_liveness(proc: subprocess.Popen | None, url: str, *, timeout: float = 60.0, log=None,
                      interval: float = 0.25) -> str:
    """Wait until ``url`` (a liveness URL) answers 200; return the body it answered.

    Parameters
    ----------
    proc : subprocess.Popen or None
        The server process just started; if it exits first, fail at once.
    url : str
        The liveness URL (:func:`liveness_url`).
    timeout : float
        Seconds to wait in all.
    log : path or None
        The file the server writes its output to; its last 3000 characters go into the error.
    interval : float
        Seconds between probes.

    Raises
    ------
    RuntimeError
        "server exited with CODE before URL answered" or "no answer from URL within T s (last:
        WHY)", each followed by the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    why = "not tried"
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered{_tail(log)}")
        ok, text = probe(url, timeout=max(0.5, min(4.0, deadline - time.monotonic())))
        if ok:
            return text
        why = text
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no answer from {url} within {timeout:g} s (last: {why}){_tail(log)}")
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    """``python -m ppviz.serve_probe [--url URL] [--wait SECONDS]``: exit 0 when the server answers."""
    ap = argparse.ArgumentParser(prog="python -m ppviz.serve_probe", description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="liveness URL (default: loopback, PPVIZ_PORT and PPVIZ_PREFIX as ppviz serve reads them)")
    ap.add_argument("--wait", type=float, default=0.0, help="seconds to keep trying (default: one probe)")
    args = ap.parse_args(argv)
    try:
        url = args.url or liveness_url((s := ServeSettings.from_env()).port, prefix=s.prefix or "")
    except (TypeError, ValueError) as exc:
        print(f"ppviz.serve_probe: {exc}", file=sys.stderr)
        return 1
    if args.wait > 0:
        try:
            body = wait_for_liveness(None, url, timeout=args.wait)
        except RuntimeError as exc:
            print(f"ppviz.serve_probe: {exc}", file=sys.stderr)
            return 1
    else:
        ok, body = probe(url)
        if not ok:
            print(f"ppviz.serve_probe: {body}", file=sys.stderr)
            return 1
    try:
        json.loads(body)
    except ValueError:
        print(f"ppviz.serve_probe: {url} answered 200 but not the liveness JSON", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
