"""Training runs end to end: data, training, held-out scores, model card, checkpoint (``ppviz train``).

:func:`train_pp_checkpoint` and :func:`train_diffusion_checkpoint` are what ``ppviz train pp`` and
``ppviz train diffusion`` call after parsing their arguments; the pieces they put together are
:mod:`ppviz.training.pp`, :mod:`ppviz.training.diffusion_loop`, :mod:`ppviz.training.diffusion`
(data, held-out scores, card) and :mod:`ppviz.training.cards`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

__all__ = ["distill_checkpoint", "train_diffusion_checkpoint", "train_pp_checkpoint"]


def train_pp_checkpoint(out, *, data=None, shares=None, distribution_weights=None, steps: int = 3000,
                        batch: int = 16384, lr: float = 3e-3, hidden: int = 64, depth: int = 3, seed: int = 0,
                        holdout: float = 0.2, default: bool = False, command: str = "") -> tuple[Path, dict]:
    """Train the PP encoder-decoder on ``data`` (paths; None or 'default': the embedded dataset),
    score it on the held-out hours of each dataset and write the checkpoint ``out`` with its model
    card. ``shares`` and ``distribution_weights`` are tuples, one number per dataset (None: equal
    shares; the shares). Returns the checkpoint path and the held-out scores per dataset."""
    import time

    from ppviz.checkpoints import save_checkpoint
    from ppviz.data.source import load_dataset
    from ppviz.models.pp import PPConfig
    from ppviz.training.cards import pp_model_card
    from ppviz.training.pp import CellPool, PPTrainConfig, evaluate_pp, split_times, train_pp

    data = list(data or ["default"])
    cfg = PPTrainConfig(steps=steps, batch=batch, lr=lr, seed=seed, holdout_fraction=holdout, shares=shares,
                        distribution_weights=distribution_weights, model=PPConfig(hidden=hidden, depth=depth))
    train_pools, held = [], {}
    desc = []
    for d in data:
        ds = load_dataset(None if d in ("default", "synthetic") else d)
        label = "synthetic" if ds.attrs.get("source") == "synthetic" else Path(d).name
        tr, te = split_times(ds.time.values, holdout)
        # at most ~12M training cells per dataset keeps memory bounded (every k-th step)
        stride = max(1, int(np.ceil(tr.size * ds.sizes["lat"] * ds.sizes["lon"] / 12e6)))
        path = None if d in ("default", "synthetic") else d
        train_pools.append(CellPool.from_hours(label, path, tr[::stride]))
        held[label] = CellPool.from_hours(label, path, te[::stride])
        desc.append(f"{label} ({ds.attrs.get('source', '?')[:120]}; {tr.size} training and {te.size} held-out hours)")
    t0 = time.perf_counter()
    model, history = train_pp(train_pools, cfg, progress=True)
    seconds = time.perf_counter() - t0
    scores = {label: evaluate_pp(model, pool) for label, pool in held.items()}
    name = Path(out).name
    card = pp_model_card(name, model.config.to_dict(), cfg.to_dict(), scores, command, seconds, desc)
    extra = {
        "summary": f"PP encoder-decoder, {hidden}x{depth} MLP, trained on {', '.join(held)}",
        "normalisation": {"tp_scale": model.config.tp_scale, "vimd_scale": model.config.vimd_scale},
        "training": {**cfg.to_dict(), "data": desc, "seconds": round(seconds, 1), "command": command},
        "heldout_scores": scores,
        "default": bool(default),
    }
    path = save_checkpoint(model, out, kind="pp", architecture="pp-mlp", config=model.config.to_dict(),
                           extra=extra, model_card=card)
    (Path(path) / "training_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    return path, scores


#: Fewest steps per sampler carried into a newly trained checkpoint's schedule: the largest of
#: the values measured for edm-pp-v1 and edm-tp-v1 (their cards); measure the new checkpoint with
#: benchmarks/bench_steps.py and lower them in its config.json where it allows.
TRAINED_MIN_STEPS = {"heun": 4, "euler": 8, "dpmpp_2m": 3, "euler_maruyama": 35}
#: sigma_max of a newly trained checkpoint, in units of its sigma_data: between the values measured
#: best at 4 Heun steps for edm-pp-v1 (6.6 sigma_data) and edm-tp-v1 (15.7 sigma_data).
SIGMA_MAX_PER_SIGMA_DATA = 10.0


def training_schedule(sigma_data: float, P_mean: float, P_std: float):
    """The :class:`ppviz.checkpoints.schedule.Schedule` written into a newly trained checkpoint."""
    from ppviz.checkpoints.schedule import Schedule

    return Schedule(sigma_max=round(SIGMA_MAX_PER_SIGMA_DATA * sigma_data, 3), P_mean=P_mean, P_std=P_std,
                    min_steps=dict(TRAINED_MIN_STEPS), sampler="heun", default_steps=8)


def train_diffusion_checkpoint(out, *, data=None, pp_checkpoint=None, target: str = "pp", state_dir=None,
                               resume: bool = False, overwrite: bool = False, steps: int = 2000, batch: int = 8,
                               crop: int = 64, lr: float = 5e-4, base_channels: int = 32,
                               channel_mult: tuple[int, ...] = (1, 2, 2), blocks: int = 1,
                               sigma_data: float | None = None, seed: int = 0, holdout: float = 0.2,
                               eval_dates: int = 6, eval_members: int = 4, eval_region: str | None = None,
                               default: bool = False, command: str = "", log=print, loader: str = "stream",
                               workers: int = 2, amp: bool = True, compile: bool = False, log_every: int = 50,
                               ckpt_every: int | None = None, snapshot_every: int = 0, snapshot_hours: int = 2,
                               snapshot_seeds: int = 1, max_minutes: float | None = None) -> Path:
    """Train the EDM diffusion downscaler on the PP (``target="pp"``) or on transformed tp (``"tp"``,
    the no-PP control of :mod:`ppviz.tp_target`) of ``data``, score it on ``eval_dates`` held-out
    dates and write the checkpoint ``out`` with its model card; the resumable training state goes to
    ``state_dir`` (default ``.OUT.train`` beside ``out``). Progress lines go to ``log``.
    ``loader="stream"`` reads crops lazily with ``workers`` processes (:mod:`ppviz.training.stream`,
    memory bounded by chunks and batches); ``"memory"`` encodes the whole training span into one
    array first (:func:`ppviz.training.diffusion_loop.train_diffusion`, small data only).
    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains its shard of each batch with
    DistributedDataParallel (:mod:`ppviz.training.distributed`, stream loader only) and rank 0
    alone scores, writes the checkpoint and logs. ``amp``: bf16 autocast on CUDA; ``compile``:
    ``torch.compile`` (CUDA only). ``max_minutes``: stop training after that much wall-clock
    time (then score and write the checkpoint of the step reached; its card says so, and
    ``--resume`` goes on towards ``steps``). Returns the checkpoint path."""
    from ppviz.training.distributed import init_from_env, shutdown

    if loader not in ("stream", "memory"):
        raise ValueError(f"loader {loader!r} must be 'stream' or 'memory'")
    dist = init_from_env()
    ok = False
    try:
        if dist.world > 1 and loader != "stream":
            raise ValueError(f"{dist.world} processes (torchrun) need --loader stream")
        path = _train_diffusion(out, dist, data=data, pp_checkpoint=pp_checkpoint, target=target,
                                state_dir=state_dir, resume=resume, overwrite=overwrite, steps=steps, batch=batch,
                                crop=crop, lr=lr, base_channels=base_channels, channel_mult=channel_mult,
                                blocks=blocks, sigma_data=sigma_data, seed=seed, holdout=holdout,
                                eval_dates=eval_dates, eval_members=eval_members, eval_region=eval_region,
                                default=default, command=command, log=log if dist.writer else (lambda *a: None),
                                loader=loader, workers=workers, amp=amp, compile=compile, log_every=log_every,
                                ckpt_every=ckpt_every, snapshot_every=snapshot_every,
                                snapshot_hours=snapshot_hours, snapshot_seeds=snapshot_seeds,
                                max_seconds=None if max_minutes is None else 60.0 * max_minutes)
        ok = True
        return path
    finally:
        shutdown(dist, ok)


def _train_diffusion(out, dist, *, data, pp_checkpoint, target, state_dir, resume, overwrite, steps, batch, crop,
                     lr, base_channels, channel_mult, blocks, sigma_data, seed, holdout, eval_dates, eval_members,
                     eval_region, default, command, log, loader, workers, amp, compile, log_every,
                     ckpt_every, snapshot_every, snapshot_hours, snapshot_seeds, max_seconds) -> Path:
    import time

    import torch

    from ppviz.checkpoints import default_checkpoint, load_checkpoint, save_checkpoint
    from ppviz.data.regions import Region, data_extent
    from ppviz.data.source import load_dataset
    from ppviz.diffusion.downscaler import DownscalerConfig, residual_std, static_channels
    from ppviz.training.diffusion_loop import DiffusionTrainConfig, train_diffusion, train_diffusion_stream
    from ppviz.training.stream import CropSource, PPEncoder, TPZEncoder, check_crop, sample_fields
    from ppviz.models.unet import UNetConfig
    from ppviz.pipeline import Models
    from ppviz.training.diffusion import diffusion_model_card, encode_fine_pp, format_heldout, heldout_scores
    from ppviz.training.pp import split_times
    mult = tuple(int(x) for x in channel_mult)
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; choose another --out or pass --overwrite")
    state_dir = Path(state_dir) if state_dir else out.parent / f".{out.name}.train"
    pp_name = pp_checkpoint or default_checkpoint("pp")
    pp = load_checkpoint(pp_name, kind="pp")
    ds = load_dataset(None if data in (None, "default", "synthetic") else data)
    # Train and score on the largest block-aligned part of the data, the region inference uses
    # for it when none is given (data_extent): its coarse cells are the 1 deg cells of inference.
    full, extent = (ds.sizes["lat"], ds.sizes["lon"]), data_extent(ds)
    grid = extent.fine_grid
    origin = (int(np.abs(ds.lat.values - grid.lat[0]).argmin()), int(np.abs(ds.lon.values - grid.lon[0]).argmin()))
    ds = extent.subset(ds)
    where = f"the largest block-aligned part of the data's {full[0]} x {full[1]} cells"
    unet = UNetConfig(base_channels=base_channels, channel_mult=mult, blocks_per_level=blocks)
    check_crop(crop, grid, DownscalerConfig().factor, unet.size_multiple, where=where)
    train_idx, held_idx = split_times(ds.time.values, holdout)
    log(f"data: {ds.attrs.get('source', data or 'default')[:100]}; {train_idx.size} training and "
          f"{held_idx.size} held-out hours; PP checkpoint {pp.name}")
    trimmed = ""
    if grid.shape != full:
        f = DownscalerConfig().factor
        trimmed = (f"; the data's {full[0]} x {full[1]} cells do not all lie in whole {f} x {f} blocks of the 1 deg "
                   f"grid: training and held-out scores use the largest block-aligned part, as inference does: "
                   f"{grid.nlat} x {grid.nlon} cells, lat {grid.lat[0]:g}..{grid.lat[-1]:g}, "
                   f"lon {grid.lon[0]:g}..{grid.lon[-1]:g} (region {extent.slug_or_box})")
        log(f"grid: {trimmed[2:]}")
    transform = None
    if target == "tp":  # the no-PP control (ppviz.tp_target): same model on a transform of tp
        from ppviz.tp_target import fit_transform

        transform = fit_transform(ds, train_idx)
        log(f"target: transformed tp, z = (log1p(tp / {transform.offset:g}) - {transform.mu:.4f}) / "
              f"{transform.sd:.4f} (no PP; the PP checkpoint serves only the references)")
    static = static_channels(grid)
    source = CropSource(None if data in (None, "default", "synthetic") else str(data), train_idx, grid, static,
                        PPEncoder(pp.model) if transform is None else TPZEncoder(transform), origin=origin)
    if loader == "memory":
        if transform is None:
            pp_fine = encode_fine_pp(pp.model, ds, train_idx)
        else:
            from ppviz.tp_target import encode_fine_z

            pp_fine = encode_fine_z(transform, ds, train_idx)
        sample = pp_fine[:: max(1, pp_fine.shape[0] // 64)]
    else:
        sample = sample_fields(source, 64, seed)
    sigma_data = sigma_data or round(residual_std(sample, grid.lat), 4)
    del sample
    train_cfg = DiffusionTrainConfig(crop=crop, batch_size=batch, steps=steps, lr=lr,
                                     lr_warmup_steps=min(500, max(1, steps // 10)),
                                     ema_halflife_steps=max(10.0, steps / 10), seed=seed,
                                     log_every=log_every, ckpt_every=ckpt_every or max(1, min(500, steps)))
    model_cfg = DownscalerConfig(unet=unet, sigma_data=sigma_data,
                                 schedule=training_schedule(sigma_data, train_cfg.P_mean, train_cfg.P_std))
    region = Region.parse(eval_region) if eval_region else extent  # held-out scores and snapshots
    t0 = time.perf_counter()
    if loader == "memory":
        ema = train_diffusion(pp_fine, static, grid, train_cfg, state_dir, model_config=model_cfg, resume=resume,
                              max_seconds=max_seconds, amp=amp, compile=compile)
        del pp_fine
    else:
        callback = None
        if snapshot_every:
            from ppviz.training.snapshots import snapshot_callback

            callback = snapshot_callback(state_dir, snapshot_every, pp, ds, held_idx, region,
                                         hours=snapshot_hours, seeds=snapshot_seeds, members=eval_members,
                                         transform=transform, extra={"pp_checkpoint": pp.name,
                                                                     "pp_checkpoint_sha256": pp.sha256,
                                                                     "target": target, "coarse_from": "fine"})
        ema = train_diffusion_stream(source, train_cfg, state_dir, model_config=model_cfg, resume=resume,
                                     workers=workers, dist=dist, amp=amp, compile=compile, progress=dist.writer,
                                     callback=callback, max_seconds=max_seconds)
    if not dist.writer:
        return Path(out)  # rank 0 scores and writes the checkpoint
    seconds = time.perf_counter() - t0
    from ppviz.training.diffusion_loop import read_log
    from ppviz.training.train_state import steps_reached

    planned, reached = train_cfg.steps, steps_reached(state_dir)
    if reached < planned:  # stopped by the time limit: the card and config give the steps trained
        train_cfg = dataclasses.replace(train_cfg, steps=reached)
        log(f"time limit: stopped at step {reached} of {planned} (--resume continues)")
    timed = [r for r in read_log(state_dir / "train_log.jsonl") if "seconds" in r]
    if timed:
        seconds = max(seconds, float(timed[-1]["seconds"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = Models(pp=pp.model, diffusion=ema.to(device).eval(), pp_name=pp.name, pp_sha256=pp.sha256,
                    diffusion_name=out.name, diffusion_sha256="(being written)", device=device,
                    transform=transform)
    held_days = np.asarray(ds.time.values[held_idx])
    n = min(eval_dates, held_days.size)
    scores = None
    if n:
        # spread the held-out dates evenly over the held-out period, at varying hours
        pick = held_days[np.linspace(0, held_days.size - 1, n).round().astype(int)]
        scores = heldout_scores(models, ds, pick, region, members=eval_members,
                                steps=18, seed=seed)
        log(format_heldout(scores))
    desc = (f"{ds.attrs.get('source', 'dataset')[:160]} ({data or 'default'}), "
            f"{train_idx.size} training hours; held out: {held_idx.size} hours, every "
            f"{round(1 / holdout)}th day (ppviz.training.pp.split_times){trimmed}")
    card = diffusion_model_card(out.name, model_cfg.to_dict(), train_cfg.to_dict(),
                                scores or {}, command=command, seconds=seconds, data_desc=desc,
                                pp_checkpoint=pp.name, pp_sha256=pp.sha256,
                                n_params=sum(p.numel() for p in ema.parameters()),
                                planned_steps=planned) if scores else None
    if card is not None and transform is not None:
        from ppviz.tp_target import tp_target_model_card

        card = tp_target_model_card(card, out.name, transform)
    extra = {
        "summary": f"EDM PP downscaler, U-Net {base_channels}x{list(mult)}, {sum(p.numel() for p in ema.parameters()) / 1e6:.2f} M params",
        "pp_checkpoint": pp.name,
        "pp_checkpoint_sha256": pp.sha256,
        "coarse_from": "fine",
        "coarse_pp": "area-weighted 4x4 block mean of the fine PP (encode at 0.25 deg, then coarsen)",
        "grid": {"res": grid.res, "factor": model_cfg.factor, "cells": [grid.nlat, grid.nlon],
                 "region": extent.slug_or_box},
        "normalisation": {"sigma_data": sigma_data, "target": "fine PP - bilinear(coarse PP)"},
        "training": {**train_cfg.to_dict(), "seconds": round(seconds, 1), "command": command, "data": desc,
                     **({"planned_steps": planned, "stopped": "time limit"} if reached < planned else {})},
        "heldout_scores": {k: v for k, v in (scores or {}).items() if k != "spectra"},
        "heldout_spectra": (scores or {}).get("spectra"),
        "default": bool(default),
        "target": target,
    }
    if transform is not None:
        extra.update({
            "summary": f"EDM tp-target downscaler (no PP; control experiment), U-Net {base_channels}x"
                       f"{list(mult)}, {sum(p.numel() for p in ema.parameters()) / 1e6:.2f} M params",
            "tp_transform": transform.to_dict(),
            "coarse_tp_z": "area-weighted 4x4 block mean of the transformed fine tp",
            "normalisation": {"sigma_data": sigma_data, "target": "fine z - bilinear(coarse z)"},
        })
        extra.pop("coarse_pp", None)
    path = save_checkpoint(ema.cpu(), out, kind="diffusion", architecture="edm-unet", config=model_cfg.to_dict(),
                           extra=extra, model_card=card, overwrite=overwrite)
    import shutil

    shutil.copy(state_dir / "train_log.jsonl", Path(path) / "training_log.jsonl")
    log(f"checkpoint: {path} (training state kept in {state_dir} for --resume)")
    return Path(path)


def distill_checkpoint(teacher, out, *, data=None, teacher_steps: int = 16, rounds: int | None = None,
                       steps_per_round: int = 300, batch: int = 8, crop: int = 64, lr: float = 1e-4, seed: int = 0,
                       holdout: float = 0.2, default_steps: int | None = None, state_dir=None,
                       overwrite: bool = False, workers: int = 1, log_every: int = 25, anchor_fraction: float = 0.0,
                       command: str = "", log=print) -> Path:
    """Distil the diffusion checkpoint ``teacher`` into a few-step student (progressive
    distillation, :mod:`ppviz.training.distill`) on the training hours of ``data`` (the held-out
    ones of :func:`ppviz.training.pp.split_times` never enter) and write the checkpoint ``out``:
    the student's weights, its schedule (sampler ``euler`` on the stored grids only), the model
    card and ``training_log.jsonl``. Each finished round's weights go to ``state_dir`` (default
    ``.OUT.distill`` beside ``out``); a rerun resumes after the last finished round. Returns the
    checkpoint path."""
    import shutil
    import time

    from ppviz.checkpoints import save_checkpoint
    from ppviz.data.grid import Grid
    from ppviz.data.source import load_dataset
    from ppviz.diffusion.downscaler import Downscaler, static_channels
    from ppviz.pipeline import Models
    from ppviz.training.cards import student_model_card
    from ppviz.training.distill import METHOD, DistillConfig, distill
    from ppviz.training.pp import split_times
    from ppviz.training.stream import CropSource, CropStream, PPEncoder, TPZEncoder, stream_batches

    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; choose another --out or pass --overwrite")
    config = DistillConfig(teacher_steps=teacher_steps, rounds=rounds, steps_per_round=steps_per_round,
                           batch_size=batch, crop=crop, lr=lr, seed=seed, log_every=log_every,
                           anchor_fraction=anchor_fraction)
    stored = config.stored_steps()
    if default_steps is not None and default_steps not in stored:
        raise ValueError(f"default steps {default_steps} must be one of the student's step counts {stored}")
    models = Models.load(teacher, device="cpu")
    if not isinstance(models.diffusion, Downscaler) or models.diffusion.config.schedule.grids is not None:
        raise ValueError(f"teacher {models.diffusion_name!r} must be a trained edm-unet checkpoint on Karras levels "
                         "(not an ONNX export or another student)")
    state_dir = Path(state_dir) if state_dir else out.parent / f".{out.name}.distill"
    ds = load_dataset(None if data in (None, "default", "synthetic") else data)
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    train_idx, held_idx = split_times(ds.time.values, holdout)
    encoder = PPEncoder(models.pp) if models.transform is None else TPZEncoder(models.transform)
    source = CropSource(None if data in (None, "default", "synthetic") else str(data), train_idx, grid,
                        static_channels(grid), encoder)
    factor = models.diffusion.config.factor
    log(f"teacher {models.diffusion_name} (sha256 {models.diffusion_sha256[:16]}...), {teacher_steps} Euler steps; "
        f"data: {train_idx.size} training hours ({held_idx.size} held out); rounds "
        f"{' -> '.join(str(s) for s in [teacher_steps] + [s for _, s in config.round_steps()])} steps, "
        f"{steps_per_round} steps each")

    def batches(start_step):
        return stream_batches(CropStream(source, crop, batch, factor, seed, start_step=start_step), workers)

    log_file = state_dir / "training_log.jsonl"
    state_dir.mkdir(parents=True, exist_ok=True)
    if not any(state_dir.glob("round-*.safetensors")):
        log_file.write_text("")
    t0 = time.perf_counter()
    student, done = distill(models.diffusion, batches, config, log_file=log_file, state_dir=state_dir, log=log)
    seconds = sum(float(r["seconds"]) for r in done) or time.perf_counter() - t0
    if default_steps is not None:
        student.config = dataclasses.replace(student.config, schedule=dataclasses.replace(
            student.config.schedule, default_steps=int(default_steps)))
    sched = student.config.schedule
    desc = (f"{ds.attrs.get('source', 'dataset')[:160]} ({data or 'default'}), {train_idx.size} training hours; "
            f"held out: {held_idx.size} hours (ppviz.training.pp.split_times, fraction {holdout})")
    card = student_model_card(out.name, teacher=models.diffusion_name, teacher_sha256=models.diffusion_sha256,
                              teacher_schedule=models.schedule.to_dict(), config=config.to_dict(), rounds=done,
                              schedule=sched.to_dict(), method=METHOD, command=command, seconds=seconds,
                              data_desc=desc, n_params=sum(p.numel() for p in student.parameters()))
    keep = ("pp_checkpoint", "pp_checkpoint_sha256", "coarse_from", "coarse_pp", "grid", "normalisation", "target",
            "tp_transform", "coarse_tp_z")
    extra = {k: v for k, v in models.diffusion_extra.items() if k in keep}
    extra.update({
        "summary": f"{config.round_steps()[-1][1]}-step student of {models.diffusion_name} (progressive distillation; "
                   f"euler, steps {list(sched.grids)})",
        "teacher": {"checkpoint": models.diffusion_name, "sha256": models.diffusion_sha256,
                    "sampler": "euler", "steps": teacher_steps},
        "distillation": {"method": METHOD, **config.to_dict(), "rounds": done, "seconds": round(seconds, 1),
                         "command": command, "data": desc},
        "default": False,
    })
    path = save_checkpoint(student, out, kind="diffusion", architecture="edm-unet", config=student.config.to_dict(),
                           extra=extra, model_card=card, overwrite=overwrite)
    shutil.copy(log_file, Path(path) / "training_log.jsonl")
    log(f"checkpoint: {path} (round weights kept in {state_dir}; steps {list(sched.grids)}, default "
        f"{sched.default_steps} euler steps)")
    return Path(path)
