"""EDM preconditioning: the denoiser ``D_theta(x; sigma)`` built around the raw network ``F_theta``.

Karras et al. (2022), "Elucidating the Design Space of Diffusion-Based Generative Models" (EDM),
eq. 7 and Table 1 ("Ours" column)::

    D_theta(x; sigma) = c_skip(sigma) x + c_out(sigma) F_theta(c_in(sigma) x; c_noise(sigma))

    c_skip  = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out   = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in    = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4

One :class:`EDMPrecond` object serves both the training loss (:func:`ppviz.diffusion.loss.edm_loss`)
and every sampler (:mod:`ppviz.diffusion.samplers`): they all call ``precond(x, sigma, cond)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ppviz.models.unet import UNet, pad_to_multiple


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """``(c_skip, c_out, c_in, c_noise)`` of EDM Table 1 for noise levels ``sigma``.

    Parameters
    ----------
    sigma : tensor, any shape
        Noise standard deviations (> 0), in the units of the data.
    sigma_data : float
        Standard deviation of the training targets.

    Returns
    -------
    c_skip, c_out, c_in, c_noise : tensors shaped like ``sigma``
    """
    sd2 = sigma_data**2
    # EDM Table 1, preconditioning ("Ours").
    c_skip = sd2 / (sigma**2 + sd2)
    c_out = sigma * sigma_data / (sigma**2 + sd2).sqrt()
    c_in = 1 / (sigma**2 + sd2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMPrecond(nn.Module):
    """The EDM denoiser ``D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)`` (EDM eq. 7).

    Parameters
    ----------
    net : UNet
        The raw network ``F_theta``; its ``in_channels`` must be ``1 + cond channels``.
    sigma_data : float
        Standard deviation of the targets (EDM Table 1). 1.0 for PP, which is ~N(0, 1); for a
        residual target (fine minus upsampled coarse) the residual's std is the better value.

    Notes
    -----
    ``forward(x, sigma, cond)``:

    - ``x``: tensor ``(B, 1, H, W)``, the noisy field ``y + n`` with ``n ~ N(0, sigma^2 I)``;
    - ``sigma``: float, 0-d tensor or ``(B,)`` tensor, > 0;
    - ``cond``: tensor ``(B, C, H, W)`` or ``(1, C, H, W)`` (broadcast over the batch), the
      conditioning channels, concatenated with ``c_in * x`` as the network input; or None;
    - returns the denoised estimate ``D(x; sigma)``, shape ``(B, 1, H, W)``.

    ``H``, ``W`` need not be multiples of the U-Net's ``size_multiple``: the input is padded
    (reflect, :func:`ppviz.models.unet.pad_to_multiple`) for the network and ``F`` cropped back.
    """

    def __init__(self, net: UNet, sigma_data: float = 1.0):
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def coefficients(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(c_skip, c_out, c_in, c_noise)`` (EDM Table 1) for ``sigma``."""
        return edm_coefficients(sigma, self.sigma_data)

    def forward(self, x: torch.Tensor, sigma, cond: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"EDMPrecond expects x of shape (B, C, H, W), got {tuple(x.shape)}")
        b = x.shape[0]
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(b)
        if sigma.numel() != b:
            raise ValueError(f"sigma has {sigma.numel()} values for a batch of {b}")
        sigma = sigma.reshape(b, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = self.coefficients(sigma)
        # EDM eq. 7: the network sees c_in * x (unit variance at every sigma) next to the
        # conditioning channels, and the noise level as c_noise.
        inp = (c_in * x).to(x.dtype)
        if cond is not None:
            if cond.shape[0] != b:
                cond = cond.expand(b, *cond.shape[1:])
            inp = torch.cat([inp, cond.to(x.dtype)], dim=1)
        inp, crop = pad_to_multiple(inp, self.net.size_multiple)
        F_x = self.net(inp, c_noise.reshape(b))[..., crop[0], crop[1]]
        # EDM eq. 7: D_theta(x; sigma) = c_skip x + c_out F_theta(c_in x; c_noise).
        return (c_skip * x + c_out * F_x.to(torch.float32)).to(x.dtype)
