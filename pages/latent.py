"""Pseudo-precipitation page: TP, VIMD and PP of an hour; PP against N(0, 1); the encoder and decoder."""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param

from pages.common import (
    offer_checkpoints, url_state,
    CONTROL_WIDTH, LazyPage, SharedState, alert, coasted, error_text, frame_size, grid_bounds, image,
    region_controls, time_controls,
)
from pages.help import how_to_read
from pages.safe import markdown, text
from ppviz.views import latent as L
from ppviz.views import cache as M


def _seamless_quads(plot, element):
    """Outline each quad in its own fill colour: anti-aliased canvas edges otherwise leave thin
    light seams between the cells of the mesh."""
    glyph = plot.handles["glyph"]
    glyph.line_color = glyph.fill_color
    glyph.line_alpha = 1.0
    glyph.line_width = 0.6


class LatentPage(LazyPage):
    """What the PP encoder does to one hour, and the encoder/decoder as functions."""

    pp_checkpoint = param.Selector(default=None, objects=[], allow_None=True, doc="PP checkpoint")

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        offer_checkpoints(self, "pp_checkpoint", "pp")
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._maps = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._dist = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._funcs = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._scores = markdown("", width=CONTROL_WIDTH)
        state.param.watch(self._changed, ["time", "region", "box"])
        self.param.watch(self._changed, ["pp_checkpoint"])
        self._url_note = url_state(self, {"pp_checkpoint": "pp_ckpt"})

    def _update(self) -> None:
        try:
            region = self.state.parsed_region()
            f = L.pp_fields(self.state.ds, self.state.timestamp, region, self.pp_checkpoint)
            model = M.load_pp(self.pp_checkpoint).model
        except Exception as exc:  # noqa: BLE001
            self._messages.objects = [alert(error_text(exc))]
            return
        self._messages.objects = []
        with pn.io.hold():
            self._maps.object = self._map_layout(f, region)
            self._dist.object = self._distribution(f)
            self._funcs.object = self._functions(model, f)
            s = f["scores"]
            self._scores.object = (
                "**PP of this hour and region**\n\n| score | value |\n|---|---|\n"
                + "\n".join(f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {text(k)} | {text(v)} |" for k, v in s.items())
            )

    def _map_layout(self, f, region):
        b = grid_bounds(f["lat"], f["lon"])
        size = frame_size(region, 180, 240)
        when = f"{f['time']:%Y-%m-%d %H:%M}"
        err = f["error"]
        lim = max(float(np.abs(err).max()), 1e-3)
        panels = [
            image(f["tp"], b, kind="tp", title=f"TP (mm/h), {when}"),
            image(f["vimd"], b, kind="diverging", title="VIMD (mm/h; < 0 converges)", label="vimd"),
            image(f["pp"], b, kind="pp", title="PP (encoded)"),
            image(err, b, kind="diverging", clim=(-lim, lim), title="decode(encode) - TP (mm/h)", label="error"),
        ]
        return hv.Layout([coasted(p.opts(**size), region.bounds) for p in panels]).cols(4).opts(shared_axes=True)

    def _distribution(self, f):
        n = L.normal_comparison(f["pp"])
        hist = hv.Histogram((n["edges"], n["density"]), kdims=["PP"], vdims=["density"], label="PP of this hour").opts(
            fill_color="#1f77b4", alpha=0.5, line_color=None)
        pdf = hv.Curve((n["x"], n["pdf"]), "PP", "density", label="N(0, 1)").opts(color="black", line_width=2)
        lo, hi = -4, 4
        qq = (hv.Curve(([lo, hi], [lo, hi]), "normal quantile", "PP quantile", label="1:1").opts(color="grey", line_dash="dashed")
              * hv.Scatter((n["theoretical"], n["sample"]), "normal quantile", "PP quantile", label="PP").opts(
                  color="#1f77b4", size=4))
        return hv.Layout([
            (hist * pdf).opts(title="PP histogram vs N(0, 1)", frame_width=360, frame_height=240, legend_position="top_left"),
            qq.opts(title="QQ: PP vs N(0, 1)", frame_width=300, frame_height=240, legend_position="top_left"),
        ]).cols(2).opts(shared_axes=False)

    def _functions(self, model, f):
        s = L.encoder_surface(model)
        mesh = hv.QuadMesh((s["tp"], s["vimd"], s["pp"]), ["tp", "vimd"], ["PP"]).opts(
            cmap="RdBu_r", clim=(-3, 3), logx=True, colorbar=True, frame_width=260, frame_height=260, tools=["hover"],
            xlabel="tp (mm/h, log)", ylabel="vimd (mm/h)", title="Encoder PP(tp, vimd)",
            hooks=[_seamless_quads])
        dry = hv.Curve((s["vimd"], s["pp_dry"]), "vimd", "PP", label="dry cells: PP(0, vimd)").opts(
            color="#d62728", line_width=2, frame_width=240, frame_height=260, title="Encoder at tp = 0 (dry)",
            xlabel="vimd (mm/h)", ylabel="PP")
        pp, tp = L.decoder_curve(model)
        pts = L.sample_pairs(f)
        dec = (hv.Scatter((pts["pp"], pts["tp"]), "PP", "tp", label="cells of this hour").opts(
            color="grey", alpha=0.4, size=3)
               * hv.Curve((pp, tp), "PP", "tp", label="decoder tp(PP)").opts(color="black", line_width=2)).opts(
            frame_width=260, frame_height=260, title="Decoder tp(PP)", xlabel="PP", ylabel="tp (mm/h)",
            legend_position="top_left")
        return hv.Layout([mesh, dry, dec]).cols(3).opts(shared_axes=False)

    def __panel__(self):
        pick = pn.widgets.Select.from_param(self.param.pp_checkpoint, label="PP checkpoint", width=CONTROL_WIDTH - 20)
        controls = pn.Column(time_controls(self.state), region_controls(self.state), pick, self._scores,
                             width=CONTROL_WIDTH + 20)
        intro = markdown(
            "The encoder blends TP with VIMD into one smooth field: where it rains PP follows TP, where it is "
            "dry PP follows -VIMD (moisture convergence). Its distribution should be standard normal; the "
            "decoder maps PP back to TP (exactly 0 in the dry part of PP space).", sizing_mode="stretch_width")
        main = pn.Column(self._url_note, self._messages, how_to_read("latent"), intro, self._maps, self._dist, self._funcs, sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
