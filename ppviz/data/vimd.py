r"""Vertically integrated moisture divergence (VIMD) from specific humidity, wind and surface pressure.

Equations
---------
The vertically integrated moisture flux (kg m-1 s-1) is

.. math:: \mathbf F = (F_x, F_y) = \frac{1}{g} \int_{p_\mathrm{top}}^{p_s} q\,\mathbf V\,dp,

with ``q`` specific humidity (kg/kg), ``V = (u, v)`` the wind (m/s), ``p`` pressure (Pa),
``p_s`` surface pressure and ``g = 9.80665`` m s-2. VIMD is its divergence on the sphere,

.. math:: \mathrm{VIMD} = \nabla\cdot\mathbf F = \frac{1}{a\cos\varphi}
          \left( \frac{\partial F_x}{\partial\lambda}
               + \frac{\partial (F_y \cos\varphi)}{\partial\varphi} \right),

``a = 6371 km`` (:data:`ppviz.constants.EARTH_RADIUS_KM`), ``lambda``/``phi`` longitude and
latitude in radians. The result in kg m-2 s-1 is multiplied by 3600 to give mm/h (1 kg m-2 of
water is 1 mm). Negative VIMD is moisture convergence (where it tends to rain), as ERA5's
parameter 213 ``vimd``.

Discretisation
--------------
- Horizontal: centred differences in the interior, one-sided at the borders of the domain
  (``np.gradient`` against the coordinate in radians); periodic in longitude for a global grid.
- Vertical: the integral is a sum over levels of ``q V dp_k / g`` with a layer thickness
  ``dp_k`` (Pa) per level and column:

  * **pressure levels** (``level``/``pressure_level`` in hPa): layer edges are the midpoints
    between neighbouring levels; the column runs from the top level to the surface, so the top
    layer starts at the top level, the edges are clipped at ``p_s``, and a level below the
    surface (``p > p_s``) is masked: its part of the column above ground (if any) takes the values
    of the lowest level above ground. A column thus integrates from the top level to ``p_s``,
    with the lowest level above ground extended down to the surface; a constant ``q V`` gives
    exactly ``q V (p_s - p_top) / g``.
  * **model levels** (``level``/``model_level`` = L137 level numbers): half-level pressures
    ``p_{k+1/2} = a_k + b_k p_s`` from ECMWF's L137 table (:func:`read_levels_table`), full-level
    pressures ``p_k = (p_{k-1/2} + p_{k+1/2}) / 2``. With all 137 levels the layers are the exact
    model layers. For a *subset* of levels (as in the shared sample, 22 of 137) each present level
    stands for the layer between the midpoints of its neighbours' full-level pressures (the true
    half level where two present levels are adjacent), the lowest present level extends to the
    surface half level ``p_s`` and the highest to the model top (0 Pa). This is an approximation
    of ERA5's own ``vimd``, which integrates all 137 levels: the coarser the subset, the more the
    vertical structure of ``q V`` is smoothed.

Time: the result is instantaneous at each time stamp of the inputs, whereas ERA5 ``tp`` and
``vimd`` are accumulations over the hour *ending* at the time stamp.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ppviz.data.canonical import VARIABLE_ATTRS
from ppviz.data.era5 import normalise_units, tidy_era5
from ppviz.data.levels import (
    _PRESSURE_UNITS, _Q_UNITS, _WIND_UNITS, LevelsTable, _drop_level, _level_dim, _units_factor, level_kind,
    model_level_thickness, pressure_level_thickness, read_levels_table,
)
from ppviz.constants import EARTH_RADIUS_M, STANDARD_GRAVITY as G
from ppviz.data.grid import Grid

SECONDS_PER_HOUR = 3600.0

# --------------------------------------------------------------------------- divergence


def spherical_divergence(fx: np.ndarray, fy: np.ndarray, lat, lon, radius: float = EARTH_RADIUS_M) -> np.ndarray:
    r"""Divergence of a horizontal vector field on the sphere.

    ``div F = 1/(a cos phi) * (dFx/dlambda + d(Fy cos phi)/dphi)``, centred differences in the
    interior, one-sided at the borders; periodic in longitude when ``lon`` covers the globe.

    Parameters
    ----------
    fx, fy : array (..., nlat, nlon)
        Eastward and northward components (e.g. kg m-1 s-1).
    lat, lon : array (nlat,), (nlon,)
        Degrees; monotonic (either direction). Poles (cos phi = 0) give inf/NaN.
    radius : float
        Sphere radius, m.

    Returns
    -------
    array (..., nlat, nlon)
        Divergence in the components' units per metre (e.g. kg m-2 s-1).
    """
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    cos = np.cos(phi)[:, None]
    dlam = np.diff(lam)
    periodic = lam.size > 2 and np.allclose(dlam, dlam[0]) and np.isclose(abs(dlam[0]) * lam.size, 2 * np.pi)
    if periodic:
        dfx = (np.roll(fx, -1, axis=-1) - np.roll(fx, 1, axis=-1)) / (2 * dlam[0])
    else:
        dfx = np.gradient(fx, lam, axis=-1)
    dfy = np.gradient(fy * cos, phi, axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dfx + dfy) / (radius * cos)


# --------------------------------------------------------------------------- column integrals


def _prepare_columns(fields, sp, levels_table, kind):
    """Tidy and align level fields and sp; return what the integration needs."""
    fields = [tidy_era5(x) for x in fields]
    sp = _drop_level(tidy_era5(sp))
    lev = _level_dim(fields[0])
    for x in fields[1:]:
        if _level_dim(x) != lev or not np.array_equal(x[lev].values, fields[0][lev].values):
            raise ValueError(
                f"{x.name} and {fields[0].name} are on different levels "
                f"({x[lev].values} vs {fields[0][lev].values})"
            )
    if kind is None:
        kind = level_kind(fields[0][lev])
    if kind not in ("pressure", "model"):
        raise ValueError(f"kind must be None, 'pressure' or 'model'; got {kind!r}")
    table = None
    if kind == "model":
        if levels_table is None:
            raise ValueError(
                "the fields are on model levels: their half-level pressures need the L137 table; "
                "pass --levels L137.csv (levels_table=...)"
            )
        table = levels_table if isinstance(levels_table, LevelsTable) else read_levels_table(levels_table)
    sp_scale = _units_factor(sp, _PRESSURE_UNITS, "surface pressure sp", default="Pa", lower=True)
    *fields, sp = xr.align(*fields, sp, join="inner")
    if fields[0].sizes["time"] == 0 or fields[0].sizes["lat"] < 2 or fields[0].sizes["lon"] < 2:
        raise ValueError("the level fields and sp share no common time steps and grid")
    order = np.argsort(fields[0][lev].values)
    levels = fields[0][lev].values[order]
    p_levels = None
    if kind == "pressure":
        p_scale = _PRESSURE_UNITS.get(normalise_units(fields[0][lev].attrs.get("units", "hPa")).lower(), 100.0)
        p_levels = levels.astype(np.float64) * p_scale
    return fields, sp, sp_scale, lev, order, levels, p_levels, kind, table


def _column_sums(fields, sp, levels_table, kind, integrands, time_block):
    """Yield meta, then (time slice, [(1/g) sum_k y_k dp_k for y in integrands(blocks)]) per block.

    ``fields`` are read block by block (so long files need not fit in memory);
    ``integrands`` maps the list of their (t, level, y, x) float64 blocks to the fields to
    integrate.
    """
    fields, sp, sp_scale, lev, order, levels, p_levels, kind, table = _prepare_columns(
        fields, sp, levels_table, kind
    )
    ntime = fields[0].sizes["time"]
    yield {"lev": lev, "levels": levels, "kind": kind, "template": fields[0]}
    for t0 in range(0, ntime, time_block):
        sl = slice(t0, t0 + time_block)
        spb = np.asarray(sp.isel(time=sl).transpose("time", "lat", "lon").values, dtype=np.float64) * sp_scale
        if kind == "pressure":
            dp, src = pressure_level_thickness(p_levels, spb)  # (nlev, t, y, x)
            dp, src = np.moveaxis(dp, 0, 1), np.moveaxis(src, 0, 1)
        else:
            dp, src = np.moveaxis(model_level_thickness(levels, spb, table), 0, 1), None
        blocks = [
            np.asarray(x.isel(time=sl).transpose("time", lev, "lat", "lon").values, dtype=np.float64)[:, order]
            for x in fields
        ]
        sums = []
        for y in integrands(blocks):
            if src is not None:  # below-ground levels take the lowest level above ground
                y = np.take_along_axis(y, src, axis=1)
            sums.append((y * dp).sum(axis=1) / G)
        yield sl, sums


def _check_flux_inputs(q, u, v) -> float:
    """Check units of q, u, v; return the factor turning q into kg/kg."""
    q_scale = _units_factor(q, _Q_UNITS, "specific humidity q")
    for name, x in (("u", u), ("v", v)):
        units = normalise_units(x.attrs.get("units", "m s-1"))
        if units not in _WIND_UNITS:
            raise ValueError(f"wind {name} has units {x.attrs.get('units')!r}; accepted: m s-1")
    return q_scale


def _flux_columns(q, u, v, sp, levels_table, kind, time_block):
    """``(meta, blocks)`` of the moisture-flux column sums: ``blocks`` yields ``(time slice, (fx, fy))``,
    kg m-1 s-1 (see :func:`_column_sums`)."""
    qs = _check_flux_inputs(q, u, v)
    gen = _column_sums([q, u, v], sp, levels_table, kind, lambda b: (qs * b[0] * b[1], qs * b[0] * b[2]), time_block)
    return next(gen), gen


def _out_coords(template, lat, lon):
    coords = {"time": template.time.values}
    try:
        coords.update(Grid.from_coords(lat, lon).coords())
    except ValueError:
        coords.update({"lat": lat, "lon": lon})
    return coords


def vertical_integral(
    x: xr.DataArray,
    sp: xr.DataArray,
    levels_table=None,
    *,
    kind: str | None = None,
    time_block: int = 24,
) -> xr.DataArray:
    """Mass-weighted column integral ``(1/g) * int x dp`` from the top to the surface.

    With ``x = q`` (kg/kg) this is total column water vapour in kg m-2. Same vertical
    discretisation as :func:`vimd_from_levels` (see the module docstring).

    Parameters
    ----------
    x : xr.DataArray, dims (time, level, lat, lon)
    sp : xr.DataArray, dims (time, lat, lon), Pa
    levels_table, kind : as for :func:`vimd_from_levels`

    Returns
    -------
    xr.DataArray, dims (time, lat, lon), float64, units of ``x`` times kg m-2.
    """
    gen = _column_sums([x], sp, levels_table, kind, lambda b: b, time_block)
    meta = next(gen)
    t = meta["template"]
    out = np.empty((t.sizes["time"], t.sizes["lat"], t.sizes["lon"]))
    for sl, (s,) in gen:
        out[sl] = s
    return xr.DataArray(
        out, dims=("time", "lat", "lon"), coords=_out_coords(t, t.lat.values, t.lon.values),
        name=f"integral_of_{x.name}", attrs={"comment": "(1/g) int x dp, top to surface"},
    )


def moisture_flux(q: xr.DataArray, u: xr.DataArray, v: xr.DataArray, sp: xr.DataArray, levels_table=None, *,
                  kind: str | None = None, time_block: int = 24) -> xr.Dataset:
    """Vertically integrated moisture flux ``F = (1/g) int q V dp``: variables ``fx``, ``fy``.

    Dims (time, lat, lon), kg m-1 s-1, latitude ascending. Arguments as :func:`vimd_from_levels`.
    """
    meta, gen = _flux_columns(q, u, v, sp, levels_table, kind, time_block)
    t = meta["template"]
    shape = (t.sizes["time"], t.sizes["lat"], t.sizes["lon"])
    fx, fy = np.empty(shape), np.empty(shape)
    for sl, (sx, sy) in gen:
        fx[sl], fy[sl] = sx, sy
    coords = _out_coords(t, t.lat.values, t.lon.values)
    attrs = {"units": "kg m-1 s-1", "vertical_coordinate": meta["kind"]}
    return xr.Dataset(
        {
            "fx": (("time", "lat", "lon"), fx, {**attrs, "long_name": "eastward integrated moisture flux"}),
            "fy": (("time", "lat", "lon"), fy, {**attrs, "long_name": "northward integrated moisture flux"}),
        },
        coords=coords,
    )


def vimd_from_levels(q: xr.DataArray, u: xr.DataArray, v: xr.DataArray, sp: xr.DataArray, levels_table=None, *,
                     kind: str | None = None, time_block: int = 24) -> xr.DataArray:
    """VIMD (mm/h) from specific humidity, wind on levels and surface pressure.

    Parameters
    ----------
    q, u, v : xr.DataArray, dims (time, level, lat, lon)
        Specific humidity (kg/kg) and wind components (m/s) on pressure or model levels (as from
        :func:`open_level_file`; CDS names ``latitude``/``longitude``/``valid_time`` accepted,
        latitude in either order).
    sp : xr.DataArray, dims (time, lat, lon)
        Surface pressure, Pa (hPa accepted by its units).
    levels_table : LevelsTable or path, optional
        The L137 table (:func:`read_levels_table`); required for model levels.
    kind : {None, 'pressure', 'model'}
        Vertical coordinate; ``None`` detects it from the level coordinate (:func:`level_kind`).
    time_block : int
        Time steps processed at once (bounds memory for long files).

    Returns
    -------
    xr.DataArray, dims (time, lat, lon), float32, mm/h
        ``div((1/g) int q V dp) * 3600``; latitude ascending; negative = moisture convergence.

    Raises
    ------
    ValueError
        Model levels without a table (asks for ``--levels L137.csv``), undetectable level kind,
        inputs on different levels, units that are not kg/kg, m/s, Pa/hPa.
    """
    meta, gen = _flux_columns(q, u, v, sp, levels_table, kind, time_block)
    t = meta["template"]
    lat, lon = t.lat.values, t.lon.values
    out = np.empty((t.sizes["time"], lat.size, lon.size), dtype=np.float32)
    for sl, (fx, fy) in gen:  # kg m-1 s-1
        out[sl] = spherical_divergence(fx, fy, lat, lon) * SECONDS_PER_HOUR  # kg m-2 s-1 -> mm/h
    levels = meta["levels"]
    method = (
        f"{meta['kind']} levels {levels.min()}..{levels.max()} ({levels.size} levels), "
        "centred differences on the sphere"
    )
    return xr.DataArray(
        out,
        dims=("time", "lat", "lon"),
        coords=_out_coords(t, lat, lon),
        name="vimd",
        attrs={
            **VARIABLE_ATTRS["vimd"],
            "comment": "div((1/g) int q V dp) on the sphere, instantaneous at time; " + method,
            "vertical_coordinate": meta["kind"],
        },
    )
