"""Gibbs page: spectral truncation of TP rings (negative rain, spurious drizzle); truncating PP does not."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from pages.common import (
    url_state,
    WAVELENGTH_TICKS, CONTROL_WIDTH, LazyPage, SharedState, alert, coasted, error_text, frame_size, grid_bounds, image,
    region_controls, time_controls,
)
from pages.help import how_to_read
from pages.safe import markdown
from ppviz.views import ringing as G
from ppviz.spectral import DEFAULT_CUTOFF_KM

MAX_MARKS = 4000  # marked cells drawn per kind (a regular subsample beyond)


def _marks(mask, lat, lon, label, color, marker):
    iy, ix = np.nonzero(mask)
    if iy.size > MAX_MARKS:
        keep = np.linspace(0, iy.size - 1, MAX_MARKS).astype(int)
        iy, ix = iy[keep], ix[keep]
    return hv.Points((lon[ix], lat[iy]), ["lon", "lat"], label=label).opts(
        color=color, marker=marker, size=4, line_width=1)


class GibbsPage(LazyPage):
    """Original TP, truncated TP (ringing marked), truncated-then-decoded PP, a profile, spectra, numbers."""

    cutoff_km = param.Number(default=round(DEFAULT_CUTOFF_KM), bounds=(60, 1500), doc="shortest wavelength kept")
    method = param.Selector(default="dct", objects={"DCT (no wrap-around)": "dct", "FFT (periodic)": "fft"})
    profile_lat = param.Number(default=None, allow_None=True, doc="latitude of the profile (None: sharpest edge)")

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._maps = pn.pane.HoloViews(None, linked_axes=True, sizing_mode="stretch_width")
        self._lower = pn.pane.HoloViews(None, sizing_mode="stretch_width")
        self._table = pn.pane.DataFrame(None, width=640, index=False, float_format="{:.4g}".format)
        self._lat_slider = pn.widgets.FloatSlider(label="Profile latitude (°N)", start=0, end=1, step=0.25,
                                                  width=CONTROL_WIDTH - 20)
        self._lat_slider.param.watch(self._profile_moved, "value_throttled")
        self._fields = None
        state.param.watch(self._reset_profile, ["region", "box"])
        state.param.watch(self._changed, ["time", "region", "box"])
        self.param.watch(self._changed, ["cutoff_km", "method", "profile_lat"])
        self._url_note = url_state(self, {"cutoff_km": "cutoff", "method": "method", "profile_lat": "profile_lat"})

    def _reset_profile(self, *_):
        self.profile_lat = None

    def _profile_moved(self, event):
        self.profile_lat = float(event.new)

    def _update(self) -> None:
        try:
            region = self.state.parsed_region()
            f = G.gibbs_fields(self.state.ds, self.state.timestamp, region, cutoff_km=self.cutoff_km,
                               method=self.method)
        except Exception as exc:  # noqa: BLE001
            self._messages.objects = [alert(error_text(exc))]
            return
        self._messages.objects = []
        lat = f["lat"]
        row = f["edge_row"]
        if self.profile_lat is not None:
            row = int(np.clip(np.argmin(np.abs(lat - self.profile_lat)), 0, lat.size - 1))
        self._fields = f
        with pn.io.hold():
            self._lat_slider.param.update(start=float(lat[0]), end=float(lat[-1]), value=float(lat[row]))
            self._maps.object = self._map_layout(f, region, row)
            self._lower.object = self._profile_and_spectra(f, row)
            self._table.object = pd.DataFrame(G.diagnostics_rows(f["diagnostics"]))

    def _map_layout(self, f, region, row):
        lat, lon = f["lat"], f["lon"]
        b = grid_bounds(lat, lon)
        def coast(img):
            return coasted(img, region.bounds)

        size = frame_size(region, 180, 240)
        line = hv.HLine(float(lat[row])).opts(color="red", line_dash="dashed", line_width=1.5)
        neg = _marks(f["negative"], lat, lon, "< -0.01 mm/h", "red", "x")
        drz = _marks(f["drizzle"], lat, lon, "spurious drizzle", "#ff00ff", "circle")
        neg2 = _marks(f["negative_pp_route"], lat, lon, "< -0.01 mm/h", "red", "x")
        drz2 = _marks(f["drizzle_pp_route"], lat, lon, "spurious drizzle", "#ff00ff", "circle")
        cut = f"{self.cutoff_km:.0f} km, {self.method.upper()}"
        panels = [
            hv.Overlay([coast(image(f["tp"], b, kind="tp", title=f"original TP, {f['time']:%Y-%m-%d %H:%M}").opts(**size)),
                        line]),
            hv.Overlay([coast(image(f["tp_truncated"], b, kind="tp", title=f"truncated TP ({cut})").opts(**size)),
                        neg, drz, line]).opts(show_legend=False),  # the marks are explained above
            hv.Overlay([coast(image(f["pp_route"], b, kind="tp", title="truncated PP, decoded").opts(**size)),
                        neg2, drz2, line]).opts(show_legend=False),
            hv.Overlay([coast(image(f["tp_truncated"], b, kind="diverging", title="truncated TP (signed, mm/h)",
                                    label="tp").opts(**size)), line]),
        ]
        return hv.Layout(panels).cols(4).opts(shared_axes=True)

    def _profile_and_spectra(self, f, row):
        lon = f["lon"]
        lat = float(f["lat"][row])
        prof = hv.Overlay([
            hv.Curve((lon, f["tp"][row]), "lon", "tp", label="original TP").opts(color="black", line_width=2.5),
            hv.Curve((lon, f["tp_truncated"][row]), "lon", "tp", label="truncated TP").opts(color="#d62728", line_width=1.5),
            hv.Curve((lon, f["pp_route"][row]), "lon", "tp", label="truncated PP, decoded").opts(color="#2ca02c", line_width=1.5),
            hv.HLine(0).opts(color="grey", line_dash="dotted"),
        ]).opts(title=f"Profile along {lat:.2f}°N (dashed line on the maps)", frame_width=480, frame_height=250,
                xlabel="longitude (°E)", ylabel="tp (mm/h)", legend_position="top", legend_cols=3)  # above: never over the profile
        style = {"TP": ("black", 2.5), "truncated TP": ("#d62728", 1.5), "truncated PP, decoded": ("#2ca02c", 1.5)}
        spec = hv.Overlay([
            hv.Curve((wl, np.maximum(p, 1e-12)), "wavelength", "psd", label=k).opts(color=style[k][0], line_width=style[k][1])
            for k, (wl, p) in f["spectra"].items()
        ] + [hv.VLine(float(self.cutoff_km)).opts(color="grey", line_dash="dashed")]).opts(
            logx=True, logy=True, invert_xaxis=True, frame_width=380, frame_height=250, xlabel="wavelength (km)", xticks=WAVELENGTH_TICKS,
            ylabel="PSD ((mm/h)² km²)", title="Power spectra (cutoff dashed)", legend_position="top", legend_cols=3)
        return hv.Layout([prof, spec]).cols(2).opts(shared_axes=False)

    def __panel__(self):
        # recompute when the slider is released, not on every pixel of a drag
        cutoff = pn.widgets.FloatSlider(label="Cutoff wavelength (km)", start=60, end=1500, step=10,
                                        value=self.cutoff_km, width=CONTROL_WIDTH - 20)
        cutoff.param.watch(lambda e: setattr(self, "cutoff_km", float(e.new)), "value_throttled")
        self.param.watch(lambda e: setattr(cutoff, "value", float(e.new)), "cutoff_km")
        method = pn.widgets.RadioButtonGroup.from_param(self.param.method, label="Method", width=CONTROL_WIDTH - 20)
        controls = pn.Column(time_controls(self.state), region_controls(self.state), cutoff, method,
                             self._lat_slider, width=CONTROL_WIDTH + 20)
        intro = markdown(
            "Keeping only wavelengths above the cutoff rings at rain edges when applied to TP (red x: negative rain "
            "below -0.01 mm/h; magenta o: drizzle > 0.1 mm/h where it was dry). Truncating the smooth PP field and decoding "
            "it does not. The profile follows the row with the sharpest rain edge unless you move it.",
            sizing_mode="stretch_width")
        main = pn.Column(self._url_note, self._messages, how_to_read("gibbs"), intro, self._maps, self._lower,
                         markdown("**Diagnostics** (against the original TP)"), self._table,
                         sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
