"""Scores of a PP encoder-decoder on (tp, vimd) cells.

Contract: inputs are arrays of any (equal) shape in mm/h, flattened; NaN cells are dropped
before scoring. Dry means ``tp == 0`` exactly; wet means ``tp >= 0.1`` mm/h; cells in between
(drizzle) count only in the distribution scores.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

WET_THRESHOLD = 0.1  # mm/h
DRY_DECODE_LIMIT = 0.05  # mm/h
MAX_CELLS = 2_000_000  # above this, distribution and rank scores use a regular subsample


def pp_scores(tp, vimd, pp, tp_decoded) -> dict[str, float]:
    """Held-out scores of an encoder-decoder.

    Parameters
    ----------
    tp, vimd : array_like, any shape
        Truth, mm/h.
    pp : array_like, same shape
        Encoded PP (dimensionless, ideally N(0, 1)).
    tp_decoded : array_like, same shape
        ``decode(pp)``, mm/h.

    Returns
    -------
    dict
        ``ks_normal``: Kolmogorov-Smirnov distance of PP from N(0, 1); ``pp_mean``, ``pp_std``,
        ``pp_skew``, ``pp_excess_kurtosis``; ``wet_relative_mae``: sum|decoded - tp| / sum tp
        over wet cells; ``dry_decoded_below_0.05``: share of dry cells decoded below 0.05 mm/h;
        ``dry_spearman_pp_negvimd``: rank correlation of PP with -VIMD over dry cells;
        ``cells``, ``wet_cells``, ``dry_cells``.
    """
    tp, vimd, pp, dec = (np.asarray(a, dtype=np.float64).ravel() for a in (tp, vimd, pp, tp_decoded))
    if not (tp.size == vimd.size == pp.size == dec.size):
        raise ValueError("tp, vimd, pp and tp_decoded must have the same number of cells")
    ok = np.isfinite(tp) & np.isfinite(vimd) & np.isfinite(pp) & np.isfinite(dec)
    tp, vimd, pp, dec = tp[ok], vimd[ok], pp[ok], dec[ok]
    if tp.size == 0:
        raise ValueError("no finite cells to score")
    step = max(1, tp.size // MAX_CELLS)
    sub = pp[::step]
    wet = tp >= WET_THRESHOLD
    dry = tp == 0
    out = {
        "ks_normal": float(stats.kstest(sub, "norm").statistic),
        "pp_mean": float(sub.mean()),
        "pp_std": float(sub.std()),
        "pp_skew": float(stats.skew(sub)),
        "pp_excess_kurtosis": float(stats.kurtosis(sub)),
        "wet_relative_mae": float(np.abs(dec[wet] - tp[wet]).sum() / tp[wet].sum()) if wet.any() else float("nan"),
        "dry_decoded_below_0.05": float(np.mean(dec[dry] < DRY_DECODE_LIMIT)) if dry.any() else float("nan"),
        "dry_spearman_pp_negvimd": (
            float(stats.spearmanr(pp[dry][::step], -vimd[dry][::step]).statistic) if dry.sum() > 2 else float("nan")
        ),
        "cells": int(tp.size),
        "wet_cells": int(wet.sum()),
        "dry_cells": int(dry.sum()),
    }
    return out


#: What the shipped PP checkpoint must reach on held-out data (issue: models).
PP_TARGETS = {
    "ks_normal": ("<=", 0.03),
    "wet_relative_mae": ("<=", 0.05),
    "dry_decoded_below_0.05": (">=", 0.99),
    "dry_spearman_pp_negvimd": (">=", 0.8),
}


def check_targets(scores: dict, keys=None) -> dict[str, bool]:
    """Which of :data:`PP_TARGETS` (or the given subset) ``scores`` meet."""
    out = {}
    for k in keys or PP_TARGETS:
        op, bound = PP_TARGETS[k]
        v = scores.get(k, float("nan"))
        out[k] = bool(v <= bound) if op == "<=" else bool(v >= bound)
    return out
