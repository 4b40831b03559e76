"""Plot building blocks shared by pages: map images with coastlines, colour scales."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from ppviz.maps import map_features

TP_MIN = 0.1  # mm/h; drier cells are drawn clear


def coastline_overlay(bounds):
    """Coastlines and borders as HoloViews paths, plus the status message."""
    feats = map_features(tuple(float(b) for b in bounds))
    paths = [
        hv.Path([np.column_stack(feats.lines[k])], kdims=["lon", "lat"]).opts(
            color="black" if k == "coastline" else "#555555", line_width=1.0 if k == "coastline" else 0.6
        )
        for k in ("coastline", "borders")
        if k in feats.lines
    ]
    return paths, feats.message


def field_image(da, *, kind: str, title: str, clim=None):
    """A lat/lon field as ``hv.Image`` (no reprojection). ``kind``: 'tp' (log, dry clear) or 'diverging'."""
    lat, lon = da["lat"].values, da["lon"].values
    values = np.asarray(da.values, dtype=np.float32)
    res = float(lat[1] - lat[0])
    bounds = (lon[0] - res / 2, lat[0] - res / 2, lon[-1] + res / 2, lat[-1] + res / 2)
    if kind == "tp":
        shown = np.where(values >= TP_MIN, values, np.nan)
        img = hv.Image(shown[::-1], bounds=bounds, kdims=["lon", "lat"], vdims=[hv.Dimension("tp", unit="mm/h")])
        img = img.opts(cmap="viridis", logz=True, clim=clim or (TP_MIN, 20.0), clipping_colors={"NaN": (0, 0, 0, 0)})
    else:
        lim = clim or (float(np.nanpercentile(np.abs(values), 99)) or 1.0)
        img = hv.Image(values[::-1], bounds=bounds, kdims=["lon", "lat"], vdims=[hv.Dimension(da.name or "value", unit=da.attrs.get("units", ""))])
        img = img.opts(cmap="RdBu_r", clim=(-lim, lim))
    return img.opts(title=title, colorbar=True, tools=["hover"], data_aspect=1, responsive=True, min_height=380)
