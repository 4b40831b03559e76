"""Predictions made elsewhere as a source of the Downscale views and of the A/B against a checkpoint.

A predictions file (CorrDiff, Earth2Studio, CF, cfgrib ensembles; :mod:`ppviz.data.predictions`)
is opened only below the roots of ``$PPVIZ_EVAL_ROOTS``, by the Evaluation page's own
:func:`ppviz.views.evaluation.open_predictions_file` (one rule for every path a browser names).
:func:`external_run` turns one of its times into the objects the Downscale figures draw from a
ppviz run: an :class:`ExternalRun` whose ``ensemble`` has ``tp_members`` (M, H, W) in mm/h on the
predictions' own grid, no baselines, and ``inputs`` with the truth when the file has one; the
parts only ppviz's chain makes (coarse input, PP latent, trajectory) are None, and the pages say
:data:`NOT_IN_SOURCE` there. Mean, spread, spectra, quantiles and CRPS are those of
:mod:`ppviz.views.curves` (:func:`ppviz.spectral.rapsd`, :func:`ppviz.metrics.pooled_quantiles`,
:func:`ppviz.metrics.crps_ensemble`), the same code as for a ppviz run.

Times are the predictions' own (hourly, daily... as labelled by the reader); the region is the
predictions' grid, or its part inside a chosen region. The A/B (:func:`ab_plan`, :func:`ab_run`)
needs hourly predictions on the data's grid: the checkpoint runs over the whole 1 deg cells of the
data grid inside the predictions (and the chosen region), at the same hour, and the predictions'
members on exactly those cells are compared with it against the data's truth.
"""

from __future__ import annotations

import threading
import time as _time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.cf import GRID_TOL_DEG
from ppviz.data.grid import Grid
from ppviz.data.regions import Region
from ppviz.views.runs import ShownRun

__all__ = ["NOT_IN_SOURCE", "ExternalRun", "PredictionsSource", "ab_plan", "ab_run", "external_run", "open_source",
           "pick_time", "predictions_grid", "source_region", "time_options"]

NOT_IN_SOURCE = "not in this source"
MIN_POINTS = 4  # grid points along each axis a view needs (spectra of fewer are meaningless)
_CACHE_ITEMS = 8
_opened: OrderedDict = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class PredictionsSource:
    """Which predictions to show: a file below the allowed roots and how to read it (empty: found)."""

    path: str
    var: str = ""
    units: str = ""
    truth: str = ""

    @property
    def name(self) -> str:
        return Path(str(self.path).strip()).name


@dataclass
class ExternalInputs:
    """What the Downscale figures read from :class:`ppviz.pipeline.CoarseInput`: the time, the
    region (on the predictions' grid) and the truth (H, W) in mm/h when the file has one; the
    coarse input and PP are None (not in this source)."""

    time: pd.Timestamp
    region: Region
    truth_tp: np.ndarray | None = None
    coarse_tp = None
    coarse_pp = None
    truth_pp = None
    truth_vimd = None
    coarse_cond = None


@dataclass
class ExternalEnsemble:
    """The members of one time, shaped like :class:`ppviz.pipeline.Ensemble` (no PP, no baselines)."""

    inputs: object  # ExternalInputs, or a ppviz run's CoarseInput in the A/B
    tp_members: np.ndarray  # (M, H, W) mm/h
    settings: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    pp_members = None
    seeds = ()


@dataclass
class ExternalRun(ShownRun):
    """One time of a predictions file, drawn like a :class:`ppviz.views.runs.EnsembleRun`.

    ``info`` holds the reader's attributes (``predictions_var``, ``truth_var``, ``time_step``,
    ``units_in``...); ``own_truth`` is the file's truth when ``ensemble.inputs`` carries another
    (the data's, in the A/B)."""

    source: PredictionsSource
    ensemble: ExternalEnsemble
    info: dict
    seconds: float = 0.0
    own_truth: np.ndarray | None = None
    trajectory = None

    @property
    def label(self) -> str:
        """``file: variable``, e.g. ``corrdiff.nc: prediction/precip``."""
        return f"{self.source.name}: {self.info.get('predictions_var', '?')}"

    @property
    def caption(self) -> str:
        return f"predictions {self.label} ({self.info.get('time_step', '?')}, {self.members} members)"

    def to_dataset(self) -> xr.Dataset:
        """The shown members (member, time=1, lat, lon) and truth (time=1, lat, lon), mm/h, CF attributes."""
        inp = self.ensemble.inputs
        coords = {"member": ("member", np.arange(self.members, dtype=np.int32), {"long_name": "ensemble member"}),
                  "time": ("time", [np.datetime64(inp.time, "ns")], {"standard_name": "time"}),
                  **inp.region.fine_grid.coords()}
        rate = {"units": "mm h-1", "standard_name": "lwe_precipitation_rate"}
        v = {"tp": (("member", "time", "lat", "lon"), self.ensemble.tp_members[:, None],
                    {**rate, "long_name": f"predictions {self.info.get('predictions_var', '')}"})}
        if inp.truth_tp is not None:
            v["tp_truth"] = (("time", "lat", "lon"), inp.truth_tp[None], {**rate, "long_name": "truth"})
        out = xr.Dataset(v, coords=coords)
        out.attrs = {"Conventions": "CF-1.8", "title": f"ppviz view of {self.caption}",
                     "source": str(self.source.path), "time_step": str(self.info.get("time_step", ""))}
        return out


def open_source(source: PredictionsSource, roots=None) -> xr.Dataset:
    """The predictions of ``source`` (:func:`ppviz.views.evaluation.open_predictions_file`: only below
    the allowed roots; one member and any number of times allowed; the truth optional), lazily;
    kept per process until the file changes."""
    from ppviz.views.evaluation import allowed_roots, open_predictions_file

    roots_now = tuple(str(r) for r in (allowed_roots() if roots is None else roots))
    p = Path(str(source.path).strip()).expanduser()
    try:
        stamp = p.resolve().stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (source, roots_now, stamp)
    with _lock:
        if key in _opened:
            _opened.move_to_end(key)
            return _opened[key]
    ds = open_predictions_file(source.path, truth=source.truth, var=source.var, units=source.units, roots=roots,
                               min_members=1, max_times=None, truth_required=False)
    with _lock:
        _opened[key] = ds
        while len(_opened) > _CACHE_ITEMS:
            _opened.popitem(last=False)
    return ds


def _times(ds: xr.Dataset) -> pd.DatetimeIndex:
    t = ds["time"].values
    if not np.issubdtype(t.dtype, np.datetime64):
        raise ValueError(f"{ds.attrs.get('predictions', 'the predictions')}: time is not a date (values {t[:3]}); "
                         "needed CF time units such as 'hours since 1990-01-01'")
    return pd.DatetimeIndex(t)


def time_options(ds: xr.Dataset) -> dict[str, str]:
    """``{label: value}`` of the predictions' times: ``2021-01-01 06:00`` -> ``2021-01-01T06:00``."""
    return {f"{t:%Y-%m-%d %H:%M}": t.strftime("%Y-%m-%dT%H:%M") for t in _times(ds)}


def pick_time(ds: xr.Dataset, when=None) -> pd.Timestamp:
    """The predictions' time ``when`` (None or empty: the first); ValueError naming the file's times."""
    from ppviz.data.source import parse_time

    times = _times(ds)
    if when is None or not str(when).strip():
        return times[0]
    t = parse_time(when)
    if t not in times:
        raise ValueError(f"time {t:%Y-%m-%d %H:%M} is not in {ds.attrs.get('predictions', 'the predictions')}: its "
                         f"{times.size} {ds.attrs.get('time_step', '')} times are {times[0]:%Y-%m-%d %H:%M} .. "
                         f"{times[-1]:%Y-%m-%d %H:%M}")
    return t


def _step(v: np.ndarray, axis: str, where: str) -> float:
    d = np.diff(np.asarray(v, np.float64))
    if v.size < MIN_POINTS:
        raise ValueError(f"{where} has {v.size} {axis} points; the views need at least {MIN_POINTS}")
    if not np.allclose(d, d[0], atol=GRID_TOL_DEG):
        raise ValueError(f"{where}: {axis} steps are not uniform ({d.min():.4g}..{d.max():.4g} deg); needed a "
                         "regular latitude-longitude grid (regrid the predictions)")
    return float(d[0])


def predictions_grid(ds: xr.Dataset) -> Grid:
    """The predictions' regular grid (equal lat and lon steps, at least 4 x 4 points); ValueError otherwise."""
    where = str(ds.attrs.get("predictions", "the predictions"))
    lat, lon = ds["lat"].values, ds["lon"].values
    dlat, dlon = _step(lat, "latitude", where), _step(lon, "longitude", where)
    if abs(dlat - dlon) > GRID_TOL_DEG:
        raise ValueError(f"{where}: the grid has a latitude step of {dlat:g} deg and a longitude step of {dlon:g} "
                         "deg; the maps and power spectra need square cells (equal steps): regrid the predictions")
    return Grid(lat_start=float(lat[0]), lon_start=float(lon[0]), res=dlat, nlat=lat.size, nlon=lon.size)


def source_region(ds: xr.Dataset, region: Region | None = None) -> Region:
    """The predictions' whole grid as a :class:`ppviz.data.regions.Region`, or (``region`` given) the
    part of it whose cell centres lie inside ``region``; ValueError when that part has fewer than
    4 x 4 points, naming both extents."""
    from ppviz.data.predictions import grid_text

    grid = predictions_grid(ds)
    lat, lon = grid.lat, grid.lon
    if region is None:
        return Region(name="custom", title=f"predictions grid ({lat[0]:g}-{lat[-1]:g}N, {lon[0]:g}-{lon[-1]:g}E)",
                      i0=0, i1=grid.nlat, j0=0, j1=grid.nlon, grid=grid, factor=1)
    lat0, lat1, lon0, lon1 = region.bounds
    i = np.flatnonzero((lat > lat0) & (lat < lat1))
    j = np.flatnonzero((lon > lon0) & (lon < lon1))
    if i.size < MIN_POINTS or j.size < MIN_POINTS:
        raise ValueError(f"region {region.title} (lat {lat0:g}..{lat1:g}, lon {lon0:g}..{lon1:g}) holds {i.size} x "
                         f"{j.size} points of the predictions' grid ({grid_text(ds)}); needed at least {MIN_POINTS} x "
                         f"{MIN_POINTS}: choose a region over the predictions, or show their whole grid")
    return Region(name="custom", title=f"{region.title} x predictions grid", i0=int(i[0]), i1=int(i[-1]) + 1,
                  j0=int(j[0]), j1=int(j[-1]) + 1, grid=grid, factor=1)


def _finite(x: np.ndarray, what: str, t, where: str) -> np.ndarray:
    bad = int(np.size(x) - np.isfinite(x).sum())
    if bad:
        raise ValueError(f"{where}: {what} at {t:%Y-%m-%d %H:%M} has {bad} missing (NaN) values in the region; the "
                         "maps and spectra need complete fields: choose another time or a region without gaps")
    return x


def external_run(source: PredictionsSource, when=None, region: Region | None = None, roots=None) -> ExternalRun:
    """The members (and truth) of ``source`` at ``when`` over its grid (or its part in ``region``).

    Raises ValueError, naming the file and what is allowed, for a file outside the roots or
    unreadable, a time not in it, a grid the views cannot draw, or missing values.
    """
    t0 = _time.perf_counter()
    ds = open_source(source, roots)
    t = pick_time(ds, when)
    reg = source_region(ds, region)
    k = int(_times(ds).get_loc(t))
    box = {"lat": slice(reg.i0, reg.i1), "lon": slice(reg.j0, reg.j1)}
    where = str(ds.attrs.get("predictions", source.path))
    members = _finite(np.asarray(ds["tp"].isel(time=k, **box).values, np.float32), "the members", t, where)
    truth = None
    if "tp_truth" in ds:
        truth = _finite(np.asarray(ds["tp_truth"].isel(time=k, **box).values, np.float32), "the truth", t, where)
    info = {key: ds.attrs.get(key, "") for key in ("predictions", "predictions_var", "truth_var", "time_step",
                                                   "time_step_hours", "units_in")}
    ens = ExternalEnsemble(ExternalInputs(t, reg, truth), members, settings={"source": "predictions", **info})
    return ExternalRun(source, ens, info, _time.perf_counter() - t0)


def _on_grid(ds: xr.Dataset, grid: Grid) -> None:
    """ValueError saying how the grids differ unless every predictions point is a point of ``grid``."""
    from ppviz.data.predictions import grid_text

    ok = True
    for v, start in ((ds["lat"].values, grid.lat_start), (ds["lon"].values, grid.lon_start)):
        k = (np.asarray(v, np.float64) - start) / grid.res
        ok &= bool(np.all(np.abs(k - np.round(k)) * grid.res <= GRID_TOL_DEG))
    if not ok:
        raise ValueError(f"the grids differ: predictions {grid_text(ds)}; the data's grid has points at "
                         f"{grid.lat_start:g} + k x {grid.res:g} deg N and {grid.lon_start:g} + k x {grid.res:g} deg E; "
                         "an A/B needs the predictions on the data's grid (regrid them, or view them alone on the "
                         "Downscale page)")


def ab_plan(source: PredictionsSource, when, region: Region, data: xr.Dataset, roots=None) -> tuple[pd.Timestamp, Region]:
    """``(hour, region)`` on which a ppviz checkpoint runs to compare with ``source``'s members.

    The hour is ``when`` (in the data and in the hourly predictions); the region is the largest
    block of whole coarse cells of ``region``'s grid inside both ``region`` and the predictions'
    grid, which must lie on that grid and inside ``data``. ValueError says which of these fails.
    """
    from ppviz.data.regions import data_extent
    from ppviz.data.source import select_time

    ds = open_source(source, roots)
    where = str(ds.attrs.get("predictions", source.path))
    hours = float(ds.attrs.get("time_step_hours") or 0.0)
    if hours and hours != 1.0:
        raise ValueError(f"{where} holds {ds.attrs.get('time_step')} predictions (rates over {hours:g} h); an A/B "
                         "against a ppviz checkpoint compares one hour and needs hourly predictions")
    t = pick_time(ds, when)
    _on_grid(ds, region.grid)
    lat0, lat1, lon0, lon1 = region.bounds
    lat, lon = ds["lat"].values, ds["lon"].values
    inside = xr.Dataset(coords={"lat": lat[(lat > lat0) & (lat < lat1)], "lon": lon[(lon > lon0) & (lon < lon1)]})
    if inside.sizes["lat"] == 0 or inside.sizes["lon"] == 0:
        raise ValueError(f"region {region.title} (lat {lat0:g}..{lat1:g}, lon {lon0:g}..{lon1:g}) does not overlap "
                         f"the predictions ({where}); choose a region over them")
    try:
        reg = data_extent(inside, region.grid)
    except ValueError as err:
        raise ValueError(f"the predictions' points inside region {region.title} {str(err).removeprefix('the data ')}"
                         "; the checkpoint runs on whole cells: choose predictions or a region with more") from None
    reg.subset(select_time(data, t))  # the hour and the cells are in the data (else ValueError)
    return t, reg


def ab_run(source: PredictionsSource, when, region: Region, a_run, roots=None) -> ExternalRun:
    """``source``'s members at ``when`` on exactly ``region``'s cells (see :func:`ab_plan`), with the
    inputs (truth) of the ppviz run ``a_run`` of the same hour and region; the file's own truth
    is kept as ``own_truth``."""
    run = external_run(source, when, region, roots)
    want = region.fine_grid
    got = run.ensemble.inputs.region.fine_grid
    if got.shape != want.shape or not (np.allclose(got.lat, want.lat, atol=GRID_TOL_DEG)
                                       and np.allclose(got.lon, want.lon, atol=GRID_TOL_DEG)):
        raise ValueError(f"the predictions do not hold every cell of region {region.slug_or_box}: {got.shape} points "
                         f"of its {want.shape}")
    run.own_truth = run.ensemble.inputs.truth_tp
    run.ensemble.inputs = a_run.ensemble.inputs
    return run
