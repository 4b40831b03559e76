"""What the dashboard opens on: a region that fits the data and its rainiest hour (the landing
page's default run at that hour is :func:`ppviz.views.runs.default_request`, warmed at server start).

The default region is the first of :data:`PREFERRED_REGIONS` that lies inside the data (the
small ERA5 sample box first: its runs take seconds), else the first named region that does.
The default hour is the hour with the largest region-mean tp: one pass over the region's
(time, lat, lon) block of tp, a few MB for months of hourly data; cached per dataset and region.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import xarray as xr

from ppviz.data.regions import NAMED_REGIONS, Region

PREFERRED_REGIONS = ("sample", "benelux-rhine", "alps", "france", "british-isles", "central-europe")

_lock = threading.Lock()
_memo: list[tuple] = []  # (dataset, key, value), newest last; the dataset itself, as ids are reused
_MEMO_ITEMS = 16


def _recall(ds, key):
    with _lock:
        return next((v for d, k, v in _memo if d is ds and k == key), None)


def _remember(ds, key, value):
    with _lock:
        _memo.append((ds, key, value))
        del _memo[:-_MEMO_ITEMS]
    return value


def _fits(ds: xr.Dataset, slug: str) -> bool:
    try:
        Region.parse(slug).subset(ds["tp"].isel(time=0))
    except ValueError:
        return False
    return True


def default_region(ds: xr.Dataset) -> str:
    """The slug of the region a first look shows: the first of :data:`PREFERRED_REGIONS` inside
    ``ds``, else the first named region inside it, else ``europe`` (the whole domain)."""
    hit = _recall(ds, "region")
    if hit is not None:
        return hit
    names = [*PREFERRED_REGIONS, *(n for n in NAMED_REGIONS if n not in PREFERRED_REGIONS and n != "europe")]
    return _remember(ds, "region", next((n for n in names if _fits(ds, n)), "europe"))


def region_mean_tp(ds: xr.Dataset, region: str) -> np.ndarray:
    """(time,) mean tp (mm/h) over ``region`` at each hour of ``ds`` (NaN cells ignored)."""
    tp = Region.parse(region).subset(ds["tp"])
    return np.asarray(tp.mean(dim=("lat", "lon"), skipna=True).values, dtype=np.float64)


def rainiest_hour(ds: xr.Dataset, region: str) -> pd.Timestamp:
    """The hour of ``ds`` with the largest mean tp over ``region`` (the first of ties; the first
    hour when every value is missing). ValueError when the region is not inside the data."""
    key = ("rainiest", Region.parse(region).slug_or_box)
    hit = _recall(ds, key)
    if hit is not None:
        return hit
    means = region_mean_tp(ds, region)
    times = pd.DatetimeIndex(ds.time.values)
    k = int(np.nanargmax(means)) if np.isfinite(means).any() else 0
    return _remember(ds, key, times[k])


def default_view(ds: xr.Dataset) -> tuple[pd.Timestamp, str]:
    """``(hour, region slug)`` a page opens on when the URL names neither."""
    region = default_region(ds)
    return rainiest_hour(ds, region), region
