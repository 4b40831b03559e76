"""Data page: maps of the loaded dataset (tp and vimd) for a chosen hour and region."""

from __future__ import annotations

import holoviews as hv
import pandas as pd
import panel as pn
import param

from pages.common import coast_paths, grid_bounds, image
from pages.safe import alert, markdown, text
from ppviz.data.regions import NAMED_REGIONS, Region
from ppviz.data.source import load_dataset, select_time


@pn.cache
def cached_dataset():
    return load_dataset(None)


class DataMapPage(pn.viewable.Viewer):
    """TP (log scale, dry cells clear) and VIMD (diverging, centred at 0) side by side."""

    region = param.Selector(default="europe", objects={v[0]: k for k, v in NAMED_REGIONS.items()})
    time = param.Date(default=None)

    def __init__(self, **params):
        self._ds = cached_dataset()
        times = pd.DatetimeIndex(self._ds.time.values)
        super().__init__(**params)
        self.param.time.bounds = (times[0].to_pydatetime(), times[-1].to_pydatetime())
        if self.time is None:
            self.time = times[min(36, times.size - 1)].to_pydatetime()

    def _maps(self, region, time):
        try:
            reg = Region.parse(region)
            step = reg.subset(select_time(self._ds, pd.Timestamp(time).floor("h")))
        except ValueError as exc:
            return alert(text(exc))
        paths, message = coast_paths(reg.bounds)
        when = pd.Timestamp(step.time.values).strftime("%Y-%m-%d %H:%M UTC")
        bounds = grid_bounds(step["lat"].values, step["lon"].values)
        size = dict(data_aspect=1, responsive=True, min_height=380)
        tp = image(step["tp"].values, bounds, kind="tp", title=f"TP (mm/h), {when}").opts(**size)
        vimd = image(step["vimd"].values, bounds, kind="diverging", title=f"VIMD (mm/h), {when}", label="vimd").opts(**size)
        layout = hv.Layout([hv.Overlay([tp, *paths]), hv.Overlay([vimd, *paths])]).cols(2)
        note = markdown(f"*{text(message)}*  \nData: {text(self._ds.attrs.get('source', '?'))}", sizing_mode="stretch_width")
        return pn.Column(pn.pane.HoloViews(layout, sizing_mode="stretch_width", linked_axes=True), note, sizing_mode="stretch_width")

    def __panel__(self):
        controls = pn.Row(
            pn.widgets.Select.from_param(self.param.region, label="Region"),
            pn.widgets.DatetimePicker.from_param(self.param.time, label="Time (UTC)", enable_seconds=False),
        )
        return pn.Column(controls, pn.bind(self._maps, self.param.region, self.param.time), sizing_mode="stretch_width")
