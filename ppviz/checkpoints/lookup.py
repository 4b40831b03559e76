"""Checkpoint names and where they are looked up: the registry of available checkpoints.

Checkpoints are looked up by name in :func:`checkpoint_dirs`: the shipped ``pretrained/`` (the
repository's, or ``ppviz/pretrained/`` in an installed wheel: :mod:`ppviz.resources`)
first, then each directory of ``$PPVIZ_CHECKPOINTS`` (``os.pathsep``-separated), in order.
A name is ``[A-Za-z0-9][A-Za-z0-9_.-]*`` without ``..`` (so no path separators, no traversal, no
hidden directories: an interrupted save leaves only a hidden ``.NAME.tmp-*`` directory, which is
never listed). **Collisions: the first directory wins**, so a shipped ``pretrained/`` checkpoint
always means the same weights (the names in the README and model cards stay reproducible); a
user checkpoint of the same name is still listed, marked ``shadowed_by``, and can be loaded by
its path. A name lookup only ever returns a directory inside one of the configured directories
(a symlink that leads outside is refused). A directory holding ``model.onnx`` instead of
``model.safetensors`` is an exported denoiser (:mod:`ppviz.checkpoints.onnx_contract`): listed and
resolved the same way; its ``config.json`` and ``model.onnx`` must not be links leading out of it.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ppviz import __version__, resources
from ppviz.checkpoints.format import CONFIG_FILE, FORMAT_VERSION, NAME_RE, NAME_RULE, WEIGHTS_FILE, CheckpointError
from ppviz.checkpoints.onnx_contract import ARCHITECTURE as ONNX_ARCHITECTURE
from ppviz.checkpoints.onnx_contract import ONNX_FILE
from ppviz.checkpoints.registry import ARCHITECTURES

ENV_DIRS = "PPVIZ_CHECKPOINTS"
PRETRAINED_DIR = resources.PRETRAINED_DIR  # pretrained/ in a checkout, ppviz/pretrained/ in a wheel
TRAIN_HINT = {"pp": "ppviz train pp", "diffusion": "ppviz train diffusion"}


def is_valid_name(name: str) -> bool:
    """True for a checkpoint name: ``[A-Za-z0-9][A-Za-z0-9_.-]*`` without ``..``."""
    return bool(NAME_RE.match(name)) and ".." not in name


def checkpoint_dirs() -> list[Path]:
    """Where names are looked up, in order: repo ``pretrained/``, then ``$PPVIZ_CHECKPOINTS``."""
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


def read_config(path: Path, label: str) -> dict:
    """config.json of the checkpoint directory ``path``, with its required keys checked."""
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {label}: no such directory {path}")
    onnx = (path / ONNX_FILE).exists() and not (path / WEIGHTS_FILE).exists()  # an exported denoiser
    weights_file = ONNX_FILE if onnx else WEIGHTS_FILE
    if not (path / WEIGHTS_FILE).exists() and not (path / ONNX_FILE).exists():
        weights_file = f"{WEIGHTS_FILE} (or {ONNX_FILE}, for an exported denoiser)"
    missing = [f for f in (CONFIG_FILE, weights_file) if not (path / f.split(" ")[0]).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {label} ({path}): missing {' and '.join(missing)}")
    for f in (CONFIG_FILE, ONNX_FILE) if onnx else ():  # nothing of an ONNX checkpoint is read from outside it
        if not (path / f).resolve().is_relative_to(path.resolve()):
            raise CheckpointError(f"checkpoint {label} ({path}): {f} is a link leading outside the checkpoint "
                                  f"directory (to {(path / f).resolve()}); refused")
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
        absent += [f"weights.{k}" for k in (("sha256", "format") if onnx else ("sha256", "tensors")) if k not in weights]
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
    if onnx and (doc["architecture"] != ONNX_ARCHITECTURE or doc["weights"].get("format") != "onnx"):
        raise CheckpointError(
            f"checkpoint {label} ({path}): holds {ONNX_FILE} but {CONFIG_FILE} declares architecture "
            f"{doc['architecture']!r} with weights format {doc['weights'].get('format')!r}; an ONNX checkpoint "
            f"has architecture {ONNX_ARCHITECTURE!r} and weights format 'onnx'"
        )
    if not onnx and doc["architecture"] == ONNX_ARCHITECTURE:
        raise CheckpointError(f"checkpoint {label} ({path}): architecture {ONNX_ARCHITECTURE!r} needs {ONNX_FILE}, "
                              "which is missing")
    return doc


def _is_candidate(sub: Path) -> bool:
    """A directory with a valid name holding config.json or model.safetensors."""
    return (
        is_valid_name(sub.name)
        and sub.is_dir()
        and any((sub / f).exists() for f in (CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE))
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
                doc = read_config(sub, repr(sub.name))
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


def check_checkpoint(name: str | None, kind: str) -> str:
    """``name`` if it is a registered checkpoint of ``kind`` (names only, never paths: it may
    come from a browser); ValueError saying what is available otherwise."""
    if not name:
        names = [i.name for i in list_checkpoints(kind) if i.ok and i.kind == kind and i.shadowed_by is None]
        hint = f"choose one of {names}" if names else "none is registered (see the Checkpoints page)"
        raise ValueError(f"no {kind} checkpoint chosen; {hint}")
    resolve_checkpoint(str(name), kind, allow_paths=False)
    return str(name)


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
