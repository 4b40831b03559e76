"""The downscaler: coarse (1 deg) PP in, an ensemble of fine (0.25 deg) PP out.

This module is the single place that knows how a coarse field becomes the network's conditioning
and what the diffusion model actually generates:

- **Upsampling.** The coarse field is brought to the fine grid by *bilinear* interpolation
  (``torch.nn.functional.interpolate``, ``align_corners=False``): coarse cell centres are the
  fine block centres (:mod:`ppviz.data.grid`), which is exactly where ``align_corners=False``
  puts them, and the outermost half block is extended flat (clamped). PP is smooth, so bilinear
  gives a smooth first guess without the block edges of nearest-neighbour upsampling
  (``upsample="nearest"`` is available and keeps block means exact).
- **Residual target** (``residual=True``, the default). The diffusion model generates
  ``r = fine - up(coarse)``; :meth:`Downscaler.sample` adds ``up(coarse)`` back, so callers see
  only coarse -> fine. The residual holds the sub-1-deg detail, has a much smaller variance than
  PP itself and no large-scale pattern to relearn, which usually helps downscaling. (Bilinear
  upsampling does not preserve block means exactly, so ``r`` has small non-zero block means
  that the model learns too.) Set ``sigma_data`` near the residual's std
  (:func:`residual_std`) for the best-conditioned EDM preconditioning.
- **Conditioning channels**, in this order (:data:`COND_CHANNELS`): the upsampled coarse PP,
  then the static fields of :func:`static_channels`: land-sea mask (0/1), orography in km
  (m / 1000), sin and cos of latitude, sin and cos of longitude. The network input is
  ``[c_in * x_noisy, cond]``: 1 + 7 = 8 channels.

:func:`build_from_config` is the entry for :mod:`ppviz.checkpoints` (architecture ``edm-unet``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ppviz.checkpoints.schedule import LEGACY, Schedule
from ppviz.io import check_config_keys
from ppviz.data.grid import COARSE_FACTOR, Grid, coarsen_blocks
from ppviz.diffusion.loss import edm_loss
from ppviz.diffusion.precond import EDMPrecond
from ppviz.diffusion.samplers import DEFAULT_STEPS, get_sampler, member_generators, member_noise, schedule_sigmas
from ppviz.models.unet import UNet, UNetConfig

#: Static conditioning channels of :func:`static_channels`, in order.
STATIC_CHANNELS: tuple[str, ...] = ("lsm", "orography_km", "sin_lat", "cos_lat", "sin_lon", "cos_lon")
#: All conditioning channels (after the noisy field) of the network input, in order.
COND_CHANNELS: tuple[str, ...] = ("coarse_up",) + STATIC_CHANNELS
UPSAMPLE_MODES = ("bilinear", "nearest")


def static_channels(grid: Grid, *, natural_earth: bool = True) -> np.ndarray:
    """The static conditioning fields of a fine grid, normalised, in :data:`STATIC_CHANNELS` order.

    Parameters
    ----------
    grid : Grid
        The fine grid (e.g. :data:`ppviz.data.grid.EUROPE` or a region of it).
    natural_earth : bool
        Passed to :func:`ppviz.data.geography.static_fields` (land-sea mask source).

    Returns
    -------
    array, shape (6, nlat, nlon), float32
        ``lsm`` (0/1), ``orography / 1000`` (km), ``sin(lat)``, ``cos(lat)``, ``sin(lon)``,
        ``cos(lon)`` (lat/lon of the cell centres). Crop it with the data: every channel is
        pointwise, so a crop of the full-grid array equals the array of the cropped grid.
    """
    from ppviz.data.geography import static_fields

    ds = static_fields(grid, natural_earth=natural_earth)
    lat = np.deg2rad(grid.lat)[:, None] * np.ones((1, grid.nlon))
    lon = np.ones((grid.nlat, 1)) * np.deg2rad(grid.lon)[None, :]
    out = np.stack(
        [
            np.asarray(ds["lsm"].values, dtype=np.float64),
            np.asarray(ds["orography"].values, dtype=np.float64) / 1000.0,
            np.sin(lat),
            np.cos(lat),
            np.sin(lon),
            np.cos(lon),
        ]
    )
    return out.astype(np.float32)


def upsample_coarse(coarse: torch.Tensor, factor: int = COARSE_FACTOR, mode: str = "bilinear") -> torch.Tensor:
    """Bring coarse fields to the fine grid.

    Parameters
    ----------
    coarse : tensor, shape (..., h, w)
    factor : int
        Fine cells per coarse cell along each axis.
    mode : {"bilinear", "nearest"}
        ``bilinear``: ``align_corners=False`` (coarse centres at fine block centres, edges
        clamped); ``nearest``: each coarse value repeated over its block.

    Returns
    -------
    tensor, shape (..., factor * h, factor * w)
    """
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample mode {mode!r}; valid: {list(UPSAMPLE_MODES)}")
    *lead, h, w = coarse.shape
    x = coarse.reshape(-1, 1, h, w)
    if mode == "bilinear":
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    else:
        x = x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return x.reshape(*lead, h * factor, w * factor)


def residual_std(pp_fine: np.ndarray, lat, factor: int = COARSE_FACTOR, mode: str = "bilinear") -> float:
    """Std of ``fine - up(coarsen(fine))``: a good ``sigma_data`` for the residual target.

    Parameters
    ----------
    pp_fine : array, shape (T, H, W)
        Fine fields (H, W multiples of ``factor``); a subsample of times is enough.
    lat : array, shape (H,)
        Fine latitudes, degrees (area weights of the coarsening).
    """
    fine = np.asarray(pp_fine, dtype=np.float32)
    coarse = coarsen_blocks(fine, lat, factor)
    up = upsample_coarse(torch.from_numpy(np.ascontiguousarray(coarse)), factor, mode).numpy()
    return float(np.std(fine - up, dtype=np.float64))


@dataclass(frozen=True)
class DownscalerConfig:
    """Everything needed to rebuild a :class:`Downscaler` before loading its weights.

    Parameters
    ----------
    unet : UNetConfig
        The network; ``unet.in_channels`` must be ``1 + len(cond channels)`` (8 by default).
    sigma_data : float
        EDM's data std (Table 1) of the generated target (PP ~ N(0, 1): 1.0; for the residual
        target, :func:`residual_std` of the training data is better).
    residual : bool
        Generate ``fine - up(coarse)`` (True) or the fine field itself (False).
    upsample : {"bilinear", "nearest"}
        How the coarse field is brought to the fine grid (conditioning and residual base).
    factor : int
        Fine cells per coarse cell along each axis (4: 0.25 deg -> 1 deg).
    static_names : tuple of str
        Names of the static channels, in order (documentation and a consistency check).
    schedule : Schedule
        Training and sampling noise levels (:mod:`ppviz.checkpoints.schedule`), used by default by
        :meth:`Downscaler.loss` and :meth:`Downscaler.sample`. A saved config without one (older
        checkpoints) reads as :data:`ppviz.checkpoints.schedule.LEGACY`.
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    sigma_data: float = 1.0
    residual: bool = True
    upsample: str = "bilinear"
    factor: int = COARSE_FACTOR
    static_names: tuple[str, ...] = STATIC_CHANNELS
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self):
        if isinstance(self.unet, dict):
            object.__setattr__(self, "unet", UNetConfig.from_dict(self.unet))
        if not isinstance(self.schedule, Schedule):
            object.__setattr__(self, "schedule", Schedule.from_dict(self.schedule))
        object.__setattr__(self, "static_names", tuple(self.static_names))
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"unknown upsample mode {self.upsample!r}; valid: {list(UPSAMPLE_MODES)}")
        if self.sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {self.sigma_data}")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        need = 2 + len(self.static_names)
        if self.unet.in_channels != need:
            raise ValueError(
                f"unet.in_channels is {self.unet.in_channels} but the input has {need} channels "
                f"(noisy field, coarse_up, {len(self.static_names)} static)"
            )

    @property
    def cond_channels(self) -> int:
        """Number of conditioning channels (coarse_up + statics)."""
        return 1 + len(self.static_names)

    def to_dict(self) -> dict:
        """JSON-able nested dict; inverse of :meth:`from_dict`."""
        return {
            "unet": self.unet.to_dict(),
            "sigma_data": self.sigma_data,
            "residual": self.residual,
            "upsample": self.upsample,
            "factor": self.factor,
            "static_names": list(self.static_names),
            "schedule": self.schedule.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DownscalerConfig":
        """Build from :meth:`to_dict` output; unknown keys raise ValueError naming the known ones."""
        check_config_keys(cls, d)
        d = dict(d)
        if "unet" in d and isinstance(d["unet"], dict):
            d["unet"] = UNetConfig.from_dict(d["unet"])
        d["schedule"] = Schedule.from_dict(d.get("schedule")) if "schedule" in d else LEGACY
        return cls(**d)


def _as_tensor(a, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32) if not torch.is_tensor(a) else a, device=device).float()


class Downscaler(nn.Module):
    """Coarse PP -> fine PP ensemble: the EDM denoiser plus upsampling and residual handling.

    Parameters
    ----------
    config : DownscalerConfig

    Attributes
    ----------
    precond : EDMPrecond
        The denoiser ``D(x; sigma, cond)`` on the generated target (residual or full field);
        the loss and the samplers call it.
    """

    def __init__(self, config: DownscalerConfig = DownscalerConfig()):
        super().__init__()
        self.config = config
        self.precond = EDMPrecond(UNet(config.unet), sigma_data=config.sigma_data)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- conditioning and target -------------------------------------------------------------

    def condition(self, coarse, static) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning channels and residual base of coarse fields.

        Parameters
        ----------
        coarse : tensor or array, shape (B, h, w) or (h, w)
            Coarse PP (block means of the fine grid).
        static : tensor or array, shape (C, H, W) or (B, C, H, W)
            :func:`static_channels` on the fine grid, ``H = factor * h``, ``W = factor * w``.

        Returns
        -------
        cond : tensor, shape (B, 1 + C, H, W)
            ``[up(coarse), static...]`` (:data:`COND_CHANNELS`).
        base : tensor, shape (B, 1, H, W)
            What the generated target is added to: ``up(coarse)`` if ``residual`` else zeros.
        """
        cfg = self.config
        dev = self.device
        coarse = _as_tensor(coarse, dev)
        static = _as_tensor(static, dev)
        if coarse.dim() == 2:
            coarse = coarse[None]
        if static.dim() == 3:
            static = static[None]
        if coarse.dim() != 3 or static.dim() != 4:
            raise ValueError(f"coarse must be (B, h, w) and static (C, H, W) or (B, C, H, W); got "
                             f"{tuple(coarse.shape)} and {tuple(static.shape)}")
        b, h, w = coarse.shape
        H, W = h * cfg.factor, w * cfg.factor
        if static.shape[-2:] != (H, W) or static.shape[1] != len(cfg.static_names):
            raise ValueError(
                f"static must be ({len(cfg.static_names)}, {H}, {W}) for coarse {h}x{w} "
                f"(factor {cfg.factor}); got {tuple(static.shape)}"
            )
        up = upsample_coarse(coarse, cfg.factor, cfg.upsample)[:, None]
        cond = torch.cat([up, static.expand(b, *static.shape[1:])], dim=1)
        base = up if cfg.residual else torch.zeros_like(up)
        return cond, base

    def target(self, fine: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """The generated target ``fine - base`` (``(B, H, W)`` or ``(B, 1, H, W)`` -> ``(B, 1, H, W)``)."""
        if fine.dim() == 3:
            fine = fine[:, None]
        return fine - base

    # -- training ------------------------------------------------------------------------------

    def loss(
        self,
        fine,
        coarse,
        static,
        *,
        generator: torch.Generator | None = None,
        P_mean: float | None = None,
        P_std: float | None = None,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """EDM loss (:func:`ppviz.diffusion.loss.edm_loss`) of a batch of fine fields.

        Parameters
        ----------
        fine : tensor, shape (B, H, W)
            True fine PP.
        coarse : tensor, shape (B, h, w)
            Its block means.
        static : tensor, shape (C, H, W) or (B, C, H, W)
            Static channels of each sample's area.
        generator, P_mean, P_std, sigma, noise
            As :func:`ppviz.diffusion.loss.edm_loss`; ``P_mean``, ``P_std`` default to the
            config's :class:`~ppviz.checkpoints.schedule.Schedule`.

        Returns
        -------
        scalar tensor
        """
        cond, base = self.condition(coarse, static)
        y = self.target(_as_tensor(fine, self.device), base)
        sched = self.config.schedule
        P_mean = sched.P_mean if P_mean is None else P_mean
        P_std = sched.P_std if P_std is None else P_std
        return edm_loss(self.precond, y, cond, P_mean=P_mean, P_std=P_std, generator=generator,
                        sigma=sigma, noise=noise)

    # -- sampling ------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        coarse,
        static,
        seeds: Sequence[int],
        *,
        sampler: str = "heun",
        num_steps: int | None = None,
        sigmas: torch.Tensor | None = None,
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        rho: float | None = None,
        callback: Callable[[dict], None] | None = None,
        max_batch: int | None = None,
        **sampler_kwargs,
    ) -> torch.Tensor:
        """An ensemble of fine PP fields for one coarse field.

        Parameters
        ----------
        coarse : tensor or array, shape (h, w)
            Coarse PP.
        static : tensor or array, shape (C, H, W)
            :func:`static_channels` of the fine grid (``H = factor h``, ``W = factor w``). Any
            ``H``, ``W`` work (the denoiser pads for the U-Net).
        seeds : sequence of int
            One seed per member; member ``k`` depends only on ``seeds[k]`` (not on the batch).
        sampler : str
            A name of :data:`ppviz.diffusion.samplers.SAMPLERS` (``heun``, ``euler``, ``dpmpp_2m``,
            ``euler_maruyama``).
        num_steps : int, optional
            Steps on the schedule's levels (:func:`ppviz.diffusion.samplers.schedule_sigmas`:
            Karras's, or a student's stored grid) (default: the schedule's ``default_steps`` for its
            sampler, else :data:`ppviz.diffusion.samplers.DEFAULT_STEPS`); ignored when ``sigmas``
            is given.
        sigmas : tensor, optional
            Explicit decreasing noise levels ending in 0.
        sigma_min, sigma_max, rho : float, optional
            Karras parameters (not for a schedule with stored grids); default: the config's
            :class:`~ppviz.checkpoints.schedule.Schedule`.
        callback : callable, optional
            Called after every step with the sampler's dict, where ``x`` and ``denoised`` are
            full fine fields (base added back), shape ``(b, 1, H, W)``, and ``members`` the
            member indices of the current batch.
        max_batch : int, optional
            Members per network batch (all at once by default); results do not depend on it.
        **sampler_kwargs
            Passed to the sampler (e.g. ``churn`` for Heun).

        Returns
        -------
        tensor, shape (len(seeds), H, W), float32, on the model's device
            Fine PP members.
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("sample needs at least one seed")
        fn = get_sampler(sampler)
        if sigmas is None:
            sched = self.config.schedule
            n = num_steps or (sched.default_steps if sampler == sched.sampler else DEFAULT_STEPS[sampler])
            if sched.grids is not None:
                sched.check_steps(n, "this checkpoint", sampler)  # a student: its sampler and grids only
            sigmas = schedule_sigmas(sched, n, sigma_min, sigma_max, rho)
        sigma0 = float(torch.as_tensor(sigmas).reshape(-1)[0])
        cond, base = self.condition(coarse, static)
        H, W = cond.shape[-2:]
        out = torch.empty(len(seeds), H, W, device=cond.device)
        step = max_batch or len(seeds)
        was_training = self.training
        self.eval()
        try:
            for lo in range(0, len(seeds), step):
                chunk = seeds[lo : lo + step]
                members = list(range(lo, lo + len(chunk)))
                x = member_noise((1, H, W), chunk, device=cond.device) * sigma0
                cb = None if callback is None else self._full_field_callback(callback, base, members)
                y = fn(self.precond, x, sigmas, cond=cond, callback=cb,
                       generator=member_generators(chunk), **sampler_kwargs)
                out[lo : lo + len(chunk)] = (y + base)[:, 0]
        finally:
            self.train(was_training)
        return out


    @staticmethod
    def _full_field_callback(callback, base, members):
        # The samplers see the generated target; callers see full fine fields (base added back).
        def cb(info: dict) -> None:
            callback({**info, "x": info["x"] + base, "denoised": info["denoised"] + base, "members": members})

        return cb


def build_from_config(config: dict) -> Downscaler:
    """Build an untrained :class:`Downscaler` from ``DownscalerConfig.to_dict()`` (checkpoints)."""
    return Downscaler(DownscalerConfig.from_dict(config))
