"""Saving and loading checkpoints (the layout is in :mod:`ppviz.checkpoints`): checked both ways.

:func:`save_checkpoint` writes atomically (a hidden temporary directory renamed into place) and
refuses a model that the config would not rebuild; :func:`load_checkpoint` builds the model from
``config.json`` through :mod:`ppviz.checkpoints.registry`, then loads the safetensors weights with
strict key and shape checks after verifying their sha256 and manifest. Nothing is ever unpickled.
Every refusal is a :class:`ppviz.checkpoints.CheckpointError` naming the checkpoint and the fault.
"""

from __future__ import annotations

import datetime as _dt
import json
import hashlib
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _load_safetensors_bytes
from safetensors.torch import save_file
from torch import nn

from ppviz import __version__
from ppviz.checkpoints.format import (
    CARD_FILE, CONFIG_FILE, FORMAT, FORMAT_VERSION, NAME_RE, NAME_RULE, WEIGHTS_FILE, CheckpointError, _dumps,
    _jsonable, manifest_from_header, read_safetensors_header,
)
from ppviz.checkpoints.lookup import read_config, resolve_checkpoint
from ppviz.checkpoints.registry import ARCHITECTURES, Architecture, get_architecture

__all__ = ["LoadedCheckpoint", "load_checkpoint", "save_checkpoint"]


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
    return [text for bad, text in ((missing, f"missing keys (in the model, not in the checkpoint): {missing}"),
                                   (unexpected, f"unexpected keys (in the checkpoint, not in the model): {unexpected}"),
                                   (wrong, "shape mismatches: " + "; ".join(wrong))) if bad]


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
                "tensors": manifest_from_header(read_safetensors_header(weights)),
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
    doc = read_config(path, label)
    if kind is not None and doc["kind"] != kind:
        raise CheckpointError(f"{where} is a {doc['kind']!r} checkpoint, not {kind!r}")
    if doc["weights"].get("format") == "onnx":
        return _load_onnx(path, doc, where, device)

    data = (path / WEIGHTS_FILE).read_bytes()
    try:
        header = read_safetensors_header(path / WEIGHTS_FILE)
    except ValueError as e:
        raise CheckpointError(f"{where}: {WEIGHTS_FILE} {e}") from None
    sha = hashlib.sha256(data).hexdigest()
    recorded = str(doc["weights"]["sha256"])
    if sha != recorded:
        raise CheckpointError(
            f"{where}: {WEIGHTS_FILE} was modified after it was written: its sha256 is {sha[:16]}..., "
            f"config.json records {recorded[:16]}..."
        )
    manifest = manifest_from_header(header)
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


def _load_onnx(path: Path, doc: dict, where: str, device) -> LoadedCheckpoint:
    """An ONNX checkpoint (:mod:`ppviz.checkpoints.onnx_contract`): contract, then file checks, then build."""
    from ppviz.checkpoints.onnx_contract import check_contract, read_onnx_model

    contract = check_contract(doc["config"], where)
    proto = read_onnx_model(path, {**doc, "config": contract}, where)
    _, build = ARCHITECTURES[doc["architecture"]].resolved()
    try:
        model = build(contract, onnx_model=proto.SerializeToString(), device=device)
    except (RuntimeError, ValueError) as e:  # onnxruntime refuses the graph (unknown op, bad types)
        raise CheckpointError(f"{where}: cannot build the ONNX denoiser: {str(e).splitlines()[0]}") from None
    return LoadedCheckpoint(model=model, config=doc, path=path, sha256=str(doc["weights"]["sha256"]), name=path.name,
                            kind=doc["kind"])
