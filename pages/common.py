"""Shared by the pages: the session state (hour, region) and its controls, alerts, map images
with coastlines and colour scales, and the fast Store-styled images the DynamicMaps return."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import weakref

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import GlyphRenderer, MultiLine

from pages.safe import alert, markdown, text
from ppviz.views import cache as _models
from ppviz.maps import map_features

from ppviz.constants import DRY_THRESHOLD_MMH as TP_MIN  # mm/h; drier cells are drawn clear

# Canvas, not WebGL: our plots are small (images, a few hundred line points), and without a GPU
# (headless or remote browsers, many laptops) Chromium's software WebGL makes every repaint copy
# each plot's GL canvas back to 2D (`blit_webgl` -> `drawImage`): ~280 ms of a 12-map update
# went there (benchmarks/bench_browser.py, CPU profile in benchmarks/README.md).
hv.renderer("bokeh").webgl = False


# -- shared state and controls of every page ---------------------------------------------------


log = logging.getLogger("ppviz.dashboard")
PP_CLIM = (-3.0, 3.0)  # PP is ~N(0, 1): a fixed diverging scale keeps maps comparable across hours
SPREAD_CLIM = (0.05, 10.0)  # mm/h, log scale
TIME_FMT = "%Y-%m-%dT%H:%M"
CONTROL_WIDTH = 290
#: colour bars of maps: a thin bar under the map, so a row of four maps with their bars fits the
#: page beside the controls in a 1400 px wide window (a bar at the side costs ~70 px per map)
COLORBAR_STYLE = {"colorbar_position": "bottom", "colorbar_opts": {"height": 10}}
WAVELENGTH_TICKS = [2000, 1000, 500, 200, 100, 60]  # km, for log-scale spectrum axes


class SharedState(param.Parameterized):
    """The dataset, hour and region every page shows (one per session, in the URL).

    ``data`` is a name of :mod:`ppviz.data.registry` (``?data=era5-sample``); it is fixed for the
    session (choosing another in the header reloads the app). Only regions inside the data are
    offered (:func:`ppviz.views.cache.region_choices`).
    """

    data = param.Selector(default="synthetic", objects=["synthetic"], constant=True,
                          doc="the dataset: a name of ppviz.data.registry")
    time = param.String(default="", doc="YYYY-MM-DDTHH:MM (UTC), a step of the data")
    region = param.Selector(default="sample", objects=_models.region_choices())
    box = param.String(default="", doc="custom box lat0,lat1,lon0,lon1 (region 'custom')")
    url_error = param.String(default="")
    registry = param.Integer(default=0, doc="bumped when this session registers a checkpoint (pages re-read the registry)")

    def __init__(self, ds, data: str | None = None, **params):
        choices = _models.region_choices(ds)
        self.param.region.objects = choices
        if params.get("region") not in choices.values():
            params["region"] = _models.first_region(ds)
        super().__init__(**params)
        names = list(_models.dataset_choices().values())
        data = data or _models.default_dataset_name()
        self.param.data.objects = names if data in names else [*names, data]
        with param.edit_constant(self):
            self.data = data
        self.ds = ds
        self.times = pd.DatetimeIndex(ds.time.values)
        self.first, self.last = _models.time_bounds(ds)
        if "region" not in params:  # a region that fits the data (the URL may still name another)
            from ppviz.views.highlights import default_region

            self.region = default_region(ds)
        if not self.time:
            self.time = _models.default_time(ds).strftime(TIME_FMT)

    @property
    def timestamp(self) -> pd.Timestamp:
        from ppviz.data.source import parse_time

        return parse_time(self.time)

    def parsed_region(self):
        return _models.parse_region(self.region, self.box)

    def shift(self, hours: int) -> None:
        """Move ``hours`` steps of the data forward (negative: back), staying inside the data
        (across a gap, e.g. between the ERA5 sample's two days, to the next step there is)."""
        try:
            # the first step after the current time (forward) or the current step's index (back)
            i = int(self.times.searchsorted(self.timestamp, side="right" if hours > 0 else "left"))
            i = i + hours - 1 if hours > 0 else i + hours
        except ValueError:
            i = int(self.times.get_loc(_models.default_time(self.ds)))
        self.time = self.times[min(max(i, 0), self.times.size - 1)].strftime(TIME_FMT)


def time_controls(state: SharedState) -> pn.Column:
    """Date picker (limited to the data), hour, and previous/next-hour buttons for ``state.time``."""
    first, last = state.first, state.last
    days = sorted({t.date() for t in state.times})
    gaps = len(days) < (last.date() - first.date()).days + 1
    date = pn.widgets.DatePicker(label="Date (UTC)", start=first.date(), end=last.date(), width=150,
                                 enabled_dates=days if gaps else None)
    hour = pn.widgets.Select(label="Hour", options=[f"{h:02d}:00" for h in range(24)], width=90)
    prev = pn.widgets.Button(label="◀ hour", width=70, description="one hour earlier")
    nxt = pn.widgets.Button(label="hour ▶", width=70, description="one hour later")
    note = markdown(f"Data: {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC",
                            styles={"font-size": "0.8em", "color": "#555"}, margin=(0, 10))
    busy = {"on": False}

    def from_state(*_):
        try:
            t = state.timestamp
        except ValueError:
            return
        busy["on"] = True
        try:
            date.value = t.date()
            hour.value = f"{t.hour:02d}:00"
        finally:
            busy["on"] = False

    def to_state(*_):
        if busy["on"] or date.value is None:
            return
        h = int(str(hour.value)[:2])
        d = date.value if isinstance(date.value, _dt.date) else pd.Timestamp(date.value).date()
        state.time = pd.Timestamp(d).replace(hour=h).strftime(TIME_FMT)

    from_state()
    state.param.watch(from_state, "time")
    date.param.watch(to_state, "value")
    hour.param.watch(to_state, "value")
    prev.on_click(lambda _: state.shift(-1))
    nxt.on_click(lambda _: state.shift(1))
    return pn.Column(pn.Row(date, hour), pn.Row(prev, nxt), note, width=CONTROL_WIDTH)


def region_controls(state: SharedState) -> pn.Column:
    """Named-region select and the custom box input (typing a box selects 'custom')."""
    sel = pn.widgets.Select.from_param(state.param.region, label="Region", width=CONTROL_WIDTH - 20)
    box = pn.widgets.TextInput.from_param(state.param.box, label="Custom box: lat0,lat1,lon0,lon1",
                                          placeholder="e.g. 44,48,5,12", width=CONTROL_WIDTH - 20)

    def typed(event):
        if event.new.strip() and state.region != _models.CUSTOM:
            state.region = _models.CUSTOM

    box.param.watch(typed, "value")
    return pn.Column(sel, box, width=CONTROL_WIDTH)


def error_text(exc: BaseException) -> str:
    """What a page shows for a failure, as Markdown text: the message of a ValueError (bad input),
    else the type too. Messages quote input (names, paths, values), so they are escaped."""
    if isinstance(exc, ValueError):
        return text(exc)
    log.exception("dashboard error")
    return text(f"Unexpected error ({type(exc).__name__}): {exc}. The app keeps running; see the server log.")


def grid_bounds(lat, lon):
    """(left, bottom, right, top) cell-edge bounds of regular cell-centre coordinates."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    rl = float(lat[1] - lat[0]) if lat.size > 1 else 1.0
    rn = float(lon[1] - lon[0]) if lon.size > 1 else 1.0
    return (lon[0] - rn / 2, lat[0] - rl / 2, lon[-1] + rn / 2, lat[-1] + rl / 2)


def image(values, bounds, *, kind: str, title: str = "", clim=None, label: str | None = None):
    """A map as ``hv.Image`` (row 0 = south): ``kind`` 'tp' (log, dry clear), 'pp' (diverging,
    fixed at +-3), 'diverging' (centred at 0, symmetric ``clim`` or 99th percentile), 'spread'
    (log, magma) or 'ratio' (log2 of a ratio, centred at 0)."""
    v = map_values(values, kind)
    dim = hv.Dimension(label or {"tp": "tp", "spread": "spread", "pp": "PP"}.get(kind, "value"),
                       unit="mm/h" if kind in ("tp", "spread") else None)
    img = hv.Image(v[::-1], bounds=bounds, kdims=["lon", "lat"], vdims=[dim])
    if kind == "tp":
        img = img.opts(cmap="viridis", logz=True, clim=clim or (TP_MIN, 20.0))
    elif kind == "spread":
        img = img.opts(cmap="magma", logz=True, clim=clim or SPREAD_CLIM)
    elif kind == "pp":
        img = img.opts(cmap="RdBu_r", clim=clim or PP_CLIM)
    else:
        if clim is None:
            finite = np.abs(v[np.isfinite(v)])
            lim = float(np.percentile(finite, 99)) if finite.size else 1.0
            clim = (-(lim or 1.0), lim or 1.0)
        img = img.opts(cmap="RdBu_r", clim=clim)
    return img.opts(title=title, colorbar=True, **COLORBAR_STYLE, tools=["hover"],
                    clipping_colors={"NaN": (0, 0, 0, 0)}, fontsize={"title": 10})


COAST_STYLE = (("coastline", "black", 1.0), ("borders", "#555555", 0.6))  # (feature, colour, width)


def coast_lines(bounds_latlon):
    """``[(xs, ys) or None, ...]`` in :data:`COAST_STYLE` order (None: not available), and the
    status message of the map features (e.g. that Natural Earth files are missing)."""
    feats = map_features(tuple(float(b) for b in bounds_latlon))
    lines = [feats.lines[k] if k in feats.lines and len(feats.lines[k][0]) else None for k, _, _ in COAST_STYLE]
    return lines, feats.message


def coasted(img, bounds_latlon):
    """``img`` (an ``hv.Image`` map) with the coastlines and borders of ``bounds_latlon`` drawn on
    it by :func:`coast_hook`: one glyph on the document's shared source, whatever overlay the map
    is then put in."""
    return img.opts(hooks=[coast_hook(bounds_latlon)])


def frame_size(region, width: int = 300, max_height: int = 420) -> dict:
    """frame_width/height of a map of ``region`` with one degree of lon and lat equally long."""
    lat0, lat1, lon0, lon1 = region.bounds
    h = int(round(width * (lat1 - lat0) / max(lon1 - lon0, 1e-6)))
    if h > max_height:
        return {"frame_height": max_height, "frame_width": int(round(max_height * (lon1 - lon0) / (lat1 - lat0)))}
    return {"frame_width": width, "frame_height": max(h, 120)}


def sync_url(obj: param.Parameterized, mapping: dict, on_error=None) -> None:
    """Keep ``obj``'s parameters in the URL query (only inside a served session)."""
    loc = pn.state.location
    if loc is None:
        return
    try:
        loc.sync(obj, mapping, on_error=on_error)
    except Exception as exc:  # noqa: BLE001 - a bad URL must not stop the page
        log.warning("URL sync failed: %s", exc)


def allowed_values(p: param.Parameter) -> str:
    """What a parameter accepts, in words (for messages about bad input)."""
    bounds = getattr(p, "bounds", None)
    if bounds is not None and None not in bounds:
        return f"{bounds[0]} to {bounds[1]}"
    objects = getattr(p, "objects", None)
    if objects:
        values = list(objects.values()) if isinstance(objects, dict) else list(objects)
        return ", ".join(str(v) for v in values[:12]) + (", ..." if len(values) > 12 else "")
    return type(p).__name__.lower()


def url_state(obj: param.Parameterized, mapping: dict) -> pn.Column:
    """Keep ``obj``'s parameters in the URL (:func:`sync_url`); the returned column names the URL
    values that were ignored, with what is allowed."""
    note = pn.Column(sizing_mode="stretch_width")
    sync_url(obj, mapping, on_error=url_messages(note, obj))
    return note


def offer_checkpoints(obj: param.Parameterized, name: str, kind: str, state: SharedState | None = None) -> None:
    """Offer the registered ``kind`` checkpoints in ``obj``'s selector ``name`` (labels with their
    summaries); preselect the preferred one unless one is already chosen (e.g. from the URL).
    With ``state``, offer them again when the session registers one (``state.registry``)."""

    def offer(*_):
        obj.param[name].objects = _models.checkpoint_labels(kind)

    offer()
    if getattr(obj, name) is None:
        setattr(obj, name, _models.preferred_checkpoint(kind))
    if state is not None:
        state.param.watch(offer, "registry")


def follow_schedule(obj: param.Parameterized, checkpoints: tuple[str, ...] = ("checkpoint",),
                    steps: str = "steps", sampler: str | None = None) -> None:
    """Bound ``obj``'s step count below by the chosen checkpoints' ``min_steps`` of the chosen
    sampler (the largest of them) and start it at their ``default_steps``
    (:mod:`ppviz.checkpoints.schedule`); a value below the bound (typed, or from the URL) is refused
    by the widget with the allowed range, and the request refuses it again with the smallest good
    value. ``sampler`` names ``obj``'s sampler parameter (None: each checkpoint's own). A few-step
    student (a schedule with stored grids, ``allowed_steps``) sets the sampler to its own when it
    is chosen and the steps to its default unless they are one of its step counts. Call before
    :func:`sync_url`."""
    top = obj.param[steps].bounds[1]

    def apply(*_events, initial=False):
        scheds = [_models.checkpoint_schedule(getattr(obj, c)) for c in checkpoints if getattr(obj, c)]
        if not scheds:
            return
        name = getattr(obj, sampler) if sampler else None
        fixed = next((s for s in scheds if s.allowed_steps is not None), None)
        if fixed is not None:  # a few-step student: its sampler, on its stored step counts only
            chosen = any(e.name in checkpoints for e in _events)  # the checkpoint was just chosen
            if sampler and name != fixed.sampler and (initial or chosen):
                setattr(obj, sampler, fixed.sampler)  # a sampler chosen later is refused by the run, naming its own
            obj.param[steps].bounds = (min(fixed.allowed_steps), top)
            at_class_default = getattr(obj, steps) == obj.param[steps].default
            if getattr(obj, steps) not in fixed.allowed_steps or chosen or (initial and at_class_default):
                setattr(obj, steps, fixed.default_steps)
            return
        low = min(max(s.min_steps_for(name) for s in scheds), top)
        default = min(max(max(s.default_steps for s in scheds), low), top)
        obj.param[steps].bounds = (low, top)
        at_class_default = getattr(obj, steps) == obj.param[steps].default  # not chosen by the caller
        if (initial and at_class_default) or getattr(obj, steps) < low:
            setattr(obj, steps, default if name in (None, *(s.sampler for s in scheds)) else max(low, 8))

    apply(initial=True)
    obj.param.watch(apply, list(checkpoints) + ([sampler] if sampler else []) + [steps])


def url_messages(column: pn.Column, obj: param.Parameterized | None = None):
    """An ``on_error`` for :func:`sync_url` that says in ``column`` which URL values were ignored
    and, when ``obj`` is given, what its parameters allow."""

    def on_error(values):
        column.objects = [alert(url_error_text(values, obj), "warning")]

    return on_error


def url_error_text(values: dict, obj: param.Parameterized | None = None) -> str:
    """'Ignored URL settings ...: name=value (allowed: ...)' for the values a URL could not set."""
    parts = []
    for name, value in values.items():
        p = obj.param[name] if obj is not None and name in obj.param else None
        parts.append(f"{name}={value!r}" + (f" (allowed: {allowed_values(p)})" if p is not None else ""))
    # the values come straight from a link: shown as text, never as markup
    return text("Ignored URL settings that are not valid here: " + "; ".join(parts))


def when_loaded(callback) -> bool:
    """Call ``callback`` once the browser has loaded the served page (at once outside a served
    session, or when it has loaded already, e.g. for a later change); True when deferred. Panels
    below the fold built this way keep the first look's Bokeh document small."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None or pn.state.loaded:
        callback()
        return False
    pn.state.onload(callback)
    return True


class LazyPage(pn.viewable.Viewer):
    """A page that recomputes only while it is the open tab (the app calls :meth:`set_visible`)."""

    def __init__(self, **params):
        super().__init__(**params)
        self._visible = False
        self._dirty = True

    def _changed(self, *events):
        if self._visible:
            self._dirty = False
            self._update()
        else:
            self._dirty = True

    def set_visible(self, visible: bool) -> None:
        self._visible = bool(visible)
        if self._visible and self._dirty:
            self._dirty = False
            self._update()

    def _update(self) -> None:  # pragma: no cover - each page implements it
        raise NotImplementedError


# -- fast map images for DynamicMaps -----------------------------------------------------------
#
# A DynamicMap frame that carries `.opts(...)` or an Overlay of coastlines costs HoloViews a clone
# and an options lookup per update. The maps that update on every hour change therefore return
# bare `hv.Image`s whose options live in the Store under a group name (registered once per kind,
# size and region), and the coastlines are added to the Bokeh figure once by a plot hook.

_GROUPS: dict[tuple, str] = {}
#: the tools of the Downscale page's plots besides hover (no box zoom, no save: the page exports PNG)
MAP_TOOLS = ["pan", "wheel_zoom", "reset"]
_KIND_STYLE = {
    "tp": dict(cmap="viridis", logz=True, clim=(TP_MIN, 20.0)),
    "spread": dict(cmap="magma", logz=True, clim=SPREAD_CLIM),
    "pp": dict(cmap="RdBu_r", clim=PP_CLIM),
}


def coast_source(bounds_latlon):
    """The coastlines and borders of ``bounds_latlon`` as one Bokeh ``ColumnDataSource`` (columns
    xs, ys: NaN-separated lines; color, width: :data:`COAST_STYLE`) and its ``CDSView``, made once
    per Bokeh document and region and shared by all its maps: a dozen maps send the lines once."""
    from bokeh.models import CDSView, ColumnDataSource

    doc = pn.state.curdoc
    key = tuple(float(b) for b in bounds_latlon)
    sources = _COAST_SOURCES.setdefault(doc, {}) if doc is not None else {}
    if key not in sources:
        lines, _ = coast_lines(key)
        drawn = [(xy, color, width) for xy, (_, color, width) in zip(lines, COAST_STYLE) if xy is not None]
        sources[key] = (ColumnDataSource({"xs": [xy[0] for xy, _, _ in drawn], "ys": [xy[1] for xy, _, _ in drawn],
                                          "color": [c for _, c, _ in drawn], "width": [w for _, _, w in drawn]}),
                        CDSView())
    return sources[key]


_COAST_SOURCES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # document -> {bounds: source}


def coast_hook(bounds_latlon):
    """A Bokeh plot hook that draws coastlines and borders of ``bounds_latlon`` once per figure, as
    one glyph on the document's shared :func:`coast_source`; it also drops the map image's
    selection/muted glyph copies (maps are never selected or muted; the browser draws the image
    glyph for them), which saves Bokeh models to build and send."""

    def hook(plot, element):
        fig = plot.state
        if "ppviz-coast" in fig.tags:
            return
        renderer = plot.handles.get("glyph_renderer")
        if isinstance(renderer, GlyphRenderer):
            renderer.update(selection_glyph=None, nonselection_glyph=None, muted_glyph=None)
        source, view = coast_source(bounds_latlon)
        if source.data["xs"]:
            fig.renderers.append(GlyphRenderer(
                data_source=source, view=view, glyph=MultiLine(xs="xs", ys="ys", line_color="color", line_width="width"),
                selection_glyph=None, nonselection_glyph=None, muted_glyph=None))
        fig.tags = [*fig.tags, "ppviz-coast"]

    return hook


def map_group(kind: str, size: dict, bounds_latlon=None, colorbar: bool = True) -> str:
    """The Store group holding the options of a map of ``kind`` ('tp', 'spread', 'pp') with
    ``size`` (frame_width/height) and, when ``bounds_latlon`` is given, coastlines for it."""
    key = (kind, tuple(sorted(size.items())), tuple(bounds_latlon) if bounds_latlon is not None else None, colorbar)
    if key not in _GROUPS:
        name = f"PpvizMap{len(_GROUPS)}"
        opts = dict(_KIND_STYLE[kind], colorbar=colorbar, **COLORBAR_STYLE, tools=["hover"], default_tools=MAP_TOOLS,
                    clipping_colors={"NaN": (0, 0, 0, 0)}, fontsize={"title": 10}, title="{label}", **size)
        if bounds_latlon is not None:
            opts["hooks"] = [coast_hook(bounds_latlon)]
        hv.opts.defaults(hv.opts.Image(name, **opts))
        _GROUPS[key] = name
    return _GROUPS[key]


def map_values(values, kind: str) -> np.ndarray:
    """The float32 array a map of ``kind`` draws (row 0 = south): for 'tp' and 'spread', cells
    below the colour scale are NaN, which the maps leave clear."""
    v = np.asarray(values, dtype=np.float32)
    if kind in ("tp", "spread"):
        lo = TP_MIN if kind == "tp" else SPREAD_CLIM[0]
        v = np.where(v >= lo, v, np.float32(np.nan))
    return v


def map_image(values, bounds, kind: str, label: str, group: str):
    """A bare ``hv.Image`` for a DynamicMap frame (options come from ``group``, see :func:`map_group`)."""
    v = map_values(values, kind)
    vdim = {"tp": hv.Dimension("tp", unit="mm/h"), "spread": hv.Dimension("spread", unit="mm/h")}.get(kind, "PP")
    return hv.Image(v[::-1], bounds=bounds, kdims=["lon", "lat"], vdims=[vdim], group=group, label=label)


_STYLE_GROUPS: dict[tuple, str] = {}


def style_group(element: str, **opts) -> str:
    """A Store group carrying ``opts`` for elements of type ``element`` ('Curve', 'Overlay', ...),
    registered once, so DynamicMap frames can be created without per-frame ``.opts`` calls."""
    key = (element, repr(sorted(opts.items(), key=lambda kv: kv[0])))
    if key not in _STYLE_GROUPS:
        name = f"Ppviz{element}{len(_STYLE_GROUPS)}"
        hv.opts.defaults(getattr(hv.opts, element)(name, **opts))
        _STYLE_GROUPS[key] = name
    return _STYLE_GROUPS[key]


@contextlib.contextmanager
def frozen_models():
    """Recompute the Bokeh document's model graph once at the end instead of after every plot
    update (each costs O(document)). Only for updates of existing plots: models created inside
    (a new pane object) would not be registered in time."""
    doc = pn.state.curdoc
    if doc is None:
        yield
        return
    with doc.models.freeze():
        yield
