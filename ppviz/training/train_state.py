"""The resume state of the diffusion trainer: safetensors for tensors, JSON for the rest, never pickle.

``train_state.safetensors`` holds the model, EMA, Adam moments and torch RNG states;
``train_state.json`` the step, configs, numpy RNG state and Adam hyper-parameters. Both are
written to temporary names and renamed into place; the step in the safetensors metadata must
match the JSON's, so an interrupted save is detected on reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ppviz.diffusion.downscaler import Downscaler, DownscalerConfig

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"
STATE_FORMAT = "ppviz-diffusion-train-state"
STATE_VERSION = 1


def _save_state(out_dir: Path, *, step, seconds, model, ema, opt, np_rng, torch_gen, model_config, train_config,
                extra: dict | None = None):
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model/{k}"] = v.detach().cpu().contiguous()
    for k, v in ema.state_dict().items():
        tensors[f"ema/{k}"] = v.detach().cpu().contiguous()
    opt_sd = opt.state_dict()
    opt_scalars: dict[str, dict] = {}
    for idx, st in opt_sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{idx}/{k}"] = v.detach().cpu().contiguous()
            else:
                opt_scalars.setdefault(str(idx), {})[k] = v
    tensors["rng/torch_noise"] = torch_gen.get_state()
    tensors["rng/torch_global"] = torch.get_rng_state()
    meta = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "step": int(step),
        "seconds": float(seconds),
        "model_config": model_config.to_dict(),
        "train_config": train_config.to_dict(),
        "numpy_rng": np_rng.bit_generator.state,
        "optim_param_groups": opt_sd["param_groups"],
        "optim_state_scalars": opt_scalars,
        **(extra or {}),
    }
    tmp_t = out_dir / f".{STATE_TENSORS}.tmp"
    tmp_j = out_dir / f".{STATE_JSON}.tmp"
    save_file(tensors, str(tmp_t), metadata={"format": STATE_FORMAT, "step": str(int(step))})
    tmp_j.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_t, out_dir / STATE_TENSORS)
    os.replace(tmp_j, out_dir / STATE_JSON)


def _read_state(out_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = json.loads((out_dir / STATE_JSON).read_text())
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"{out_dir / STATE_JSON} is not a {STATE_FORMAT} file")
    if meta.get("version") != STATE_VERSION:
        raise ValueError(f"{out_dir / STATE_JSON}: unsupported version {meta.get('version')}")
    tensors = {}
    with safe_open(str(out_dir / STATE_TENSORS), framework="pt") as f:
        file_step = int((f.metadata() or {}).get("step", -1))
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    if file_step != meta["step"]:
        raise ValueError(
            f"{out_dir}: {STATE_TENSORS} is at step {file_step} but {STATE_JSON} at step {meta['step']} "
            "(interrupted save?)"
        )
    return meta, tensors


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optim_state_dict(meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state: dict[int, dict] = {}
    for k, v in _sub(tensors, "optim/").items():
        idx, name = k.split("/", 1)
        state.setdefault(int(idx), {})[name] = v
    for idx, d in meta["optim_state_scalars"].items():
        state.setdefault(int(idx), {}).update(d)
    return {"state": state, "param_groups": meta["optim_param_groups"]}


def has_state(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a resume state of :func:`train_diffusion`."""
    d = Path(out_dir)
    return (d / STATE_JSON).is_file() and (d / STATE_TENSORS).is_file()


def load_ema_model(out_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Downscaler:
    """The EMA weights of a training state, as a :class:`Downscaler` in eval mode (for export).

    Parameters
    ----------
    out_dir : path
        The ``out_dir`` of :func:`train_diffusion`.
    device : str or torch.device

    Returns
    -------
    Downscaler
        ``model.config`` is the :class:`DownscalerConfig` to save beside the weights.
    """
    meta, tensors = _read_state(Path(out_dir))
    model = Downscaler(DownscalerConfig.from_dict(meta["model_config"]))
    model.load_state_dict(_sub(tensors, "ema/"), strict=True)
    return model.to(device).eval()


def steps_reached(out_dir: str | os.PathLike) -> int:
    """The step of the resume state in ``out_dir`` (below ``train_config.steps`` after a time limit)."""
    return int(json.loads((Path(out_dir) / STATE_JSON).read_text())["step"])
