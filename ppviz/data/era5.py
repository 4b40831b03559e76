"""Readers for ERA5 single-level netCDF files as the Copernicus CDS writes them.

What they accept
----------------
- Layouts: the old CDS / ``grib_to_netcdf`` layout (``time``, ``latitude`` descending,
  ``longitude``; values often packed as int16 with ``scale_factor``/``add_offset``, which xarray
  decodes) and the new CDS layout (``valid_time``, a scalar ``number`` coordinate, an ``expver``
  coordinate along time). A file with an ``expver`` *dimension* (ERA5 final data mixed with the
  preliminary ERA5T, each filling the other's gaps with NaN) is combined into one field,
  the first ``expver`` winning where both have values.
- Variables, by their short or long CDS name (see :data:`VARIABLE_NAMES`):

  ============  ====================================================  =====================
  ppviz name    file variable                                         units -> mm/h
  ============  ====================================================  =====================
  ``tp``        ``tp`` / ``total_precipitation``                      m (hourly) x 1000
  ``tp``        ``mtpr`` / ``mean_total_precipitation_rate``          kg m-2 s-1 x 3600
  ``vimd``      ``vimd`` / ``vertically_integrated_moisture_...``     kg m-2 (hourly) x 1
  ``vimd``      ``mvimd`` / ``mean_vertically_integrated_...``        kg m-2 s-1 x 3600
  ============  ====================================================  =====================

  The ``units`` attribute decides the conversion when present (:data:`UNIT_FACTORS`); the name
  only supplies a default when a file has no ``units``. Accumulated units (m, kg m-2, mm) are
  read as ERA5's *hourly* accumulations (the hour ending at the time stamp), so 1 kg m-2 per hour
  is 1 mm/h. Already-converted files in ``mm h-1`` (e.g. written by ``ppviz data vimd``) pass
  through unchanged.

What they return
----------------
A ``(time, lat, lon)`` float32 DataArray in mm/h, latitude ascending, longitude in
[-180, 180), loaded into memory. NaNs are kept (the canonical dataset checks later); ``tp`` has
its negative packing/round-off artefacts (ERA5 carries values like -1e-10 m) clipped to 0.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.canonical import VARIABLE_ATTRS, normalise_latlon

#: File variable names accepted for each ppviz variable, in order of preference.
VARIABLE_NAMES: dict[str, tuple[str, ...]] = {
    "tp": ("tp", "total_precipitation", "mtpr", "mean_total_precipitation_rate"),
    "vimd": (
        "vimd",
        "vertically_integrated_moisture_divergence",
        "mvimd",
        "mean_vertically_integrated_moisture_divergence",
        # parameter 162084, the same quantity as an instantaneous rate (kg m-2 s-1)
        "vertical_integral_of_divergence_of_moisture_flux",
        "p84.162",
    ),
}

#: Units assumed when a variable carries no ``units`` attribute.
DEFAULT_UNITS: dict[str, str] = {
    "tp": "m",
    "total_precipitation": "m",
    "mtpr": "kg m-2 s-1",
    "mean_total_precipitation_rate": "kg m-2 s-1",
    "vimd": "kg m-2",
    "vertically_integrated_moisture_divergence": "kg m-2",
    "mvimd": "kg m-2 s-1",
    "mean_vertically_integrated_moisture_divergence": "kg m-2 s-1",
    "vertical_integral_of_divergence_of_moisture_flux": "kg m-2 s-1",
    "p84.162": "kg m-2 s-1",
}

#: Factor from a (normalised) unit to mm/h. Accumulations are ERA5 hourly accumulations.
UNIT_FACTORS: dict[str, float] = {
    "m": 1000.0,  # metres of water over the hour
    "m of water equivalent": 1000.0,
    "mm": 1.0,
    "kg m-2": 1.0,  # 1 kg m-2 of water = 1 mm
    "kg m-2 s-1": 3600.0,  # mean rate
    "mm s-1": 3600.0,
    "m s-1": 3.6e6,
    "mm h-1": 1.0,
    "mm hr-1": 1.0,
    "mm/h": 1.0,
    "kg m-2 h-1": 1.0,
}

_ENGINES = ("netcdf4", "h5netcdf", "scipy")


def normalise_units(units: str) -> str:
    """Canonical spelling of a units string: ``'kg m**-2 s**-1'`` -> ``'kg m-2 s-1'``."""
    u = str(units).strip().replace("**", "").replace("^", "")
    return " ".join(u.split())


def factor_to_mm_per_hour(units: str | None, name: str, path=None) -> tuple[float, str]:
    """The factor turning variable ``name`` in ``units`` into mm/h, and the units used.

    ``units=None`` falls back to :data:`DEFAULT_UNITS` for ``name``. Raises ValueError naming the
    unit found and those accepted.
    """
    if units is None or str(units).strip() == "":
        if name not in DEFAULT_UNITS:
            raise ValueError(
                f"{name!r}{_in(path)} has no units attribute and no known default; "
                f"accepted units: {', '.join(UNIT_FACTORS)}"
            )
        units = DEFAULT_UNITS[name]
    key = normalise_units(units)
    if key not in UNIT_FACTORS:
        from ppviz.data.cf import to_mm_per_hour as cf_to_mm_per_hour, units_kind

        try:  # any other UDUNITS rate (mm day-1, kg m-2 d-1 ...) through cf-units
            if units_kind(str(units)) == "rate":
                return float(cf_to_mm_per_hour(np.array([1.0]), str(units))[0]), str(units)
        except ValueError:
            pass
        raise ValueError(
            f"{name!r}{_in(path)} has units {units!r}, which ppviz cannot convert to mm/h; "
            f"accepted units: {', '.join(repr(u) for u in UNIT_FACTORS)}"
        )
    return UNIT_FACTORS[key], str(units)


def _in(path) -> str:
    return f" in {path}" if path is not None else ""


def open_netcdf(path) -> xr.Dataset:
    """Open a netCDF file (netCDF4/HDF5 or classic netCDF3) lazily.

    Raises FileNotFoundError if there is no file, and ValueError saying the file is not netCDF
    (with a hint for GRIB files and zip archives) if no engine can read it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a netCDF file")
    errors = []
    for engine in _ENGINES:
        try:
            return xr.open_dataset(path, engine=engine)
        except Exception as exc:  # noqa: BLE001 - try the next engine, report all below
            errors.append(f"{engine}: {type(exc).__name__}")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    hint = ""
    if magic.startswith(b"GRIB"):
        hint = " It looks like GRIB: download netCDF from the CDS, or convert with grib_to_netcdf."
    elif magic.startswith(b"PK"):
        hint = " It looks like a zip archive (the CDS zips multi-stream downloads): unzip it first."
    raise ValueError(
        f"{path} is not a netCDF file (no netCDF reader could open it: {'; '.join(errors)}).{hint}"
    )


def tidy_era5(obj, path=None):
    """Normalise CDS layouts: ``valid_time`` -> ``time``, lat/lon names, ascending latitude.

    Drops scalar ``number``/``expver`` coordinates and an ``expver`` coordinate along time (new
    CDS), squeezes a length-1 ``number`` dimension (ValueError for a real ensemble), and combines
    an ``expver`` dimension (old CDS ERA5/ERA5T mix): the first ``expver`` wins where both have
    values, the others fill its NaNs.
    """
    if "number" in obj.dims:
        if obj.sizes["number"] != 1:
            raise ValueError(
                f"{path or 'data'} holds an ensemble ({obj.sizes['number']} members along "
                "'number'); ppviz reads the ERA5 reanalysis (one member)"
            )
        obj = obj.isel(number=0)
    if "expver" in obj.dims:
        parts = [obj.isel(expver=i, drop=True) for i in range(obj.sizes["expver"])]
        combined = parts[0]
        for part in parts[1:]:
            combined = combined.combine_first(part)
        obj = combined
    drop = [c for c in ("number", "expver", "step", "surface") if c in obj.coords and c not in obj.dims]
    if drop:
        obj = obj.drop_vars(drop)
    obj = normalise_latlon(obj)
    if "time" in obj.coords and "time" not in obj.dims:
        obj = obj.expand_dims("time")
    for dim in ("lat", "lon"):
        if dim in obj.coords:
            obj = obj.assign_coords({dim: np.round(obj[dim].values.astype(np.float64), 6)})
    return obj


def find_variable(ds: xr.Dataset, candidates, what: str, path=None) -> str:
    """The first of ``candidates`` present in ``ds``; ValueError listing what the file has."""
    for name in candidates:
        if name in ds.data_vars:
            return name
    have = ", ".join(map(str, ds.data_vars)) or "no data variables"
    raise ValueError(
        f"{path or 'dataset'} has no {what} variable (looked for {', '.join(candidates)}); "
        f"it has: {have}"
    )


def to_mm_per_hour(da: xr.DataArray, name: str, variable: str, path=None) -> xr.DataArray:
    """Convert a tp/vimd field to mm/h by its units; clip tp's tiny negative artefacts."""
    factor, units = factor_to_mm_per_hour(da.attrs.get("units"), name, path)
    out = da * factor if factor != 1.0 else da
    if variable == "tp":
        # only check data already in memory: a lazy (dask) array would be read in full here
        vmin = float(out.min(skipna=True)) if out.size and out.chunks is None else 0.0
        if vmin < -0.01:
            warnings.warn(
                f"{name}{_in(path)} has negative precipitation down to {vmin:.3g} mm/h; "
                "clipped to 0",
                stacklevel=3,
            )
        out = out.clip(min=0.0)  # keeps NaN
    out = out.astype(np.float32)
    out.name = variable
    out.attrs = {
        **VARIABLE_ATTRS[variable],
        "ppviz_source": f"{Path(path).name if path is not None else 'data'}:{name} [{units}] x {factor:g}",
    }
    return out


def _cf_precipitation(ds: xr.Dataset, path) -> str | None:
    """The one precipitation variable of a CF file (``pr``, or any name with a precipitation
    ``standard_name``, see :mod:`ppviz.data.cf`); None if there is none; ValueError if several."""
    from ppviz.data.cf import is_precip

    scored = sorted(((is_precip(ds[v], v), str(v)) for v in ds.data_vars if is_precip(ds[v], v)),
                    key=lambda sv: -sv[0])  # best score first, file order within a score
    best = [v for s_, v in scored if scored and s_ == scored[0][0]]
    if len(best) > 1:
        raise ValueError(f"{path} has several precipitation variables {best}; ppviz reads one tp per file")
    return best[0] if best else None


def read_single_level(path, variable: str) -> xr.DataArray:
    """Read ERA5 ``tp`` or ``vimd`` from a single-level netCDF file, in mm/h.

    Parameters
    ----------
    path : str or Path
        netCDF file as the CDS (or ``grib_to_netcdf``, or ``ppviz data vimd``) writes it.
    variable : {'tp', 'vimd'}
        Which quantity to read; the file variable is found by name (:data:`VARIABLE_NAMES`); for
        ``tp``, a CF file's precipitation (``pr``, or a precipitation ``standard_name``) too.

    Returns
    -------
    xr.DataArray, dims (time, lat, lon), float32, mm/h
        Latitude ascending, longitude in [-180, 180); ``attrs['units'] == 'mm h-1'``.

    Raises
    ------
    ValueError
        Unknown ``variable``; file not netCDF; variable missing (lists what the file has);
        units not convertible (names the unit found and those accepted); unexpected dimensions.
    """
    if variable not in VARIABLE_NAMES:
        raise ValueError(f"variable must be one of {', '.join(VARIABLE_NAMES)}; got {variable!r}")
    path = Path(path)
    ds = open_netcdf(path)
    try:
        try:
            name = find_variable(ds, VARIABLE_NAMES[variable], variable, path)
        except ValueError:
            name = _cf_precipitation(ds, path) if variable == "tp" else None
            if name is None:
                raise
        da = tidy_era5(ds[name], path)
        if set(da.dims) != {"time", "lat", "lon"}:
            raise ValueError(
                f"{name} in {path} has dims {da.dims}; expected time, latitude and longitude"
            )
        da = da.transpose("time", "lat", "lon").load()
    finally:
        ds.close()
    return to_mm_per_hour(da, name, variable, path)
