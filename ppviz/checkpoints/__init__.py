"""Checkpoints: ``.safetensors`` weights + JSON config, the architectures they build, the ones available.

A checkpoint is a directory ``NAME/`` holding

- ``model.safetensors``: the weights (``model.state_dict()``, contiguous, on the CPU);
- ``config.json``: format version, kind, architecture, the architecture config, the sha256 and
  tensor manifest ``{name: [shape, dtype]}`` of ``model.safetensors``, the ppviz version, the
  creation time, and ``extra`` (normalisation, grid, training data and command, seed, held-out
  metrics, ``summary``, ``default``: anything JSON-able);
- ``MODEL_CARD.md``: what the model is, how it was made and how well it does, for people.

Nothing is ever unpickled (EDM's pickles are the lesson): loading reads ``config.json``, builds
the model from its config through a small architecture registry, and then loads the safetensors
weights with strict key and shape checks. Every refusal is a :class:`CheckpointError` whose
message names the checkpoint and says exactly what is wrong.

- :mod:`ppviz.checkpoints.format`: the files (safetensors headers through ``safe_open``, sha256,
  ``config.json``), no torch;
- :mod:`ppviz.checkpoints.registry`: architectures by name (:data:`ARCHITECTURES`), no torch;
- :mod:`ppviz.checkpoints.lookup`: names, the directories they are looked up in, listing, no torch;
- :mod:`ppviz.checkpoints.store`: :func:`save_checkpoint` and :func:`load_checkpoint` (torch),
  imported on first use of those names, so listing checkpoints never imports torch.
- :mod:`ppviz.checkpoints.onnx_contract`: ONNX checkpoints (``model.onnx`` + the contract in
  ``config.json``, architecture ``onnx-denoiser``): a denoiser made elsewhere, run by onnxruntime.
"""

from __future__ import annotations

from ppviz.checkpoints.format import (
    CARD_FILE, CONFIG_FILE, FORMAT, FORMAT_VERSION, WEIGHTS_FILE, CheckpointError, file_sha256, manifest_from_header,
    read_safetensors_header,
)
from ppviz.checkpoints.lookup import (
    ENV_DIRS, CheckpointInfo, check_checkpoint, checkpoint_dirs, default_checkpoint, is_valid_name, list_checkpoints,
    read_config, resolve_checkpoint,
)
from ppviz.checkpoints.registry import ARCHITECTURES, Architecture, get_architecture, register_architecture

_STORE = ("LoadedCheckpoint", "load_checkpoint", "save_checkpoint")

__all__ = [
    "ARCHITECTURES", "CARD_FILE", "CONFIG_FILE", "ENV_DIRS", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FILE", "Architecture",
    "CheckpointError", "CheckpointInfo", "check_checkpoint", "checkpoint_dirs", "default_checkpoint", "file_sha256",
    "get_architecture", "is_valid_name", "list_checkpoints", "manifest_from_header", "read_config",
    "read_safetensors_header", "register_architecture", "resolve_checkpoint", *_STORE,
]


def __getattr__(name: str):
    if name in _STORE:  # torch is imported only when a checkpoint is saved or loaded
        from ppviz.checkpoints import store

        return getattr(store, name)
    raise AttributeError(f"module 'ppviz.checkpoints' has no attribute {name!r}")
