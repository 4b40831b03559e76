"""Checkpoints: ``.safetensors`` weights + JSON config, and a registry of the ones available.

A checkpoint is a directory ``NAME/`` holding

- ``model.safetensors``: the weights (``model.state_dict()``, contiguous, on the CPU);
- ``config.json``: format version, kind, architecture, the architecture config, the sha256 and
  tensor manifest ``{name: [shape, dtype]}`` of ``model.safetensors``, the ppviz version, the
  creation time, and ``extra`` (normalisation, grid, training data and command, seed, held-out
  metrics, ``summary``, ``default``: anything JSON-able);
- ``MODEL_CARD.md``: what the model is, how it was made and how well it does, for people.

Nothing is ever unpickled (EDM's pickles are the lesson): loading reads ``config.json``, builds
the model from its config through a small architecture registry (:data:`ARCHITECTURES`), and then
loads the safetensors weights with strict key and shape checks. Every refusal is a
:class:`CheckpointError` whose message names the checkpoint and says exactly what is wrong.

Names and the registry
----------------------
Checkpoints are looked up by name in :func:`checkpoint_dirs`: the shipped ``pretrained/`` (the
repository's, or ``ppviz/pretrained/`` in an installed wheel: :mod:`ppviz.resources`) first, then each directory of ``$PPVIZ_CHECKPOINTS`` (``os.pathsep``-separated), in order.
A name is ``[A-Za-z0-9][A-Za-z0-9_.-]*`` without ``..`` (so no path separators, no traversal, no
hidden directories: an interrupted save leaves only a hidden ``.NAME.tmp-*`` directory, which is
never listed). **Collisions: the first directory wins**, so a shipped ``pretrained/`` checkpoint
always means the same weights (the names in the README and model cards stay reproducible); a
user checkpoint of the same name is still listed, marked ``shadowed_by``, and can be loaded by
its path. A name lookup only ever returns a directory inside one of the configured directories
(a symlink that leads outside is refused).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import json
import math
import os
import re
import secrets
import shutil
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save_file
from torch import nn

from ppviz import __version__, resources

FORMAT = "ppviz-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
ENV_DIRS = "PPVIZ_CHECKPOINTS"
PRETRAINED_DIR = resources.PRETRAINED_DIR  # pretrained/ in a checkout, ppviz/pretrained/ in a wheel

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
NAME_RULE = "[A-Za-z0-9][A-Za-z0-9_.-]*, without '..'"
TRAIN_HINT = {"pp": "ppviz train pp", "diffusion": "ppviz train diffusion"}
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, read or trusted; the message says which and why."""


# -- Architecture registry ------------------------------------------------------------------------


def _import_object(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"import path {spec!r} is not of the form 'package.module:attribute'")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{spec}: module {module!r} could not be imported ({e}); this ppviz may predate it") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ValueError(f"{spec}: module {module!r} has no attribute {attr!r}") from e
    return obj


@dataclass(frozen=True)
class Architecture:
    """One buildable model: ``build_fn(config_dict) -> nn.Module``, config checked by ``config_cls``.

    ``config_cls`` (a dataclass, or None to leave validation to ``build_fn``) and ``build_fn``
    may be given as ``"package.module:attribute"`` strings, imported on first use, so that
    registering an architecture never imports its code.
    """

    name: str
    config_cls: type | str | None
    build_fn: Callable[[dict], nn.Module] | str

    @property
    def lazy(self) -> bool:
        return isinstance(self.build_fn, str)

    def resolved(self) -> tuple[type | None, Callable[[dict], nn.Module]]:
        try:
            cls = _import_object(self.config_cls) if isinstance(self.config_cls, str) else self.config_cls
            fn = _import_object(self.build_fn) if isinstance(self.build_fn, str) else self.build_fn
        except ValueError as e:
            raise ValueError(f"architecture {self.name!r} is not available: {e}") from e
        return cls, fn

    def validate_config(self, config: Mapping) -> dict:
        """The config as a plain dict, after checking its keys against ``config_cls``."""
        cls, _ = self.resolved()
        config = dict(config)
        if cls is None or not dataclasses.is_dataclass(cls):
            return config
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(config) - set(fields))
        required = [
            n for n, f in fields.items()
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        ]
        missing = [n for n in required if n not in config]
        problems = []
        if unknown:
            problems.append(f"unknown keys {unknown} (known: {sorted(fields)})")
        if missing:
            problems.append(f"missing required keys {missing}")
        if problems:
            raise ValueError(f"config for architecture {self.name!r}: " + "; ".join(problems))
        try:
            cls(**config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config for architecture {self.name!r} is invalid: {e}") from e
        return config

    def build(self, config: Mapping) -> nn.Module:
        config = self.validate_config(config)
        _, fn = self.resolved()
        return fn(config)


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(
    name: str,
    config_cls: type | str | None,
    build_fn: Callable[[dict], nn.Module] | str,
    *,
    replace: bool = False,
) -> Architecture:
    """Register ``build_fn(config_dict) -> nn.Module`` under ``name`` (strings import lazily).

    A lazy entry (``build_fn`` given as an import path) may be replaced by a concrete one, so
    that the module it names can register itself when first imported; any other second
    registration of a name raises ValueError unless ``replace=True``.
    """
    if not NAME_RE.match(name):
        raise ValueError(f"architecture name {name!r} must match {NAME_RULE}")
    if name in ARCHITECTURES and not (replace or ARCHITECTURES[name].lazy):
        raise ValueError(f"architecture {name!r} is already registered (pass replace=True to replace it)")
    arch = Architecture(name, config_cls, build_fn)
    ARCHITECTURES[name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ValueError listing the known names otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known architectures: {sorted(ARCHITECTURES)}") from None


def _build_pp(config: dict) -> nn.Module:
    from ppviz.models.pp import PPAutoencoder, PPConfig

    return PPAutoencoder(PPConfig(**config))


register_architecture("pp-mlp", "ppviz.models.pp:PPConfig", _build_pp)
# The conditional EDM U-Net; its module is imported only when such a checkpoint is built.
register_architecture("edm-unet", None, "ppviz.diffusion.downscaler:build_from_config")


# -- Files: hashing, the safetensors header, JSON -------------------------------------------------


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


def read_safetensors_header(data: bytes) -> dict[str, dict]:
    """Tensor entries ``{name: {dtype, shape, data_offsets}}`` of a safetensors file's bytes.

    Raises ValueError saying what is wrong: too short, not safetensors (pickle, zip, ...),
    truncated (header or data shorter than announced), or trailing bytes.
    """
    size = len(data)
    if (what := _sniff(data)) is not None:
        raise ValueError(what)
    if size < 8:
        raise ValueError(f"is truncated or empty: {size} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER:
        raise ValueError(f"is not a safetensors file: its first 8 bytes announce a {n}-byte header")
    if 8 + n > size:
        raise ValueError(f"is truncated: the header is {n} bytes but only {size - 8} bytes follow its length")
    raw = data[8 : 8 + n]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("is not a safetensors file: its header is not a JSON object")
    header.pop("__metadata__", None)
    end = 0
    for name, entry in header.items():
        try:
            begin_, end_ = entry["data_offsets"]
            entry["dtype"], entry["shape"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"is not a valid safetensors file: bad header entry for tensor {name!r}") from None
        end = max(end, int(end_))
    have = size - 8 - n
    if end > have:
        raise ValueError(f"is truncated: tensor data should be {end} bytes but the file holds {have}")
    if end < have:
        raise ValueError(f"has {have - end} unexpected bytes after the tensor data")
    return header


def _manifest_from_header(header: Mapping[str, Mapping]) -> dict[str, list]:
    return {k: [list(v["shape"]), v["dtype"]] for k, v in sorted(header.items())}


def _jsonable(obj: Any, where: str = "extra") -> Any:
    """Plain JSON types; numpy/torch scalars and arrays, paths, tuples and dataclasses converted.

    Non-finite floats (NaN, inf) become None so that config.json stays strict JSON.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist(), where)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-able")


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


# -- Saving ---------------------------------------------------------------------------------------


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors that share no storage (safetensors refuses sharing)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for k, v in model.state_dict().items():
        t = v.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[k] = t
    return out


def _shape_problems(have: Mapping[str, tuple], want: Mapping[str, tuple]) -> list[str]:
    """Differences between checkpoint tensor shapes ``have`` and model shapes ``want``."""
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    wrong = [
        f"{k}: checkpoint {list(have[k])} vs model {list(want[k])}"
        for k in sorted(set(have) & set(want))
        if tuple(have[k]) != tuple(want[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys (in the model, not in the checkpoint): {missing}")
    if unexpected:
        problems.append(f"unexpected keys (in the checkpoint, not in the model): {unexpected}")
    if wrong:
        problems.append("shape mismatches: " + "; ".join(wrong))
    return problems


def _model_shapes(arch: Architecture, config: Mapping) -> dict[str, tuple]:
    """Tensor shapes of the model built from ``config``, built on the meta device when possible."""
    config = arch.validate_config(config)
    _, build = arch.resolved()
    try:
        with torch.device("meta"):
            model = build(config)
    except Exception:  # some modules cannot be built on meta; the CPU always works
        model = build(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _default_card(name: str, doc: Mapping) -> str:
    extra, w = doc.get("extra", {}), doc["weights"]
    summary = extra.get("summary", f"A ppviz {doc['kind']} checkpoint ({doc['architecture']}).")
    return (
        f"# {name}\n\n{summary}\n\n"
        f"- kind: `{doc['kind']}`; architecture: `{doc['architecture']}`; parameters: {w['n_parameters']:,}\n"
        f"- weights: `{WEIGHTS_FILE}`, sha256 `{w['sha256']}`\n"
        f"- created: {doc['created']} with ppviz {doc['ppviz_version']}, torch {doc['torch_version']}\n\n"
        f"## Architecture config\n\n```json\n{json.dumps(doc['config'], indent=2)}\n```\n\n"
        f"## Training, data and evaluation\n\n```json\n{json.dumps(extra, indent=2)}\n```\n\n"
        f"## Loading\n\n```python\nfrom ppviz.checkpoints import load_checkpoint\n"
        f"ckpt = load_checkpoint({name!r})  # or the path of this directory\n```\n"
    )


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # not every filesystem lets a directory be synced
        pass


def _hidden_sibling(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}-{secrets.token_hex(6)}"


def save_checkpoint(
    model: nn.Module,
    out_dir: str | os.PathLike,
    *,
    kind: str,
    architecture: str,
    config: Mapping | Any | None = None,
    extra: Mapping | None = None,
    model_card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as the checkpoint directory ``out_dir`` and return its path.

    Parameters
    ----------
    model : the module; its ``state_dict()`` is saved (contiguous, CPU).
    out_dir : the checkpoint directory ``.../NAME``; NAME must be a valid checkpoint name.
    kind : ``"pp"``, ``"diffusion"`` or another short word.
    architecture : a name in :data:`ARCHITECTURES`.
    config : the architecture config (dict or dataclass); None takes ``model.config``.
        The model built from it must have exactly the tensors of ``model`` (checked here, so
        that what is written can be loaded).
    extra : anything JSON-able (normalisation, grid, training data and command, seed, held-out
        metrics, ``summary`` (one line), ``default`` (bool)); NaN/inf become null.
    model_card : the text of MODEL_CARD.md; None writes one generated from the config.
    overwrite : replace an existing checkpoint at ``out_dir`` (otherwise FileExistsError).

    The save is atomic: everything is written into a hidden temporary directory beside
    ``out_dir`` and renamed into place, so an interrupted save leaves no partial checkpoint
    and an existing one intact.
    """
    out = Path(out_dir).expanduser().absolute()
    if not NAME_RE.match(out.name) or ".." in out.name:
        raise ValueError(f"checkpoint name {out.name!r} must match {NAME_RULE}")
    if not NAME_RE.match(kind):
        raise ValueError(f"kind {kind!r} must match {NAME_RULE}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    arch = get_architecture(architecture)
    if config is None:
        config = getattr(model, "config", None)
        if config is None:
            raise ValueError("no config given and the model has no .config attribute")
    config = _jsonable(config, "config")
    if not isinstance(config, dict):
        raise TypeError("config must be a mapping or a dataclass")
    extra = _jsonable(dict(extra or {}), "extra")

    tensors = _state_tensors(model)
    problems = _shape_problems({k: tuple(v.shape) for k, v in tensors.items()}, _model_shapes(arch, config))
    if problems:
        raise ValueError(
            f"model does not match architecture {architecture!r} built from config {config}: " + "; ".join(problems)
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(out, "tmp")
    os.mkdir(tmp)  # with the umask's permissions, unlike tempfile.mkdtemp
    old: Path | None = None
    try:
        weights = tmp / WEIGHTS_FILE
        save_file(tensors, str(weights), metadata={"format": "pt", "architecture": architecture})
        data = weights.read_bytes()
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "architecture": architecture,
            "config": config,
            "weights": {
                "file": WEIGHTS_FILE,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "n_parameters": int(sum(p.numel() for p in model.parameters())),
                "tensors": _manifest_from_header(read_safetensors_header(data)),
            },
            "ppviz_version": __version__,
            "torch_version": torch.__version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "extra": extra,
        }
        _write(tmp / CONFIG_FILE, _dumps(doc) + "\n")
        _write(tmp / CARD_FILE, model_card if model_card is not None else _default_card(out.name, doc))
        with open(weights, "rb") as f:
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if out.exists():
            old = _hidden_sibling(out, "old")
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            if old is not None:
                os.rename(old, out)
                old = None
            raise
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


# -- Names, directories and the registry ----------------------------------------------------------


def is_valid_name(name: str) -> bool:
    """True for a checkpoint name: ``[A-Za-z0-9][A-Za-z0-9_.-]*`` without ``..``."""
    return bool(NAME_RE.match(name)) and ".." not in name


def checkpoint_dirs() -> list[Path]:
    """Where names are looked up, in order: the shipped ``pretrained/``, then ``$PPVIZ_CHECKPOINTS``."""
    dirs = [PRETRAINED_DIR]
    for p in os.environ.get(ENV_DIRS, "").split(os.pathsep):
        if p.strip():
            dirs.append(Path(p.strip()).expanduser())
    return dirs


@dataclass(frozen=True)
class CheckpointInfo:
    """One entry of :func:`list_checkpoints`; ``error`` is set (and other fields may be None) when broken."""

    name: str
    path: Path
    kind: str | None = None
    architecture: str | None = None
    created: str | None = None
    sha256: str | None = None  # the first 12 hex digits recorded in config.json
    summary: str = ""
    default: bool = False
    shadowed_by: Path | None = None  # an earlier directory's checkpoint of the same name wins
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _read_config(path: Path, label: str) -> dict:
    """config.json of the checkpoint directory ``path``, with its required keys checked."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {label}: no such directory {path}")
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {label} ({path}): missing {' and '.join(missing)}")
    try:
        doc = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {label} ({path}): {CONFIG_FILE} is not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"checkpoint {label} ({path}): {CONFIG_FILE} is not a JSON object")
    if doc.get("format_version") != FORMAT_VERSION and "format_version" in doc:
        raise CheckpointError(
            f"checkpoint {label} ({path}): unknown format version {doc['format_version']!r} "
            f"(this ppviz {__version__} reads version {FORMAT_VERSION})"
        )
    need = ["format_version", "kind", "architecture", "config", "weights"]
    absent = [k for k in need if k not in doc]
    weights = doc.get("weights")
    if isinstance(weights, dict):
        absent += [f"weights.{k}" for k in ("sha256", "tensors") if k not in weights]
    elif "weights" in doc:
        absent.append("weights (not an object)")
    if not isinstance(doc.get("config", {}), dict):
        absent.append("config (not an object)")
    if absent:
        raise CheckpointError(f"checkpoint {label} ({path}): {CONFIG_FILE} lacks required keys {absent}")
    if doc["architecture"] not in ARCHITECTURES:
        raise CheckpointError(
            f"checkpoint {label} ({path}): unknown architecture {doc['architecture']!r}; "
            f"known architectures: {sorted(ARCHITECTURES)}"
        )
    return doc


def _is_candidate(sub: Path) -> bool:
    """A directory with a valid name holding config.json or model.safetensors."""
    return (
        is_valid_name(sub.name)
        and sub.is_dir()
        and ((sub / CONFIG_FILE).exists() or (sub / WEIGHTS_FILE).exists())
    )


def _scan() -> list[CheckpointInfo]:
    infos: list[CheckpointInfo] = []
    first: dict[str, Path] = {}
    for d in checkpoint_dirs():
        if not d.is_dir():
            continue
        try:
            subs = sorted(d.iterdir())
        except OSError:
            continue
        for sub in subs:
            if not _is_candidate(sub):
                continue
            shadowed = first.get(sub.name)
            first.setdefault(sub.name, sub)
            try:
                if not sub.resolve().is_relative_to(d.resolve()):
                    raise CheckpointError(f"checkpoint {sub.name!r}: {sub} leads outside {d}")
                doc = _read_config(sub, repr(sub.name))
            except CheckpointError as e:
                infos.append(CheckpointInfo(sub.name, sub, shadowed_by=shadowed, error=str(e)))
                continue
            extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}
            infos.append(
                CheckpointInfo(
                    name=sub.name,
                    path=sub,
                    kind=doc["kind"],
                    architecture=doc["architecture"],
                    created=doc.get("created"),
                    sha256=str(doc["weights"]["sha256"])[:12],
                    summary=str(extra.get("summary", "")).splitlines()[0] if extra.get("summary") else "",
                    default=extra.get("default") is True,
                    shadowed_by=shadowed,
                )
            )
    return infos


def list_checkpoints(kind: str | None = None) -> list[CheckpointInfo]:
    """Checkpoints in :func:`checkpoint_dirs`, in lookup order; broken ones carry ``error``.

    With ``kind``, only that kind (and broken entries whose kind could not be read).
    Never raises for a broken checkpoint. The config is read, the weights are not hashed:
    :func:`load_checkpoint` verifies them.
    """
    return [i for i in _scan() if kind is None or i.kind == kind or (i.kind is None and i.error)]


def _available(kind: str | None) -> str:
    names = [i.name for i in list_checkpoints(kind) if i.ok and i.shadowed_by is None]
    what = f"{kind} checkpoints" if kind else "checkpoints"
    if names:
        return f"available {what}: {', '.join(names)}"
    hint = f"; train one with `{TRAIN_HINT[kind]}`" if kind in TRAIN_HINT else ""
    return f"no {what} are available in {[str(d) for d in checkpoint_dirs()]}{hint}"


def resolve_checkpoint(
    name_or_path: str | os.PathLike, kind: str | None = None, *, allow_paths: bool = True
) -> Path:
    """The directory of a checkpoint given by registered name or (``allow_paths``) directory path.

    A ``Path``, or a string with a path separator, is a path; any other string is a name, looked
    up in :func:`checkpoint_dirs` (the first directory wins) and, when it is not registered, used
    as a path if such a directory exists. Names must match ``[A-Za-z0-9][A-Za-z0-9_.-]*`` without
    ``..``; anything else that is not an existing directory is refused (path traversal).
    Pass ``allow_paths=False`` for untrusted input (e.g. a browser): then only names resolve.
    With ``kind``, a checkpoint of another kind is refused.
    """
    text = os.fspath(name_or_path)
    as_path = isinstance(name_or_path, os.PathLike) or any(c and c in text for c in ("/", os.sep, os.altsep))
    found: Path | None = None
    if not as_path and is_valid_name(text):
        for d in checkpoint_dirs():
            cand = d / text
            if _is_candidate(cand):
                if not cand.resolve().is_relative_to(d.resolve()):
                    raise CheckpointError(f"checkpoint {text!r}: {cand} leads outside {d}; refused")
                found = cand
                break
    if found is None and allow_paths and Path(text).expanduser().is_dir():
        found = Path(text).expanduser()
    if found is None:
        if not is_valid_name(text):
            rule = f"not a valid checkpoint name (names match {NAME_RULE})"
            if allow_paths:
                raise CheckpointError(f"{text!r}: no such checkpoint directory, and {rule}")
            raise CheckpointError(f"{text!r} is {rule}; paths are not accepted here")
        raise CheckpointError(f"no checkpoint named {text!r}; {_available(kind)}")
    if kind is not None:
        try:
            doc = json.loads((found / CONFIG_FILE).read_text(encoding="utf-8"))
            got = doc.get("kind") if isinstance(doc, dict) else None
        except (OSError, ValueError):
            got = None  # load_checkpoint says what is wrong with it
        if got is not None and got != kind:
            raise CheckpointError(f"checkpoint {text!r} ({found}) is a {got!r} checkpoint, not {kind!r}")
    return found


def default_checkpoint(kind: str) -> str:
    """Name of the default checkpoint of ``kind``.

    The first (in lookup order) with ``extra.default: true``, else the only one of that kind;
    CheckpointError when there is none (saying how to train one) or several without a default.
    """
    cands = [i for i in list_checkpoints(kind) if i.ok and i.kind == kind and i.shadowed_by is None]
    for i in cands:
        if i.default:
            return i.name
    if len(cands) == 1:
        return cands[0].name
    if not cands:
        hint = f"train one with `{TRAIN_HINT[kind]}`" if kind in TRAIN_HINT else "train one"
        raise CheckpointError(
            f"no {kind} checkpoint is available in {[str(d) for d in checkpoint_dirs()]}; "
            f"{hint}, or point ${ENV_DIRS} at a directory of checkpoints"
        )
    raise CheckpointError(
        f"several {kind} checkpoints and none marked default: {[i.name for i in cands]}; pass one by name"
    )


# -- Loading --------------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """A model built from config.json with verified weights, in eval mode."""

    model: nn.Module
    config: dict  # the whole config.json
    path: Path
    sha256: str
    name: str
    kind: str

    @property
    def architecture(self) -> str:
        return self.config["architecture"]

    @property
    def extra(self) -> dict:
        return self.config.get("extra", {})


def load_checkpoint(
    path_or_name: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    kind: str | None = None,
    allow_paths: bool = True,
) -> LoadedCheckpoint:
    """Load a checkpoint by name or directory path; refuse anything that does not check out.

    Order of checks: files present; config.json valid with a known format version and
    architecture; model.safetensors really safetensors and complete; its sha256 equal to the
    recorded one; its tensors equal to the recorded manifest; its keys and shapes exactly those
    of the model built from the config. Each failure is a :class:`CheckpointError`.
    """
    path = resolve_checkpoint(path_or_name, kind, allow_paths=allow_paths)
    label = repr(path.name)
    where = f"checkpoint {label} ({path})"
    doc = _read_config(path, label)
    if kind is not None and doc["kind"] != kind:
        raise CheckpointError(f"{where} is a {doc['kind']!r} checkpoint, not {kind!r}")

    data = (path / WEIGHTS_FILE).read_bytes()
    try:
        header = read_safetensors_header(data)
    except ValueError as e:
        raise CheckpointError(f"{where}: {WEIGHTS_FILE} {e}") from None
    sha = hashlib.sha256(data).hexdigest()
    recorded = str(doc["weights"]["sha256"])
    if sha != recorded:
        raise CheckpointError(
            f"{where}: {WEIGHTS_FILE} was modified after it was written: its sha256 is {sha[:16]}..., "
            f"config.json records {recorded[:16]}..."
        )
    manifest = _manifest_from_header(header)
    try:
        recorded_manifest = {k: [list(v[0]), v[1]] for k, v in sorted(dict(doc["weights"]["tensors"]).items())}
    except (TypeError, ValueError, IndexError, KeyError):
        raise CheckpointError(f"{where}: config.json's tensor manifest (weights.tensors) is malformed") from None
    if manifest != recorded_manifest:
        diffs = [
            f"{k}: config {recorded_manifest.get(k)} vs file {manifest.get(k)}"
            for k in sorted(set(manifest) | set(recorded_manifest))
            if manifest.get(k) != recorded_manifest.get(k)
        ]
        raise CheckpointError(
            f"{where}: config.json's tensor manifest does not match {WEIGHTS_FILE}: " + "; ".join(diffs)
        )

    arch = ARCHITECTURES[doc["architecture"]]
    try:
        model = arch.build(doc["config"])
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except TypeError as e:
        raise CheckpointError(
            f"{where}: cannot build architecture {doc['architecture']!r} from its config: {e}"
        ) from None
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v["shape"]) for k, v in header.items()}
    problems = _shape_problems(have, want)
    if problems:
        raise CheckpointError(
            f"{where}: the weights do not fit architecture {doc['architecture']!r} built from config "
            f"{doc['config']}: " + "; ".join(problems)
        )
    try:
        tensors = _load_safetensors_bytes(data)
        model.load_state_dict(tensors, strict=True)
    except Exception as e:  # safetensors' own validation (dtype sizes, offsets) or torch's
        raise CheckpointError(f"{where}: {WEIGHTS_FILE} could not be loaded: {e}") from None
    model.to(device).eval()
    return LoadedCheckpoint(model=model, config=doc, path=path, sha256=sha, name=path.name, kind=doc["kind"])
