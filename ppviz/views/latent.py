"""The pseudo-precipitation page: PP of one hour, how normal it is, the encoder and decoder maps.

The encoder is pointwise, PP = f(tp, vimd), so it can be drawn whole as a surface over a
(log tp) x vimd grid, plus its dry edge f(0, vimd); the decoder is a curve tp = g(PP).
"""

from __future__ import annotations

import numpy as np
from scipy import stats



def pp_fields(ds, time, region, pp_name: str | None = None) -> dict:
    """tp, vimd (mm/h), PP, decoded tp and the round-trip error (decoded - tp) on ``region``.

    Returns a dict of (H, W) float32 arrays plus ``lat``, ``lon`` (cell centres), ``time``
    (Timestamp) and ``scores`` (:func:`ppviz.metrics.pp.pp_scores`).
    """
    from ppviz.models.pp import decode_numpy, encode_numpy  # torch: only when a model is used

    import pandas as pd

    from ppviz.metrics.pp import pp_scores
    from ppviz.views.cache import load_pp, region_fields

    model = load_pp(pp_name).model
    step, tp, vimd = region_fields(ds, time, region)
    pp = encode_numpy(model, tp, vimd)
    dec = decode_numpy(model, pp)
    return {
        "tp": tp, "vimd": vimd, "pp": pp, "decoded": dec, "error": (dec - tp).astype(np.float32),
        "lat": step["lat"].values, "lon": step["lon"].values, "time": pd.Timestamp(step.time.values),
        "scores": pp_scores(tp, vimd, pp, dec),
    }


def normal_comparison(pp: np.ndarray, bins: int = 60, qq_points: int = 200) -> dict:
    """PP against N(0, 1): histogram (density), the normal pdf, and QQ points.

    Returns ``edges`` (bins + 1), ``density`` (bins), ``x``/``pdf`` (the N(0,1) density),
    ``theoretical``/``sample`` (quantiles at ``qq_points`` plotting positions (k - 1/2)/n).
    """
    v = np.asarray(pp, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    lim = max(4.0, float(np.ceil(np.abs(v).max()))) if v.size else 4.0
    density, edges = np.histogram(v, bins=bins, range=(-lim, lim), density=True)
    x = np.linspace(-lim, lim, 400)
    p = (np.arange(qq_points) + 0.5) / qq_points
    return {
        "edges": edges, "density": density, "x": x, "pdf": stats.norm.pdf(x),
        "theoretical": stats.norm.ppf(p), "sample": np.quantile(v, p) if v.size else np.full(p.shape, np.nan),
    }


def encoder_surface(model, *, tp_range=(1e-2, 30.0), vimd_range=(-3.0, 3.0), n_tp: int = 90,
                    n_vimd: int = 90) -> dict:
    """PP(tp, vimd) on a grid: ``tp`` (n_tp,) log-spaced in mm/h, ``vimd`` (n_vimd,) in mm/h,
    ``pp`` (n_vimd, n_tp); and the dry edge ``pp_dry`` = PP(0, vimd) (n_vimd,)."""
    from ppviz.models.pp import encode_numpy  # torch: only when a model is used

    tp = np.geomspace(*tp_range, n_tp).astype(np.float32)
    vimd = np.linspace(*vimd_range, n_vimd).astype(np.float32)
    T, V = np.meshgrid(tp, vimd)
    pp = encode_numpy(model, T, V)
    dry = encode_numpy(model, np.zeros_like(vimd), vimd)
    return {"tp": tp, "vimd": vimd, "pp": pp, "pp_dry": dry}


def decoder_curve(model, lo: float = -4.0, hi: float = 4.0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """tp = decode(PP) for PP from ``lo`` to ``hi``: ``(pp, tp)`` with tp in mm/h."""
    from ppviz.models.pp import decode_numpy  # torch: only when a model is used

    pp = np.linspace(lo, hi, n).astype(np.float32)
    return pp, decode_numpy(model, pp)


def sample_pairs(fields: dict, n: int = 3000, seed: int = 0) -> dict:
    """A random subsample of the hour's (pp, tp, vimd) cells, for scatter plots over the curves."""
    rng = np.random.default_rng(seed)
    size = fields["pp"].size
    idx = rng.choice(size, size=min(n, size), replace=False)
    return {k: fields[k].ravel()[idx] for k in ("pp", "tp", "vimd")}
