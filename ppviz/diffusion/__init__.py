"""Diffusion downscaling after EDM (Karras et al. 2022): preconditioning, loss, samplers, training.

- :mod:`ppviz.diffusion.precond`: :class:`EDMPrecond`, the denoiser ``D(x; sigma)`` (EDM eq. 7).
- :mod:`ppviz.diffusion.loss`: :func:`edm_loss` (EDM eq. 2, Table 1).
- :mod:`ppviz.diffusion.samplers`: :func:`karras_sigmas` (EDM eq. 5), :func:`sample_heun`
  (EDM Algorithm 2), :func:`sample_euler_maruyama` (reverse SDE baseline), per-member seeds.
- :mod:`ppviz.diffusion.downscaler`: :class:`Downscaler`, coarse PP -> fine PP ensemble; the
  one place that handles upsampling, conditioning channels and the residual target.
- :mod:`ppviz.training.diffusion_loop`: :func:`train_diffusion`, crops, EMA, resumable state.

The network itself is :class:`ppviz.models.unet.UNet`.
"""

from ppviz.diffusion.downscaler import (
    COND_CHANNELS,
    STATIC_CHANNELS,
    Downscaler,
    DownscalerConfig,
    build_from_config,
    residual_std,
    static_channels,
    upsample_coarse,
)
from ppviz.diffusion.loss import edm_loss
from ppviz.diffusion.precond import EDMPrecond, edm_coefficients
from ppviz.diffusion.samplers import (
    SAMPLERS,
    get_sampler,
    karras_sigmas,
    member_generators,
    member_noise,
    sample_euler_maruyama,
    sample_heun,
)

__all__ = [
    "COND_CHANNELS",
    "STATIC_CHANNELS",
    "Downscaler",
    "DownscalerConfig",
    "EDMPrecond",
    "SAMPLERS",
    "build_from_config",
    "edm_coefficients",
    "edm_loss",
    "get_sampler",
    "karras_sigmas",
    "member_generators",
    "member_noise",
    "residual_std",
    "sample_euler_maruyama",
    "sample_heun",
    "static_channels",
    "upsample_coarse",
]
