"""The EDM training loss (Karras et al. 2022, eq. 2 and 8, Table 1 "Ours").

::

    ln(sigma) ~ N(P_mean, P_std^2)                        (EDM Table 1, training noise levels)
    n ~ N(0, sigma^2 I)
    lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2     (EDM Table 1, loss weight)
    L = E_{y, sigma, n} [ lambda(sigma) || D_theta(y + n; sigma) - y ||^2 ]   (EDM eq. 2 / 8)

With EDM's preconditioning, ``lambda(sigma) c_out(sigma)^2 = 1``: the effective target of
``F_theta`` has unit variance and the loss starts near 1 at initialisation (``F = 0``).
"""

from __future__ import annotations

import torch

from ppviz.diffusion.precond import EDMPrecond

P_MEAN = -1.2
P_STD = 1.2


def sample_training_sigmas(
    n: int,
    *,
    P_mean: float = P_MEAN,
    P_std: float = P_STD,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` noise levels with ``ln(sigma) ~ N(P_mean, P_std^2)`` (EDM Table 1); shape ``(n,)``.

    Drawn on the generator's device (CPU for a CPU generator), then moved to ``device``.
    """
    gen_device = generator.device if generator is not None else device
    rnd_normal = torch.randn(n, generator=generator, device=gen_device)
    return (rnd_normal * P_std + P_mean).exp().to(device)


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's loss weight (Table 1), ``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``.

    Equal to ``(SNR + 1) / sigma_data^2`` with ``SNR = sigma_data^2 / sigma^2``: the "SNR+1"
    weighting of Salimans & Ho (2022), up to a constant. Shaped like ``sigma``.
    """
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def edm_loss(
    precond: EDMPrecond,
    y: torch.Tensor,
    cond: torch.Tensor | None = None,
    *,
    P_mean: float = P_MEAN,
    P_std: float = P_STD,
    generator: torch.Generator | None = None,
    sigma: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """EDM loss ``lambda(sigma) ||D(y + n; sigma) - y||^2`` on one batch (EDM eq. 2, Table 1).

    Parameters
    ----------
    precond : EDMPrecond
        The denoiser (its ``sigma_data`` sets the weight ``lambda``).
    y : tensor, shape (B, 1, H, W)
        Clean training targets.
    cond : tensor, shape (B, C, H, W), optional
        Conditioning channels for ``precond``.
    P_mean, P_std : float
        Log-normal noise-level distribution (EDM: -1.2, 1.2).
    generator : torch.Generator, optional
        Source of ``sigma`` and ``n`` (for reproducible training); draws happen on its device.
    sigma, noise : tensors, optional
        Fixed ``(B,)`` noise levels and ``(B, 1, H, W)`` unit normal noise (``n = sigma * noise``),
        e.g. for a deterministic evaluation loss; drawn when omitted.
    reduction : {"mean", "none"}
        ``"mean"``: scalar mean over batch and pixels; ``"none"``: per-sample ``(B,)`` means.

    Returns
    -------
    tensor
        The weighted squared error (dimensionless; ~1 for an untrained network).
    """
    b = y.shape[0]
    if sigma is None:
        sigma = sample_training_sigmas(b, P_mean=P_mean, P_std=P_std, generator=generator, device=y.device)
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(b, 1, 1, 1)
    if noise is None:
        gen_device = generator.device if generator is not None else y.device
        noise = torch.randn(y.shape, generator=generator, device=gen_device, dtype=y.dtype).to(y.device)
    weight = loss_weight(sigma, precond.sigma_data)
    # EDM eq. 2: || D(y + n; sigma) - y ||^2 with n ~ N(0, sigma^2 I).
    D_yn = precond(y + noise * sigma, sigma.reshape(b), cond)
    per_pixel = weight * (D_yn - y) ** 2
    if reduction == "mean":
        return per_pixel.mean()
    if reduction == "none":
        return per_pixel.flatten(1).mean(dim=1)
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
