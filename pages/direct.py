"""In-place updates of plots HoloViews has drawn: new arrays go straight into their Bokeh data
sources instead of through HoloViews' per-frame machinery.

Why: an hour change on the Downscale page redraws a dozen maps and two curve panels. Through
HoloViews streams the whole update cost ~220 ms of server time (a new element per plot, option
lookups, range computation, and a recompute of the document's model graph); writing the data
sources directly, ~23 ms (numbers and the browser benchmark in ``benchmarks/README.md``).
HoloViews still builds every plot (layout, axes, colour bars, hover, coastline hooks) and
rebuilds them whenever the set of plots or their shapes change (another region, another number
of members); these helpers only replace the data of plots that keep their shape.

The plots are found by the DynamicMap the page created for them, so the page names its own
plots and never depends on HoloViews' traversal order.
"""

from __future__ import annotations

import numpy as np


def origin(dmap):
    """The DynamicMap a plotted (possibly derived) DynamicMap was made from."""
    seen = 0
    while getattr(dmap, "callback", None) is not None and dmap.callback.inputs and seen < 32:
        dmap = dmap.callback.inputs[0]
        seen += 1
    return dmap


def element_plots(pane, dmaps: dict) -> list[dict]:
    """For each rendered root of a ``pn.pane.HoloViews``, ``{name: ElementPlot}`` of the plots drawn
    from the DynamicMaps in ``dmaps`` (``{name: DynamicMap}``). Overlays map to their
    ``OverlayPlot``; its layers are in ``.subplots``. Empty when nothing is rendered yet."""
    from holoviews.plotting.plot import GenericElementPlot, GenericOverlayPlot

    by_id = {id(d): name for name, d in dmaps.items()}
    out = []
    for plot, _ in list(getattr(pane, "_plots", {}).values()):
        found = {}
        for p in plot.traverse(lambda p: p, [GenericElementPlot]):
            hmap = getattr(p, "hmap", None)
            name = by_id.get(id(origin(hmap))) if hmap is not None else None
            if name is None or name in found:
                continue
            if isinstance(p, GenericOverlayPlot) or not _inside_overlay(p):
                found[name] = p
        out.append(found)
    return out


def drawn_plots(pane, dmaps: dict) -> list[dict] | None:
    """:func:`element_plots`, or None unless every DynamicMap of ``dmaps`` is drawn in every root."""
    roots = element_plots(pane, dmaps)
    if not roots or any(len(found) != len(dmaps) for found in roots):
        return None
    return roots


def _inside_overlay(plot) -> bool:
    # layers of an overlay share its DynamicMap; the overlay itself is the one to return
    return getattr(plot, "overlaid", 0) > 0


def set_title(plot, title: str) -> None:
    fig = plot.handles.get("plot")
    if fig is not None and fig.title is not None and fig.title.text != title:
        fig.title.text = title


def set_image(plot, values: np.ndarray, title: str | None = None) -> None:
    """Replace the image of a HoloViews raster plot; ``values`` row 0 = south (Bokeh's order),
    the same shape as before (a new shape means a rebuild)."""
    source = plot.handles["source"]
    old = source.data["image"][0]
    if np.shape(old) != np.shape(values):
        raise ValueError(f"image shape changed from {np.shape(old)} to {np.shape(values)}: rebuild the plot")
    source.data = dict(source.data, image=[np.asarray(values)])
    if title is not None:
        set_title(plot, title)


def set_columns(plot, **columns) -> None:
    """Replace the columns of a curve/scatter/path plot's data source (same column names)."""
    source = plot.handles["source"]
    missing = set(columns) - set(source.data)
    if missing:
        raise ValueError(f"plot has no columns {sorted(missing)}; it has {sorted(source.data)}")
    source.data = dict(source.data, **columns)


def layers(overlay_plot) -> dict:
    """``{label: [layer plots]}`` of an OverlayPlot (a curve and a scatter may share a label)."""
    out: dict = {}
    for p in overlay_plot.subplots.values():
        frame = p.current_frame
        label = frame.label if frame is not None else ""
        out.setdefault(label, []).append(p)
    return out


def log_extent(arrays, pad: float = 0.05, floor: float = 1e-12):
    """(lo, hi) of the positive finite values of ``arrays``, padded by ``pad`` of the log span on
    each side; None when there are none."""
    vals = [np.asarray(a, dtype=float).ravel() for a in arrays if a is not None and np.size(a)]
    if not vals:
        return None
    v = np.concatenate(vals)
    v = v[np.isfinite(v) & (v > floor)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo / 2, hi * 2
    span = (hi / lo) ** pad
    return lo / span, hi * span


def set_range(overlay_plot, axis: str, extent, *, inverted: bool = False) -> None:
    """Set the x or y range of an OverlayPlot's figure to ``extent`` (lo, hi); ``inverted``
    puts hi at the start (an inverted axis, as HoloViews draws one)."""
    if extent is None:
        return
    fig = overlay_plot.handles["plot"]
    rng = fig.x_range if axis == "x" else fig.y_range
    lo, hi = extent
    start, end = (hi, lo) if inverted else (lo, hi)
    rng.update(start=start, end=end, reset_start=start, reset_end=end)
