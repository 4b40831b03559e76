"""Progressive distillation of an EDM downscaler into a few-step student (issue 11, part 3).

Method: Salimans & Ho (2022), "Progressive Distillation for Fast Sampling of Diffusion Models"
(arXiv 2202.00512), Algorithm 2, written in EDM's sigma parametrisation (``x_sigma = y + sigma n``,
Karras et al. 2022) with the deterministic Euler step of the probability-flow ODE, which in this
parametrisation is the DDIM step the paper distils::

    x_{s'} = x_s + (s' - s) (x_s - D(x_s; s)) / s

Chosen because it needs nothing beyond the EDM denoiser: the student is the same network, with
the same preconditioning and interface, so it samples through ppviz's samplers with per-member
seeds (the initial noise fixes the member; the Euler sampler adds none).

Grids. The teacher's grid is the Karras grid of ``N = 2^k`` steps of its own schedule
(:func:`ppviz.diffusion.samplers.karras_sigmas`, ``N + 1`` levels ending with 0). The grid of
``n`` steps is every ``N / n``-th of its levels (:func:`nested_grids`), so the grids nest exactly
and each ends with 0. Round ``r`` distils a teacher that samples ``2 m`` steps on its grid into a
student that samples ``m`` steps on every other of those levels; the student starts from the
teacher's weights and becomes the next round's teacher (16 -> 8 -> 4 -> 2 -> 1 steps).

Target. For a training residual ``y`` with conditioning ``cond``, a level index ``i`` of the
student grid (uniform), ``t = s_i``, ``t'`` the teacher level between, ``t'' = s_{i+1}``, and
``z_t = y + t eps``, the frozen teacher takes two Euler steps ``t -> t' -> t''`` to ``z_t''``. The
student's target denoised value ``D*`` is the one for which a single Euler step from ``t`` lands
on ``z_t''``::

    z_t'' = z_t + (t'' - t) (z_t - D*) / t   <=>   D* = z_t - (z_t'' - z_t) t / (t'' - t)

(for ``t'' = 0``: ``D* = z_t''``), and the loss is EDM's weighted MSE
``lambda(t) |D_student(z_t; t) - D*|^2`` with ``lambda(t) = (t^2 + sigma_data^2) / (t sigma_data)^2``
(:func:`ppviz.diffusion.loss.loss_weight`; the paper's "SNR+1" weighting up to a constant).

:func:`distill` runs the rounds on batches of ``(fine, coarse, static)`` crops (as the diffusion
trainer's), logs JSON lines like ``training_log.jsonl`` and, with a ``state_dir``, keeps each
finished round's weights so that an interrupted run resumes at the next round.
:func:`ppviz.training.run.distill_checkpoint` is ``ppviz train distill`` end to end.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ppviz.io import check_config_keys
from ppviz.diffusion.loss import loss_weight

__all__ = ["DistillConfig", "anchor_loss", "anchor_targets", "distill", "distill_loss", "distill_target", "euler_step", "nested_grids",
           "student_schedule"]

METHOD = ("progressive distillation (Salimans & Ho 2022, arXiv 2202.00512) in EDM's sigma parametrisation "
          "with the deterministic Euler (DDIM) step; EDM loss weight (the paper's SNR+1 weighting)")


@dataclass(frozen=True)
class DistillConfig:
    """Settings of :func:`distill`.

    Parameters
    ----------
    teacher_steps : int
        Euler steps of the original teacher on its Karras grid; a power of 2 (>= 2).
    rounds : int or None
        Halvings (None: down to 1 step, ``log2(teacher_steps)``).
    steps_per_round : int
        Adam steps of each round.
    batch_size, crop : int
        Crops per step and their side in fine cells (as the diffusion trainer's).
    lr : float
        Adam learning rate at the start of each round, decayed linearly to 0 within it (the paper).
    seed : int
        Seeds the crops, the levels and the noise.
    log_every : int
        Steps between log lines.
    keep_steps : tuple of int
        Step counts whose nested grids the student's schedule stores (those reached by the rounds).
    anchor_fraction : float
        0 (default): plain progressive distillation. Above 0, that share of each batch, in rounds
        whose student grid lacks some levels of the stored grids (e.g. the 4-step grid's second
        and fourth level in the rounds to 2 and 1 steps), is trained at those levels towards the
        frozen model of the last round that had them on its student grid (:func:`anchor_targets`),
        so that the one network still samples its stored 2- and 4-step grids after the rounds to
        1 step.
    """

    teacher_steps: int = 16
    rounds: int | None = None
    steps_per_round: int = 300
    batch_size: int = 8
    crop: int = 64
    lr: float = 1e-4
    seed: int = 0
    log_every: int = 25
    keep_steps: tuple = (1, 2, 4)
    anchor_fraction: float = 0.0

    def __post_init__(self):
        n = int(self.teacher_steps)
        if n < 2 or n & (n - 1):
            raise ValueError(f"teacher_steps must be a power of 2 (2, 4, 8, 16, 32, ...), got {self.teacher_steps}")
        top = int(math.log2(n))
        if self.rounds is not None and not 1 <= int(self.rounds) <= top:
            raise ValueError(f"rounds must be 1..{top} for {n} teacher steps (each halves the steps), got {self.rounds}")
        for name in ("steps_per_round", "batch_size", "crop", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.anchor_fraction < 1:
            raise ValueError(f"anchor_fraction must be in [0, 1), got {self.anchor_fraction}")
        object.__setattr__(self, "keep_steps", tuple(sorted({int(k) for k in self.keep_steps})))

    @property
    def n_rounds(self) -> int:
        return int(self.rounds) if self.rounds is not None else int(math.log2(self.teacher_steps))

    def round_steps(self) -> list[tuple[int, int]]:
        """``(teacher steps, student steps)`` of each round, e.g. ``[(16, 8), (8, 4), (4, 2), (2, 1)]``."""
        return [(self.teacher_steps >> r, self.teacher_steps >> (r + 1)) for r in range(self.n_rounds)]

    def stored_steps(self) -> list[int]:
        """The step counts of :attr:`keep_steps` that the rounds reach (the student's grids)."""
        reached = {s for _, s in self.round_steps()}
        out = [k for k in self.keep_steps if k in reached]
        if not out:
            raise ValueError(f"none of keep_steps {list(self.keep_steps)} is reached by rounds to "
                             f"{sorted(reached)} steps")
        return out

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "keep_steps": list(self.keep_steps)}

    @classmethod
    def from_dict(cls, d: dict) -> "DistillConfig":
        check_config_keys(cls, d)
        return cls(**{**d, "keep_steps": tuple(d.get("keep_steps", (1, 2, 4)))})


# ------------------------------------------------------------------------------------------
# Grids, the Euler step and the target
# ------------------------------------------------------------------------------------------


def nested_grids(levels, counts) -> dict[int, list[float]]:
    """Every ``N / n``-th level of an ``N``-step grid, for each ``n`` of ``counts``.

    Parameters
    ----------
    levels : sequence of float, length N + 1
        Decreasing noise levels ending with 0 (e.g. ``karras_sigmas(N, ...)``).
    counts : iterable of int
        Step counts, each dividing ``N``.

    Returns
    -------
    dict of int to list of float
        ``{n: [levels[0], levels[N/n], ..., levels[N] = 0]}``: nested exactly (every level of a
        coarser grid is a level of each finer one).
    """
    lv = [float(v) for v in torch.as_tensor(levels).reshape(-1)]
    n_total = len(lv) - 1
    out = {}
    for n in sorted({int(c) for c in counts}):
        if n < 1 or n_total % n:
            raise ValueError(f"{n} steps do not divide the {n_total}-step grid")
        out[n] = lv[:: n_total // n]
    return out


def _col(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # (B,) levels as (B, 1, ..., 1) to broadcast against (B, ...) states
    return t.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def euler_step(denoiser, z: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, cond=None) -> torch.Tensor:
    """One Euler (DDIM) step of the probability-flow ODE per sample, levels per sample.

    ``z_next = z + (t_next - t) (z - D(z; t)) / t`` (EDM Algorithm 1 without the correction;
    :func:`ppviz.diffusion.samplers.sample_euler` with per-sample levels).

    Parameters
    ----------
    denoiser : callable ``D(x, sigma, cond)``
    z : tensor, shape (B, ...)
    t, t_next : tensor, shape (B,)
        Current (> 0) and next (>= 0) levels of each sample.
    cond : conditioning passed to ``denoiser``
    """
    return z + _col(t_next - t, z) * (z - denoiser(z, t.to(z.dtype), cond)) / _col(t, z)


def distill_target(teacher, z: torch.Tensor, t: torch.Tensor, t_mid: torch.Tensor, t_next: torch.Tensor,
                   cond=None) -> torch.Tensor:
    """The student's target ``D*``: one Euler step from ``t`` with it lands where the teacher's
    two Euler steps ``t -> t_mid -> t_next`` do (module docstring).

    Parameters
    ----------
    teacher : callable ``D(x, sigma, cond)``
    z : tensor, shape (B, ...)
        States at level ``t``.
    t, t_mid, t_next : tensor, shape (B,)
        ``t > t_mid > t_next >= 0`` per sample.

    Returns
    -------
    tensor, shaped like ``z``
        ``D* = z - (z'' - z) t / (t_next - t)``, ``z''`` the teacher's state at ``t_next``.
    """
    with torch.no_grad():
        z_mid = euler_step(teacher, z, t, t_mid, cond)
        z_next = euler_step(teacher, z_mid, t_mid, t_next, cond)
        return z - (z_next - z) * _col(t / (t_next - t), z)


def distill_loss(student, teacher, y: torch.Tensor, cond, teacher_grid, student_steps: int, sigma_data: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The progressive-distillation loss of one batch (scalar).

    Parameters
    ----------
    student, teacher : callable ``D(x, sigma, cond)``
        The student (trained) and the frozen teacher.
    y : tensor, shape (B, 1, H, W)
        Clean training targets (residuals).
    cond : tensor, shape (B, C, H, W), or None
    teacher_grid : sequence of float, length ``2 student_steps + 1``
        The teacher's levels, ending with 0; the student's are every other one.
    student_steps : int
    sigma_data : float
        Of the loss weight :func:`ppviz.diffusion.loss.loss_weight`.
    generator : torch.Generator, optional
        Draws the level indices (uniform over the student's steps) and the noise.
    """
    grid = torch.as_tensor(teacher_grid, dtype=torch.float64).reshape(-1)
    if grid.numel() != 2 * student_steps + 1:
        raise ValueError(f"a teacher grid of {grid.numel() - 1} steps does not halve to {student_steps}")
    b = y.shape[0]
    gdev = generator.device if generator is not None else torch.device("cpu")
    i = torch.randint(0, student_steps, (b,), generator=generator, device=gdev).cpu()
    t, t_mid, t_next = (grid[2 * i + k].to(device=y.device, dtype=y.dtype) for k in (0, 1, 2))
    eps = torch.randn(y.shape, generator=generator, device=gdev, dtype=y.dtype).to(y.device)
    z = y + _col(t, y) * eps
    target = distill_target(teacher, z, t, t_mid, t_next, cond)
    return (_col(loss_weight(t, sigma_data), y) * (student(z, t, cond) - target) ** 2).mean()


def anchor_targets(config: DistillConfig, r: int) -> dict[int, int]:
    """Levels anchored in round ``r`` (1-based): ``{level index in the teacher's grid: round whose
    model is the target}``. A level of a stored grid that is not on round ``r``'s student grid is
    anchored to the last earlier round that had it there (none for the final level 0)."""
    n = config.teacher_steps
    stored = [s for s in config.stored_steps()]
    kept = sorted({lv for s in stored for lv in range(0, n, n // s)})
    students = [s for _, s in config.round_steps()]
    out = {}
    for lv in kept:
        if lv % (n // students[r - 1]) == 0:
            continue  # on this round's student grid: distilled, not anchored
        out[lv] = max(q for q in range(1, r) if lv % (n // students[q - 1]) == 0)
    return out


def anchor_loss(student, anchors: dict, y: torch.Tensor, cond, levels, sigma_data: float,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """EDM-weighted MSE of ``student`` against frozen earlier models at anchored levels (scalar).

    Parameters
    ----------
    student : callable ``D(x, sigma, cond)``
    anchors : dict of int to callable
        ``{level index: frozen model}`` (:func:`anchor_targets` with the rounds' models); each
        sample takes one level uniformly.
    y, cond, sigma_data, generator
        As :func:`distill_loss`.
    levels : sequence of float
        The teacher's grid (level index -> sigma).
    """
    grid = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
    keys = sorted(anchors)
    b = y.shape[0]
    gdev = generator.device if generator is not None else torch.device("cpu")
    pick = torch.randint(0, len(keys), (b,), generator=generator, device=gdev).cpu()
    t = grid[torch.tensor(keys)[pick]].to(device=y.device, dtype=y.dtype)
    eps = torch.randn(y.shape, generator=generator, device=gdev, dtype=y.dtype).to(y.device)
    z = y + _col(t, y) * eps
    target = torch.empty_like(z)
    with torch.no_grad():
        for k, key in enumerate(keys):
            sel = pick == k
            if sel.any():
                sub = None if cond is None else cond[sel.to(cond.device)]
                target[sel.to(z.device)] = anchors[key](z[sel.to(z.device)], t[sel.to(t.device)], sub)
    return (_col(loss_weight(t, sigma_data), y) * (student(z, t, cond) - target) ** 2).mean()


def student_schedule(teacher_schedule, grids: dict[int, list[float]], default_steps: int | None = None):
    """The student's :class:`ppviz.checkpoints.schedule.Schedule`: the teacher's levels and
    training noise, sampler ``euler`` on the stored ``grids`` only (default: the most steps)."""
    from ppviz.checkpoints.schedule import Schedule

    steps = sorted(grids)
    return Schedule(sigma_min=teacher_schedule.sigma_min, sigma_max=teacher_schedule.sigma_max,
                    rho=teacher_schedule.rho, P_mean=teacher_schedule.P_mean, P_std=teacher_schedule.P_std,
                    min_steps={"euler": steps[0]}, sampler="euler",
                    default_steps=int(default_steps or steps[-1]), grids=grids)


# ------------------------------------------------------------------------------------------
# The rounds
# ------------------------------------------------------------------------------------------


def _round_file(state_dir: Path, r: int) -> Path:
    return state_dir / f"round-{r}.safetensors"


def distill(teacher, batches, config: DistillConfig = DistillConfig(), *, log_file=None, state_dir=None,
            device=None, progress: bool = True, log=print):
    """Progressive distillation of ``teacher`` (a :class:`ppviz.diffusion.Downscaler`).

    Parameters
    ----------
    teacher : Downscaler
        The model to distil (not modified); its schedule gives the Karras grid.
    batches : callable ``batches(start_step) -> iterator of (fine, coarse, static)``
        Training crops (numpy or torch): fine ``(B, crop, crop)``, coarse ``(B, crop/f, crop/f)``,
        static ``(B, C, crop, crop)``; ``start_step`` counts steps over all rounds.
    config : DistillConfig
    log_file : path, optional
        JSON lines, one per ``log_every`` steps: ``round``, ``teacher_steps``, ``student_steps``,
        ``step`` (over all rounds), ``round_step``, ``loss`` (mean over the window), ``lr``,
        ``seconds`` (cumulative). Appended to.
    state_dir : path, optional
        Where each finished round's weights go (``round-R.safetensors``); rounds found there are
        not run again (resume).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    progress : bool
        A tqdm bar per round.
    log : callable
        Gets one line per round.

    Returns
    -------
    student : Downscaler
        On the CPU, eval mode, its config's schedule :func:`student_schedule` (sampler ``euler``
        on the grids of ``config.stored_steps()``).
    rounds : list of dict
        Per round: ``round``, ``teacher_steps``, ``student_steps``, ``steps``, ``loss_first``
        and ``loss_last`` (mean of the first and last logged windows), ``seconds``; ``resumed``
        for rounds read from ``state_dir``.
    """
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    from ppviz.diffusion.samplers import karras_sigmas

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sched = teacher.config.schedule
    full = karras_sigmas(config.teacher_steps, sched.sigma_min, sched.sigma_max, sched.rho)
    grids = nested_grids(full, [config.teacher_steps >> r for r in range(config.n_rounds + 1)])
    sd = teacher.config.sigma_data
    student = copy.deepcopy(teacher).to(device)
    state_dir = Path(state_dir) if state_dir is not None else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file) if log_file is not None else None
    gen = torch.Generator(device="cpu")
    rounds, step, seconds0 = [], 0, 0.0
    models = {}  # round -> its frozen student (anchor targets of later rounds)
    for r, (n_t, n_s) in enumerate(config.round_steps(), start=1):
        done = state_dir is not None and _round_file(state_dir, r).exists()
        if done:
            student.load_state_dict(load_file(str(_round_file(state_dir, r))), strict=True)
            meta = json.loads((state_dir / f"round-{r}.json").read_text())
            changed = sorted(k for k, v in meta.get("config", {}).items()
                             if k != "log_every" and config.to_dict().get(k) != v)
            if changed:
                warnings.warn(f"round {r} in {state_dir} was distilled with other settings {changed}; it is "
                              "used as it is", stacklevel=2)
            rounds.append({**{k: v for k, v in meta.items() if k != "config"}, "resumed": True})
            step, seconds0 = int(meta["end_step"]), float(meta["end_seconds"])
            if config.anchor_fraction > 0:
                models[r] = copy.deepcopy(student).eval().requires_grad_(False)
            log(f"round {r}: {n_t} -> {n_s} steps, read from {_round_file(state_dir, r)}")
            continue
        frozen = copy.deepcopy(student).eval().requires_grad_(False)
        anchored = {lv: models[q].precond for lv, q in anchor_targets(config, r).items()} \
            if config.anchor_fraction > 0 else {}
        n_anchor = int(round(config.anchor_fraction * config.batch_size)) if anchored else 0
        student.train()
        opt = torch.optim.Adam(student.parameters(), lr=config.lr)
        gen.manual_seed(int(np.random.SeedSequence([config.seed, r]).generate_state(1)[0]))
        it = batches(step)
        window, first, last = [], None, None
        t0 = time.perf_counter()
        bar = tqdm(total=config.steps_per_round, disable=not progress, desc=f"distil {n_t}->{n_s}", unit="step")
        try:
            for k in range(config.steps_per_round):
                fine, coarse, stat = (torch.as_tensor(x) for x in next(it))
                lr = config.lr * (1 - k / config.steps_per_round)  # linear decay to 0 within the round
                for g in opt.param_groups:
                    g["lr"] = lr
                cond, base = student.condition(coarse.to(device), stat.to(device))
                y = student.target(fine.to(device), base)
                b = y.shape[0] - min(n_anchor, y.shape[0] - 1)  # the first b samples are distilled
                loss = distill_loss(student.precond, frozen.precond, y[:b], cond[:b], grids[n_t], n_s, sd, gen)
                if b < y.shape[0]:  # the rest hold the anchored levels (anchor_fraction)
                    rest = anchor_loss(student.precond, anchored, y[b:], cond[b:], full, sd, gen)
                    loss = (b * loss + (y.shape[0] - b) * rest) / y.shape[0]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for p in student.parameters():
                    if p.grad is not None:  # as the EDM trainer: scrub NaN / inf gradients
                        torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
                opt.step()
                step += 1
                window.append(float(loss.detach()))
                bar.update(1)
                if (k + 1) % config.log_every == 0 or k + 1 == config.steps_per_round:
                    rec = {"round": r, "teacher_steps": n_t, "student_steps": n_s, "step": step, "round_step": k + 1,
                           "loss": float(np.mean(window)), "lr": lr,
                           "seconds": round(seconds0 + time.perf_counter() - t0, 3)}
                    first = rec["loss"] if first is None else first
                    last = rec["loss"]
                    if log_file is not None:
                        with open(log_file, "a") as f:
                            f.write(json.dumps(rec) + "\n")
                    bar.set_postfix(loss=f"{rec['loss']:.4f}")
                    window.clear()
        finally:
            bar.close()
            del it  # a DataLoader's workers stop here
        seconds0 += time.perf_counter() - t0
        meta = {"round": r, "teacher_steps": n_t, "student_steps": n_s, "steps": config.steps_per_round,
                "loss_first": first, "loss_last": last, "seconds": round(time.perf_counter() - t0, 1),
                "end_step": step, "end_seconds": round(seconds0, 3), "config": config.to_dict()}
        if anchored:
            meta["anchored_levels"] = {str(lv): q for lv, q in anchor_targets(config, r).items()}
        rounds.append({k: v for k, v in meta.items() if k != "config"})
        if config.anchor_fraction > 0:
            models[r] = copy.deepcopy(student).eval().requires_grad_(False)
        if state_dir is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()},
                      str(_round_file(state_dir, r)))
            (state_dir / f"round-{r}.json").write_text(json.dumps(meta))
        log(f"round {r}: {n_t} -> {n_s} steps, {config.steps_per_round} steps, loss {first:.4g} -> {last:.4g} "
            f"({meta['seconds']:.0f} s)")
    student = student.cpu().eval()
    keep = {n: grids[n] for n in config.stored_steps()}
    student.config = dataclasses.replace(student.config, schedule=student_schedule(sched, keep))
    return student, rounds
