"""Export a denoiser to an ONNX checkpoint (``model.onnx`` + contract ``config.json`` + card).

:func:`export_denoiser` exports *any* torch module ``D(x, sigma, cond)`` (EDM preconditioning
inside, the contract of :mod:`ppviz.checkpoints.onnx_contract`) with ``torch.onnx.export(...,
dynamo=True)`` (torch.export + onnxscript, offline; the legacy TorchScript exporter is deprecated)
with dynamic batch, height and width (height and width multiples of ``size_multiple``), into one
self-contained file (no external data), then checks the graph in onnxruntime against the module on
an example input. :func:`export_checkpoint` does this for a ppviz diffusion checkpoint
(``ppviz export onnx``): its ``EDMPrecond`` is the graph, its config gives the contract.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ppviz import __version__
from ppviz.checkpoints.format import CARD_FILE, CONFIG_FILE, FORMAT, FORMAT_VERSION, NAME_RE, NAME_RULE, _dumps
from ppviz.checkpoints.onnx_contract import (
    ARCHITECTURE, CONTRACT_OUTPUTS, GRAPH, ONNX_FILE, check_contract, contract_inputs,
)
from ppviz.checkpoints.store import _fsync_dir, _hidden_sibling, _write

OPSET = 20


def make_contract(*, sigma_data: float, static_names, factor: int, size_multiple: int, residual: bool = True,
                  upsample: str = "bilinear", noise_schedule: Mapping | None = None) -> dict:
    """The contract (``config`` of an ONNX checkpoint) of a denoiser with these properties."""
    names = ["coarse_up", *static_names]
    contract = {
        "graph": GRAPH,
        "inputs": contract_inputs(len(names)),
        "outputs": CONTRACT_OUTPUTS,
        "cond_channels": names,
        "static_channels": {"names": list(static_names), "provided": "input"},
        "sigma_data": float(sigma_data),
        "factor": int(factor),
        "size_multiple": int(size_multiple),
        "residual": bool(residual),
        "upsample": upsample,
        "noise_schedule": {"kind": "karras", "sigma_min": 0.002, "sigma_max": 80.0, "rho": 7.0, "steps": 18,
                           "sampler": "heun", **(noise_schedule or {})},
        "preconditioning": "inside the graph: D = c_skip x + c_out F(c_in x, cond; c_noise), EDM eq. 7 / Table 1",
    }
    return check_contract(contract, "export")


def _card(name: str, doc: Mapping) -> str:
    c, w, extra = doc["config"], doc["weights"], doc["extra"]
    rows = "\n".join(f"| {i['name']} | {i['shape']} | {i['dtype']} | {i['meaning']} |"
                     for i in c["inputs"] + c["outputs"])
    return (
        f"# {name}\n\n{extra.get('summary', 'An exported diffusion denoiser.')}\n\n"
        f"- format: ONNX (`{ONNX_FILE}`, opset {w['opset']}), sha256 `{w['sha256']}`; run by onnxruntime\n"
        f"- graph: `{c['graph']}`: {c['preconditioning']}\n"
        f"- sigma_data {c['sigma_data']}; block factor {c['factor']}; upsampling {c['upsample']}; "
        f"residual target: {c['residual']}; height and width padded (reflect) to multiples of {c['size_multiple']}\n"
        f"- conditioning channels (in `cond`, in order): {', '.join(c['cond_channels'])}; static channels are "
        "inputs, computed by ppviz for the chosen grid\n"
        f"- noise schedule: {json.dumps(c['noise_schedule'])}\n"
        f"- created: {doc['created']} with ppviz {doc['ppviz_version']}, torch {doc['torch_version']}\n\n"
        f"## Inputs and outputs\n\n| name | shape | dtype | meaning |\n| --- | --- | --- | --- |\n{rows}\n\n"
        f"## Provenance and extra\n\n```json\n{json.dumps(extra, indent=2)}\n```\n\n"
        f"## Loading\n\n```python\nfrom ppviz.checkpoints import load_checkpoint\n"
        f"ckpt = load_checkpoint({name!r})  # ckpt.model.sample(coarse, static, seeds)\n```\n"
    )


def _export_graph(denoiser: nn.Module, path: Path, contract: dict) -> float:
    """Write ``denoiser`` to ``path``; returns the max |onnxruntime - torch| on an example input."""
    import onnxruntime as ort
    from torch.export import Dim

    m, c = contract["size_multiple"], len(contract["cond_channels"])
    g = torch.Generator().manual_seed(0)
    h, w = m * max(1, -(-16 // m)), m * max(1, -(-24 // m))
    x, cond = torch.randn(2, 1, h, w, generator=g), torch.randn(2, c, h, w, generator=g)
    sigma = torch.tensor([2.0, 0.3])
    batch, height, width = Dim("batch", min=1, max=4096), Dim("rows", min=1) * m, Dim("cols", min=1) * m
    was = denoiser.training
    denoiser.eval()
    # the exporter logs a warning per torchvision op it cannot register; ppviz's graphs use none
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                denoiser, (x, sigma, cond), str(path), dynamo=True, external_data=False, optimize=True,
                opset_version=OPSET, verbose=False, input_names=["x", "sigma", "cond"], output_names=["denoised"],
                dynamic_shapes={"x": {0: batch, 2: height, 3: width}, "sigma": {0: batch},
                                "cond": {0: batch, 2: height, 3: width}},
            )
        with torch.no_grad():
            want = denoiser(x, sigma, cond).numpy()
    finally:
        denoiser.train(was)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["denoised"], {"x": x.numpy(), "sigma": sigma.numpy(), "cond": cond.numpy()})[0]
    return float(np.abs(got - want).max())


def write_contract_files(directory: Path, contract: Mapping, *, kind: str = "diffusion", n_parameters: int = 0,
                         extra: Mapping | None = None, model_card: str | None = None,
                         external: Mapping[str, str] | None = None, name: str | None = None) -> dict:
    """Write ``config.json`` and ``MODEL_CARD.md`` beside ``directory/model.onnx``; returns the config.

    ``external``: ``{file name: sha256}`` of external-data files the graph reads (none for
    :func:`export_denoiser`'s single-file export).
    """
    directory = Path(directory)
    data = (directory / ONNX_FILE).read_bytes()
    doc = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "architecture": ARCHITECTURE,
        "config": dict(contract),
        "weights": {"file": ONNX_FILE, "format": "onnx", "opset": OPSET, "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data), "n_parameters": int(n_parameters), **({"external": dict(external)} if external else {})},
        "ppviz_version": __version__, "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extra": dict(extra or {}),
    }
    _write(directory / CONFIG_FILE, _dumps(doc) + "\n")
    _write(directory / CARD_FILE, model_card if model_card is not None else _card(name or directory.name, doc))
    return doc


def export_denoiser(denoiser: nn.Module, out_dir: str | os.PathLike, *, contract: Mapping, kind: str = "diffusion",
                    extra: Mapping | None = None, model_card: str | None = None, overwrite: bool = False) -> Path:
    """Export ``denoiser`` (``forward(x (B,1,H,W), sigma (B,), cond (B,C,H,W)) -> (B,1,H,W)``) as an
    ONNX checkpoint directory ``out_dir`` (written atomically); returns its path.

    ``contract`` comes from :func:`make_contract`. ``extra`` (JSON-able) is kept in config.json
    (``summary``, ``pp_checkpoint``, ``target``...), with ``export_check``: the max absolute
    difference between onnxruntime and torch on an example input.
    """
    out = Path(out_dir).expanduser().absolute()
    if not NAME_RE.match(out.name) or ".." in out.name:
        raise ValueError(f"checkpoint name {out.name!r} must match {NAME_RULE}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    contract = check_contract(contract, "export")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(out, "tmp")
    os.mkdir(tmp)
    try:
        diff = _export_graph(denoiser, tmp / ONNX_FILE, contract)
        leftovers = sorted(p.name for p in tmp.iterdir() if p.name != ONNX_FILE)
        if leftovers:
            raise RuntimeError(f"the ONNX export wrote more than {ONNX_FILE}: {leftovers}")
        write_contract_files(tmp, contract, kind=kind, n_parameters=sum(p.numel() for p in denoiser.parameters()),
                             extra={**dict(extra or {}), "export_check": {"max_abs_diff_vs_torch": diff}},
                             model_card=model_card, name=out.name)
        _fsync_dir(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Export the ppviz diffusion checkpoint ``checkpoint`` (name or directory) to ONNX at ``out_dir``."""
    from ppviz.checkpoints import load_checkpoint
    from ppviz.diffusion.downscaler import Downscaler

    ckpt = load_checkpoint(checkpoint, kind="diffusion")
    if not isinstance(ckpt.model, Downscaler) or ckpt.architecture != "edm-unet":
        raise ValueError(f"checkpoint {ckpt.name!r} has architecture {ckpt.architecture!r}; only 'edm-unet' "
                         "checkpoints (ppviz train diffusion) are exported")
    cfg = ckpt.model.config
    s = cfg.schedule  # the checkpoint's own noise schedule travels with the export (issue 11)
    if s.grids is not None:
        raise ValueError(f"checkpoint {ckpt.name!r} is a few-step student sampled on stored noise levels "
                         f"(steps {list(s.grids)}); the ONNX contract carries Karras schedules only, so it is "
                         "not exported")
    contract = make_contract(sigma_data=cfg.sigma_data, static_names=cfg.static_names, factor=cfg.factor,
                             size_multiple=cfg.unet.size_multiple, residual=cfg.residual, upsample=cfg.upsample,
                             noise_schedule={"sigma_min": s.sigma_min, "sigma_max": s.sigma_max, "rho": s.rho,
                                             "steps": s.default_steps, "sampler": s.sampler,
                                             "min_steps": dict(s.min_steps)})
    extra = {k: v for k, v in ckpt.extra.items() if k not in ("default", "summary")}
    extra["summary"] = f"ONNX export of {ckpt.name} ({ckpt.extra.get('summary', 'a ppviz diffusion model')})"
    extra["exported_from"] = {"checkpoint": ckpt.name, "sha256": ckpt.sha256, "architecture": ckpt.architecture}
    return export_denoiser(ckpt.model.precond, out_dir, contract=contract, extra=extra, overwrite=overwrite)
