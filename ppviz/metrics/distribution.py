"""Distribution of precipitation: pooled quantiles, percentile maps, wet-hour frequency.

Contract shared by every function here
--------------------------------------
* Input: an ``xarray.DataArray`` of precipitation in mm/h with dims such as
  ``(member, time, lat, lon)`` (ensemble) or ``(time, lat, lon)`` (truth, baseline), or a numpy
  array (dims ``(time, lat, lon)[-ndim:]``; give ensembles as DataArrays).
* ``dims`` names the dims reduced (pooled); every other dim is kept, with its coordinates.
* NaN cells are skipped (they count neither as values nor in denominators).  A reduction with
  no valid value gives NaN.
* Dry cells (``tp == 0``) are ordinary values: quantiles and percentiles include them (a median
  of 0 means "dry more than half the time"), and they are never wet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ppviz.metrics._common import (
    MEMBER, TIME, as_field, as_levels, kept_coords, nanquantile_last, resolve_dims, stack_last,
    units_of,
)

__all__ = [
    "DEFAULT_PERCENTILES", "DEFAULT_QUANTILE_LEVELS", "DEFAULT_WET_THRESHOLDS", "percentile_maps",
    "percentile_ratio_maps", "pooled_quantiles", "wet_frequency",
]

#: Quantile levels reported by default (probabilities), up to the 1-in-10 000 value.
DEFAULT_QUANTILE_LEVELS = (0.5, 0.9, 0.95, 0.99, 0.999, 0.9999)
#: Percentiles (in percent) of the per-cell maps.
DEFAULT_PERCENTILES = (95.0, 99.0, 99.9)
#: Wet-hour thresholds, mm/h: drizzle, moderate, heavy.
DEFAULT_WET_THRESHOLDS = (0.1, 1.0, 5.0)


def pooled_quantiles(da, levels: Sequence[float] = DEFAULT_QUANTILE_LEVELS, *, dims=None) -> xr.DataArray:
    """Quantiles of all values pooled over ``dims`` (space, time and members by default).

    Parameters
    ----------
    da : xarray.DataArray or array_like
        Precipitation, mm/h, any dims.
    levels : sequence of float
        Probability levels in [0, 1]; default :data:`DEFAULT_QUANTILE_LEVELS`.
    dims : None, 'all', str or sequence of str
        Dims pooled; None or 'all' pools every dim (one quantile per level).  Keep e.g.
        ``member`` by passing ``dims=('time', 'lat', 'lon')``.

    Returns
    -------
    xarray.DataArray, dims ('quantile', *kept dims)
        mm/h (the units of ``da``).  Coordinate ``quantile`` holds ``levels``.  Exactly
        ``np.quantile(values, levels)`` (method 'linear') of the pooled values, NaN skipped as
        ``np.nanquantile`` does; NaN where a pool has no valid value.
    """
    da = as_field(da, "da")
    q = as_levels(levels)
    dims = resolve_dims(da, dims, None)
    v, kept = stack_last(da, dims)
    if not kept:  # one pool: numpy's own 1-D quantile on the raw values
        flat = v.reshape(-1)
        nan = np.isnan(flat) if np.issubdtype(flat.dtype, np.floating) else np.zeros(flat.shape, bool)
        if nan.all():
            out = np.full(q.shape, np.nan)
        else:
            out = np.quantile(flat[~nan] if nan.any() else flat, q)
    else:
        out = nanquantile_last(v, q)
    res = xr.DataArray(out, dims=("quantile",) + kept, coords={"quantile": q, **kept_coords(da, kept)})
    res.attrs = {"units": units_of(da), "long_name": "pooled quantile", "pooled_dims": " ".join(dims)}
    res.name = "quantile"
    return res


def percentile_maps(da, percentiles: Sequence[float] = DEFAULT_PERCENTILES, *, dims=None) -> xr.DataArray:
    """Per-grid-cell percentiles over time (and members).

    Parameters
    ----------
    da : xarray.DataArray or array_like, dims (..., lat, lon)
        Precipitation, mm/h.
    percentiles : sequence of float
        Percentiles in percent, [0, 100]; default :data:`DEFAULT_PERCENTILES` (95, 99, 99.9).
    dims : None or sequence of str
        Dims pooled per cell; None pools ``member`` and ``time`` (those present).

    Returns
    -------
    xarray.DataArray, dims ('percentile', *kept dims) -- typically ('percentile', 'lat', 'lon')
        mm/h; ``np.nanpercentile`` of each cell's values (method 'linear'); NaN where a cell has
        no valid value.  Coordinate ``percentile`` in percent.
    """
    da = as_field(da, "da")
    p = as_levels(percentiles, "percentiles", scale=100.0)
    dims = resolve_dims(da, dims, (MEMBER, TIME))
    if not dims:
        raise ValueError(f"nothing to pool: da has none of the dims ('member', 'time'); dims are {da.dims}")
    v, kept = stack_last(da, dims)
    out = nanquantile_last(v, p)
    res = xr.DataArray(out, dims=("percentile",) + kept,
                       coords={"percentile": p * 100.0, **kept_coords(da, kept)})
    res.attrs = {"units": units_of(da), "long_name": "per-cell percentile", "pooled_dims": " ".join(dims)}
    res.name = "percentile"
    return res


def percentile_ratio_maps(model, truth, percentiles: Sequence[float] = DEFAULT_PERCENTILES, *,
                          dims=None) -> xr.DataArray:
    """Ratio of the model's per-cell percentiles to the truth's.

    Parameters
    ----------
    model : xarray.DataArray, dims e.g. (member, time, lat, lon) or (time, lat, lon)
        Forecast precipitation, mm/h (members are pooled with time).
    truth : xarray.DataArray, dims e.g. (time, lat, lon)
        Reference precipitation, mm/h.
    percentiles, dims : see :func:`percentile_maps` (``dims`` applies to both; None pools
        ``member`` and ``time`` where present).

    Returns
    -------
    xarray.DataArray, dims ('percentile', lat, lon)
        Dimensionless ``model_pct / truth_pct``.  **NaN where the truth percentile is 0** (a cell
        dry at least that often has no meaningful ratio; this includes 0/0) or NaN.
    """
    m = percentile_maps(model, percentiles, dims=dims)
    t = percentile_maps(truth, percentiles, dims=dims)
    ratio = m / t.where(t != 0)
    ratio.attrs = {"units": "1", "long_name": "percentile ratio model/truth (NaN where truth is 0)"}
    ratio.name = "percentile_ratio"
    return ratio


def wet_frequency(da, thresholds: Sequence[float] = DEFAULT_WET_THRESHOLDS, *, dims=None) -> xr.DataArray:
    """Fraction of hours (cells, members) at or above each threshold.

    Parameters
    ----------
    da : xarray.DataArray or array_like
        Precipitation, mm/h.
    thresholds : sequence of float
        mm/h; a value is wet at threshold ``c`` when ``value >= c`` (as in
        :mod:`ppviz.metrics.pp`).  Default :data:`DEFAULT_WET_THRESHOLDS` (0.1, 1, 5).
    dims : None, 'all', str or sequence of str
        Dims pooled; None pools all (one frequency per threshold); ``('member', 'time')`` gives
        maps.

    Returns
    -------
    xarray.DataArray, dims ('threshold', *kept dims)
        Fraction in [0, 1]: (number of valid values >= threshold) / (number of valid values);
        NaN where there is no valid value.  Coordinate ``threshold`` in mm/h.
    """
    da = as_field(da, "da")
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    dims = resolve_dims(da, dims, None)
    t = xr.DataArray(thr, dims="threshold", coords={"threshold": thr})
    valid = da.notnull()
    n = valid.sum(dims)
    wet = (da >= t).sum(dims)  # NaN >= c is False
    res = (wet / n.where(n > 0)).transpose("threshold", ...)
    res = res.assign_coords(threshold=("threshold", thr, {"units": units_of(da)}))
    res.attrs = {"units": "1", "long_name": "wet frequency (value >= threshold)", "pooled_dims": " ".join(dims)}
    res.name = "wet_frequency"
    return res
