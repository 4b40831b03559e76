"""Where a command's data comes from: a dataset path, or the embedded synthetic default.

Every command that takes ``--data`` calls :func:`load_dataset`; with no path it opens (and on
first use writes) the synthetic Europe dataset in the cache directory.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.canonical import open_dataset
from ppviz.data.synthetic import default_days, ensure_default_dataset

DATA_ENV = "PPVIZ_DATA"


def load_dataset(data=None) -> xr.Dataset:
    """Open ``data`` (a canonical zarr/netCDF path) or, when None, the default dataset.

    The default is ``$PPVIZ_DATA`` when set (e.g. a dataset made by ``ppviz data prepare``),
    otherwise the embedded synthetic Europe, written to the cache on first use.
    """
    if data is None and os.environ.get(DATA_ENV):
        data = os.environ[DATA_ENV]
    if data is None or str(data) in ("", "default", "synthetic"):
        path = ensure_default_dataset(days=default_days(), seed=0)
        return open_dataset(path)
    return open_dataset(data)


def default_data_path():
    """Where :func:`load_dataset` with no argument reads from: ``$PPVIZ_DATA`` or the synthetic
    store in the cache (generating it on first use)."""
    from pathlib import Path

    if os.environ.get(DATA_ENV) and os.environ[DATA_ENV] not in ("default", "synthetic"):
        return Path(os.environ[DATA_ENV])
    return Path(ensure_default_dataset(days=default_days(), seed=0))


def time_range_text(ds: xr.Dataset) -> str:
    t = pd.DatetimeIndex(ds.time.values)
    return f"{t[0]:%Y-%m-%d %H:%M} .. {t[-1]:%Y-%m-%d %H:%M} ({t.size} hourly steps)"


def parse_time(text) -> pd.Timestamp:
    """A timestamp from ``2021-01-05``, ``2021-01-05T12`` or ``2021-01-05 12:00``; ValueError if not."""
    try:
        ts = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError):
        ts = None
    if ts is None or pd.isna(ts):
        raise ValueError(f"{text!r} is not a date/time; use e.g. 2021-01-05 or 2021-01-05T12:00")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def select_time(ds: xr.Dataset, when) -> xr.Dataset:
    """The hourly step at ``when``; ValueError naming the data's range if it is not there."""
    ts = parse_time(when)
    times = pd.DatetimeIndex(ds.time.values)
    if ts < times[0] or ts > times[-1]:
        raise ValueError(f"time {ts:%Y-%m-%d %H:%M} is outside the data: {time_range_text(ds)}")
    idx = np.flatnonzero(times == ts)
    if idx.size == 0:
        near = times[np.argmin(np.abs(times - ts))]
        raise ValueError(
            f"time {ts:%Y-%m-%d %H:%M} is not a step of the data (nearest: {near:%Y-%m-%d %H:%M}); "
            f"data: {time_range_text(ds)}"
        )
    return ds.isel(time=int(idx[0]))


def select_times(ds: xr.Dataset, start, end=None) -> list[pd.Timestamp]:
    """The data's time steps from ``start`` to ``end`` inclusive (``end`` None: just ``start``)."""
    if end is None:
        return [pd.Timestamp(select_time(ds, start).time.values)]
    t0, t1 = parse_time(start), parse_time(end)
    if t1 < t0:
        raise ValueError(f"end {t1:%Y-%m-%d %H:%M} is before start {t0:%Y-%m-%d %H:%M}")
    times = pd.DatetimeIndex(ds.time.values)
    chosen = times[(times >= t0) & (times <= t1)]
    if chosen.size == 0:
        raise ValueError(f"no time steps between {t0:%Y-%m-%d %H:%M} and {t1:%Y-%m-%d %H:%M}; data: {time_range_text(ds)}")
    return list(chosen)
