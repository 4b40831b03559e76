"""Time on the Downscale page: a span of hours, its runs, one cell's time series, accumulations.

A *span* is ``hours`` consecutive hourly steps of the data from a start hour (cut at the end of
the data). Its runs are the same :class:`ppviz.request.DownscaleRequest` at each hour (so they
share the result cache with single-hour runs); the page plays them by writing each hour's
arrays into the drawn plots. Everything here works on finished
:class:`ppviz.views.runs.EnsembleRun` objects (arrays in mm/h, hourly steps).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

MAX_SPAN = 72  # hours a span may hold (each hour is one run)


def span_times(ds, start, hours: int) -> list[pd.Timestamp]:
    """The data's hourly steps from ``start`` (inclusive), at most ``hours`` of them.

    ValueError for ``hours`` outside 1..:data:`MAX_SPAN` or a start outside the data."""
    hours = int(hours)
    if not 1 <= hours <= MAX_SPAN:
        raise ValueError(f"span of {hours} hours (allowed: 1 to {MAX_SPAN})")
    t = pd.DatetimeIndex(ds.time.values)
    start = pd.Timestamp(start)
    if start < t[0] or start > t[-1]:
        raise ValueError(f"start {start:%Y-%m-%d %H:%M} is outside the data ({t[0]:%Y-%m-%d %H:%M} to "
                         f"{t[-1]:%Y-%m-%d %H:%M})")
    return list(t[(t >= start) & (t < start + pd.Timedelta(hours=hours))])


def span_requests(request, times) -> list:
    """``request`` at each of ``times`` (same checkpoint, region, members, steps, seed)."""
    return [replace(request, time=pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M"), end=None) for t in times]


def cell_index(region, lat: float, lon: float) -> tuple[int, int]:
    """``(i, j)``: the fine-grid cell of ``region`` holding (``lat``, ``lon``) (degrees); ValueError
    outside the region."""
    g = region.fine_grid
    lat0, lat1, lon0, lon1 = region.bounds
    if not (lat0 <= float(lat) <= lat1 and lon0 <= float(lon) <= lon1):
        raise ValueError(f"the point {float(lat):.2f}N, {float(lon):.2f}E is outside the region "
                         f"({lat0:g}-{lat1:g}N, {lon0:g}-{lon1:g}E)")
    i = int(np.argmin(np.abs(np.asarray(g.lat) - float(lat))))
    j = int(np.argmin(np.abs(np.asarray(g.lon) - float(lon))))
    return i, j


def cell_series(runs, i: int, j: int) -> dict:
    """One cell's values over the runs of a span (in the order given).

    Returns
    -------
    dict
        ``time`` (T,) datetime64; ``members`` (T, M), ``mean`` (T,), ``lo``/``hi`` (T,): the
        members' min and max, ``truth`` (T,) (NaN without a fine truth), ``bicubic`` (T,); all
        mm/h.
    """
    if not runs:
        raise ValueError("no computed hours in the span yet")
    members = np.stack([np.asarray(r.ensemble.tp_members[:, i, j], dtype=np.float64) for r in runs])
    truth = np.array([np.nan if r.ensemble.inputs.truth_tp is None else float(r.ensemble.inputs.truth_tp[i, j])
                      for r in runs])
    bicubic = np.array([float(r.ensemble.baselines["bicubic"][i, j]) if "bicubic" in r.ensemble.baselines
                        else np.nan for r in runs])
    return {"time": np.array([np.datetime64(r.time, "ns") for r in runs]), "members": members,
            "mean": members.mean(axis=1), "lo": members.min(axis=1), "hi": members.max(axis=1),
            "truth": truth, "bicubic": bicubic}


def accumulate(runs) -> dict:
    """Accumulated precipitation (mm) over the runs of a span, hourly rates summed.

    Returns ``members`` (M, H, W), ``mean`` (H, W) (ensemble mean of the accumulations),
    ``truth`` (H, W) or None, and ``hours`` (int).
    """
    if not runs:
        raise ValueError("no computed hours in the span yet")
    shapes = {r.ensemble.tp_members.shape for r in runs}
    if len(shapes) != 1:
        raise ValueError("the runs of a span must share members and region")
    members = np.sum([np.asarray(r.ensemble.tp_members, dtype=np.float64) for r in runs], axis=0)
    truths = [r.ensemble.inputs.truth_tp for r in runs]
    truth = None if any(t is None for t in truths) else np.sum([np.asarray(t, dtype=np.float64) for t in truths], axis=0)
    return {"members": members, "mean": members.mean(axis=0), "truth": truth, "hours": len(runs)}
