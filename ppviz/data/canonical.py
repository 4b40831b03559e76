"""The canonical dataset: hourly ``tp`` and ``vimd`` in mm/h on the 0.25 deg grid.

Contract
--------
- dims ``(time, lat, lon)``, latitude ascending, regular 0.25 deg spacing, points on multiples
  of 0.25 deg (ERA5's grid);
- ``tp``: total precipitation rate, mm/h (ERA5 hourly accumulation ending at ``time``), >= 0;
- ``vimd``: vertically integrated moisture divergence, mm/h (= kg m-2 h-1); negative values are
  moisture convergence;
- both float32 with CF attributes ``units``, ``long_name``, ``standard_name`` where one exists;
- global attribute ``source`` says where the data came from (``synthetic`` or ``ERA5 ...``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.grid import Grid

VARIABLE_ATTRS = {
    "tp": {
        "units": "mm h-1",
        "long_name": "total precipitation rate (hourly accumulation)",
        "standard_name": "lwe_precipitation_rate",
    },
    "vimd": {
        "units": "mm h-1",
        "long_name": "vertically integrated moisture divergence (negative = convergence)",
    },
}
REQUIRED_VARIABLES = ("tp", "vimd")


def normalise_latlon(obj):
    """Rename latitude/longitude/valid_time to lat/lon/time, wrap lon to [-180, 180), sort ascending."""
    rename = {}
    for old, new in (("latitude", "lat"), ("longitude", "lon"), ("valid_time", "time")):
        if old in obj.dims or old in obj.coords:
            if new not in obj.dims and new not in obj.coords:
                rename[old] = new
    obj = obj.rename(rename) if rename else obj
    if "lon" in obj.coords and float(obj.lon.max()) >= 180.0:
        obj = obj.assign_coords(lon=((obj.lon + 180.0) % 360.0) - 180.0)
    for dim in ("lat", "lon"):
        if dim in obj.dims:
            obj = obj.sortby(dim)
    return obj


def canonical_dataset(tp: xr.DataArray, vimd: xr.DataArray, source: str, **attrs) -> xr.Dataset:
    """Assemble and validate a canonical dataset from two (time, lat, lon) arrays in mm/h."""
    tp = normalise_latlon(tp)
    vimd = normalise_latlon(vimd)
    tp, vimd = xr.align(tp, vimd, join="inner")
    if tp.sizes.get("time", 0) == 0:
        raise ValueError("tp and vimd share no time steps on the same grid")
    ds = xr.Dataset(
        {
            "tp": tp.transpose("time", "lat", "lon").astype(np.float32).drop_attrs(deep=False),
            "vimd": vimd.transpose("time", "lat", "lon").astype(np.float32).drop_attrs(deep=False),
        }
    )
    for name in REQUIRED_VARIABLES:
        ds[name].attrs = dict(VARIABLE_ATTRS[name])
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon")])
    ds = ds.assign_coords(Grid.from_coords(ds.lat.values, ds.lon.values).coords())
    ds.attrs = {"Conventions": "CF-1.8", "source": source, **{k: str(v) for k, v in attrs.items()}}
    validate_canonical(ds)
    return ds


def validate_canonical(ds: xr.Dataset) -> None:
    """Raise ValueError naming the first way ``ds`` breaks the canonical contract."""
    missing = [v for v in REQUIRED_VARIABLES if v not in ds.data_vars]
    if missing:
        raise ValueError(
            f"dataset lacks variable(s) {', '.join(missing)}; a ppviz dataset needs tp and vimd "
            f"(found: {', '.join(map(str, ds.data_vars)) or 'none'})"
        )
    for name in REQUIRED_VARIABLES:
        da = ds[name]
        if da.dims != ("time", "lat", "lon"):
            raise ValueError(f"{name} has dims {da.dims}; expected ('time', 'lat', 'lon')")
        units = da.attrs.get("units")
        if units != "mm h-1":
            raise ValueError(f"{name} has units {units!r}; a ppviz dataset stores 'mm h-1'")
    Grid.from_coords(ds.lat.values, ds.lon.values)  # regular and ascending, or ValueError
    if not np.all(np.diff(ds.time.values).astype("timedelta64[s]").astype(np.int64) > 0):
        raise ValueError("time is not strictly increasing")


def open_dataset(path) -> xr.Dataset:
    """Open a canonical dataset written by ppviz (zarr directory or netCDF file) and validate it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}")
    try:
        if path.is_dir() or path.suffix == ".zarr":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
                ds = xr.open_zarr(path)
        else:
            ds = xr.open_dataset(path, engine="h5netcdf")
    except Exception as exc:  # the message names the file and what we accept
        raise ValueError(f"{path} is not a readable netCDF file or zarr store ({exc})") from exc
    ds = normalise_latlon(ds)
    validate_canonical(ds)
    return ds


def write_dataset(ds: xr.Dataset, path, *, complevel: int = 4, shuffle: bool = False) -> Path:
    """Write ``ds`` to ``path`` (zarr if the suffix is .zarr, else netCDF with zlib ``complevel``
    and optionally the byte shuffle filter) atomically, CF-1.8 clean.

    :func:`ppviz.data.cf_out.cf_ready` fixes data types, coordinate attributes and global
    attributes first (values unchanged).

    The data goes to a temporary sibling first and is renamed into place, so an interrupted
    write never leaves a partial file at ``path``.
    """
    from ppviz.data.cf_out import cf_ready

    path = Path(path)
    ds, enc = cf_ready(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = ds.copy()
    for var in ds.variables.values():
        var.encoding = {}  # a source store's codecs (e.g. ARCO's zarr v2 Blosc) do not carry over
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        if path.suffix == ".zarr":
            with warnings.catch_warnings():
                # zarr 3 warns that consolidated metadata is not in its spec; xarray still uses it
                warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
                ds.to_zarr(tmp, mode="w", encoding=enc)
        else:
            for v in ds.data_vars:
                if ds[v].dtype.kind in "fiu":
                    enc[v] = {**enc.get(v, {}), "zlib": True, "complevel": complevel, "shuffle": shuffle}
            ds.to_netcdf(tmp, engine="netcdf4", encoding=enc)
        if path.exists():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp.parent)
    return path


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()
