"""Vertical levels of ERA5 files: level files, the L137 model-level table, layer thickness in pressure.

Pressure levels: the layer of each level reaches halfway to its neighbours, bounded by the top
(0 Pa) and the surface pressure; levels below the surface get zero thickness. Model levels:
half-level pressure ``p = a_k + b_k * sp`` from the L137 table (:func:`read_levels_table`).
Used by :mod:`ppviz.data.vimd` for the column integrals.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.era5 import find_variable, normalise_units, open_netcdf, tidy_era5

PRESSURE_LEVEL_DIMS = ("pressure_level", "isobaricInhPa", "plev")
MODEL_LEVEL_DIMS = ("model_level", "hybrid")
LEVEL_DIMS = ("level", *PRESSURE_LEVEL_DIMS, *MODEL_LEVEL_DIMS)

#: File variable names for each level input.
LEVEL_VARIABLE_NAMES: dict[str, tuple[str, ...]] = {
    "q": ("q", "specific_humidity"),
    "u": ("u", "u_component_of_wind"),
    "v": ("v", "v_component_of_wind"),
    "sp": ("sp", "surface_pressure", "lnsp", "logarithm_of_surface_pressure"),
}

_PRESSURE_UNITS = {"hpa": 100.0, "millibars": 100.0, "millibar": 100.0, "mbar": 100.0, "mb": 100.0, "pa": 1.0}
_Q_UNITS = {"kg kg-1": 1.0, "kg/kg": 1.0, "1": 1.0, "g kg-1": 1e-3, "g/kg": 1e-3}
_WIND_UNITS = {"m s-1", "m/s"}


# --------------------------------------------------------------------------- levels table


@dataclass(frozen=True)
class LevelsTable:
    """ECMWF hybrid-level coefficients: half-level pressure ``p_n = a[n] + b[n] * sp``.

    ``a`` (Pa) and ``b`` (1) have one entry per half level ``n = 0..nlev``; model level ``k``
    (1-based) lies between half levels ``k - 1`` (above) and ``k`` (below).
    """

    a: np.ndarray
    b: np.ndarray

    @property
    def nlev(self) -> int:
        """Number of full model levels (137 for L137)."""
        return len(self.a) - 1

    def half_pressure(self, sp: np.ndarray) -> np.ndarray:
        """Half-level pressures, shape ``(nlev + 1, *sp.shape)``, Pa."""
        sp = np.asarray(sp, dtype=np.float64)
        shape = (-1,) + (1,) * sp.ndim
        return self.a.reshape(shape) + self.b.reshape(shape) * sp[None]


def read_levels_table(path) -> LevelsTable:
    """Parse an L137-style CSV (``n``, ``a [Pa]``, ``b``, ... columns; BOM and CRLF allowed).

    Raises ValueError if the columns are missing or the half levels are not ``0..nlev`` with
    pressures increasing downwards.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no levels table at {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path} is empty; expected the L137 table with columns n, a [Pa], b")
    header = [h.strip().lower() for h in rows[0]]

    def col(pred, what):
        for i, h in enumerate(header):
            if pred(h):
                return i
        raise ValueError(f"{path} has no {what} column (columns: {', '.join(rows[0])})")

    i_n = col(lambda h: h == "n", "'n'")
    i_a = col(lambda h: h == "a" or h.startswith("a "), "'a [Pa]'")
    i_b = col(lambda h: h == "b" or h.startswith("b "), "'b'")
    a_scale = 100.0 if "hpa" in header[i_a] else 1.0
    n, a, b = [], [], []
    for row in rows[1:]:
        if not row or not row[i_n].strip():
            continue
        try:
            n.append(int(row[i_n]))
            a.append(float(row[i_a]) * a_scale)
            b.append(float(row[i_b]))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"{path}: cannot parse row {row!r} ({exc})") from exc
    n, a, b = np.array(n), np.array(a), np.array(b)
    order = np.argsort(n)
    n, a, b = n[order], a[order], b[order]
    if len(n) < 2 or not np.array_equal(n, np.arange(len(n))):
        raise ValueError(f"{path}: half levels must run 0..nlev without gaps (found {n[:5]}...)")
    p_std = a + b * 101325.0
    if np.any(np.diff(p_std) <= 0) or np.any(b < 0) or np.any(b > 1):
        raise ValueError(f"{path}: half-level pressures must increase downwards with 0 <= b <= 1")
    return LevelsTable(a=a, b=b)


# --------------------------------------------------------------------------- reading files


def open_level_file(path, variable: str) -> xr.DataArray:
    """Open ``q``, ``u``, ``v`` (on levels) or ``sp`` from an ERA5 netCDF file, lazily.

    Returns a DataArray with dims ``(time, <level>, lat, lon)`` (``sp``: ``(time, lat, lon)`` in
    Pa; a ``lnsp`` field is exponentiated and its length-1 level dimension dropped), latitude
    ascending, the level coordinate keeping its name and attributes (for :func:`level_kind`).
    """
    if variable not in LEVEL_VARIABLE_NAMES:
        raise ValueError(f"variable must be one of {', '.join(LEVEL_VARIABLE_NAMES)}; got {variable!r}")
    path = Path(path)
    ds = open_netcdf(path)
    name = find_variable(ds, LEVEL_VARIABLE_NAMES[variable], variable, path)
    da = tidy_era5(ds[name], path)
    da.attrs["ppviz_source"] = f"{path.name}:{name}"
    if variable == "sp":
        if name in ("lnsp", "logarithm_of_surface_pressure"):
            da = _drop_level(da, path)
            da = np.exp(da).assign_attrs(units="Pa", ppviz_source=f"{path.name}:exp({name})")
        da = _drop_level(da, path)
        if set(da.dims) != {"time", "lat", "lon"}:
            raise ValueError(f"{name} in {path} has dims {da.dims}; expected time, latitude, longitude")
        return da.transpose("time", "lat", "lon")
    lev = _level_dim(da, path)
    if set(da.dims) != {"time", lev, "lat", "lon"}:
        raise ValueError(f"{name} in {path} has dims {da.dims}; expected time, level, latitude, longitude")
    return da.transpose("time", lev, "lat", "lon")


def _drop_level(da: xr.DataArray, path=None) -> xr.DataArray:
    for d in LEVEL_DIMS:
        if d in da.dims:
            if da.sizes[d] != 1:
                raise ValueError(f"surface pressure in {path or 'data'} has {da.sizes[d]} levels along {d!r}")
            da = da.isel({d: 0}, drop=True)
        elif d in da.coords:
            da = da.drop_vars(d)
    return da


def _level_dim(da: xr.DataArray, path=None) -> str:
    found = [d for d in da.dims if d in LEVEL_DIMS]
    if len(found) != 1:
        raise ValueError(
            f"{da.name or 'field'}{' in ' + str(path) if path else ''} has dims {da.dims}; expected "
            f"one vertical dimension named one of {', '.join(LEVEL_DIMS)}"
        )
    return found[0]


def level_kind(coord: xr.DataArray) -> str:
    """``'pressure'`` or ``'model'`` from a level coordinate's name and attributes.

    Pressure: named ``pressure_level``/``isobaricInhPa``/``plev``, or units hPa/millibars/Pa, or a
    long/standard name mentioning pressure. Model: named ``model_level``/``hybrid`` or a long name
    mentioning model/hybrid levels. Otherwise ValueError asking for ``kind=``.
    """
    name = str(coord.name)
    if name in PRESSURE_LEVEL_DIMS:
        return "pressure"
    if name in MODEL_LEVEL_DIMS:
        return "model"
    units = normalise_units(coord.attrs.get("units", "")).lower()
    text = " ".join(str(coord.attrs.get(k, "")) for k in ("long_name", "standard_name")).lower()
    if "model" in text or "hybrid" in text:
        return "model"
    if units in _PRESSURE_UNITS or "pressure" in text:
        return "pressure"
    raise ValueError(
        f"cannot tell whether level coordinate {name!r} (attrs {dict(coord.attrs)}) holds pressure "
        "levels or model levels; pass kind='pressure' or kind='model'"
    )


# --------------------------------------------------------------------------- layer thickness


def pressure_level_thickness(p_levels: np.ndarray, sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layer thickness for pressure levels, and the level index whose values fill each layer.

    Parameters
    ----------
    p_levels : array (nlev,)
        Level pressures, Pa, ascending (top first).
    sp : array (...)
        Surface pressure, Pa.

    Returns
    -------
    dp : array (nlev, ...)
        Thickness (Pa) of the part of each level's layer that lies between the top level and the
        surface: edges at the midpoints of neighbouring levels, top edge at the top level, bottom
        edge at ``sp``; zero for layers wholly below the surface.
    src : array (nlev, ...) of int
        For each level, the level whose ``q V`` fills its layer: itself if above the surface
        (``p <= sp``), otherwise the lowest level above the surface (the column's bottom part is
        filled from the lowest level above ground). Columns: ``sum(dp) == sp - p_top`` where
        ``sp > p_top``.
    """
    p = np.asarray(p_levels, dtype=np.float64)
    sp = np.asarray(sp, dtype=np.float64)
    nlev = p.size
    mid = 0.5 * (p[1:] + p[:-1])
    upper = np.concatenate([[p[0]], mid])  # top edge of each layer
    lower = np.concatenate([mid, [np.inf]])  # bottom edge; the last layer reaches the surface
    shape = (nlev,) + (1,) * sp.ndim
    dp = np.minimum(lower.reshape(shape), sp[None]) - np.minimum(upper.reshape(shape), sp[None])
    dp = np.clip(dp, 0.0, None)
    n_above = (p.reshape(shape) <= sp[None]).sum(axis=0)  # levels at or above the surface
    k = np.arange(nlev).reshape(shape)
    src = np.clip(np.minimum(k, n_above[None] - 1), 0, None)
    return dp, src


def model_level_thickness(levels: np.ndarray, sp: np.ndarray, table: LevelsTable) -> np.ndarray:
    """Layer thickness (Pa) for a (possibly partial) set of model levels, shape (nlev, ...).

    Full set: exact model layers ``p_{k+1/2} - p_{k-1/2}``. Subset: edges between present levels
    are the true half level where the two are adjacent, else the midpoint of their full-level
    pressures; the lowest present level extends to the surface, the highest to the model top.
    """
    k = np.asarray(levels, dtype=int)
    if np.any(np.diff(k) <= 0):
        raise ValueError("model levels must be strictly ascending")
    if k[0] < 1 or k[-1] > table.nlev:
        raise ValueError(
            f"model levels {k[0]}..{k[-1]} lie outside the table's 1..{table.nlev}; "
            "is this the right levels table?"
        )
    ph = table.half_pressure(sp)  # (nlev_table + 1, ...)
    pf = 0.5 * (ph[k - 1] + ph[k])  # full-level pressure of each present level
    adjacent = (k[1:] == k[:-1] + 1).reshape((-1,) + (1,) * np.ndim(sp))
    inner = np.where(adjacent, ph[k[:-1]], 0.5 * (pf[1:] + pf[:-1]))
    edges = np.concatenate([ph[:1], inner, ph[-1:]], axis=0)  # top (0 Pa), ..., surface
    return np.diff(edges, axis=0)


def _units_factor(x: xr.DataArray, table: dict, what: str, default: str | None = None, lower=False) -> float:
    raw = x.attrs.get("units", default)
    if raw is None:
        return 1.0
    key = normalise_units(raw)
    key = key.lower() if lower else key
    if key not in table:
        raise ValueError(f"{what} has units {raw!r}; accepted: {', '.join(table)}")
    return table[key]
