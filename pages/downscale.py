"""Downscale page (landing): pick an hour, a region and a checkpoint, sample an ensemble, compare.

HoloViews builds the maps and curves (DynamicMaps fed by one stream) whenever the region or
the number of member slots changes. A new hour, a finished run or another member keeps every
plot's shape, so then the new arrays go straight into the drawn Bokeh data sources
(:mod:`pages.direct`): only new image data and curves travel to the browser, in one message.
Runs go through the process-wide job queue (:mod:`ppviz.jobs`) and the result cache
(:mod:`ppviz.views.runs`).
"""

from __future__ import annotations

import functools
import io
import os
import tempfile

import holoviews as hv
import numpy as np
import panel as pn
import param

from pages.common import (
    LazyPage, follow_schedule, offer_checkpoints,
    CONTROL_WIDTH, MAP_TOOLS, TP_MIN, SharedState, alert, coast_hook, error_text, frame_size, frozen_models,
    grid_bounds, log, map_group, map_image, map_values, region_controls, style_group, sync_url, time_controls,
    url_messages, url_state, when_loaded,
)
from pages import direct as D
from pages import downscale_fields as F
from pages import run_curves as RC
from pages.jobview import JobView
from pages.help import how_to_read
from pages.safe import code, markdown, text
from pages.sources import PredictionsChoice
from pages.timeline import Timeline
from ppviz.views import curves as C
from ppviz.views import cache as M
from ppviz.views import external as X
from ppviz.views import runs as R
from ppviz.views.runs import View
from ppviz.checkpoints.schedule import SAMPLER_LABELS
from ppviz.request import MAX_MEMBERS, SAMPLER_NAMES, DownscaleRequest

MAX_SLOTS = 8  # members drawn in the grid (the slider reaches all of them)
_OVERVIEW_GROUPS: dict = {}


def _overview_group(bounds_latlon) -> str:
    """Options of the overview map (one group per process: its coastline hook is built once)."""
    key = tuple(bounds_latlon)
    if key not in _OVERVIEW_GROUPS:
        _OVERVIEW_GROUPS[key] = style_group(
            "Image", cmap="viridis", logz=True, clim=(TP_MIN, 20.0), colorbar=False, frame_width=230,
            frame_height=160, tools=["box_select", "hover"], clipping_colors={"NaN": (0, 0, 0, 0)}, title="{label}",
            fontsize={"title": 10}, hooks=[coast_hook(bounds_latlon)], default_tools=MAP_TOOLS)
    return _OVERVIEW_GROUPS[key]


ViewStream = hv.streams.Stream.define("ViewStream", view=None)
OverviewStream = hv.streams.Stream.define("OverviewStream", view=None)


class DownscalePage(LazyPage):
    """The landing page: coarse input, PP latent, ensemble, truth, spectra, QQ, export; its ensemble
    is computed when the page is first opened (no click), and time plays over a span (:mod:`pages.timeline`)."""

    checkpoint = param.Selector(default=None, objects=[], allow_None=True, doc="diffusion checkpoint")
    members = param.Integer(default=4, bounds=(1, MAX_MEMBERS))
    sampler = param.Selector(default="heun", objects={SAMPLER_LABELS[n]: n for n in SAMPLER_NAMES},
                             doc="sampler (ppviz.diffusion.samplers); shown by name, in the URL by key")
    steps = param.Integer(default=8, bounds=(2, 200), doc="sampler steps (bounded below by the checkpoint's min_steps)")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))
    member = param.Integer(default=0, bounds=(0, MAX_MEMBERS - 1), doc="member on the big map")
    shown = param.ListSelector(default=[], objects=list(range(MAX_MEMBERS)), doc="members in mean/spread/curves")
    # (objects follow ``members``; entries beyond it are ignored, see _valid_shown)

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        offer_checkpoints(self, "checkpoint", "diffusion", state)
        if self.checkpoint:
            self.sampler = M.checkpoint_schedule(self.checkpoint).sampler
        follow_schedule(self, sampler="sampler")
        self._stream = ViewStream()
        self._ov_stream = OverviewStream()
        self._view: View | None = None
        self._layout_key = None
        self._map_dmaps: dict = {}  # name -> DynamicMap of each drawn plot (found again by pages.direct)
        self._curve_dmaps: dict = {}
        self._curves_pending = False  # the curves wait for the page to load (see _build)
        self._ov_dmaps: dict = {}
        self._maps = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._curves = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._overview = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="fixed")
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._status = markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._scores = markdown("", width=CONTROL_WIDTH)
        self._jobs = JobView(on_done=lambda jobs: self._refresh(), on_message=self._show)
        self._timeline = Timeline(self)
        self._run_btn = pn.widgets.Button(label="Run ensemble", color="primary", width=130)
        self._run_btn.on_click(self._on_run)
        self._nc = pn.widgets.FileDownload(callback=self._netcdf, filename="ppviz-ensemble.nc", label="netCDF",
                                           color="success", width=125, disabled=True)
        self._png = pn.widgets.FileDownload(callback=self._png_bytes, filename="ppviz-view.png", label="PNG",
                                            color="success", width=125, disabled=True)
        if not self.param.checkpoint.objects:
            self._messages.objects = [alert("No diffusion checkpoint is registered: train one with `ppviz train "
                                            "diffusion` or point PPVIZ_CHECKPOINTS at a directory of checkpoints. "
                                            "The inputs and truth are shown without an ensemble.", "warning")]
        self.source = PredictionsChoice()
        state.param.watch(self._refresh, ["time", "region", "box"])
        self.param.watch(self._refresh, ["checkpoint", "members", "sampler", "steps", "seed"])
        self.source.param.watch(self._refresh, ["source", "path", "var", "units", "truth", "when", "crop"])
        self.param.watch(self._on_selection, ["member", "shown"])
        sync_url(self, {"checkpoint": "ckpt", "members": "members", "sampler": "sampler", "steps": "steps", "seed": "seed",
                        "member": "member"}, on_error=url_messages(self._messages, self))
        self._src_note = url_state(self.source, {"source": "source", "path": "src_file", "var": "src_var",
                                                 "units": "src_units", "truth": "src_truth", "when": "src_time",
                                                 "crop": "src_crop"})
        if self._view is None:  # the URL changed nothing, so nothing is drawn yet
            self._refresh()
        if pn.state.curdoc is not None:
            pn.state.onload(self._settle_text_panes)

    def _update(self) -> None:
        """First opened (the app shows this tab): compute the ensemble of the hour shown, through
        the queue (at once from the cache when the server warmed it, see
        :func:`ppviz.views.runs.warm`)."""
        if (self._view is None or self._view.run is not None or not self.checkpoint or not R.run_on_open()
                or self.source.active):
            return
        try:
            self.state.parsed_region()
        except ValueError:  # a bad link: the page says why and shows a fallback view; nothing to run
            return
        self._on_run()
        if self._jobs.busy:
            self._update_text(self._view, None)

    def _settle_text_panes(self):
        """Re-send the text panes once the page has loaded. Panel sends their stylesheets again
        with the first text change after the first render, and a stylesheet change makes the
        browser lay out the whole page (~0.4 s here): better during loading than on the first
        click."""
        for pane in (self._status, self._scores, self._jobs.text):
            pane.param.trigger("object")

    # -- state -> request -> view ------------------------------------------------------------
    def _request(self, region, time=None):
        if not self.checkpoint or self.source.active:
            return None
        time = self.state.timestamp if time is None else time
        return DownscaleRequest(checkpoint=self.checkpoint, time=time.strftime("%Y-%m-%dT%H:%M"),
                            region=region.slug_or_box, members=self.members, steps=self.steps, seed=self.seed,
                            sampler=self.sampler, data=self.state.data)

    def _refresh(self, *events):
        try:
            view, req = self._current()
        except Exception as exc:  # noqa: BLE001 - shown in the page; the last maps stay
            self._show(alert(error_text(exc)))
            if self._view is not None:
                v = self._view
                self._status.object = (f"**Showing the last valid view ({v.when} UTC, {F.where(v, self.state.data)}).** "
                                       "Fix the input above.")
                return
            try:  # nothing shown yet (e.g. a bad link): show the default region meanwhile
                view, req = self._current(fallback="region")
            except Exception:  # noqa: BLE001
                try:
                    view, req = self._current(fallback="all")
                except Exception:  # noqa: BLE001
                    return
            self._set_view(view, req)
            self._status.object = (f"**Showing {view.when} UTC over {F.where(view, self.state.data)} instead.** "
                                   "Fix the input above.")
            return
        if self._messages.objects and any(getattr(o, "alert_type", "") == "danger" for o in self._messages.objects):
            self._messages.objects = []
        self._set_view(view, req)

    def _current(self, fallback: str | None = None):
        """The view and run request of the current settings; ``fallback`` 'region': the default
        region at the chosen hour, 'all': the default region and hour (inputs only)."""
        if fallback == "region":
            region, time = M.parse_region(M.first_region(self.state.ds)), self.state.timestamp
        elif fallback == "all":
            region, time = M.parse_region(M.first_region(self.state.ds)), M.default_time(self.state.ds)
        else:
            region, time = self.state.parsed_region(), self.state.timestamp
            if self.source.active:
                run = X.external_run(self.source.spec(), self.source.time_for(time),
                                     region if self.source.crop else None)
                return View(run.ensemble.inputs, run, min(self.member, run.members - 1), self._valid_shown(run.members)), None
        inp = M.inputs(self.state.ds, time, region, None if fallback else self.checkpoint)
        req = None if fallback else self._request(region, time)
        run = R.cached(req) if req is not None else None
        return View(inp, run, min(self.member, self.members - 1), self._valid_shown()), req

    def _valid_shown(self, members=None):
        return [k for k in self.shown if k < (members or self.members)]

    def _members_of(self, view: View) -> int:
        """Members of the view: the predictions', else the page's setting."""
        return view.run.members if F.is_external(view) else self.members

    def _set_view(self, view: View, req) -> None:
        self._view = view
        reg = view.inputs.region
        members = self._members_of(view)
        nslots = min(members, MAX_SLOTS)
        key = (reg.slug_or_box, nslots, view.inputs.truth_tp is not None, F.is_external(view))
        self.param.member.bounds = (0, max(members - 1, 0))
        if len(self.param.shown.objects) != members:
            self.param.shown.objects = list(range(members))
        with pn.io.hold():
            if key != self._layout_key:
                self._stream.update(view=view)
                self._ov_stream.update(view=view)
                self._build(reg, nslots)
                self._layout_key = key
            else:
                self._redraw(view, overview=True)
            self._update_text(view, req)

    def _on_selection(self, *events):
        if self._view is None:
            return
        v = self._view
        members = self._members_of(v)
        view = View(v.inputs, v.run, min(self.member, members - 1), self._valid_shown(members))
        self._view = view
        with pn.io.hold():
            self._redraw(view, overview=False)
            self._update_text(view, None)

    def _redraw(self, view: View, overview: bool) -> None:
        """Show ``view`` in the plots already built: directly in their data sources when they are
        drawn, else through HoloViews (one model-graph recompute for all plots)."""
        # the streams hold the view either way, so a later HoloViews redraw shows the same
        self._stream.update(view=view)
        if overview:
            self._ov_stream.update(view=view)
        if self._draw_in_place(view, overview):
            return
        with frozen_models():
            self._stream.trigger([self._stream])
            if overview:
                self._ov_stream.trigger([self._ov_stream])

    def _draw_in_place(self, view: View, overview: bool) -> bool:
        """Write ``view``'s arrays into the drawn Bokeh sources; False when the plots are not all
        drawn (not displayed yet), so HoloViews must draw them."""
        maps = D.drawn_plots(self._maps, self._map_dmaps)
        # curves not built yet (deferred while the page opens) draw the stream's view when they are
        curves = D.drawn_plots(self._curves, self._curve_dmaps) if self._curve_dmaps else []
        ov = D.drawn_plots(self._overview, self._ov_dmaps) if overview else []
        if maps is None or curves is None or ov is None:
            return False
        try:
            fields = {name: F.field(name, view) for name in self._map_dmaps}
            for plots in maps:
                for name, plot in plots.items():
                    values, _, kind, title = fields[name]
                    D.set_image(plot, map_values(values, kind), title)
            spectra, qq = RC.spectra_data(view), RC.qq_data(view)
            for plots in curves:
                RC.set_spectra(plots["spectra"], *spectra)
                RC.set_qq(plots["qq"], *qq)
            if ov:
                domain = map_values(M.coarse_overview(self.state.ds, self._overview_time(view)).values, "tp")
            for plots in ov:
                overview_map = D.layers(plots["overview"]).get(self.OVERVIEW_LABEL, [None])[0]
                if overview_map is None:
                    return False
                D.set_image(overview_map, domain)
        except (KeyError, ValueError):  # a plot of another shape: let HoloViews redraw
            log.debug("in-place redraw not possible", exc_info=True)
            return False
        return True

    def _update_text(self, view: View, req) -> None:
        reg = view.inputs.region
        run = view.run
        if F.is_external(view):
            self._external_text(view)
            return
        if run is not None:
            r = run.request
            sampler = SAMPLER_LABELS.get(r.sampler or "heun", r.sampler)
            what = (f"ensemble of {r.members} members x {r.steps} {sampler} steps, seed {r.seed}, "
                    f"{code(r.checkpoint)} (computed in {run.seconds:.1f} s)")
        elif self.checkpoint and self._jobs.busy:
            what = "computing the ensemble (progress on the left)..."
        elif self.checkpoint:
            what = "no ensemble for these settings yet: press **Run ensemble** (or ▶ Play)"
        else:
            what = "no diffusion checkpoint"
        self._status.object = f"**Showing {view.when} UTC** · {F.where(view, self.state.data)} · {what}"
        self._nc.disabled = self._png.disabled = run is None
        if run is not None:
            stem = f"ppviz_{reg.slug_or_box.replace(',', '_')}_{view.inputs.time:%Y%m%dT%H}"
            self._nc.filename = stem + ".nc"
            self._png.filename = stem + ".png"
            self._score_table(run, view)
        else:
            self._scores.object = ""

    def _score_table(self, run, view: View) -> None:
        scores = C.crps_scores(run.ensemble, view.shown)
        rows = "\n".join(f"| {text(k)} | {v:.4f} |" for k, v in scores.items())
        self._scores.object = f"**Scores vs truth (mm/h)**\n\n| forecast | score |\n|---|---|\n{rows}" if rows else ""

    def _external_text(self, view: View) -> None:
        """Status of a predictions view: file, variable, step, members, truth; what is not in it."""
        run, info = view.run, view.run.info
        truth = f"truth {code(info['truth_var'])}" if info.get("truth_var") else "no truth in the file (no QQ, no scores)"
        self._status.object = (f"**Showing {view.when} UTC ({text(info.get('time_step', ''))})** · "
                               f"{text(view.inputs.region.title)} · predictions {code(run.label)}, {run.members} "
                               f"members, {truth}; coarse input, PP and trajectory: {X.NOT_IN_SOURCE}")
        stem = f"ppviz_predictions_{view.inputs.time:%Y%m%dT%H}"
        self._nc.filename, self._png.filename = stem + ".nc", stem + ".png"
        self._nc.disabled = self._png.disabled = False
        self._score_table(run, view)

    def _show(self, *objs) -> None:
        self._messages.objects = list(objs)

    # -- plots ------------------------------------------------------------------------------
    ROWS, COLORBAR = F.ROWS, F.COLORBAR

    def _build(self, region, nslots: int) -> None:
        size = frame_size(region, 195, 240)
        small = frame_size(region, 160, 190)
        names = [n for row in self.ROWS for n in row] + [f"slot{j}" for j in range(nslots)]
        items = []
        for name in names:
            sz = small if name.startswith("slot") else size
            kind = F.field(name, self._stream.view)[2]
            group = map_group(kind, sz, region.bounds, colorbar=name in self.COLORBAR)
            fn = functools.partial(self._panel, name, group)
            items.append(hv.DynamicMap(fn, streams=[self._stream]))
        self._map_dmaps = dict(zip(names, items))
        self._timeline.tap_streams([self._map_dmaps[n] for n in ("truth_tp", "member", "mean")])
        # no .opts() on the layout: it would become per-frame options of every DynamicMap (shared axes
        # and merged tools are the defaults)
        self._maps.object = hv.Layout(items).cols(4)
        self._overview.object = self._overview_map()
        if not self._curves_pending:
            self._curves_pending = True
            if when_loaded(self._build_curves):  # below the maps: drawn once the browser has the rest
                self._curve_dmaps, self._curves.object = {}, None

    def _build_curves(self) -> None:
        """The spectra and QQ panels of the stream's view (once the page has loaded, see _build)."""
        self._curves_pending = False
        self._curve_dmaps, self._curves.object = RC.panels(self._stream)

    def _panel(self, name, group, view):
        values, grid, kind, title = F.field(name, view)
        return map_image(values, grid_bounds(grid.lat, grid.lon), kind, title, group)

    OVERVIEW_LABEL = "Drag a box: custom region"

    def _overview_time(self, view) -> object:
        """The hour of the domain overview: the view's, or the page's for predictions (their times
        need not be in the data)."""
        return self.state.timestamp if view is None or F.is_external(view) else view.inputs.time

    def _overview_map(self):
        domain = M.coarse_overview(self.state.ds, self.state.timestamp)
        b = grid_bounds(domain.lat.values, domain.lon.values)
        img_group = _overview_group((b[1], b[3], b[0], b[2]))
        rect_group = style_group("Rectangles", fill_alpha=0.0, line_color="red", line_width=2, default_tools=MAP_TOOLS)

        def draw(view):
            d = M.coarse_overview(self.state.ds, self._overview_time(view)) if view is not None else domain
            return map_image(d.values, b, "tp", self.OVERVIEW_LABEL, img_group)

        def box(view):
            lat0, lat1, lon0, lon1 = view.inputs.region.bounds if view is not None else (0, 0, 0, 0)
            return hv.Rectangles([(lon0, lat0, lon1, lat1)], kdims=["lon", "lat", "lon2", "lat2"], group=rect_group)

        # the map alone is the BoundsXY source (a DynamicMap of an Overlay gets no stream callback);
        # box-select is the active drag, so dragging draws a region
        img = hv.DynamicMap(draw, streams=[self._ov_stream])
        self._ov_dmaps = {"overview": img}
        bounds = hv.streams.BoundsXY(source=img, bounds=None)
        bounds.add_subscriber(self._drawn)
        rect = hv.DynamicMap(box, streams=[self._ov_stream])
        return (img * rect).opts(hv.opts.Overlay(active_tools=["box_select"], toolbar="above"))

    def _drawn(self, bounds=None, **_):
        if not bounds:
            return
        x0, y0, x1, y1 = bounds
        if not all(np.isfinite([x0, y0, x1, y1])) or (x0 == x1 and y0 == y1):
            return
        self.state.param.update(box=M.box_text(x0, y0, x1, y1), region=M.CUSTOM)

    # -- runs -------------------------------------------------------------------------------
    def _on_run(self, _event=None):
        try:
            if self.source.active:
                raise ValueError("the source is a predictions file, shown as it is: choose Source: ppviz checkpoint "
                                 "to run an ensemble (the Checkpoints page compares the two)")
            region = self.state.parsed_region()
            req = self._request(region)
            if req is None:
                raise ValueError("no diffusion checkpoint is available to run")
            run, job = R.submit(req)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        if run is not None:
            self._jobs.text.object = "Result from the cache."
            self._refresh()
            return
        self._jobs.watch([job])

    # -- export -----------------------------------------------------------------------------
    def _netcdf(self):
        from ppviz.data.canonical import write_dataset

        v = self._view
        if v is None or v.run is None:
            return None
        ds = v.run.to_dataset()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ensemble.nc")
            write_dataset(ds, path)  # CF-1.8 clean, as every file ppviz writes
            with open(path, "rb") as f:
                return io.BytesIO(f.read())

    def _png_bytes(self):
        from ppviz.views.figures import ensemble_png

        v = self._view
        if v is None or v.run is None:
            return None
        return io.BytesIO(ensemble_png(v.run, member=v.member, members=v.shown))

    # -- layout -----------------------------------------------------------------------------
    def _steps_widgets(self) -> pn.Row:
        """The steps input, or for a few-step student (a schedule with stored grids) a choice of
        its allowed step counts; swapped when the checkpoint changes."""
        typed = pn.widgets.IntInput.from_param(self.param.steps, label="Steps", width=80)
        choice = pn.widgets.Select(label="Steps", options=[], width=80, visible=False)

        def sync(*_):
            allowed = M.checkpoint_schedule(self.checkpoint).allowed_steps if self.checkpoint else None
            typed.visible, choice.visible = allowed is None, allowed is not None
            if allowed is not None:
                choice.options = list(allowed)
                if self.steps in allowed:
                    choice.value = self.steps

        def chosen(event):
            if event.new is not None and event.new != self.steps:
                self.steps = int(event.new)

        choice.param.watch(chosen, "value")
        self.param.watch(sync, ["checkpoint", "steps"])
        sync()
        self._steps_choice = choice  # for tests
        return pn.Row(typed, choice, margin=0)

    def __panel__(self):
        ckpt = pn.widgets.Select.from_param(self.param.checkpoint, label="Diffusion checkpoint",
                                            width=CONTROL_WIDTH - 20)
        settings = pn.Row(
            pn.widgets.IntInput.from_param(self.param.members, label="Members", width=80),
            self._steps_widgets(),
            pn.widgets.IntInput.from_param(self.param.seed, label="Seed", width=90),
        )
        sampler = pn.widgets.Select.from_param(self.param.sampler, label="Sampler", width=CONTROL_WIDTH - 20)
        member = pn.widgets.IntSlider.from_param(self.param.member, label="Member on the big map",
                                                 width=CONTROL_WIDTH - 20)
        shown = pn.widgets.MultiChoice.from_param(self.param.shown, label="Members in mean, spread, curves (empty: all)",
                                                  width=CONTROL_WIDTH - 20)
        sampling = [ckpt, sampler, settings, pn.Row(self._run_btn, self._jobs.cancel_button)]
        controls = pn.Column(
            time_controls(self.state), region_controls(self.state), self._overview, self.source.controls(), *sampling,
            self._jobs.progress, self._jobs.text, member, shown,
            markdown("**Export**", margin=(0, 10)), pn.Row(self._nc, self._png), self._scores,
            width=CONTROL_WIDTH + 20,
        )
        timeline = [self._timeline.controls(), pn.Column(self._timeline, sizing_mode="stretch_width")]

        def follow_source(*_):  # a predictions file is shown as it is: nothing to sample, run or play
            for part in timeline + sampling:
                part.visible = not self.source.active

        follow_source()
        self.source.param.watch(follow_source, "source")
        main = pn.Column(how_to_read("downscale"), self._src_note, self._messages, self._status, timeline[0], self._maps,
                         self._curves, timeline[1], sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
