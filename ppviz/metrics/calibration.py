"""Calibration statistics: what the synthetic generator is tuned to, measured on any dataset.

The same function measures the real ERA5 sample and the synthetic data, so the calibration test
compares like with like.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.grid import Grid

#: Wet threshold (mm/h) of the calibration statistics.
WET_THRESHOLD = 0.1
#: Wavelength band (km) of the spectral-slope fit.
SLOPE_BAND_KM = (60.0, 400.0)
TP_QUANTILES = {"tp_q50": 0.5, "tp_q90": 0.9, "tp_q99": 0.99, "tp_q999": 0.999}

#: The generator's tuning reference: :func:`calibration_statistics` of the real ERA5 sample,
#: ``../shared/era5-sample`` (45-55N, 0-10E, 41 x 41 points, both days 2020-01-01 and 2022-08-31
#: pooled, 48 hours), tp from the ``tp`` files and vimd computed from the levels (hour mean) by
#: :func:`ppviz.data.prepare.prepare_dataset` (``ppviz.data.vimd.vimd_from_levels``). Kept here
#: only as documentation of what the default parameters aim at; the tests recompute them.
REAL_SAMPLE_TARGETS: dict[str, float] = {
    "wet_fraction": 0.0636,
    "zero_fraction": 0.570,
    "tp_q50": 0.0,
    "tp_q90": 0.0419,
    "tp_q99": 1.023,
    "tp_q999": 3.098,
    "vimd_mean": 0.0359,
    "vimd_std": 0.555,
    "vimd_mean_where_tp_gt1": -0.225,
    "spearman_tp_negvimd": 0.144,
    "tp_slope": -3.45,
    "vimd_slope": -3.876,
    "tp_lag1": 0.750,
    "vimd_lag1": 0.811,
}


def calibration_statistics(ds: xr.Dataset, *, max_cells: int = 2_000_000) -> dict[str, float]:
    """Statistics the generator is calibrated to, for any canonical dataset (real or synthetic).

    Parameters
    ----------
    ds : xr.Dataset
        Canonical: ``tp`` and ``vimd`` (mm/h), dims (time, lat, lon), at least 2 hours and 8 x 8.
        Several disjoint spans may be concatenated along time: lags pair only steps exactly 1 h
        apart.
    max_cells : int
        Above this many cells, the rank correlation uses a regular subsample (deterministic).

    Returns
    -------
    dict of str to float
        ``wet_fraction`` (share of cells with tp > 0.1 mm/h), ``zero_fraction`` (tp <= 1e-6),
        ``tp_q50, tp_q90, tp_q99, tp_q999`` (quantiles over all cells, mm/h), ``vimd_mean``,
        ``vimd_std`` (mm/h), ``vimd_mean_where_tp_gt1`` (mean vimd over cells with tp > 1 mm/h,
        NaN if none), ``spearman_tp_negvimd`` (rank correlation of tp and -vimd over all cells),
        ``tp_slope`` and ``vimd_slope`` (log-log slope of the time-mean RAPSD between 60 and 400
        km wavelength; Hann window, mean removed, ``dx_km`` the grid's meridional spacing),
        ``tp_lag1`` and ``vimd_lag1`` (Pearson correlation of each cell with itself 1 h later,
        pooled over cells and hours), ``hours`` and ``cells``.
    """
    from scipy.stats import spearmanr

    from ppviz.spectral import rapsd

    tp = np.asarray(ds["tp"].transpose("time", "lat", "lon").values, dtype=np.float64)
    vimd = np.asarray(ds["vimd"].transpose("time", "lat", "lon").values, dtype=np.float64)
    nt, ny, nx = tp.shape
    grid = Grid.from_coords(ds.lat.values, ds.lon.values)
    out: dict[str, float] = {}
    out["wet_fraction"] = float(np.mean(tp > WET_THRESHOLD))
    out["zero_fraction"] = float(np.mean(tp <= 1e-6))
    for key, v in zip(TP_QUANTILES, np.quantile(tp, list(TP_QUANTILES.values()))):
        out[key] = float(v)
    out["vimd_mean"] = float(vimd.mean())
    out["vimd_std"] = float(vimd.std())
    rain = tp > 1.0
    out["vimd_mean_where_tp_gt1"] = float(vimd[rain].mean()) if rain.any() else float("nan")
    step = max(1, int(math.ceil(tp.size / max_cells)))
    rho = spearmanr(tp.ravel()[::step], -vimd.ravel()[::step])[0]
    out["spearman_tp_negvimd"] = float(rho)
    band = (1.0 / SLOPE_BAND_KM[1], 1.0 / SLOPE_BAND_KM[0])
    for name, x in (("tp", tp), ("vimd", vimd)):
        psd_sum = None
        for i in range(0, nt, 96):  # bounded memory
            k, psd = rapsd(x[i : i + 96], grid.dx_km, window="hann", detrend="mean")
            part = psd.sum(axis=0)
            psd_sum = part if psd_sum is None else psd_sum + part
        sel = (k >= band[0]) & (k <= band[1]) & (psd_sum > 0)
        out[f"{name}_slope"] = (
            float(np.polyfit(np.log(k[sel]), np.log(psd_sum[sel]), 1)[0]) if sel.sum() >= 3 else float("nan")
        )
    t = pd.DatetimeIndex(ds.time.values)
    pairs = np.flatnonzero(np.diff(t.values).astype("timedelta64[s]").astype(np.int64) == 3600)
    for name, x in (("tp", tp), ("vimd", vimd)):
        if pairs.size == 0:
            out[f"{name}_lag1"] = float("nan")
            continue
        a, b = x[pairs], x[pairs + 1]
        a = a - a.mean()
        b = b - b.mean()
        den = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
        out[f"{name}_lag1"] = float(np.sum(a * b) / den) if den > 0 else float("nan")
    out["hours"] = float(nt)
    out["cells"] = float(tp.size)
    return out
