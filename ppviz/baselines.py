"""Deterministic downscaling baselines: coarse (1 deg) fields brought to the fine (0.25 deg) grid.

- :func:`bicubic_tp`: bicubic interpolation of coarse tp, clipped at 0 (bicubic overshoots);
- :func:`nearest_tp`: each coarse value repeated over its 4 x 4 block (keeps block means);
- :func:`pp_bicubic_tp`: encode, interpolate PP bicubically, decode (PP is smooth, so bicubic
  interpolation in PP space does not ring, and the decoder keeps dry areas exactly dry).

All take arrays shaped ``(..., h, w)`` and return ``(..., factor * h, factor * w)`` float32.
Interpolation uses ``align_corners=False``: coarse cell centres sit at fine block centres, as on
the grids of :mod:`ppviz.data.grid`; the outermost half block is extrapolated by the bicubic
kernel with clamped (replicated) borders.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ppviz.data.grid import COARSE_FACTOR

BASELINES = ("bicubic", "nearest", "pp_bicubic")


def _interp(coarse, factor: int, mode: str) -> np.ndarray:
    a = np.asarray(coarse, dtype=np.float32)
    *lead, h, w = a.shape
    x = torch.from_numpy(np.ascontiguousarray(a.reshape(-1, 1, h, w)))
    if mode == "nearest":
        y = x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    else:
        y = F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)
    return y.numpy().reshape(*lead, h * factor, w * factor)


def bicubic_tp(coarse_tp, factor: int = COARSE_FACTOR) -> np.ndarray:
    """Bicubic interpolation of coarse tp (mm/h), negative overshoots clipped to 0."""
    return np.maximum(_interp(coarse_tp, factor, "bicubic"), 0.0)


def nearest_tp(coarse_tp, factor: int = COARSE_FACTOR) -> np.ndarray:
    """Nearest-neighbour (block) upsampling of coarse tp (mm/h)."""
    return _interp(coarse_tp, factor, "nearest")


def bicubic_pp(coarse_pp, factor: int = COARSE_FACTOR) -> np.ndarray:
    """Bicubic interpolation of coarse PP (no clipping: PP is unbounded)."""
    return _interp(coarse_pp, factor, "bicubic")


def pp_bicubic_tp(coarse_pp, decode: Callable[[np.ndarray], np.ndarray], factor: int = COARSE_FACTOR) -> np.ndarray:
    """PP-space bicubic: interpolate coarse PP bicubically, then ``decode`` it to tp (mm/h)."""
    return np.asarray(decode(bicubic_pp(coarse_pp, factor)), dtype=np.float32)
