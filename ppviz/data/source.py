"""Where a command's data comes from: a dataset path, or the embedded synthetic default.

Every command that takes ``--data`` calls :func:`load_dataset`; with no path it opens (and on
first use writes, :func:`ensure_default_dataset`) the synthetic Europe dataset of
:mod:`ppviz.data.synthetic` in the cache directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.canonical import open_dataset
from ppviz.data.registry import (  # noqa: F401 - the synthetic store's helpers, re-exported
    DATA_DIR_ENV, DATA_ENV, DEFAULT_DAYS_ENV, cache_dir, dataset_path, default_dataset_path, default_days,
    URL_PREFIXES, ensure_default_dataset, is_dataset_name, open_any)
from ppviz.data.synthetic import DEFAULT_SEED

def load_default_dataset(days: int | None = None, seed: int = DEFAULT_SEED) -> xr.Dataset:
    """The default synthetic dataset, opened lazily (generated on first use).

    ``days`` defaults to ``$PPVIZ_SYNTH_DAYS`` (see :func:`default_days`), else 60.
    """
    if days is None:
        days = default_days()
    return open_dataset(ensure_default_dataset(days=days, seed=seed))


def load_dataset(data=None) -> xr.Dataset:
    """Open ``data``: a name of :mod:`ppviz.data.registry` (``synthetic``, ``era5-sample``,
    ``configured``), a canonical zarr/netCDF path or an ARCO-ERA5-layout zarr
    (:func:`ppviz.data.registry.open_any`), or None for the default dataset.

    The default is ``$PPVIZ_DATA`` when set (e.g. a dataset made by ``ppviz data prepare``),
    otherwise the embedded synthetic Europe, written to the cache on first use.
    """
    return open_any(data_path(data))


def data_path(data=None) -> Path | str:
    """Where :func:`load_dataset` reads ``data`` from (a dataset name is resolved by the registry;
    a remote store's URL is kept as text)."""
    if data is not None and str(data).startswith(URL_PREFIXES):
        return str(data)
    if data is None or str(data) in ("", "default"):
        return default_data_path()
    if is_dataset_name(data):
        return dataset_path(str(data))
    return Path(data)


def default_data_path() -> Path:
    """Where :func:`load_dataset` with no argument reads from: ``$PPVIZ_DATA`` or the synthetic
    store in the cache (generating it on first use)."""
    from ppviz.data.registry import default_name

    return dataset_path(default_name())


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
