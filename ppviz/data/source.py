"""Where a command's data comes from: a dataset path, or the embedded synthetic default.

Every command that takes ``--data`` calls :func:`load_dataset`; with no path it opens (and on
first use writes, :func:`ensure_default_dataset`) the synthetic Europe dataset of
:mod:`ppviz.data.synthetic` in the cache directory.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.canonical import open_dataset, write_dataset
from ppviz.env import env_int
from ppviz.data.synthetic import DEFAULT_DAYS, DEFAULT_SEED, GENERATOR_VERSION, SynthParams, _params_text, synthesize

DATA_DIR_ENV = "PPVIZ_DATA_DIR"

def cache_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``data_dir``, else ``$PPVIZ_DATA_DIR``, else ``~/.cache/ppviz``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ppviz"


def default_dataset_path(
    days: int = DEFAULT_DAYS, seed: int = DEFAULT_SEED, data_dir: str | os.PathLike | None = None
) -> Path:
    """Where the synthetic dataset for (days, seed) lives: ``<dir>/synthetic-europe-d{days}-s{seed}.zarr``."""
    return cache_dir(data_dir) / f"synthetic-europe-d{int(days)}-s{int(seed)}.zarr"


DEFAULT_DAYS_ENV = "PPVIZ_SYNTH_DAYS"


def default_days() -> int:
    """Span of the embedded dataset in days (``$PPVIZ_SYNTH_DAYS``, default 60)."""
    days = env_int(DEFAULT_DAYS_ENV, 1, 3660, unit="days")
    return DEFAULT_DAYS if days is None else days



def ensure_default_dataset(
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    *,
    data_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> Path:
    """Path of the default synthetic dataset, generating and writing it (atomically) on first use.

    An existing store is reused when it was written by this generator version with the default
    parameters; otherwise (stale or unreadable) it is regenerated and replaced.
    """
    path = default_dataset_path(days, seed, data_dir)
    if path.exists():
        try:
            ds = open_dataset(path)
            current = (
                ds.attrs.get("generator_version") == GENERATOR_VERSION
                and ds.attrs.get("generator_params") == _params_text(SynthParams())
                and ds.sizes["time"] == 24 * int(days)
            )
            if current:
                return path
        except (ValueError, OSError):
            pass  # unreadable or stale: regenerate below
    ds = synthesize(days=days, seed=seed, progress=progress)
    write_dataset(ds, path)
    return path


def load_default_dataset(days: int | None = None, seed: int = DEFAULT_SEED) -> xr.Dataset:
    """The default synthetic dataset, opened lazily (generated on first use).

    ``days`` defaults to ``$PPVIZ_SYNTH_DAYS`` (see :func:`default_days`), else 60.
    """
    if days is None:
        days = default_days()
    return open_dataset(ensure_default_dataset(days=days, seed=seed))


DATA_ENV = "PPVIZ_DATA"


def load_dataset(data=None) -> xr.Dataset:
    """Open ``data`` (a canonical zarr/netCDF path or an ARCO-ERA5-layout zarr, :func:`open_any`)
    or, when None, the default dataset.

    The default is ``$PPVIZ_DATA`` when set (e.g. a dataset made by ``ppviz data prepare``),
    otherwise the embedded synthetic Europe, written to the cache on first use.
    """
    if data is None and os.environ.get(DATA_ENV):
        data = os.environ[DATA_ENV]
    if data is None or str(data) in ("", "default", "synthetic"):
        path = ensure_default_dataset(days=default_days(), seed=0)
        return open_dataset(path)
    return open_any(data)


def open_any(path) -> xr.Dataset:
    """Open a dataset path lazily as a canonical dataset: a canonical zarr/netCDF
    (:func:`ppviz.data.canonical.open_dataset`), or a zarr store in the ARCO-ERA5 layout
    (:func:`ppviz.data.arco.open_arco`: Europe, or a regional store's own points, with latitude
    ascending, longitude wrapped across 0 deg, tp from m and vimd from kg m-2 to mm/h)."""
    p = Path(path)
    if str(path).startswith(("gs://", "s3://", "https://")):
        from ppviz.data.arco import open_arco

        return open_arco(str(path))
    if p.exists() and (p.is_dir() or p.suffix == ".zarr"):
        from ppviz.data.arco import is_arco_layout, open_arco

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
                raw = xr.open_zarr(p)
        except Exception:  # noqa: BLE001 - open_dataset gives the one-line message below
            raw = None
        if raw is not None and is_arco_layout(raw):
            return open_arco(p)
    return open_dataset(path)


def default_data_path():
    """Where :func:`load_dataset` with no argument reads from: ``$PPVIZ_DATA`` or the synthetic
    store in the cache (generating it on first use)."""
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
