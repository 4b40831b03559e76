"""Build canonical datasets from ERA5 files: the library side of ``ppviz data prepare`` and
``ppviz data vimd``.

- :func:`prepare_dataset`: ``tp`` from a single-level file, ``vimd`` either read from a
  single-level file or computed from ``q``, ``u``, ``v`` on levels and ``sp``
  (:func:`ppviz.data.vimd.vimd_from_levels`); returns the canonical dataset.
- :func:`compute_vimd_file`: only the computed ``vimd``, as a dataset that
  :func:`ppviz.data.era5.read_single_level` reads back (units ``mm h-1``).

Every path argument may also be a list of paths (e.g. one file per day); they are concatenated
along time. Level inputs may be given as DataArrays instead of paths.

Note on timing: ERA5 ``tp``/``vimd`` are accumulations over the hour ending at the time stamp,
a VIMD computed from levels is instantaneous at the time stamp; the two are paired by time
stamp as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.canonical import canonical_dataset
from ppviz.data.era5 import read_single_level
from ppviz.data.grid import Grid
from ppviz.data.levels import LevelsTable, open_level_file
from ppviz.data.vimd import vimd_from_levels

LICENCE = "Generated using Copernicus Climate Change Service information"


def _paths(p) -> list[Path]:
    if isinstance(p, (str, Path)):
        return [Path(p)]
    if isinstance(p, Sequence) and p and all(isinstance(x, (str, Path)) for x in p):
        return [Path(x) for x in p]
    raise TypeError(f"expected a path or a list of paths, got {type(p).__name__}")


def _names(p) -> str:
    return ", ".join(x.name for x in _paths(p))


def _concat_time(parts: list[xr.DataArray], what: str) -> xr.DataArray:
    if len(parts) == 1:
        return parts[0]
    da = xr.concat(parts, dim="time", join="exact").sortby("time")
    t = da.time.values
    if np.any(t[1:] == t[:-1]):
        raise ValueError(f"the {what} files overlap in time (duplicate time stamps)")
    return da


def _read_single(p, variable: str) -> xr.DataArray:
    return _concat_time([read_single_level(x, variable) for x in _paths(p)], variable)


def _level_input(x, variable: str):
    """A level field from a DataArray, a path or a list of paths; and a label for provenance."""
    if isinstance(x, xr.DataArray):
        return x, f"<{variable} array>"
    parts = [open_level_file(p, variable) for p in _paths(x)]
    return _concat_time(parts, variable), _names(x)


def hour_mean(inst: xr.DataArray) -> xr.DataArray:
    """Mean over the hour ending at each step: (x(t - 1 h) + x(t)) / 2.

    VIMD from levels is instantaneous, while ERA5's ``tp`` and ``vimd`` are accumulated over the
    hour ending at the time stamp; the trapezoid mean puts the computed VIMD on the same footing.
    A step without its predecessor (the first one, or after a gap) keeps its instantaneous value.
    """
    t = inst["time"].values
    prev_ok = np.zeros(t.size, dtype=bool)
    prev_ok[1:] = (t[1:] - t[:-1]) == np.timedelta64(1, "h")
    prev = inst.shift(time=1)
    out = xr.where(xr.DataArray(prev_ok, dims="time"), 0.5 * (inst + prev), inst)
    out.attrs = dict(inst.attrs)
    out.attrs["cell_methods"] = "time: mean (trapezoid over the hour ending at the time stamp)"
    return out.astype(inst.dtype).transpose(*inst.dims)


def _computed_vimd(q, u, v, sp, levels, kind):
    given = {"q": q, "u": u, "v": v, "sp": sp}
    missing = [k for k, val in given.items() if val is None]
    if missing:
        raise ValueError(
            f"computing VIMD needs q, u, v and sp; missing: {', '.join(missing)} "
            "(or give a vimd file instead)"
        )
    fields, labels = {}, {}
    for k, val in given.items():
        fields[k], labels[k] = _level_input(val, k)
    vimd = hour_mean(vimd_from_levels(fields["q"], fields["u"], fields["v"], fields["sp"], levels, kind=kind))
    kind_used = vimd.attrs["vertical_coordinate"]
    label = (
        f"computed from q/u/v on {kind_used} levels ({labels['q']}; {labels['u']}; "
        f"{labels['v']}) and sp ({labels['sp']}), averaged over the hour ending at each step"
        + (
            f" with levels table {Path(levels).name}"
            if kind_used == "model" and not isinstance(levels, LevelsTable)
            else ""
        )
    )
    return vimd, label


def prepare_dataset(
    tp_path,
    vimd_path=None,
    q=None,
    u=None,
    v=None,
    sp=None,
    levels=None,
    *,
    kind: str | None = None,
) -> xr.Dataset:
    """The canonical dataset (``tp``, ``vimd`` in mm/h) from ERA5 files.

    Parameters
    ----------
    tp_path : path or list of paths
        Single-level file(s) with ``tp`` (or ``mtpr``; see :func:`read_single_level`).
    vimd_path : path or list of paths, optional
        Single-level file(s) with ``vimd`` (or ``mvimd``). Give either this or ``q, u, v, sp``.
    q, u, v : path(s) or xr.DataArray, optional
        Specific humidity and wind on pressure or model levels.
    sp : path(s) or xr.DataArray, optional
        Surface pressure (Pa) (or ``lnsp``).
    levels : path or LevelsTable, optional
        The L137 table, needed for model levels (``--levels L137.csv``).
    kind : {None, 'pressure', 'model'}
        Override the detected vertical coordinate.

    Returns
    -------
    xr.Dataset
        Canonical and validated; ``attrs['source']`` names ERA5 and the files, and
        ``attrs['vimd_method']`` says whether VIMD was read or computed.
    """
    level_inputs = [x for x in (q, u, v, sp) if x is not None]
    if vimd_path is not None and level_inputs:
        raise ValueError("give either a vimd file or q, u, v and sp to compute it, not both")
    if vimd_path is None and not level_inputs:
        raise ValueError("VIMD needs either a vimd file (--vimd) or q, u, v and sp (--q --u --v --sp)")
    tp = _read_single(tp_path, "tp")
    if vimd_path is not None:
        vimd = _read_single(vimd_path, "vimd")
        method = f"read from {_names(vimd_path)}"
    else:
        vimd, method = _computed_vimd(q, u, v, sp, levels, kind)
    n_tp, n_vimd = tp.sizes["time"], vimd.sizes["time"]
    ds = canonical_dataset(
        tp,
        vimd,
        source=f"ERA5: tp from {_names(tp_path)}; vimd {method}",
        vimd_method=method,
        licence=LICENCE,
    )
    if ds.sizes["time"] < max(n_tp, n_vimd):
        ds.attrs["time_note"] = (
            f"tp had {n_tp} and vimd {n_vimd} time steps; kept the {ds.sizes['time']} they share"
        )
    return ds


def compute_vimd_file(q, u, v, sp, levels=None, *, kind: str | None = None) -> xr.Dataset:
    """VIMD from levels as a dataset with one variable ``vimd`` (mm/h, CF attributes).

    Arguments as :func:`prepare_dataset`. The result has dims (time, lat, lon), latitude
    ascending, and reads back with ``read_single_level(path, 'vimd')``.
    """
    vimd, method = _computed_vimd(q, u, v, sp, levels, kind)
    ds = vimd.to_dataset(name="vimd")
    try:
        ds = ds.assign_coords(Grid.from_coords(ds.lat.values, ds.lon.values).coords())
    except ValueError:
        pass
    ds["time"].attrs = {"standard_name": "time", "long_name": "time"}
    ds.attrs = {
        "Conventions": "CF-1.8",
        "title": "vertically integrated moisture divergence from ERA5 levels",
        "source": f"ERA5: vimd {method}",
        "licence": LICENCE,
        "comment": vimd.attrs.get("comment", ""),
    }
    return ds
