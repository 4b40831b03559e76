"""Small windows of a dataset on disk, read straight from the store (no dask), in mm/h.

Training reads thousands of ``crop x crop`` windows a minute; through the lazy dask view of
:func:`ppviz.data.source.load_dataset` each costs ~10 ms of graph building, here ~1 ms. The
reader maps the canonical grid (latitude ascending, longitude -180..180) onto the store's own
axes once, then indexes the store's variables lazily (only the chunks under a window are read)
and applies the units factor: a canonical zarr/netCDF as it is, or an ARCO-ERA5-layout zarr
(latitude descending, longitude 0..360 crossing 0 deg, tp in m, vimd in kg m-2 or kg m-2 s-1),
exactly as :func:`ppviz.data.arco.open_arco` would give it.

A short span is read once: when the store's part under the view (all its hours, the rows and
columns the view spans) fits ``$PPVIZ_WINDOW_CACHE_MB`` (default 128 MiB per process), each
block of hours of one store chunk is decoded once, on first use, and every later window of those
hours is sliced from memory. A compressed chunk is decoded whole whichever window is read from
it, so a span of a few days otherwise decodes the same chunks over and over. A longer span is
read window by window as before: the memory a reader holds is bounded by the budget, never by
the span.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.arco import ARCO_NAMES, is_arco_layout
from ppviz.data.era5 import factor_to_mm_per_hour, find_variable
from ppviz.env import env_int

CACHE_ENV = "PPVIZ_WINDOW_CACHE_MB"
DEFAULT_CACHE_MB = 128


def _open_raw(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        if path.is_dir() or path.suffix == ".zarr":
            return xr.open_zarr(path, chunks=None)
        return xr.open_dataset(path, engine="h5netcdf")


def _positions(store_values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index into ``store_values`` of each of ``wanted`` (both rounded to 1e-6 deg)."""
    s = np.round(store_values.astype(np.float64), 6)
    order = np.argsort(s)
    pos = order[np.clip(np.searchsorted(s[order], np.round(wanted, 6)), 0, s.size - 1)]
    if not np.allclose(s[pos], np.round(wanted, 6), atol=1e-6):
        raise ValueError("the store's axis does not hold every point of its canonical view")
    return pos


def _indexer(idx: np.ndarray):
    """A slice when ``idx`` is a run of consecutive indices (fast path), else the array."""
    if idx.size > 1 and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1), False
    if idx.size > 1 and np.all(np.diff(idx) == -1):
        return slice(int(idx[-1]), int(idx[0]) + 1), True
    return idx, False


class WindowReader:
    """Windows of tp and vimd (mm/h, float32) of the dataset at ``path``.

    Parameters
    ----------
    path : str or Path
        A canonical zarr/netCDF or an ARCO-ERA5-layout zarr (local).
    view : xr.Dataset
        Its canonical view (:func:`ppviz.data.source.open_any`), whose time, lat and lon the
        window indices refer to.
    cache_mb : int, optional
        Budget (MiB) of the decoded span (see the module docstring); None: ``$PPVIZ_WINDOW_CACHE_MB``
        or 128; 0: never cache.
    """

    def __init__(self, path, view: xr.Dataset, cache_mb: int | None = None):
        self.view = view
        raw = _open_raw(Path(path))
        if is_arco_layout(raw):
            names = (find_variable(raw, ARCO_NAMES["tp"], "total precipitation", path),
                     find_variable(raw, ARCO_NAMES["vimd"], "moisture divergence", path))
            lat_dim, lon_dim = "latitude", "longitude"
            self.factors = tuple(factor_to_mm_per_hour(raw[n].attrs.get("units"), n, path)[0] for n in names)
            self.clip_tp = True
        else:
            names = ("tp", "vimd")
            lat_dim = "lat" if "lat" in raw.dims else "latitude"
            lon_dim = "lon" if "lon" in raw.dims else "longitude"
            self.factors, self.clip_tp = (1.0, 1.0), False
        self.vars = tuple(raw[n] for n in names)
        self.dims = (lat_dim, lon_dim)
        lon = np.asarray(raw[lon_dim].values, dtype=np.float64)
        self.ilat = _positions(np.asarray(raw[lat_dim].values), view.lat.values)
        self.ilon = _positions(((lon + 180.0) % 360.0) - 180.0, view.lon.values)
        self.itime = _positions(raw["time"].values.astype("datetime64[s]").astype(np.int64).astype(np.float64),
                                view.time.values.astype("datetime64[s]").astype(np.int64).astype(np.float64))
        # the store's rows and columns under the view, and its chunk length along time
        self.rows = slice(int(self.ilat.min()), int(self.ilat.max()) + 1)
        self.cols = slice(int(self.ilon.min()), int(self.ilon.max()) + 1)
        chunks = self.vars[0].encoding.get("chunks") or self.vars[0].encoding.get("chunksizes")
        self.tchunk = max(int(chunks[self.vars[0].dims.index("time")]), 1) if chunks else 1
        self.ntime = int(raw.sizes["time"])
        if cache_mb is None:
            cache_mb = env_int(CACHE_ENV, 0, 1 << 20, unit="MiB")
            cache_mb = DEFAULT_CACHE_MB if cache_mb is None else cache_mb
        hours = np.unique(self.itime // self.tchunk).size * self.tchunk
        span = hours * (self.rows.stop - self.rows.start) * (self.cols.stop - self.cols.start) * 4 * len(self.vars)
        self._blocks: dict[int, tuple[np.ndarray, ...]] | None = {} if 0 < span <= cache_mb * 2**20 else None

    @property
    def cached(self) -> bool:
        """Whether this reader serves the span from memory (it fits the cache budget)."""
        return self._blocks is not None

    def _block(self, st: int) -> tuple[int, tuple[np.ndarray, ...]]:
        """``(first store hour, (tp, vimd))`` of the decoded store chunk of hours holding store hour ``st``,
        raw (store units and axes), float32 ``(hours, rows, cols)``; read on first use."""
        b = st // self.tchunk
        if b not in self._blocks:
            sel = {"time": slice(b * self.tchunk, min((b + 1) * self.tchunk, self.ntime)),
                   self.dims[0]: self.rows, self.dims[1]: self.cols}
            self._blocks[b] = tuple(np.asarray(da.isel(sel).values, dtype=np.float32) for da in self.vars)
        return b * self.tchunk, self._blocks[b]

    def read(self, t: int, i0: int, j0: int, ni: int, nj: int) -> tuple[np.ndarray, np.ndarray]:
        """tp and vimd of view hour ``t`` on view rows ``i0:i0+ni``, columns ``j0:j0+nj``."""
        if self._blocks is not None:
            first, fields = self._block(int(self.itime[t]))
            rows = self.ilat[i0 : i0 + ni] - self.rows.start
            cols = self.ilon[j0 : j0 + nj] - self.cols.start
            raw = [f[int(self.itime[t]) - first][np.ix_(rows, cols)] for f in fields]
        else:
            il, flip_i = _indexer(self.ilat[i0 : i0 + ni])
            jl, flip_j = _indexer(self.ilon[j0 : j0 + nj])
            raw = []
            for da in self.vars:
                a = np.asarray(da.isel({"time": int(self.itime[t]), self.dims[0]: il, self.dims[1]: jl}).values,
                               dtype=np.float32)
                raw.append(a[::-1 if flip_i else 1, ::-1 if flip_j else 1])
        out = [a * np.float32(factor) if factor != 1.0 else a for a, factor in zip(raw, self.factors)]
        tp, vimd = out
        if self.clip_tp:
            tp = np.where(tp < 0, np.float32(0), tp)  # as open_arco: tiny negatives to 0, NaN kept
        return np.ascontiguousarray(tp), np.ascontiguousarray(vimd)
