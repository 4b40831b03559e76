"""Deterministic errors of fields against truth: mean bias maps, fractions skill score (FSS).

Contract shared by every function here
--------------------------------------
* ``forecast``: ``xarray.DataArray`` in mm/h with dims ``(..., lat, lon)``, e.g. an ensemble
  ``(member, time, lat, lon)`` (each member is scored as a forecast) or a baseline
  ``(time, lat, lon)``; numpy arrays get dims ``(time, lat, lon)[-ndim:]``.
* ``truth``: ``(time, lat, lon)`` or any subset of the forecast's dims, mm/h; broadcast along
  the others (``member``).  Coordinates must match exactly.
* The last two dims of ``forecast`` are the spatial ones (lat, lon).
* NaN policy: cells where the forecast or the truth is NaN are skipped in every mean and sum.
* Dry-cell policy: dry cells are ordinary values (bias); in the FSS a cell is an event when
  ``value >= threshold``, so dry cells are never events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import ndimage

from ppviz.metrics._common import MEMBER, TIME, as_field, kept_coords, resolve_dims

__all__ = ["DEFAULT_FSS_SCALES", "DEFAULT_FSS_THRESHOLDS", "bias_map", "fractions", "fss", "fss_components"]

#: FSS thresholds, mm/h.
DEFAULT_FSS_THRESHOLDS = (0.1, 1.0, 5.0)
#: FSS neighbourhood widths in grid cells (odd: centred windows); 1 cell = 27.8 km at 0.25 deg.
DEFAULT_FSS_SCALES = (1, 3, 5, 9, 17, 33)


def _aligned(forecast, truth):
    f = as_field(forecast, "forecast")
    y = as_field(truth, "truth")
    extra = [d for d in y.dims if d not in f.dims]
    if extra:
        raise ValueError(f"truth has dims {extra} that forecast {f.dims} lacks")
    try:
        f, y = xr.align(f, y, join="exact")
    except ValueError as err:
        raise ValueError(f"forecast and truth coordinates differ: {err}") from None
    return f, y


def bias_map(forecast, truth, *, dims=None) -> xr.DataArray:
    """Mean bias ``mean(forecast - truth)``, by default per grid cell.

    Parameters
    ----------
    forecast : xarray.DataArray, dims e.g. (member, time, lat, lon) or (time, lat, lon)
        mm/h.
    truth : xarray.DataArray, dims e.g. (time, lat, lon)
        mm/h.
    dims : None, 'all', str or sequence of str
        Dims averaged; None averages ``member`` and ``time`` (those present), giving a
        ``(lat, lon)`` map; 'all' gives the domain-mean bias.

    Returns
    -------
    xarray.DataArray, the kept dims (typically (lat, lon))
        mm/h; positive = too wet.  Pairs with a NaN are skipped; NaN where none is valid.
    """
    f, y = _aligned(forecast, truth)
    d = f - y
    dims = resolve_dims(d, dims, (MEMBER, TIME))
    out = d.mean(dims, skipna=True)
    out.attrs = {"units": "mm/h", "long_name": "mean bias (forecast - truth)", "averaged_dims": " ".join(dims)}
    out.name = "bias"
    return out


def fractions(binary: np.ndarray, scale: int) -> np.ndarray:
    """Event fractions in ``scale x scale`` neighbourhoods over the last two axes.

    ``scipy.ndimage.uniform_filter`` with zero padding (``mode='constant', cval=0``, as in
    pysteps' FSS): outside the domain counts as no event.  Odd ``scale`` gives centred windows;
    an even one is shifted by half a cell (scipy's origin convention).
    """
    s = int(scale)
    if s < 1:
        raise ValueError(f"scales must be positive numbers of cells, got {scale!r}")
    b = np.asarray(binary, dtype=np.float64)
    if s == 1:
        return b
    return ndimage.uniform_filter(b, size=(1,) * (b.ndim - 2) + (s, s), mode="constant", cval=0.0)


def fss_components(forecast, truth, thresholds: Sequence[float] = DEFAULT_FSS_THRESHOLDS,
                   scales: Sequence[int] = DEFAULT_FSS_SCALES, *, dims=None) -> xr.Dataset:
    """The two sums of the FSS, so that FSS over any pooling is ``1 - mse / reference``.

    With event fractions ``Pf`` (forecast) and ``Po`` (truth) of each cell's neighbourhood
    (:func:`fractions` of ``value >= threshold``; NaN cells are non-events):
    ``mse = sum (Pf - Po)**2`` and ``reference = sum Pf**2 + sum Po**2`` over the valid cells
    (forecast and truth finite) of the pooled dims.  Sums add up over time chunks, members and
    regions, which is what accumulators need.

    Parameters
    ----------
    forecast, truth : see the module contract.
    thresholds : sequence of float, mm/h.
    scales : sequence of int, neighbourhood widths in cells.
    dims : None or sequence of str
        Non-spatial dims pooled; None pools all of them.  Spatial dims are always summed.

    Returns
    -------
    xarray.Dataset, dims ('threshold', 'scale', *kept dims)
        ``mse`` and ``reference``, dimensionless (sums of squared fractions).
    """
    f, y = _aligned(forecast, truth)
    ydim, xdim = f.dims[-2:]
    if (ydim, xdim) != tuple(y.dims[-2:]):
        raise ValueError(f"forecast and truth must end with the same spatial dims; got {f.dims} and {y.dims}")
    nonspatial = tuple(d for d in f.dims if d not in (ydim, xdim))
    pooled = tuple(d for d in resolve_dims(f, dims, nonspatial) if d not in (ydim, xdim))
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    sc = np.atleast_1d(np.asarray(scales, dtype=np.int64))
    valid = (f.notnull() & y.notnull())
    fv, yv = f.values, y.values
    mse, ref = [], []
    for c in thr:
        bf = fv >= c
        bo = yv >= c
        row_m, row_r = [], []
        for s in sc:
            pf = f.copy(data=fractions(bf, s))
            po = y.copy(data=fractions(bo, s))
            row_m.append(((pf - po) ** 2).where(valid, 0.0).sum(pooled + (ydim, xdim)))
            row_r.append((pf ** 2 + po ** 2).where(valid, 0.0).sum(pooled + (ydim, xdim)))
        mse.append(xr.concat(row_m, "scale"))
        ref.append(xr.concat(row_r, "scale"))
    kept = tuple(d for d in f.dims if d not in pooled + (ydim, xdim))
    coords = {"threshold": ("threshold", thr, {"units": "mm/h"}), "scale": ("scale", sc, {"units": "cells"}),
              **kept_coords(f, kept)}
    ds = xr.Dataset({
        "mse": xr.concat(mse, "threshold").transpose("threshold", "scale", *kept),
        "reference": xr.concat(ref, "threshold").transpose("threshold", "scale", *kept),
    })
    ds = ds.drop_vars([c for c in ds.coords if c not in coords]).assign_coords(coords)
    ds.attrs = {"pooled_dims": " ".join(pooled)}
    return ds


def fss(forecast, truth, thresholds: Sequence[float] = DEFAULT_FSS_THRESHOLDS,
        scales: Sequence[int] = DEFAULT_FSS_SCALES, *, dims=None) -> xr.DataArray:
    """Fractions skill score (Roberts and Lean 2008) at thresholds and neighbourhood scales.

    ``FSS = 1 - sum (Pf - Po)**2 / (sum Pf**2 + sum Po**2)``, sums over the valid cells of the
    pooled dims (see :func:`fss_components`; members are pooled as separate forecasts).

    Parameters
    ----------
    forecast : xarray.DataArray, dims (..., lat, lon)
        mm/h; an ensemble's members are each compared with the truth and their sums pooled.
    truth : xarray.DataArray
        mm/h.
    thresholds : sequence of float
        Event thresholds, mm/h (event: ``value >= threshold``); default
        :data:`DEFAULT_FSS_THRESHOLDS`.
    scales : sequence of int
        Neighbourhood widths in cells (``scale x scale`` windows, zero padding outside the
        domain); default :data:`DEFAULT_FSS_SCALES`.
    dims : None or sequence of str
        Non-spatial dims pooled; None pools all (one FSS per threshold and scale).

    Returns
    -------
    xarray.DataArray, dims ('threshold', 'scale', *kept dims)
        In [0, 1]; 1 for a perfect forecast; NaN where neither field has an event.
    """
    ds = fss_components(forecast, truth, thresholds, scales, dims=dims)
    out = 1.0 - ds["mse"] / ds["reference"].where(ds["reference"] > 0)
    out.attrs = {"units": "1", "long_name": "fractions skill score", **ds.attrs}
    out.name = "fss"
    return out
