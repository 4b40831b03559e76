"""The pseudo-precipitation (PP) encoder-decoder: a pointwise fully connected network.

After Radhakrishnan et al. (2024), arXiv 2412.14620. Each grid cell is mapped on its own:

- encoder ``E(tp, vimd) -> pp``: one scalar that tracks TP where it rains and VIMD where it is dry;
- decoder ``D(pp) -> tp >= 0``: exactly zero in the dry part of PP space.

Inputs are normalised as ``a = log1p(tp / tp_scale)`` (TP spans four decades) and
``b = vimd / vimd_scale``. The decoder output is ``tp = tp_scale * expm1(relu(u))``, so dry cells
decode to exactly 0 once ``u <= 0``.

Loss (per batch of N cells, weights in :class:`PPConfig`)::

    L = w_rec   * mean_i (log1p(D(E(x_i)) / s) - log1p(tp_i / s))^2            reconstruction
      + w_q     * mean_k (pp_(k) - Phi^-1((k - 1/2) / N))^2                       quantile loss
      + w_order * mean_i (pp_i - Phi^-1((rank_i(key) - 1/2) / N))^2               ordering

(with several training datasets, the quantile and ordering terms are taken within each dataset's
share of the batch and averaged with the shares as weights: see :func:`pp_loss`),
where ``pp_(k)`` is the k-th smallest encoded value of the batch (so the quantile term pulls the
distribution of PP towards N(0, 1)), and the ordering term pulls every cell towards the normal
quantile of the place its ``key`` gives it in the batch: dry cells (tp = 0) ranked by -VIMD (moisture convergence),
then every wet cell above all dry ones, ranked by tp. So PP follows -VIMD where it is dry, rises
with tp where it rains, and is continuous across the rain edge (the most convergent dry cells sit
just below the lightest rain). Without the wet part of the key the loss is symmetric under
``pp -> -pp`` for wet cells, and training can put rain at the low end of PP; a target taken from
the sorted batch itself (instead of Phi^-1) has a mirror-image equilibrium with shrunken spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PPConfig:
    """Architecture, input normalisation and loss weights of the PP encoder-decoder."""

    hidden: int = 64
    depth: int = 3
    #: feed the encoder a rain indicator 1{tp > 0} beside a and b: PP must jump from the dry
    #: order (by VIMD) to above it at the first drizzle, which a smooth function of a alone can
    #: only approximate (it cost normality: KS 0.04-0.05 instead of 0.01-0.02)
    wet_input: bool = True
    #: mm/h; rain at or below this counts as dry in the ordering and the indicator (ERA5 and the
    #: synthetic data hold rates down to 1e-18 mm/h that no network input can tell from 0)
    dry_threshold: float = 1e-6
    tp_scale: float = 0.1  # mm/h: log1p(tp / tp_scale) is ~linear below and logarithmic above
    vimd_scale: float = 1.0  # mm/h: set from the training data's VIMD standard deviation
    w_rec: float = 1.0
    w_q: float = 1.0
    w_order: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


def relu_with_leaky_grad(u: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """relu(u) in the forward pass (exact zeros), with gradient ``slope`` where u < 0.

    A plain relu head can die: once u < 0 for every input, the decoder outputs 0 everywhere and
    gets no gradient back.
    """
    leak = slope * (u - u.detach())  # zero forward, slope backward
    return torch.relu(u) + torch.where(u < 0, leak, torch.zeros_like(leak))


def _mlp(n_in: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class PPAutoencoder(nn.Module):
    """Pointwise encoder (tp, vimd) -> pp and decoder pp -> tp, both fully connected."""

    def __init__(self, config: PPConfig = PPConfig()):
        super().__init__()
        self.config = config
        self.encoder_net = _mlp(3 if config.wet_input else 2, config.hidden, config.depth)
        self.decoder_net = _mlp(1, config.hidden, config.depth)

    def encode(self, tp: torch.Tensor, vimd: torch.Tensor) -> torch.Tensor:
        """PP of each cell; ``tp`` and ``vimd`` in mm/h, any (same) shape."""
        c = self.config
        a = torch.log1p(torch.clamp(tp, min=0.0) / c.tp_scale)
        b = vimd / c.vimd_scale
        parts = [a, b, (tp > c.dry_threshold).to(a.dtype)] if c.wet_input else [a, b]
        x = torch.stack(parts, dim=-1)
        return self.encoder_net(x).squeeze(-1)

    def decode(self, pp: torch.Tensor) -> torch.Tensor:
        """TP (mm/h, >= 0, exactly 0 in the dry part of PP space) of each PP value."""
        u = self.decoder_net(pp.unsqueeze(-1)).squeeze(-1)
        return self.config.tp_scale * torch.expm1(relu_with_leaky_grad(u))

    def forward(self, tp: torch.Tensor, vimd: torch.Tensor):
        pp = self.encode(tp, vimd)
        return pp, self.decode(pp)


def normal_quantiles(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Phi^-1((k - 1/2) / n) for k = 1..n: the expected order statistics of N(0, 1)."""
    p = (torch.arange(n, device=device, dtype=torch.float64) + 0.5) / n
    return (math.sqrt(2.0) * torch.erfinv(2.0 * p - 1.0)).to(dtype)


def ordering_rank(tp: torch.Tensor, vimd: torch.Tensor, dry_threshold: float = 0.0) -> torch.Tensor:
    """Rank (0..N-1) of each cell: dry cells by -vimd, then wet cells by tp, ties by -vimd.

    A lexicographic sort (two stable argsorts), so no precision is lost to a combined key.
    """
    key = torch.where(tp > dry_threshold, tp, torch.zeros_like(tp))
    order = torch.argsort(-vimd, stable=True)
    order = order[torch.argsort(key[order], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank


def pp_loss(model: PPAutoencoder, tp: torch.Tensor, vimd: torch.Tensor, dry_threshold: float | None = None,
            *, warmup: bool = False, groups: Sequence[tuple[int, int, float]] | None = None,
            order_weight: float | None = None):
    """The training loss of the module docstring on one batch of cells (1-D tensors).

    With ``warmup`` only the ordering term counts: a plain regression of the encoder onto fixed
    targets, which sets PP's orientation from any initialisation (joint training from a start with
    rain at the low end of PP can stay stuck there, since the decoder learns that orientation too).

    ``groups`` splits the batch into ``(start, stop, weight)`` slices, one per training dataset:
    the quantile and ordering terms are computed within each slice (each dataset's PP is pulled
    towards N(0, 1) on its own) and summed with the weights. One group over the whole batch by
    default. Without groups, a batch mixing datasets of different climates makes only the
    *mixture* normal, and each dataset's PP drifts off N(0, 1).

    ``order_weight`` replaces ``config.w_order`` (training anneals it).

    Returns
    -------
    loss : scalar tensor
    parts : dict of floats (rec, quantile, order)
    """
    c = model.config
    w_order = c.w_order if order_weight is None else order_weight
    dry_threshold = c.dry_threshold if dry_threshold is None else dry_threshold
    pp, tp_hat = model(tp, vimd)
    s = c.tp_scale
    rec = (torch.log1p(tp_hat / s) - torch.log1p(torch.clamp(tp, min=0.0) / s)).pow(2).mean()
    if groups is None:
        groups = [(0, pp.numel(), 1.0)]
    total_w = sum(w for _, _, w in groups)
    q = pp.new_zeros(())
    order_loss = pp.new_zeros(())
    for a, b, w in groups:
        g_pp = pp[a:b]
        z = normal_quantiles(g_pp.numel(), pp.device, pp.dtype)
        q = q + (w / total_w) * (torch.sort(g_pp).values - z).pow(2).mean()
        order_loss = order_loss + (w / total_w) * (g_pp - z[ordering_rank(tp[a:b], vimd[a:b], dry_threshold)]).pow(2).mean()
    loss = order_loss if warmup else c.w_rec * rec + c.w_q * q + w_order * order_loss
    return loss, {"rec": float(rec.detach()), "quantile": float(q.detach()), "order": float(order_loss.detach())}


@torch.no_grad()
def encode_numpy(model: PPAutoencoder, tp: np.ndarray, vimd: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Encode arrays of any shape in chunks; returns float32 PP of the same shape."""
    flat_tp = torch.from_numpy(np.ascontiguousarray(tp, dtype=np.float32).ravel())
    flat_v = torch.from_numpy(np.ascontiguousarray(vimd, dtype=np.float32).ravel())
    out = torch.empty_like(flat_tp)
    for i in range(0, flat_tp.numel(), batch):
        out[i : i + batch] = model.encode(flat_tp[i : i + batch], flat_v[i : i + batch])
    return out.numpy().reshape(np.shape(tp))


@torch.no_grad()
def decode_numpy(model: PPAutoencoder, pp: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Decode an array of PP of any shape in chunks; returns float32 TP (mm/h)."""
    flat = torch.from_numpy(np.ascontiguousarray(pp, dtype=np.float32).ravel())
    out = torch.empty_like(flat)
    for i in range(0, flat.numel(), batch):
        out[i : i + batch] = model.decode(flat[i : i + batch])
    return out.numpy().reshape(np.shape(pp))
