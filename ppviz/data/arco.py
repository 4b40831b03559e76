"""Reader for the public ARCO-ERA5 zarr stores (Google, ``gs://gcp-public-data-arco-era5/ar/...zarr``).

Layout
------
One global store with dims ``time`` (hourly), ``latitude`` (descending 90..-90) and
``longitude`` (0..359.75, 0.25 deg), and one variable per ERA5 parameter under its long name:

================================================  ==============  ============  ==========
store variable                                    ERA5 parameter  units         -> mm/h
================================================  ==============  ============  ==========
``total_precipitation``                           228 ``tp``      m (hourly)    x 1000
``vertically_integrated_moisture_divergence``     213 ``vimd``    kg m-2 (hour) x 1
``vertical_integral_of_divergence_of_moisture_    162084          kg m-2 s-1    x 3600
flux``
``mean_vertically_integrated_moisture_divergence`` 235... mvimd   kg m-2 s-1    x 3600
================================================  ==============  ============  ==========

Parameter 213 (the one the paper and our canonical ``vimd`` mean) is preferred when present;
the others are the same quantity as a rate. The ``units`` attribute, when present, decides the
conversion (:data:`ppviz.data.era5.UNIT_FACTORS`).

:func:`open_arco` selects the Europe box *before* anything is read, wrapping longitudes across
0 deg (the box 14W..45.75E is two pieces of the 0..360 axis), and returns a lazy canonical
dataset: call ``.load()`` or write it with :func:`ppviz.data.canonical.write_dataset`.
Reading from ``gs://`` needs ``gcsfs`` (anonymous access); a local copy of the layout works too.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ppviz.data.canonical import canonical_dataset
from ppviz.data.era5 import find_variable, to_mm_per_hour
from ppviz.data.grid import EUROPE, Grid

ARCO_STORE = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"

#: Store variables for each canonical variable, in order of preference.
ARCO_NAMES: dict[str, tuple[str, ...]] = {
    "tp": ("total_precipitation", "tp"),
    "vimd": (
        "vertically_integrated_moisture_divergence",
        "vertical_integral_of_divergence_of_moisture_flux",
        "mean_vertically_integrated_moisture_divergence",
        "vimd",
    ),
}


def _open_store(store, storage_options=None) -> xr.Dataset:
    store_s = str(store)
    if store_s.startswith("gs://") and storage_options is None:
        storage_options = {"token": "anon"}
    kwargs = {"chunks": {}}
    if storage_options is not None:
        kwargs["storage_options"] = storage_options
    try:
        return xr.open_zarr(store_s, **kwargs)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - say which store and why
        raise ValueError(f"cannot open {store_s} as a zarr store ({type(exc).__name__}: {exc})") from exc


def _axis_indices(values: np.ndarray, wanted: np.ndarray, name: str, store) -> np.ndarray:
    """Indices into ``values`` of each of ``wanted`` (within 1e-6 deg); ValueError if missing."""
    order = np.argsort(values)
    pos = np.searchsorted(values[order], wanted)
    pos = np.clip(pos, 0, values.size - 1)
    lower = np.clip(pos - 1, 0, values.size - 1)
    best = np.where(
        np.abs(values[order][lower] - wanted) < np.abs(values[order][pos] - wanted), lower, pos
    )
    idx = order[best]
    miss = np.abs(values[idx] - wanted) > 1e-6
    if miss.any():
        raise ValueError(
            f"{store} does not cover the domain along {name}: {int(miss.sum())} of {wanted.size} "
            f"points missing (e.g. {wanted[miss][0]:g}); the store has {values.min():g}..{values.max():g}"
        )
    return idx


def is_arco_layout(ds: xr.Dataset) -> bool:
    """Whether ``ds`` looks like an ARCO-ERA5 store: an ARCO tp name and ``latitude``/``longitude``
    dims, rather than the canonical ``tp``/``vimd`` on ``lat``/``lon``."""
    has_tp = any(n in ds.data_vars for n in ARCO_NAMES["tp"][:1])
    return has_tp and "latitude" in ds.dims and "longitude" in ds.dims


def store_domain(lat: np.ndarray, lon: np.ndarray, store=None) -> Grid:
    """The fine grid to read from a store with points ``lat``, ``lon`` (any order, lon in 0..360).

    :data:`ppviz.data.grid.EUROPE` when the store covers it (the global ARCO store does); else
    the store's own points inside the Europe box (a regional copy). ValueError if those do not
    form a regular 0.25 deg grid of at least 2 x 2 points.
    """
    lat = np.round(np.asarray(lat, dtype=np.float64), 6)
    lonw = np.round(((np.asarray(lon, dtype=np.float64) + 180.0) % 360.0) - 180.0, 6)
    if np.isin(EUROPE.lat, lat).all() and np.isin(np.round(EUROPE.lon, 6), lonw).all():
        return EUROPE
    la = np.sort(lat[(lat >= EUROPE.lat[0]) & (lat <= EUROPE.lat[-1])])
    lo = np.sort(lonw[(lonw >= EUROPE.lon[0]) & (lonw <= EUROPE.lon[-1])])
    try:
        grid = Grid.from_coords(la, lo)
    except ValueError as exc:
        raise ValueError(f"{store}: its points inside the Europe box do not form a regular grid ({exc})") from None
    if abs(grid.res - EUROPE.res) > 1e-6:
        raise ValueError(f"{store} has a {grid.res:g} deg grid; ppviz reads ERA5's {EUROPE.res:g} deg grid")
    return grid


def open_arco(store=ARCO_STORE, start=None, end=None, domain: Grid | None = None, *,
              storage_options=None) -> xr.Dataset:
    """Open ARCO-ERA5 ``tp`` and ``vimd`` over ``domain`` and ``start..end`` as a canonical dataset.

    Parameters
    ----------
    store : str or Path
        The zarr store (URL or local path) in ARCO-ERA5 layout.
    start, end : str or datetime-like, optional
        Inclusive time bounds (e.g. ``'2020-01-01'``, ``'2020-01-31T23'``).
    domain : Grid, optional
        Target grid; its points must all be on the store's grid (ERA5 0.25 deg points are).
        Default: :func:`store_domain` (Europe, or a regional store's own points inside it).
    storage_options : dict, optional
        Passed to fsspec; defaults to anonymous access for ``gs://``.

    Returns
    -------
    xr.Dataset
        Canonical (``tp``, ``vimd`` in mm/h on (time, lat, lon), latitude ascending), lazy.
    """
    ds = _open_store(store, storage_options)
    lat_name = "latitude" if "latitude" in ds.dims else "lat"
    lon_name = "longitude" if "longitude" in ds.dims else "lon"
    missing = [d for d in ("time", lat_name, lon_name) if d not in ds.dims]
    if missing:
        raise ValueError(f"{store} lacks dimension(s) {', '.join(missing)}; dims are {dict(ds.sizes)}")
    tp_name = find_variable(ds, ARCO_NAMES["tp"], "total precipitation", store)
    vimd_name = find_variable(ds, ARCO_NAMES["vimd"], "moisture divergence", store)

    lat = np.round(ds[lat_name].values.astype(np.float64), 6)
    lon = np.round(ds[lon_name].values.astype(np.float64), 6)
    lon_wrapped = np.round(((lon + 180.0) % 360.0) - 180.0, 6)
    if domain is None:
        domain = store_domain(lat, lon, store)
    want_lon = np.round(((domain.lon + 180.0) % 360.0) - 180.0, 6)
    ilat = _axis_indices(lat, domain.lat, "latitude", store)
    ilon = _axis_indices(lon_wrapped, want_lon, "longitude", store)

    sub = ds[[tp_name, vimd_name]].isel({lat_name: ilat, lon_name: ilon})
    sub = sub.assign_coords({lat_name: domain.lat.astype(np.float64), lon_name: want_lon})
    sub = sub.rename({lat_name: "lat", lon_name: "lon"}).sortby("lon")
    if start is not None or end is not None:
        sub = sub.sel(time=slice(start, end))
    if sub.sizes["time"] == 0:
        t = ds.time.values
        raise ValueError(
            f"{store} has no time steps in {start}..{end}; it covers {t.min()}..{t.max()}"
        )
    for name in (tp_name, vimd_name):
        extra = [d for d in sub[name].dims if d not in ("time", "lat", "lon")]
        if extra:
            raise ValueError(f"{name} in {store} has extra dims {extra}; expected (time, latitude, longitude)")
    tp = to_mm_per_hour(sub[tp_name], tp_name, "tp", store)
    vimd = to_mm_per_hour(sub[vimd_name], vimd_name, "vimd", store)
    return canonical_dataset(
        tp,
        vimd,
        source=f"ERA5 (ARCO-ERA5 zarr {store}: {tp_name}, {vimd_name})",
        licence="Generated using Copernicus Climate Change Service information",
    )
