"""Time on the Downscale page: play a span of hours, one cell's time series, accumulations.

Play computes the span's ensembles through the queue (one cached run per hour, the same runs
a single hour would make), then steps the shared hour through the span on a periodic callback;
each step is an ordinary hour change, which the Downscale page draws by writing the new arrays
into its drawn plots (:mod:`pages.direct`), so coarse input, members, mean and truth move
together. A click on a fine map picks a cell: its time series over the span (members as a band,
mean, truth, bicubic) and the accumulated precipitation maps of the span (members vs truth) are
drawn from the computed hours (:mod:`ppviz.views.timeline`).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from pages.common import (
    TIME_FMT,
    TP_MIN,
    alert,
    coasted,
    error_text,
    frame_size,
    grid_bounds,
    map_values,
    sync_url,
    url_messages,
)
from pages.jobview import JobView
from pages.safe import markdown
from ppviz.views import runs as R
from ppviz.views import timeline as TL


class Timeline(pn.viewable.Viewer):
    """Play / pause over ``span`` hours from the hour shown when Play is pressed; cell series."""

    span = param.Integer(default=12, bounds=(2, TL.MAX_SPAN), doc="hours played")
    fps = param.Integer(default=3, bounds=(1, 10), doc="frames (hours) a second while playing")
    playing = param.Boolean(default=False)

    def __init__(self, page, **params):
        super().__init__(**params)
        self.page = page  # the DownscalePage: its state, its run request
        self._times: list[pd.Timestamp] = []
        self._reqs: list = []
        self._cell: tuple[float, float] | None = None
        self._poller = None
        self._button = pn.widgets.Button(label="▶ Play", color="primary", width=90,
                                         description="play the span of hours (computed first, then drawn)")
        self._button.on_click(self._toggle)
        self._text = markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._jobs = JobView(on_done=lambda jobs: self._computed(), on_message=self._message)
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._series = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._accum = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        sync_url(self, {"span": "span", "fps": "fps"}, on_error=url_messages(self._messages, self))
        self._help = markdown("*Click a cell on the truth, member or mean map for its time series over the "
                              "span; play computes the span's ensembles first.*", margin=(0, 10))

    # -- the span ---------------------------------------------------------------------------
    def _message(self, *objs):
        self._messages.objects = list(objs)

    def _plan(self, start=None) -> None:
        """The span from ``start`` (default: the hour shown) with the page's current settings."""
        state = self.page.state
        region = state.parsed_region()
        if start is None:  # from the hour shown, moved back so the span fits before the end of the data
            start = max(min(state.timestamp, state.last - pd.Timedelta(hours=self.span - 1)), state.first)
        base = self.page._request(region, start)
        if base is None:
            raise ValueError("no diffusion checkpoint is available to play")
        self._times = TL.span_times(state.ds, start, self.span)
        self._reqs = TL.span_requests(base, self._times)

    def _stale(self) -> bool:
        """True when the planned span no longer matches the page's settings or the shown hour."""
        if not self._reqs:
            return True
        state = self.page.state
        try:
            base = self.page._request(state.parsed_region(), self._times[0])
            t = state.timestamp
        except ValueError:
            return True
        return base is None or base.key != self._reqs[0].key or t not in self._times

    def compute(self) -> None:
        """Queue the span's missing hours (shown in the progress bar)."""
        pending = []
        for req in self._reqs:
            _, job = R.submit(req)
            if job is not None:
                pending.append(job)
        if pending:
            self._jobs.watch(pending)
        self._update_text()

    def runs(self) -> list:
        """The span's computed runs, in time order (hours not computed yet are left out)."""
        return [r for r in (R.cached(q) for q in self._reqs) if r is not None]

    def _update_text(self, note: str = "") -> None:
        if not self._times:
            self._text.object = note
            return
        done = len(self.runs())
        t0, t1 = self._times[0], self._times[-1]
        self._text.object = (f"Span {t0:%Y-%m-%d %H:%M} to {t1:%H:%M} UTC ({len(self._times)} h): {done} of "
                             f"{len(self._times)} hours computed{' · ' + note if note else ''}")

    # -- play -------------------------------------------------------------------------------
    def _toggle(self, _=None) -> None:
        if self.playing:
            self.pause()
        else:
            self.play()

    def _prepare(self, always_compute: bool) -> bool:
        """Plan the span when it is stale and compute its runs (always, or only after a new plan);
        False, with the message shown, when the input is bad."""
        try:
            stale = self._stale()
            if stale:
                self._plan()
            if stale or always_compute:
                self.compute()
        except Exception as exc:  # noqa: BLE001
            self._message(alert(error_text(exc)))
            return False
        return True

    def play(self) -> None:
        if not self._prepare(always_compute=True):
            return
        self._message()
        self.playing = True
        self._button.label = "⏸ Pause"
        if self._poller is not None:
            self._poller.stop()
        self._poller = pn.state.add_periodic_callback(self._tick, period=int(1000 / self.fps))

    def pause(self) -> None:
        self.playing = False
        self._button.label = "▶ Play"
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self._update_text()

    def _tick(self) -> None:
        """One frame: the next computed hour of the span (from the last back to the first)."""
        if not self.playing or not self._times:
            return
        state = self.page.state
        try:
            k = self._times.index(state.timestamp)
        except (ValueError, KeyError):
            k = -1
        nxt = (k + 1) % len(self._times)
        if R.cached(self._reqs[nxt]) is None:
            self._update_text(f"waiting for {self._times[nxt]:%H:%M}")
            return
        state.time = self._times[nxt].strftime(TIME_FMT)
        self._update_text(f"playing {self._times[nxt]:%H:%M}")

    def _computed(self) -> None:
        self._update_text()
        self.draw()

    # -- cell series and accumulations ------------------------------------------------------
    def select_cell(self, x=None, y=None, **_) -> None:
        """A click on a map at lon ``x``, lat ``y``: plan the span if needed, draw the cell."""
        if x is None or y is None or not np.isfinite([x, y]).all():
            return
        source = getattr(self.page, "source", None)
        if source is not None and source.active:  # a predictions file: no span of runs to draw from
            return
        self._cell = (float(y), float(x))
        if not self.playing and not self._prepare(always_compute=False):
            return
        self.draw()

    def draw(self) -> None:
        """Draw the cell's series (when a cell is chosen) and the span's accumulations."""
        runs = self.runs()
        if not runs:
            return
        try:
            with pn.io.hold():
                if self._cell is not None:
                    self._series.object = self._series_plot(runs, *self._cell)
                self._accum.object = self._accum_plot(runs)
        except Exception as exc:  # noqa: BLE001
            self._message(alert(error_text(exc)))

    @staticmethod
    def _series_plot(runs, lat, lon):
        region = runs[0].region
        i, j = TL.cell_index(region, lat, lon)
        s = TL.cell_series(runs, i, j)
        g = region.fine_grid
        t = s["time"]
        band = hv.Area((t, s["lo"], s["hi"]), "time", ["lo", "hi"], label="members (min-max)").opts(
            color="#1f77b4", alpha=0.25, line_alpha=0)
        curves = [hv.Curve((t, s["mean"]), "time", "tp", label="ensemble mean").opts(color="#1f77b4", line_width=2.5),
                  hv.Curve((t, s["bicubic"]), "time", "tp", label="bicubic").opts(color="#ff7f0e", line_dash="dashed",
                                                                                   line_width=1.5)]
        if np.isfinite(s["truth"]).any():
            curves.insert(0, hv.Curve((t, s["truth"]), "time", "tp", label="truth").opts(color="black", line_width=2))
        # in a Layout (a grid) like every other plot of the page: a lone figure added next to the
        # page's grids left them and later grids unsized in the browser (Bokeh 3.9)
        return hv.Layout([hv.Overlay([band, *curves]).opts(
            frame_width=560, frame_height=220, ylabel="tp (mm/h)", xlabel="time (UTC)", legend_position="top_left",
            title=f"Cell {g.lat[i]:.2f}N, {g.lon[j]:.2f}E over {len(runs)} h", tools=["hover"])]).cols(1)

    @staticmethod
    def _accum_plot(runs):
        acc = TL.accumulate(runs)
        region = runs[0].region
        fg = region.fine_grid
        bounds = grid_bounds(fg.lat, fg.lon)
        size = frame_size(region, 200, 240)
        fields = [("truth", acc["truth"]), ("ensemble mean", acc["mean"])]
        fields += [(f"member {k}", acc["members"][k]) for k in range(min(2, acc["members"].shape[0]))]
        top = max(float(np.nanmax(v)) for _, v in fields if v is not None)
        clim = (max(TP_MIN, top / 1000), max(top, 1.0))
        panels = []
        for name, v in fields:
            if v is None:
                continue
            img = hv.Image(map_values(v, "tp")[::-1], bounds=bounds, kdims=["lon", "lat"],
                           vdims=[hv.Dimension("accumulation", unit="mm")]).opts(
                cmap="viridis", logz=True, clim=clim, colorbar=name == "ensemble mean", tools=["hover"],
                clipping_colors={"NaN": (0, 0, 0, 0)}, title=f"{name}: {acc['hours']} h total (mm)",
                fontsize={"title": 10}, **size)
            panels.append(coasted(img, region.bounds))
        return hv.Layout(panels).cols(4).opts(shared_axes=True)

    def tap_streams(self, dmaps) -> None:
        """Subscribe cell clicks on each DynamicMap of ``dmaps``."""
        for dmap in dmaps:
            hv.streams.Tap(source=dmap, x=None, y=None).add_subscriber(self.select_cell)

    # -- layout -----------------------------------------------------------------------------
    def controls(self):
        return pn.Row(self._button,
                      pn.widgets.IntInput.from_param(self.param.span, name="Span (h)", width=80),
                      pn.widgets.IntInput.from_param(self.param.fps, name="Frames/s", width=80),
                      self._jobs.progress, self._text, sizing_mode="stretch_width")

    def __panel__(self):
        return pn.Column(self._messages, self._help, self._series, self._accum, sizing_mode="stretch_width")


