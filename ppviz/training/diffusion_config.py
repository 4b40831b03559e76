"""The diffusion trainer's hyper-parameters, and which of them may change when a run resumes.

:class:`DiffusionTrainConfig` is written to ``train_config.json`` at the start of a run and checked
against the saved one on ``--resume`` (:func:`ppviz.training.diffusion_loop.train_diffusion`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ppviz.io import check_config_keys


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Hyper-parameters of :func:`train_diffusion`.

    Parameters
    ----------
    crop : int
        Crop side in fine cells; a multiple of the block factor and of the U-Net's
        ``size_multiple`` (64 by default: 16 x 16 deg of 0.25 deg cells).
    batch_size : int
        Crops per step.
    steps : int
        Total optimiser steps (a resumed run continues up to this number).
    lr : float
        Adam learning rate after the warm-up.
    lr_warmup_steps : int
        Linear warm-up from 0 (EDM ``lr_rampup``).
    ema_halflife_steps : float
        EMA half-life in steps (EDM ``ema_halflife``).
    ema_rampup_ratio : float or None
        Half-life limited to ``ratio * step`` early on (EDM ``ema_rampup_ratio``, 0.05); None: off.
    P_mean, P_std : float
        Training noise levels ``ln(sigma) ~ N(P_mean, P_std^2)`` (EDM Table 1).
    grad_clip : float or None
        Clip the global gradient norm to this (None: EDM's default, no clipping).
    seed : int
        Seeds the initial weights, crop positions, and noise.
    log_every, ckpt_every : int
        Steps between log lines and between resume states.
    """

    crop: int = 64
    batch_size: int = 16
    steps: int = 20000
    lr: float = 3e-4
    lr_warmup_steps: int = 500
    ema_halflife_steps: float = 1000.0
    ema_rampup_ratio: float | None = 0.05
    P_mean: float = -1.2
    P_std: float = 1.2
    grad_clip: float | None = None
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 1000

    def __post_init__(self):
        for name in ("crop", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0 or self.lr_warmup_steps < 0 or self.lr <= 0 or self.ema_halflife_steps <= 0:
            raise ValueError("steps and lr_warmup_steps must be >= 0, lr and ema_halflife_steps > 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DiffusionTrainConfig":
        check_config_keys(cls, d)
        return cls(**d)


# Fields that may change between a run and its resumption without changing the trajectory.
_RESUMABLE_CHANGES = {"steps", "log_every", "ckpt_every"}
