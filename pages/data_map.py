"""Data page: maps of the chosen dataset (tp and vimd) at the shared hour over the shared region."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn

from pages.common import CONTROL_WIDTH, SharedState, coast_lines, coasted, error_text, grid_bounds, image, region_controls, time_controls
from pages.help import how_to_read
from pages.safe import alert, markdown, text
from ppviz.views import cache as M


class DataMapPage(pn.viewable.Viewer):
    """TP (log scale, dry cells clear) and VIMD (diverging, centred at 0) side by side, on the
    session's :class:`SharedState` (the same hour and region as every other page)."""

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state

    def _maps(self, *_):
        try:
            reg = self.state.parsed_region()
            step, tp, vimd = M.region_fields(self.state.ds, self.state.timestamp, reg)
        except ValueError as exc:
            return alert(error_text(exc))
        message = coast_lines(reg.bounds)[1]
        when = pd.Timestamp(step.time.values).strftime("%Y-%m-%d %H:%M UTC")
        bounds = grid_bounds(step["lat"].values, step["lon"].values)
        size = dict(data_aspect=1, responsive=True, min_height=380)
        tp_map = image(tp, bounds, kind="tp", title=f"TP (mm/h), {when}").opts(**size)
        vimd_map = image(vimd, bounds, kind="diverging", title=f"VIMD (mm/h), {when}", label="vimd").opts(**size)
        layout = hv.Layout([coasted(tp_map, reg.bounds), coasted(vimd_map, reg.bounds)]).cols(2)
        note = markdown(f"*{text(message)}*  \nData: {text(M.dataset_label(self.state.ds))}",
                        sizing_mode="stretch_width")
        return pn.Column(pn.pane.HoloViews(layout, sizing_mode="stretch_width", linked_axes=True), note,
                         sizing_mode="stretch_width")

    def __panel__(self):
        p = self.state.param
        controls = pn.Column(time_controls(self.state), region_controls(self.state), width=CONTROL_WIDTH)
        maps = pn.bind(self._maps, p.time, p.region, p.box)
        return pn.Row(controls, pn.Column(how_to_read("data"), maps, sizing_mode="stretch_width"),
                      sizing_mode="stretch_width")
