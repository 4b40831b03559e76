"""Shared plumbing of the metrics package: dim names, input coercion, NaN-aware quantiles.

Private: the public contracts live in the modules that use these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import xarray as xr

MEMBER = "member"
TIME = "time"
LAT = "lat"
LON = "lon"
#: Dims given to numpy fields, right-aligned: a 2-D array is (lat, lon), a 3-D one (time, lat, lon).
FIELD_DIMS = (TIME, LAT, LON)
SPATIAL_DIMS = (LAT, LON)


def as_field(x, name: str = "field") -> xr.DataArray:
    """``x`` as a DataArray; numpy input gets dims ``FIELD_DIMS[-ndim:]``."""
    if isinstance(x, xr.DataArray):
        return x
    a = np.asarray(x)
    if not 1 <= a.ndim <= len(FIELD_DIMS):
        raise ValueError(f"{name}: a numpy field must have 1 to 3 dims (time, lat, lon), got shape {a.shape}")
    return xr.DataArray(a, dims=FIELD_DIMS[len(FIELD_DIMS) - a.ndim:], name=name)


def as_ensemble(x, member_dim: str = MEMBER, name: str = "members") -> xr.DataArray:
    """``x`` as a DataArray with a ``member_dim``; numpy input gets dims
    ``(member_dim,) + FIELD_DIMS[-(ndim - 1):]``."""
    if isinstance(x, xr.DataArray):
        if member_dim not in x.dims:
            raise ValueError(f"{name} has no member dim {member_dim!r}; dims are {x.dims}")
        return x
    a = np.asarray(x)
    if not 1 <= a.ndim <= len(FIELD_DIMS) + 1:
        raise ValueError(f"{name}: a numpy ensemble must have 1 to 4 dims (member, time, lat, lon), "
                         f"got shape {a.shape}")
    return xr.DataArray(a, dims=(member_dim,) + FIELD_DIMS[len(FIELD_DIMS) + 1 - a.ndim:], name=name)


def resolve_dims(da: xr.DataArray, dims, default: Sequence[str] | None) -> tuple[str, ...]:
    """Dims to reduce over.

    ``dims=None`` takes ``default`` restricted to the dims ``da`` has (``default=None``: all of
    them); ``'all'`` takes all dims; a str or a sequence must name dims of ``da``.
    """
    if dims is None:
        if default is None:
            return tuple(da.dims)
        return tuple(d for d in default if d in da.dims)
    if isinstance(dims, str):
        if dims == "all":
            return tuple(da.dims)
        dims = (dims,)
    dims = tuple(dims)
    missing = [d for d in dims if d not in da.dims]
    if missing:
        raise ValueError(f"dims {missing} are not dims of the input {da.dims}")
    return dims


def as_levels(levels: Iterable[float], name: str = "levels", scale: float = 1.0) -> np.ndarray:
    """1-D float64 array of probability levels in [0, 1] (``scale=100`` for percentiles)."""
    q = np.atleast_1d(np.asarray(levels, dtype=np.float64)) / scale
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got {levels!r}")
    if not np.all((q >= 0) & (q <= 1)):
        raise ValueError(f"{name} must lie in [0, {scale:g}], got {levels!r}")
    return q


def _lerp(a, b, t):
    """numpy's own linear interpolation in ``np.quantile`` (``numpy.lib._function_base_impl._lerp``)."""
    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)


def nanquantile_last(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles over the last axis, NaN skipped, for many rows at once.

    Equal to ``np.nanquantile(x, q, axis=-1)`` (method 'linear') but vectorised: without NaN it
    *is* ``np.quantile``; with NaN it sorts each row (NaN last), counts the valid values and
    interpolates as numpy does.  Rows with no valid value give NaN.

    Returns an array of shape ``(len(q),) + x.shape[:-1]``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.isnan(x).any():
        return np.quantile(x, q, axis=-1)
    s = np.sort(x, axis=-1)
    n = np.sum(~np.isnan(x), axis=-1)  # (...)
    h = (n - 1)[None, ...] * q.reshape((-1,) + (1,) * n.ndim)  # virtual index, (nq, ...)
    h = np.maximum(h, 0.0)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0)[None, ...])
    t = h - lo
    sb = np.broadcast_to(s[None], (q.size,) + s.shape)
    a = np.take_along_axis(sb, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(sb, hi[..., None], axis=-1)[..., 0]
    out = _lerp(a, b, t.astype(a.dtype))
    return np.where(n[None, ...] > 0, out, np.nan)


def stack_last(da: xr.DataArray, dims: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Values of ``da`` with ``dims`` moved last and flattened into one axis; returns the kept dims."""
    kept = tuple(d for d in da.dims if d not in dims)
    v = np.asarray(da.transpose(*kept, *dims).values)
    return v.reshape(v.shape[:len(kept)] + (-1,)), kept


def kept_coords(da: xr.DataArray, kept: Sequence[str]) -> dict:
    """Coordinates of ``da`` that live only on ``kept`` dims (safe to carry to a reduced result)."""
    return {k: c for k, c in da.coords.items() if set(c.dims) <= set(kept)}


def units_of(da: xr.DataArray, default: str = "mm/h") -> str:
    return str(da.attrs.get("units", default))
