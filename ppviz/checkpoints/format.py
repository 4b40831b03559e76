"""The checkpoint format: ``model.safetensors`` (the weights) + ``config.json`` (everything else).

``config.json`` holds the format version, kind, architecture, the architecture config, the sha256
and tensor manifest ``{name: [shape, dtype]}`` of ``model.safetensors``, the ppviz version, the
creation time and ``extra``. This module reads safetensors headers (through
``safetensors.safe_open``), hashes files, writes config JSON (strict: NaN/inf become null) and
the config of :mod:`ppviz.checkpoints.lookup` reads it back. Nothing here imports torch or builds a model:
architectures are :mod:`ppviz.checkpoints.registry`, saving and loading
:mod:`ppviz.checkpoints.store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ppviz.io import json_ready

FORMAT = "ppviz-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME_RULE = "[A-Za-z0-9][A-Za-z0-9_.-]*, without '..'"


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, read or trusted; the message says which and why."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _sniff(data: bytes) -> str | None:
    if data[:2] == b"PK":
        return "looks like a zip (torch.save) file; ppviz only loads safetensors"
    if data[:1] == b"\x80":
        return "looks like a pickle (torch.save) file; ppviz only loads safetensors"
    if data[:6] == b"\x93NUMPY":
        return "looks like a numpy .npy file; ppviz only loads safetensors"
    if data[:4] == b"\x89HDF":
        return "looks like an HDF5 file; ppviz only loads safetensors"
    return None


#: safetensors' header errors, in words (its messages name the fault, not what it means here).
_HEADER_ERRORS = {
    "header too small": "is truncated or empty: {size} bytes, fewer than the 8-byte header length",
    "invalid header length": "is truncated: the file ends inside its header",
    "header too large": "is not a safetensors file: its first 8 bytes announce an implausibly large header",
    "invalid JSON in header": "is not a safetensors file: its header is not JSON",
    "incomplete metadata": "is truncated or has trailing bytes: its tensor data is not the size its header "
                           "announces ({size} bytes in the file)",
}


def read_safetensors_header(path: str | os.PathLike) -> dict[str, dict]:
    """Tensor entries ``{name: {"dtype": "F32", "shape": [...]}}`` of a safetensors file.

    The header is read by ``safetensors.safe_open`` (never parsed here). Raises ValueError saying
    what is wrong: not safetensors (pickle, zip, numpy, HDF5 are recognised), truncated (header or
    data shorter than announced), trailing bytes.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if (what := _sniff(head)) is not None:
        raise ValueError(what)
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {k: {"dtype": f.get_slice(k).get_dtype(), "shape": list(f.get_slice(k).get_shape())}
                    for k in f.keys()}
    except SafetensorError as e:
        for key, text in _HEADER_ERRORS.items():
            if key in str(e):
                raise ValueError(text.format(size=path.stat().st_size)) from None
        raise ValueError(f"is not a valid safetensors file ({e})") from None


def manifest_from_header(header: Mapping[str, Mapping]) -> dict[str, list]:
    """The tensor manifest ``{name: [shape, dtype]}`` recorded in config.json."""
    return {k: [list(v["shape"]), v["dtype"]] for k, v in sorted(header.items())}


def _jsonable(obj: Any, where: str = "extra") -> Any:
    """:func:`ppviz.io.json_ready`, strict: anything not JSON-able is a TypeError naming where it is."""
    return json_ready(obj, where, strict=True)


def _dumps(obj: Any, level: int = 0) -> str:
    """Indented JSON that keeps flat lists (shapes, manifest entries) on one line."""
    pad = "  " * (level + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(k)}: {_dumps(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    nested = isinstance(obj, list) and any(
        isinstance(v, dict) or (isinstance(v, list) and any(isinstance(w, (list, dict)) for w in v)) for v in obj
    )
    if nested:
        items = [f"{pad}{_dumps(v, level + 1)}" for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"
    return json.dumps(obj, allow_nan=False)
