"""Training the diffusion downscaler on random crops of fine PP, with EMA and resumable state.

Follows the EDM training loop (Karras et al. 2022, NVlabs/edm ``training/training_loop.py``):
Adam, a linear learning-rate warm-up, NaN/inf-scrubbed gradients and an exponential moving
average (EMA) of the weights whose half-life ramps up with training. Differences: step counts
instead of images, and crops instead of whole images.

Batches. Each sample is a ``crop x crop`` window of one time step of the fine PP, its top-left
corner on the ``factor x factor`` block lattice of the grid, so the coarse field of the crop
(:func:`ppviz.data.grid.coarsen_blocks` with the crop's latitudes) is exactly the 1 deg field of
the full grid there. The static channels are cropped with it. A held-out split is the caller's
job: pass only training times.

Files in ``out_dir``:

- ``train_config.json``: model and training configs and data facts, written at the start;
- ``train_log.jsonl`` (or ``log_path``): one JSON object per ``log_every`` steps with ``step``,
  ``loss`` (mean over the window), ``lr`` and ``seconds`` (cumulative wall time);
- ``train_state.safetensors`` + ``train_state.json``: the resume state, every ``ckpt_every`` steps
  and at the end. Tensors (model, EMA, Adam moments, torch RNG states) go to safetensors,
  scalars (step, configs, numpy RNG state, Adam hyper-parameters) to JSON; nothing is pickled.
  Resuming on the same device and thread count continues bit-identically on the CPU.

:func:`load_ema_model` returns the EMA model of a state directory, for export with
:mod:`ppviz.checkpoints`.
"""

from __future__ import annotations

import copy
import json
import os
import time
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ppviz.io import json_ready
from ppviz.data.grid import Grid, coarsen_blocks
from ppviz.diffusion.downscaler import Downscaler, DownscalerConfig, residual_std
from ppviz.training.diffusion_config import _RESUMABLE_CHANGES, DiffusionTrainConfig  # noqa: F401 - re-exported
from ppviz.training.stream import check_crop

from ppviz.training.train_state import (  # noqa: F401 - re-exported
    STATE_JSON,
    STATE_TENSORS,
    _optim_state_dict,
    _read_state,
    _save_state,
    _sub,
    has_state,
    load_ema_model,
    steps_reached,
)

CONFIG_JSON = "train_config.json"
LOG_FILE = "train_log.jsonl"


# ------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------


def draw_crops(
    rng: np.random.Generator,
    pp_fine: np.ndarray,
    static: np.ndarray,
    lat: np.ndarray,
    crop: int,
    batch_size: int,
    factor: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random block-aligned crops: fine ``(B, crop, crop)``, coarse ``(B, crop/f, crop/f)``, static.

    Parameters
    ----------
    rng : numpy Generator
        Draws, in this order, the time indices, the row blocks and the column blocks.
    pp_fine : array, shape (T, H, W)
    static : array, shape (C, H, W)
    lat : array, shape (H,)
        Fine latitudes (degrees) for the area-weighted coarse block means.
    crop, batch_size, factor : int

    Returns
    -------
    fine : (B, crop, crop) float32
    coarse : (B, crop // factor, crop // factor) float32, area-weighted block means of ``fine``
    static : (B, C, crop, crop) float32
    """
    t_n, h, w = pp_fine.shape
    t = rng.integers(0, t_n, size=batch_size)
    i0 = factor * rng.integers(0, (h - crop) // factor + 1, size=batch_size)
    j0 = factor * rng.integers(0, (w - crop) // factor + 1, size=batch_size)
    fine = np.stack([pp_fine[a, i : i + crop, j : j + crop] for a, i, j in zip(t, i0, j0)]).astype(np.float32)
    coarse = np.stack([coarsen_blocks(f, lat[i : i + crop], factor) for f, i in zip(fine, i0)])
    stat = np.stack([static[:, i : i + crop, j : j + crop] for i, j in zip(i0, j0)]).astype(np.float32)
    return fine, coarse.astype(np.float32), stat


# ------------------------------------------------------------------------------------------
# Training loop
# ------------------------------------------------------------------------------------------


def train_diffusion(
    pp_fine: np.ndarray,
    static: np.ndarray,
    grid: Grid,
    config: DiffusionTrainConfig = DiffusionTrainConfig(),
    out_dir: str | os.PathLike = "diffusion-train",
    *,
    model_config: DownscalerConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    max_seconds: float | None = None,
    amp: bool = False,
    compile: bool = False,
) -> Downscaler:
    """Train the EDM downscaler on random crops; returns the EMA model.

    Parameters
    ----------
    pp_fine : array, shape (T, H, W), float32
        Fine (0.25 deg) PP on ``grid``, training times only; must be finite.
    static : array, shape (C, H, W)
        :func:`ppviz.diffusion.downscaler.static_channels` of ``grid``.
    grid : Grid
        The fine grid of ``pp_fine`` (its latitudes weight the coarse block means).
    config : DiffusionTrainConfig
    out_dir : path
        Where the config, log and resume state go (created).
    model_config : DownscalerConfig, optional
        Architecture (default ``DownscalerConfig()``); on resume, the saved one is used and a
        different one given here raises ValueError.
    resume : bool
        Continue from the state in ``out_dir`` (from scratch if there is none). Without it an
        existing state raises FileExistsError rather than being overwritten.
    progress : bool
        Show a tqdm progress bar.
    log_path : path, optional
        JSON-lines log (default ``out_dir / "train_log.jsonl"``); appended to on resume.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    max_seconds : float, optional
        Wall-clock budget of this session's steps: the loop stops at the first step past it,
        saves the resume state there and logs ``{"step", "stopped": "time limit"}``; the returned
        EMA is the model of that step (:func:`steps_reached` reads it back). ``--resume`` goes on
        towards ``config.steps``.
    amp, compile : bool
        bf16 autocast of the forward pass and ``torch.compile`` of the loss, on CUDA only (amp is
        ignored on the CPU; compile there raises ValueError).

    Returns
    -------
    Downscaler
        The EMA model on the CPU, in eval mode.
    """
    pp_fine = np.asarray(pp_fine)
    static = np.asarray(static, dtype=np.float32)
    if pp_fine.ndim != 3 or pp_fine.shape[1:] != grid.shape:
        raise ValueError(f"pp_fine must be (T, {grid.nlat}, {grid.nlon}) on the grid, got {pp_fine.shape}")
    if not np.isfinite(pp_fine).all():
        raise ValueError("pp_fine has NaN or infinite values; fill or drop those times first")
    _check_compile(compile, device)
    out, log_file, device, state, model_config = _prepare(static, grid, config, out_dir, model_config, resume,
                                                          log_path, device)
    factor = model_config.factor

    def batches(start_step, np_rng):
        while True:
            yield draw_crops(np_rng, pp_fine, static, grid.lat, config.crop, config.batch_size, factor)

    def facts():
        sub = np.sort(np.random.default_rng([config.seed, 1]).integers(0, pp_fine.shape[0], min(64, pp_fine.shape[0])))
        return pp_fine.shape[0], pp_fine[sub]

    with torch.random.fork_rng(devices=[]):
        return _train_loop(batches, facts, grid, config, out, log_file, model_config, state, device, progress,
                           amp=amp, compile=compile, max_seconds=max_seconds)


def train_diffusion_stream(
    source,
    config: DiffusionTrainConfig = DiffusionTrainConfig(),
    out_dir: str | os.PathLike = "diffusion-train",
    *,
    model_config: DownscalerConfig | None = None,
    resume: bool = False,
    progress: bool = True,
    log_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    workers: int = 2,
    dist=None,
    amp: bool = True,
    compile: bool = False,
    callback=None,
    max_seconds: float | None = None,
) -> Downscaler:
    """:func:`train_diffusion` on crops read lazily from disk (:mod:`ppviz.training.stream`).

    Parameters
    ----------
    source : ppviz.training.stream.CropSource
        The dataset, its training hours, grid, static channels and target encoder.
    workers : int
        DataLoader worker processes reading and encoding crops (0: in the training process).
    dist : ppviz.training.distributed.Dist, optional
        Data-parallel rank and world (default: one process). Each rank trains on its shard of
        every global batch of ``config.batch_size`` through DistributedDataParallel; rank 0 alone
        writes. A state saved with another world size resumes with a warning (same batches; the
        per-rank noise streams differ); a batch that the world cannot split raises ValueError.
    amp : bool
        bf16 autocast of the forward pass, on CUDA only (ignored on the CPU).
    compile : bool
        ``torch.compile`` the model's loss; CUDA only (ValueError on the CPU).
    callback : callable, optional
        ``callback(step, ema)`` on the writer after every step and its log line (snapshots).
    config, out_dir, model_config, resume, progress, log_path, device, max_seconds
        As for :func:`train_diffusion`. The batch of step ``s`` depends only on ``config.seed``
        and ``s``; the numpy RNG of the state is unused.

    Returns
    -------
    Downscaler
        The EMA model on the CPU, in eval mode.
    """
    from ppviz.training.distributed import Dist
    from ppviz.training.stream import CropStream, sample_fields, stream_batches

    dist = dist or Dist()
    if config.batch_size % dist.world:
        raise ValueError(f"batch {config.batch_size} cannot be split evenly over {dist.world} processes; "
                         f"choose a multiple of {dist.world}")
    device = device or dist.device
    _check_compile(compile, device)
    grid = source.grid
    out, log_file, device, state, model_config = _prepare(source.static, grid, config, out_dir, model_config,
                                                          resume, log_path, device)
    if state is not None and int(state[0].get("world_size", 1)) != dist.world and dist.writer:
        warnings.warn(f"resuming {out} (saved by {state[0].get('world_size', 1)} process(es)) with {dist.world}: "
                      "the batches are the same, the per-process noise streams differ from an uninterrupted run",
                      stacklevel=2)

    def batches(start_step, np_rng):
        stream = CropStream(source, config.crop, config.batch_size, model_config.factor, config.seed,
                            start_step=start_step, rank=dist.rank, world=dist.world)
        return stream_batches(stream, workers)

    def facts():
        return source.times.size, sample_fields(source, 64, config.seed)

    with torch.random.fork_rng(devices=[]):
        return _train_loop(batches, facts, grid, config, out, log_file, model_config, state, device,
                           progress and dist.writer, dist=dist, amp=amp, compile=compile, callback=callback,
                           max_seconds=max_seconds)


def _check_compile(compile: bool, device) -> None:
    if compile and torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")).type != "cuda":
        raise ValueError("--compile needs a CUDA device; on the CPU train without it")


def _prepare(static, grid, config, out_dir, model_config, resume, log_path, device):
    """Checks shared by both trainers; returns out, log file, device, saved state, model config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_path) if log_path is not None else out / LOG_FILE
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    if static.ndim != 3 or static.shape[1:] != grid.shape:
        raise ValueError(f"static must be (C, {grid.nlat}, {grid.nlon}), got {static.shape}")

    state = None
    if has_state(out):
        if not resume:
            raise FileExistsError(f"{out} already holds a training state; pass resume=True or use another out_dir")
        state = _read_state(out)
        saved_cfg = DownscalerConfig.from_dict(state[0]["model_config"])
        if model_config is not None and model_config != saved_cfg:
            raise ValueError(f"model_config differs from the one saved in {out}: {saved_cfg}")
        model_config = saved_cfg
        saved_train = DiffusionTrainConfig.from_dict(state[0]["train_config"])
        changed = sorted(
            f.name for f in fields(config)
            if getattr(config, f.name) != getattr(saved_train, f.name) and f.name not in _RESUMABLE_CHANGES
        )
        if changed:
            warnings.warn(f"resuming {out} with changed settings {changed}; the run will not match an "
                          "uninterrupted one", stacklevel=3)
    model_config = model_config or DownscalerConfig()

    factor = model_config.factor
    check_crop(config.crop, grid, factor, model_config.unet.size_multiple)
    if grid.nlat % factor or grid.nlon % factor:
        raise ValueError(f"grid {grid.nlat}x{grid.nlon} is not divisible into {factor}x{factor} blocks")
    if static.shape[0] != len(model_config.static_names):
        raise ValueError(f"static has {static.shape[0]} channels, the model expects "
                         f"{len(model_config.static_names)} ({list(model_config.static_names)})")

    return out, log_file, device, state, model_config


class _Loss(torch.nn.Module):
    """The EDM loss of a model as a module's forward, so DistributedDataParallel sees the pass."""

    def __init__(self, model, config):
        super().__init__()
        self.model, self.P_mean, self.P_std = model, config.P_mean, config.P_std

    def forward(self, fine, coarse, stat, generator):
        return self.model.loss(fine, coarse, stat, generator=generator, P_mean=self.P_mean, P_std=self.P_std)


def _train_loop(batches, facts, grid, config, out, log_file, model_config, state, device, progress, *,
                dist=None, amp=False, compile=False, callback=None, max_seconds=None) -> Downscaler:
    """The EDM loop. ``batches(start_step, np_rng)`` iterates ``(fine, coarse, static)`` batches
    (numpy or torch); ``facts()`` gives the number of training hours and a sample of target fields
    ``(n, H, W)`` for ``train_config.json``. The caller's global torch RNG is left alone: this runs
    inside fork_rng, the global generator (dropout) seeded from config.seed or restored.
    With ``dist.world > 1`` every rank runs this; only ``dist.writer`` writes files."""
    from ppviz.training.distributed import Dist

    dist = dist or Dist()
    factor, lat = model_config.factor, grid.lat
    # Model, EMA, optimiser, RNGs: fresh from the seed, then overwritten by a saved state.
    torch.manual_seed(config.seed)
    model = Downscaler(model_config)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    np_rng = np.random.default_rng(config.seed)
    torch_gen = torch.Generator(device="cpu").manual_seed(config.seed)
    step, seconds0 = 0, 0.0
    if state is not None:
        meta, tensors = state
        model.load_state_dict(_sub(tensors, "model/"), strict=True)
        ema.load_state_dict(_sub(tensors, "ema/"), strict=True)
        opt.load_state_dict(_optim_state_dict(meta, tensors))
        np_rng.bit_generator.state = meta["numpy_rng"]
        torch_gen.set_state(tensors["rng/torch_noise"])
        torch.set_rng_state(tensors["rng/torch_global"])
        step, seconds0 = int(meta["step"]), float(meta["seconds"])
    if dist.world > 1:  # each rank its own noise, a function of (seed, rank, step)
        torch_gen.manual_seed(int(np.random.SeedSequence([config.seed, dist.rank, step]).generate_state(1)[0]))
    if state is None and dist.writer:
        n_times, sample = facts()
        if model_config.residual:
            target_std = residual_std(sample, lat, factor, model_config.upsample)
        else:
            target_std = float(np.std(sample, dtype=np.float64))
        del sample
        (out / CONFIG_JSON).write_text(json.dumps(json_ready({
            "model_config": model_config.to_dict(),
            "train_config": config.to_dict(),
            "data": {
                "times": int(n_times),
                "grid": asdict(grid),
                "static_names": list(model_config.static_names),
                "target": "fine - up(coarse)" if model_config.residual else "fine",
                "target_std_sample": target_std,
                "sigma_data": model_config.sigma_data,
            },
        }, strict=True), indent=1))
        log_file.write_text("")

    def save(at_seconds: float):
        if dist.writer:
            _save_state(out, step=step, seconds=at_seconds, model=model, ema=ema, opt=opt, np_rng=np_rng,
                        torch_gen=torch_gen, model_config=model_config, train_config=config,
                        extra={"world_size": dist.world})
        dist.barrier()

    dist.barrier()  # the writer has written the config and emptied the log
    loss_fn = dist.wrap(_Loss(model, config))
    if compile:
        loss_fn = torch.compile(loss_fn)
    use_amp = bool(amp) and device.type == "cuda"
    model_params, ema_params = list(model.parameters()), list(ema.parameters())

    t0 = time.perf_counter()
    window: list[torch.Tensor] = []  # losses of the steps since the last log line, on the device
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="diffusion",
               unit="step", dynamic_ncols=True)
    it = batches(step, np_rng) if step < config.steps else iter(())
    try:
        while step < config.steps:
            fine, coarse, stat = (torch.as_tensor(x) for x in next(it))
            # EDM training loop: linear learning-rate warm-up.
            lr = config.lr * min((step + 1) / max(config.lr_warmup_steps, 1), 1.0)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(fine.to(device), coarse.to(device), stat.to(device), torch_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p in model.parameters():
                if p.grad is not None:
                    # EDM training loop: scrub NaN / inf gradients.
                    torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            step += 1
            # EDM training loop: EMA with half-life ramp-up, beta = 0.5 ** (1 / halflife).
            halflife = config.ema_halflife_steps
            if config.ema_rampup_ratio is not None:
                halflife = min(halflife, step * config.ema_rampup_ratio)
            beta = 0.5 ** (1.0 / max(halflife, 1e-8))
            with torch.no_grad():
                # one fused kernel per list instead of one per tensor (the GPU is launch-bound here)
                torch._foreach_copy_(ema_params, torch._foreach_lerp(model_params, ema_params, beta))
            # kept on the device: a float() here would wait for the GPU every step
            window.append(loss.detach().float())
            bar.update(1)
            log_now = step % config.log_every == 0 or step == config.steps
            if log_now:
                mean_loss = dist.mean(torch.stack(window).mean())  # every rank joins the all-reduce
                window.clear()
            if log_now and dist.writer:
                rec = {"step": step, "loss": mean_loss, "lr": lr,
                       "seconds": round(seconds0 + time.perf_counter() - t0, 3)}
                with open(log_file, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if callback is not None and dist.writer:
                callback(step, ema)
            # asked on logging steps only under torchrun: all ranks then stop at the same step
            out_of_time = (max_seconds is not None and (dist.world == 1 or step % config.log_every == 0)
                           and dist.any(time.perf_counter() - t0 >= max_seconds))
            if step % config.ckpt_every == 0 or step == config.steps or out_of_time:
                save(seconds0 + time.perf_counter() - t0)
            if out_of_time and step < config.steps:
                if dist.writer:
                    with open(log_file, "a") as f:
                        f.write(json.dumps({"step": step, "stopped": "time limit", "max_seconds": max_seconds,
                                            "seconds": round(seconds0 + time.perf_counter() - t0, 3)}) + "\n")
                break
    finally:
        bar.close()
        del it  # a DataLoader's workers stop here
    if dist.writer and not has_state(out):
        dist = Dist()  # steps == 0: still leave a loadable state (the writer alone, no barrier)
        save(0.0)
    return copy.deepcopy(ema).cpu().eval()


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines training log."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
