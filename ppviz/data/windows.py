"""Small windows of a dataset on disk, read straight from the store (no dask), in mm/h.

Training reads thousands of ``crop x crop`` windows a minute; through the lazy dask view of
:func:`ppviz.data.source.load_dataset` each costs ~10 ms of graph building, here ~1 ms. The
reader maps the canonical grid (latitude ascending, longitude -180..180) onto the store's own
axes once, then indexes the store's variables lazily (only the chunks under a window are read)
and applies the units factor: a canonical zarr/netCDF as it is, or an ARCO-ERA5-layout zarr
(latitude descending, longitude 0..360 crossing 0 deg, tp in m, vimd in kg m-2 or kg m-2 s-1),
exactly as :func:`ppviz.data.arco.open_arco` would give it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.arco import ARCO_NAMES, is_arco_layout
from ppviz.data.era5 import factor_to_mm_per_hour, find_variable


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
    """

    def __init__(self, path, view: xr.Dataset):
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

    def read(self, t: int, i0: int, j0: int, ni: int, nj: int) -> tuple[np.ndarray, np.ndarray]:
        """tp and vimd of view hour ``t`` on view rows ``i0:i0+ni``, columns ``j0:j0+nj``."""
        il, flip_i = _indexer(self.ilat[i0 : i0 + ni])
        jl, flip_j = _indexer(self.ilon[j0 : j0 + nj])
        out = []
        for da, factor in zip(self.vars, self.factors):
            a = np.asarray(da.isel({"time": int(self.itime[t]), self.dims[0]: il, self.dims[1]: jl}).values,
                           dtype=np.float32)
            if flip_i:
                a = a[::-1]
            if flip_j:
                a = a[:, ::-1]
            out.append(a * np.float32(factor) if factor != 1.0 else a)
        tp, vimd = out
        if self.clip_tp:
            tp = np.where(tp < 0, np.float32(0), tp)  # as open_arco: tiny negatives to 0, NaN kept
        return np.ascontiguousarray(tp), np.ascontiguousarray(vimd)
