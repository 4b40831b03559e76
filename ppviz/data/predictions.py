"""Predictions made elsewhere (``ppviz evaluate --predictions``): any ensemble file, as a ppviz downscale layout.

:func:`open_predictions` reads an ensemble of precipitation fields written by another system and
returns the layout :func:`ppviz.evaluation.evaluate_ensemble` scores: ``tp`` (member, time, lat,
lon) and ``tp_truth`` (time, lat, lon), both mm/h, lazily (dask). Layouts read as they are:

- PhysicsNeMo CorrDiff ``generate.py``: root dims ``time``, ``ensemble``, ``y``, ``x``; 2-D
  ``lat(y, x)``, ``lon(y, x)``; groups ``input/<var>``, ``truth/<var>`` (time, y, x) and
  ``prediction/<var>`` (ensemble, time, y, x), the group variables without attributes (give
  ``units``);
- Earth2Studio: ``(time, sample, lat, lon)`` or ``(ensemble, time, lead_time, sample, lat, lon)``,
  one array per variable (``tp`` in m), netCDF or zarr (several ensemble dims are one ensemble;
  ``lead_time``/``step`` is added to ``time``: valid times);
- CF files (``pr`` in kg m-2 s-1 with ``realization``), cfgrib files (``number``), ppviz's own.

How things are found (:mod:`ppviz.data.cf`): the variable by CF ``standard_name``, then common
names (``var`` overrides; ``group/name`` picks a group); the ensemble dim among
:data:`ppviz.data.cf.MEMBER_DIMS` (``member_dim`` overrides); the truth as ``<var>_truth`` or
``truth/<var>`` in the same file, or in ``truth`` (another file; ``truth_var`` overrides); units from
the variable's ``units`` (``units`` overrides the predictions' and fills in a truth without
units). Amounts (m, kg m-2) are divided by the time step, which also labels the run (hourly,
daily, N-hourly). Every refusal is a ValueError naming the file, what was found and what is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.data.cf import (
    GRID_TOL_DEG, LAT_NAMES, LON_NAMES, MEMBER_DIMS, PRECIP_NAMES, PRECIP_STANDARD_NAMES, find_member_dims, is_precip,
    regular_lat_lon, to_mm_per_hour,
)

__all__ = ["LEAD_DIMS", "grid_text", "open_predictions", "step_label"]

#: Lead-time dims (Earth2Studio, cfgrib, weatherbench2): added to ``time`` to give valid times.
LEAD_DIMS = ("lead_time", "step", "prediction_timedelta")
TRUTH_GROUPS = ("truth", "target", "targets", "observation", "observations")
PREDICTION_GROUPS = ("prediction", "predictions")


def _open_tree(path: Path) -> dict[str, xr.Dataset]:
    """Group path ('' for the root) -> Dataset, lazily; root coordinates attached to the groups' variables."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    engine = "zarr" if path.suffix == ".zarr" or path.is_dir() else None
    try:
        tree = xr.open_datatree(path, engine=engine, chunks={})
    except Exception as exc:  # every reader error means the same thing to the user
        raise ValueError(f"{path} is not a netCDF or zarr dataset ({type(exc).__name__})") from None
    groups = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=True)
        groups[node.path.strip("/")] = ds
    root = groups.get("", xr.Dataset())
    coordish = [v for v in root.variables if v in LAT_NAMES + LON_NAMES
                or root[v].attrs.get("standard_name") in ("latitude", "longitude", "time", "realization")]
    out = {}
    for g, ds in groups.items():
        ds = ds.set_coords([v for v in ds.data_vars if v in coordish or v in LAT_NAMES + LON_NAMES])
        extra = {v: root[v] for v in coordish + list(root.coords)
                 if v not in ds.variables and set(root[v].dims) <= set(ds.dims)}
        out[g] = ds.assign_coords(extra) if extra else ds
    return out


def _listing(tree: dict[str, xr.Dataset]) -> str:
    return "; ".join(f"{g or 'root'}: " + (", ".join(f"{v}{tuple(ds[v].dims)}" for v in ds.data_vars) or "none")
                     for g, ds in tree.items())


def _has_members(da, member_dim) -> bool:
    try:
        find_member_dims(da, member_dim)
        return True
    except ValueError:
        return False


def _named(tree, path: Path, var: str, flag: str) -> tuple[str, str]:
    """(group, name) of ``var`` (``name`` or ``group/name``); prediction groups win over others."""
    group, _, name = var.rpartition("/")
    hits = [(g, name) for g, ds in tree.items() if name in ds.data_vars and (not group or g == group.strip("/"))]
    if not hits:
        raise ValueError(f"{path} has no variable {var!r} ({flag}); variables: {_listing(tree)}")
    hits.sort(key=lambda h: (h[0] not in PREDICTION_GROUPS and flag == "--var", h[0] != ""))
    return hits[0]


def _find_predictions(tree, path: Path, var, member_dim) -> tuple[str, str]:
    if var:
        g, n = _named(tree, path, var, "--var")
        try:
            find_member_dims(tree[g][n], member_dim)
        except ValueError as err:
            raise ValueError(f"{path}: variable {var!r} {err}") from None
        return g, n
    found = [(is_precip(ds[v], v), g in PREDICTION_GROUPS, g, v) for g, ds in tree.items() for v in ds.data_vars
             if g not in TRUTH_GROUPS and is_precip(ds[v], v) and _has_members(ds[v], member_dim)]
    if not found:
        raise ValueError(
            f"{path} has no precipitation ensemble: variables {_listing(tree)}; needed a variable with standard_name "
            f"in {list(PRECIP_STANDARD_NAMES[:5])}... or named one of {list(PRECIP_NAMES[:4])}, with an ensemble "
            f"dim among {list(MEMBER_DIMS)}; name it with --var (and --member-dim)")
    found.sort(key=lambda f: (-f[0], not f[1]))
    best = [f for f in found if f[:2] == found[0][:2]]
    if len(best) > 1:
        names = [f"{g}/{v}" if g else v for _, _, g, v in best]
        raise ValueError(f"{path} has several precipitation ensembles {names}; choose one with --var")
    return best[0][2], best[0][3]


def _find_truth(tree, path: Path, pred_name: str, truth_var, member_dim, same_file: bool,
                required: bool = True) -> tuple[str, str] | None:
    if truth_var:
        return _named(tree, path, truth_var, "--truth-var")
    ok = [(g, v) for g, ds in tree.items() for v in ds.data_vars if not _has_members(ds[v], member_dim)]
    for want in ([(g, v) for g, v in ok if v == f"{pred_name}_truth"],
                 [(g, v) for g, v in ok if g in TRUTH_GROUPS and v == pred_name],
                 [] if same_file else [(g, v) for g, v in ok if v == pred_name],
                 [] if same_file else [(g, v) for g, v in ok if is_precip(tree[g][v], v) == 2],
                 [] if same_file else [(g, v) for g, v in ok if is_precip(tree[g][v], v) == 1]):
        if len(want) == 1:
            return want[0]
        if len(want) > 1:
            raise ValueError(f"{path} has several candidate truths {[f'{g}/{v}' for g, v in want]}; "
                             "choose one with --truth-var")
    if not required:
        return None
    where = (f"'{pred_name}_truth' or 'truth/{pred_name}'" if same_file
             else f"'{pred_name}' or a precipitation variable without an ensemble dim")
    raise ValueError(f"{path} has no truth for {pred_name!r}: looked for {where}; variables: {_listing(tree)}; "
                     "give --truth FILE and/or --truth-var NAME")


def _valid_time(da: xr.DataArray, path: Path, what: str, members: list[str]) -> xr.DataArray:
    """``da`` with one ``time`` dim of valid times (lead dims added in); other extra dims must be of size 1."""
    for d in [d for d in da.dims if d not in (*members, "lat", "lon", "time", *LEAD_DIMS)]:
        if da.sizes[d] != 1:
            raise ValueError(f"{path}: {what} has a dim {d!r} of size {da.sizes[d]}; needed (ensemble, time, lat, "
                             f"lon) with at most a lead time ({'/'.join(LEAD_DIMS)}); dims {dict(da.sizes)}")
        da = da.isel({d: 0}, drop=True)
    if "time" not in da.dims:
        da = da.expand_dims("time") if "time" in da.coords else da.expand_dims(time=[0])
    lead = [d for d in da.dims if d in LEAD_DIMS]
    if lead:
        (ld,) = lead
        t, dt = da["time"].values, da[ld].values
        if not np.issubdtype(dt.dtype, np.timedelta64):
            raise ValueError(f"{path}: {what}'s {ld} is not a time span (dtype {dt.dtype}); needed units like 'hours'")
        valid = (t[:, None] + dt[None, :]).ravel()
        da = da.drop_vars([c for c in da.coords if set(da[c].dims) & {"time", ld}])
        da = da.stack(_vt=("time", ld)).drop_vars(["_vt", "time", ld], errors="ignore").rename(_vt="time")
        if np.unique(valid).size != valid.size:
            raise ValueError(f"{path}: {what}'s valid times (time + {ld}) repeat; select one {ld} or one time")
        da = da.assign_coords(time=valid)
    return da.sortby("time")


def _step_hours(time: np.ndarray) -> float | None:
    """The (uniform) step of datetime ``time`` in hours; None for one time, numbers or irregular steps."""
    if time.size < 2 or not np.issubdtype(time.dtype, np.datetime64):
        return None
    d = np.diff(time).astype("timedelta64[s]").astype(np.float64) / 3600.0
    return float(d[0]) if np.allclose(d, d[0]) and d[0] > 0 else None


def step_label(hours: float | None) -> str:
    """``hourly``, ``daily``, ``6-hourly``..., or ``single time`` / ``irregular`` when there is no one step."""
    if hours is None:
        return "single time or irregular"
    return {1.0: "hourly", 24.0: "daily"}.get(hours, f"{hours:g}-hourly")


def _to_rate(da: xr.DataArray, path: Path, what: str, units, step) -> tuple[xr.DataArray, str]:
    u = units or da.attrs.get("units")
    if not u:
        raise ValueError(f"{path}: {what} has no units attribute; needed --units (e.g. 'mm h-1', 'kg m-2 s-1', 'm')")
    try:
        factor = float(to_mm_per_hour(np.array([1.0]), str(u), step)[0])
    except ValueError as err:
        raise ValueError(f"{path}: {what}: {err}") from None
    out = (da.astype(np.float32) * np.float32(factor)).astype(np.float32)
    out.attrs = {"units": "mm h-1", "standard_name": "lwe_precipitation_rate", "source_units": str(u)}
    return out, str(u)


def grid_text(da) -> str:
    """``lat a..b (n points, step s), lon ...`` of a DataArray or Dataset with 1-D lat/lon (for messages)."""
    def axis(c):
        v = da[c].values
        step = f", step {np.median(np.diff(v)):.4g}" if v.size > 1 else ""
        return f"{c} {v[0]:.4g}..{v[-1]:.4g} ({v.size} points{step})"
    return f"{axis('lat')}, {axis('lon')}"


def _match_grid(truth: xr.DataArray, pred: xr.DataArray, where: str) -> xr.DataArray:
    """``truth`` on ``pred``'s lat/lon (equal, or a sub-grid of the truth's), else ValueError saying how they differ."""
    idx = {}
    for c in ("lat", "lon"):
        tv, pv = truth[c].values, pred[c].values
        i = np.clip(np.searchsorted(tv, pv), 0, tv.size - 1)
        j = np.where(np.abs(tv[np.maximum(i - 1, 0)] - pv) < np.abs(tv[i] - pv), np.maximum(i - 1, 0), i)
        if np.max(np.abs(tv[j] - pv)) > GRID_TOL_DEG:
            raise ValueError(f"the grids differ: predictions {grid_text(pred)}; truth ({where}) {grid_text(truth)}; "
                             "needed the predictions' grid to be the truth's or a part of it (regrid one of them)")
        idx[c] = j
    return truth.isel(lat=idx["lat"], lon=idx["lon"]).assign_coords(lat=pred.lat, lon=pred.lon)


def open_predictions(path, *, truth=None, var: str | None = None, truth_var: str | None = None,
                     member_dim: str | None = None, units: str | None = None, time_chunk: int = 8,
                     truth_required: bool = True) -> xr.Dataset:
    """An ensemble file from another system as ``tp`` (member, time, lat, lon) + ``tp_truth`` (time, lat, lon), mm/h.

    Parameters
    ----------
    path : str or Path
        netCDF (groups allowed) or zarr file with the predictions.
    truth : str or Path, optional
        File with the truth (default: the same file, ``<var>_truth`` or ``truth/<var>``).
    var, truth_var : str, optional
        Variable names (``name`` or ``group/name``); default: found by CF standard name, then name.
    member_dim : str, optional
        The ensemble dim (default: found among :data:`ppviz.data.cf.MEMBER_DIMS`).
    units : str, optional
        UDUNITS units of the predictions (overriding the file's), also used for a truth without units.
    time_chunk : int
        Time steps per dask chunk.
    truth_required : bool
        False: a file without a truth (and no ``truth``/``truth_var`` given) gives ``tp`` alone
        (the dashboard shows such predictions; scoring needs the truth).

    Returns
    -------
    xarray.Dataset
        ``tp``, ``tp_truth`` (float32, mm/h, latitude ascending, longitude in [-180, 180)), the
        truth at the predictions' valid times (no ``tp_truth`` when none was found and
        ``truth_required`` is False; then ``truth_source`` and ``truth_var`` are empty); attributes ``predictions``, ``predictions_var``,
        ``truth_source``, ``truth_var``, ``units_in``, ``time_step`` (``hourly``, ``daily``...),
        ``time_step_hours``, ``member_dims``.
    """
    path = Path(path)
    tree = _open_tree(path)
    g, name = _find_predictions(tree, path, var, member_dim)
    label = f"{g}/{name}" if g else name
    pred = tree[g][name]
    members = find_member_dims(pred, member_dim)
    try:
        pred = regular_lat_lon(pred)
    except ValueError as err:
        raise ValueError(f"{path}: {label} {err}") from None
    pred = _valid_time(pred, path, label, members)
    if len(members) > 1:
        pred = pred.stack(member=members)
        pred = pred.drop_vars(["member", *members], errors="ignore")
    elif members[0] != "member":
        pred = pred.drop_vars(["member"], errors="ignore").rename({members[0]: "member"})
    pred = pred.drop_vars([c for c in pred.coords if c not in ("time", "lat", "lon")])
    pred = pred.assign_coords(member=np.arange(pred.sizes["member"])).transpose("member", "time", "lat", "lon")
    step = _step_hours(pred.time.values)
    tp, units_in = _to_rate(pred, path, label, units, step)

    tpath = Path(truth) if truth is not None else path
    ttree = tree if truth is None else _open_tree(tpath)
    found = _find_truth(ttree, tpath, name, truth_var, member_dim, truth is None,
                        required=truth_required or truth is not None or bool(truth_var))
    attrs = {"predictions": str(path), "predictions_var": label, "truth_source": "", "truth_var": "",
             "units_in": units_in, "time_step": step_label(step), "time_step_hours": step or 0.0,
             "member_dims": ",".join(members)}
    if found is None:
        out = xr.Dataset({"tp": tp}).chunk({"time": time_chunk})
        out.attrs = attrs
        return out
    tg, tname = found
    tlabel = f"{tg}/{tname}" if tg else tname
    t = ttree[tg][tname]
    try:
        t = _valid_time(regular_lat_lon(t), tpath, tlabel, [])
    except ValueError as err:
        raise ValueError(f"{tpath}: truth {tlabel} {str(err).removeprefix(f'{tpath}: ')}") from None
    tstep = _step_hours(t.time.values)
    if tstep is not None and step is not None and tstep != step:
        raise ValueError(f"{tpath}: truth {tlabel} has {step_label(tstep)} steps, the predictions {step_label(step)} "
                         "steps; needed a truth with the predictions' step")
    missing = np.setdiff1d(pred.time.values, t.time.values)
    if missing.size:
        raise ValueError(f"{tpath}: truth {tlabel} lacks {missing.size} of the {pred.sizes['time']} prediction times "
                         f"(first {missing[0]}); the truth covers {t.time.values[0]} .. {t.time.values[-1]}")
    t = t.sel(time=pred.time.values).drop_vars([c for c in t.coords if c not in ("time", "lat", "lon")])
    t = _match_grid(t, tp, f"{tpath} {tlabel}").transpose("time", "lat", "lon")
    tt, _ = _to_rate(t, tpath, f"truth {tlabel}", t.attrs.get("units") or units, step if tstep is None else tstep)
    out = xr.Dataset({"tp": tp, "tp_truth": tt}).chunk({"time": time_chunk})
    out.attrs = {**attrs, "truth_source": str(tpath), "truth_var": tlabel}
    return out
