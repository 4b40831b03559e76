"""Atomic writes for small outputs (JSON reports): temporary file, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(obj, path) -> Path:
    """Write ``obj`` as indented JSON to ``path``; an interrupted write leaves no partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
