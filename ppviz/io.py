"""JSON for every output: one sanitiser (:func:`json_ready`) and one atomic writer.

:func:`json_ready` turns numpy/torch scalars and arrays, paths, tuples and dataclasses into plain
JSON types and NaN/inf into ``None`` (strict JSON); :func:`write_json_atomic` writes through a
temporary file and a rename, so an interrupted write leaves no partial file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_config_keys", "json_ready", "write_json_atomic"]


def json_ready(obj: Any, where: str = "value", *, strict: bool = False) -> Any:
    """Plain JSON types: numpy/torch scalars and arrays, paths, tuples and dataclasses converted.

    Non-finite floats (NaN, inf) become None, so the output is strict JSON. Any other object is
    ``str(obj)``; with ``strict=True`` it (and a non-string mapping key) is a TypeError naming
    where it is (``where``, e.g. ``extra.norm[2]``).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                if strict:
                    raise TypeError(f"{where}: key {k!r} is not a string")
                k = str(k)
            out[k] = json_ready(v, f"{where}.{k}", strict=strict)
        return out
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, f"{where}[{i}]", strict=strict) for i, v in enumerate(obj)]
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # a torch tensor (torch is not imported here)
        return json_ready(obj.detach().cpu().tolist(), where, strict=strict)
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist(), where, strict=strict)
    if isinstance(obj, np.generic):
        return json_ready(obj.item(), where, strict=strict)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if strict:
        raise TypeError(f"{where}: {type(obj).__name__} is not JSON-able")
    return str(obj)


def check_config_keys(cls, d: Mapping) -> None:
    """ValueError naming the unknown and the known keys when ``d`` has keys that are no field of the
    dataclass ``cls`` (reading a config back from JSON)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(known)}")


def write_json_atomic(obj, path, *, indent: int = 2) -> Path:
    """Write ``obj`` as indented JSON to ``path``; an interrupted write leaves no partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=indent, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
