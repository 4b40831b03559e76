"""Recognising precipitation in files written by other systems: CF names, ensemble dims, units, grids.

Used by :mod:`ppviz.data.predictions` (``ppviz evaluate --predictions``). Everything here works on
one :class:`xarray.DataArray` at a time and raises ValueError naming what was found and what is
needed (the caller adds the file name).

- Variables: by CF ``standard_name`` first (:data:`PRECIP_STANDARD_NAMES`), then by common names
  (:data:`PRECIP_NAMES`).
- Ensemble dims: :data:`MEMBER_DIMS` (``member``, ``ensemble``, ``sample``, ``number``,
  ``realization``) or any dim whose coordinate has ``standard_name = realization``.
- Units: converted to mm/h with cf-units (UDUNITS-2); a water mass per area (kg m-2) becomes a
  depth through the density of water; an amount (a depth per time step) is divided by the step.
- Grids: ``lat``/``latitude`` and ``lon``/``longitude`` found by name, ``standard_name`` or
  units; 2-D ``lat(y, x)``, ``lon(y, x)`` that are regular become 1-D; latitude ascending,
  longitude in [-180, 180) ascending.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ppviz.constants import WATER_DENSITY

__all__ = ["MEMBER_DIMS", "PRECIP_NAMES", "PRECIP_STANDARD_NAMES", "find_member_dims", "is_precip",
           "regular_lat_lon", "to_mm_per_hour", "units_kind"]

#: CF standard names of precipitation (rates, fluxes and amounts), in order of preference.
PRECIP_STANDARD_NAMES = (
    "precipitation_flux", "lwe_precipitation_rate", "precipitation_amount", "lwe_thickness_of_precipitation_amount",
    "thickness_of_rainfall_amount", "rainfall_flux", "rainfall_rate", "lwe_precipitation_flux",
    "rainfall_amount", "convective_precipitation_flux", "large_scale_precipitation_flux",
)
#: Common variable names of total precipitation (ERA5/cfgrib, CMIP/CORDEX, CorrDiff, Earth2Studio).
PRECIP_NAMES = ("tp", "pr", "precip", "precipitation", "total_precipitation", "prcp", "tp06", "tp01", "tp1h")
#: Names of ensemble dims (ppviz, CorrDiff/Earth2Studio, cfgrib, CF/iris).
MEMBER_DIMS = ("member", "ensemble", "sample", "number", "realization")
LAT_NAMES = ("lat", "latitude", "nav_lat")
LON_NAMES = ("lon", "longitude", "nav_lon")
#: Tolerance (degrees) for a 2-D coordinate to count as regular and for two grids to match.
GRID_TOL_DEG = 1e-4


def is_precip(da: xr.DataArray, name: str) -> int:
    """0 if ``da`` does not look like precipitation; 2 by standard name, 1 by variable name."""
    if da.attrs.get("standard_name") in PRECIP_STANDARD_NAMES:
        return 2
    return 1 if str(name).split("/")[-1].lower() in PRECIP_NAMES else 0


def find_member_dims(da: xr.DataArray, member_dim: str | None = None) -> list[str]:
    """The ensemble dims of ``da`` (``member_dim`` if given), in ``da``'s dim order; ValueError if none."""
    if member_dim is not None:
        if member_dim not in da.dims:
            raise ValueError(f"has no dim {member_dim!r} (--member-dim); its dims are {list(da.dims)}")
        return [member_dim]
    found = [d for d in da.dims if d in MEMBER_DIMS
             or (d in da.coords and da.coords[d].attrs.get("standard_name") == "realization")]
    if not found:
        raise ValueError(f"has no ensemble dim: its dims are {list(da.dims)}; needed one of {list(MEMBER_DIMS)} "
                         "(or a coordinate with standard_name realization), or name it with --member-dim")
    return found


def units_kind(units: str) -> str:
    """``"rate"`` (a depth or water mass per area per time) or ``"amount"`` (a depth or mass per area).

    ValueError for text that is not a unit or a unit of something else.
    """
    import cf_units

    try:
        u = cf_units.Unit(units)
    except ValueError:
        raise ValueError(f"units {units!r} are not UDUNITS units") from None
    for kind, refs in (("rate", ("mm h-1", "kg m-2 s-1")), ("amount", ("mm", "kg m-2"))):
        if any(u.is_convertible(r) for r in refs):
            return kind
    raise ValueError(f"units {units!r} are neither a precipitation rate (e.g. mm h-1, kg m-2 s-1, m s-1) "
                     "nor an amount (e.g. m, mm, kg m-2)")


def to_mm_per_hour(values, units: str, step_hours: float | None = None):
    """``values`` in ``units`` as a rate in mm/h (same shape; float32 when given float32).

    Parameters
    ----------
    values : array-like
        Rates (``units`` like ``kg m-2 s-1``, ``m s-1``, ``mm day-1``) or amounts over one step
        (``m``, ``kg m-2``).
    units : str
        UDUNITS text.
    step_hours : float, optional
        Length of the accumulation step in hours; needed for amounts.
    """
    import cf_units

    kind = units_kind(units)
    u = cf_units.Unit(units)
    x = np.asarray(values)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    depth_ref, mass_ref = ("mm h-1", "kg m-2 h-1") if kind == "rate" else ("mm", "kg m-2")
    if u.is_convertible(depth_ref):
        out = u.convert(x.astype(np.float64), depth_ref)
    else:  # kg m-2 (per time) -> mm (per time): 1 kg m-2 of water is 1/WATER_DENSITY m deep
        out = cf_units.Unit("m").convert(u.convert(x.astype(np.float64), mass_ref) / WATER_DENSITY, "mm")
    if kind == "amount":
        if not step_hours or step_hours <= 0:
            raise ValueError(f"units {units!r} are an amount, and the accumulation step is unknown (one time step, "
                             "or irregular steps); give the rate's units with --units, e.g. 'mm day-1'")
        out = out / step_hours
    return np.asarray(out, dtype=dtype)


def _coord_name(da: xr.DataArray, names, standard_name: str, units: tuple) -> str | None:
    for c in da.coords:
        if c in names or da.coords[c].attrs.get("standard_name") == standard_name \
                or da.coords[c].attrs.get("units") in units:
            return c
    return None


def regular_lat_lon(da: xr.DataArray) -> xr.DataArray:
    """``da`` with 1-D ``lat``, ``lon`` dims (degrees), latitude ascending, longitude in [-180, 180) ascending.

    2-D ``lat(y, x)``, ``lon(y, x)`` coordinates whose rows (columns) are constant become the 1-D
    dims; ValueError for a curvilinear grid or no latitude/longitude coordinates.
    """
    lat = _coord_name(da, LAT_NAMES, "latitude", ("degrees_north", "degree_north"))
    lon = _coord_name(da, LON_NAMES, "longitude", ("degrees_east", "degree_east"))
    if lat is None or lon is None:
        raise ValueError(f"has no latitude/longitude coordinates (coordinates: {list(da.coords)}); needed "
                         "lat/latitude and lon/longitude (1-D, or 2-D on a regular grid)")
    la, lo = da.coords[lat], da.coords[lon]
    if la.ndim == 2 or lo.ndim == 2:
        if la.dims != lo.dims or la.ndim != 2:
            raise ValueError(f"latitude {la.dims} and longitude {lo.dims} are not on the same 2-D grid")
        ydim, xdim = la.dims
        a, o = np.asarray(la.values, np.float64), np.asarray(lo.values, np.float64)
        if not (np.allclose(a, a[:, :1], atol=GRID_TOL_DEG) and np.allclose(o, o[:1, :], atol=GRID_TOL_DEG)):
            dev = max(float(np.nanmax(np.abs(a - a[:, :1]))), float(np.nanmax(np.abs(o - o[:1, :]))))
            raise ValueError(f"is on a curvilinear grid (2-D {lat}/{lon} vary along both {ydim} and {xdim}, by up "
                             f"to {dev:.3g} deg); needed a regular latitude-longitude grid (regrid it first)")
        da = da.drop_vars([lat, lon]).rename({ydim: "lat", xdim: "lon"})
        da = da.assign_coords(lat=("lat", a[:, 0]), lon=("lon", o[0, :]))
    else:
        if la.dims != (lat,) or lo.dims != (lon,):
            raise ValueError(f"latitude/longitude coordinates are not dimensions ({lat}{la.dims}, {lon}{lo.dims})")
        da = da.rename({lat: "lat", lon: "lon"})
    da = da.assign_coords(lon=((da.lon.values + 180.0) % 360.0) - 180.0)
    da = da.sortby("lat").sortby("lon")
    for c in ("lat", "lon"):
        v = da[c].values
        if v.size > 1 and not np.all(np.diff(v) > 0):
            raise ValueError(f"{c} has repeated values")
    da.lat.attrs.update(units="degrees_north", standard_name="latitude")
    da.lon.attrs.update(units="degrees_east", standard_name="longitude")
    return da
