"""A tiny untrained downscaler for tests, benchmarks and demos of the dashboard's machinery.

Two U-Net levels of 8 and 16 channels: a 4-member ensemble over a small region samples in a
fraction of a second on CPU. Untrained, so its members are noise around the bicubic input;
use it to time and test the app, never to judge downscaling.
"""

from __future__ import annotations

from pathlib import Path


def tiny_downscaler(seed: int = 0, perturb: float = 0.0):
    """An untrained :class:`ppviz.diffusion.Downscaler` (2 levels, 8 base channels).

    EDM starts the output layer at zero, so two untrained models sample the same fields;
    ``perturb`` adds that much Gaussian noise to every weight to make a different one.
    """
    import torch

    from ppviz.diffusion import Downscaler, DownscalerConfig
    from ppviz.models.unet import UNetConfig

    torch.manual_seed(seed)
    m = Downscaler(DownscalerConfig(unet=UNetConfig(base_channels=8, channel_mult=(1, 2), blocks_per_level=1),
                                    sigma_data=0.5))
    if perturb:
        with torch.no_grad():
            for p in m.parameters():
                p.add_(perturb * torch.randn_like(p))
    return m


def save_tiny_diffusion(root: Path, name: str = "tiny-diffusion", *, seed: int = 0, perturb: float = 0.0,
                        summary: str = "tiny untrained U-Net (tests, benchmarks)", extra: dict | None = None) -> Path:
    """Save :func:`tiny_downscaler` as checkpoint ``root/name`` (a registry directory for
    ``PPVIZ_CHECKPOINTS``); returns its path."""
    from ppviz.checkpoints import save_checkpoint

    m = tiny_downscaler(seed, perturb)
    path = Path(root) / name
    save_checkpoint(m, path, kind="diffusion", architecture="edm-unet", config=m.config.to_dict(),
                    extra={"summary": summary, **(extra or {})})
    return path
