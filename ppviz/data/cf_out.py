"""CF-clean output: what every file ppviz writes goes through before :func:`ppviz.data.canonical.write_dataset`.

ppviz declares ``Conventions = "CF-1.8"`` (:data:`CONVENTIONS`) and its files pass the IOOS
compliance-checker's ``cf:1.8`` suite with no high- or medium-priority message
(``tests/test_cf_out.py`` runs the checker on every file a command writes). :func:`cf_ready` makes
a Dataset so, without changing any value:

- data types CF-1.8 allows: 64-bit integers become ``int`` (32-bit) when every value fits, else
  decimal text (the 63-bit ``member_seed``); booleans become ``byte``; times are written as
  ``int`` hours (or ``double`` hours when not whole) since 1970-01-01, ``standard`` calendar;
- no ``_FillValue`` on coordinate variables;
- string-valued dimensions (``forecast``, ``source``...) as an auxiliary label variable
  ``<dim>_label`` (a CF coordinate variable must be numeric and monotonic);
  :func:`restore_labels` turns them back into index coordinates when reading;
- ``time``, ``lat``, ``lon`` with ``standard_name``, ``units`` and ``axis``; other latitude and
  longitude coordinates (``lat_coarse``...) with ``standard_name`` and ``units``;
- a ``long_name`` on every variable that has neither one nor a ``standard_name``;
- global ``Conventions``, ``title`` and ``history`` when missing.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import xarray as xr

__all__ = ["CONVENTIONS", "LABEL_SUFFIX", "cf_ready", "restore_labels"]

CONVENTIONS = "CF-1.8"
LABEL_SUFFIX = "_label"
TIME_UNITS = "hours since 1970-01-01 00:00:00"
_INT32 = np.iinfo(np.int32)


def _int_ok(values) -> bool:
    v = np.asarray(values)
    return v.size == 0 or (int(v.min()) >= _INT32.min and int(v.max()) <= _INT32.max)


def _whole_hours(values) -> bool:
    t = np.asarray(values, dtype="datetime64[ns]")
    ok = ~np.isnat(t)
    return bool(np.all((t[ok].astype(np.int64) % 3_600_000_000_000) == 0))


def _axis_attrs(name: str, var: xr.Variable, is_dim: bool) -> dict:
    base = name.split("_")[0]
    if name == "time" or (np.issubdtype(var.dtype, np.datetime64) and is_dim):
        return {"standard_name": "time", "long_name": var.attrs.get("long_name", "time"), "axis": "T"}
    for prefix, std, units, axis in (("lat", "latitude", "degrees_north", "Y"), ("lon", "longitude", "degrees_east", "X")):
        if base == prefix and var.ndim == 1:
            out = {"standard_name": std, "units": units}
            if name == prefix:
                out["axis"] = axis
            return out
    return {}


def cf_ready(ds: xr.Dataset, *, title: str | None = None) -> tuple[xr.Dataset, dict]:
    """``ds`` made CF-1.8 clean (see the module docstring) and the netCDF/zarr encoding to write it with.

    Parameters
    ----------
    ds : xarray.Dataset
        Any Dataset ppviz is about to write (not modified).
    title : str, optional
        Global ``title`` when ``ds`` has none (default: ``"ppviz output"``).

    Returns
    -------
    (xarray.Dataset, dict)
        The Dataset to write and ``encoding`` (per variable: ``_FillValue``, time ``units``,
        ``calendar``, ``dtype``).
    """
    out = ds.copy()
    for dim in [d for d in out.dims if d in out.coords and out[d].dtype.kind in "OUS"]:
        labels = out[dim].values.astype(str)
        out = out.drop_vars(dim).assign_coords({f"{dim}{LABEL_SUFFIX}": (dim, labels, {"long_name": f"{dim} name"})})
    enc: dict[str, dict] = {}
    for name in list(out.variables):
        var = out[name].variable
        is_dim = name in out.dims
        e = {}
        if np.issubdtype(var.dtype, np.datetime64):
            whole = _whole_hours(var.values)
            e.update(units=TIME_UNITS, calendar="standard", dtype="int32" if whole else "float64")
        elif var.dtype.kind == "b":
            out[name] = out[name].astype(np.int8)
        elif var.dtype.kind in "iu" and var.dtype.itemsize == 8 or (var.dtype.kind == "u" and var.dtype.itemsize == 4):
            if _int_ok(var.values):
                out[name] = out[name].astype(np.int32)
            else:
                out[name] = out[name].copy(data=np.asarray(var.values).astype(str).astype(object))
        if is_dim or var.dtype.kind not in "fc":
            e["_FillValue"] = None
        attrs = dict(out[name].attrs)
        attrs.update(_axis_attrs(name, var, is_dim))
        if "standard_name" not in attrs and "long_name" not in attrs:
            attrs["long_name"] = name.replace("_", " ")
        for k in ("units", "calendar") if "units" in e else ():
            attrs.pop(k, None)
        out[name].attrs = attrs
        out[name].encoding = {k: v for k, v in out[name].encoding.items()
                              if k not in ("units", "calendar", "dtype", "_FillValue", "missing_value")}
        enc[name] = e
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = dict(out.attrs)
    attrs["Conventions"] = CONVENTIONS
    attrs.setdefault("title", title or "ppviz output")
    if not str(attrs.get("history", "")).strip():
        attrs["history"] = f"{now}: written by ppviz"
    out.attrs = attrs
    return out, enc


def restore_labels(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`cf_ready`'s label variables: ``<dim>_label`` (dim) becomes the index coordinate ``dim``."""
    for name in [v for v in ds.variables if str(v).endswith(LABEL_SUFFIX)]:
        dim = str(name)[: -len(LABEL_SUFFIX)]
        if ds[name].dims == (dim,) and dim not in ds.coords:
            ds = ds.assign_coords({dim: ds[name].values.astype(str)}).drop_vars(name)
    return ds
