"""The Downscale page's curve panels: power spectra and the QQ plot of a run (or of the truth
alone before a run), built by HoloViews once and then updated in place (:mod:`pages.direct`)."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from pages import direct as D
from pages.common import MAP_TOOLS, TP_MIN, WAVELENGTH_TICKS, style_group
from pages.downscale_fields import is_external
from ppviz.views import curves as C

SPEC_STYLE = {"truth": ("black", 2.5, "solid"), "bicubic": ("#ff7f0e", 1.5, "dashed"),
              "PP bicubic": ("#2ca02c", 1.5, "dashed"), "ensemble mean": ("#9467bd", 1.5, "dotted"),
              "members (mean)": ("#1f77b4", 2.5, "solid")}
_LAYER = {"framewise": True, "default_tools": MAP_TOOLS}  # options of every curve layer (no box zoom, no save)
QQ_STYLE = {"members": ("#1f77b4", "circle"), "bicubic": ("#ff7f0e", "triangle"),
            "PP bicubic": ("#2ca02c", "square")}

def _names(style: dict, view) -> list:
    """The curves of ``style`` a view has: a predictions file has no baselines (no legend entries for them)."""
    return [n for n in style if not (is_external(view) and n in ("bicubic", "PP bicubic"))]

def spectra_data(view):
    """(member paths [(n, 2) arrays], {name: (wavelength, psd)}) of the spectra panel."""
    curves, paths = {}, []
    if view is not None and view.run is not None:
        sp = C.spectra(view.run.ensemble, view.shown)
        curves = {k: v for k, v in sp.items() if k in SPEC_STYLE}
        paths = [np.column_stack([wl, np.maximum(p, 1e-12)]) for k, (wl, p) in sp.items() if k.startswith("member ")]
    elif view is not None and view.inputs.truth_tp is not None:
        from ppviz.spectral import rapsd

        _, p, wl = rapsd(view.inputs.truth_tp.astype(np.float64), view.inputs.region.fine_grid.dx_km,
                         return_wavelength=True)
        curves = {"truth": (wl, p)}
    empty = (np.array([1000.0, 100.0]), np.array([np.nan, np.nan]))
    curves = {name: curves.get(name, empty) for name in _names(SPEC_STYLE, view)}
    return paths, {name: (wl, np.maximum(p, 1e-12)) for name, (wl, p) in curves.items()}

def set_spectra(plot, paths, curves) -> None:
    layers = D.layers(plot)
    D.set_columns(layers["members"][0], xs=[p[:, 0] for p in paths], ys=[p[:, 1] for p in paths])
    for name, (wl, p) in curves.items():
        D.set_columns(layers[name][0], wavelength=np.asarray(wl), psd=np.asarray(p))
    xs = [wl for wl, p in curves.values() if np.isfinite(p).any()] + [p[:, 0] for p in paths]
    D.set_range(plot, "x", D.log_extent(xs, pad=0.0), inverted=True)
    D.set_range(plot, "y", D.log_extent([p for _, p in curves.values()] + [p[:, 1] for p in paths]))

def spectra(view):
    overlay = style_group("Overlay", logx=True, logy=True, invert_xaxis=True, frame_width=420, frame_height=260,
                          xlabel="wavelength (km)", xticks=WAVELENGTH_TICKS, ylabel="PSD ((mm/h)² km²)", framewise=True,
                          legend_position="bottom_left", title="Power spectra of TP (region, selected members)")
    paths, curves = spectra_data(view)
    elems = [hv.Path(paths, kdims=["wavelength", "psd"], label="members",
                     group=style_group("Path", color="#1f77b4", alpha=0.25, line_width=1, **_LAYER))]
    for name, (wl, p) in curves.items():
        color, lw, dash = SPEC_STYLE[name]
        elems.append(hv.Curve((wl, p), "wavelength", "psd", label=name,
                              group=style_group("Curve", color=color, line_width=lw, line_dash=dash, **_LAYER)))
    return hv.Overlay(elems, group=overlay)

def qq_data(view):
    """(truth quantiles, {name: model quantiles}, (lo, hi) of the 1:1 line) of the QQ panel."""
    q = {}
    if view is not None and view.run is not None and view.inputs.truth_tp is not None:
        q = C.quantiles(view.run.ensemble, view.shown)
    truth = np.maximum(q.get("truth", np.array([TP_MIN, 20.0])), 0.01)
    lo, hi = 0.01, max(float(np.nanmax(truth)) * 1.5, 1.0)
    model = {name: (np.maximum(q[name], 0.01) if name in q else np.full(truth.shape, np.nan))
             for name in _names(QQ_STYLE, view)}
    return truth, model, (lo, hi)

def set_qq(plot, truth, model, line) -> None:
    layers = D.layers(plot)
    D.set_columns(layers["1:1"][0], truth=np.asarray(line, dtype=float), model=np.asarray(line, dtype=float))
    for name, y in model.items():
        for layer in layers[name]:  # the curve and its markers
            D.set_columns(layer, truth=truth, model=y)
    D.set_range(plot, "x", D.log_extent([truth, np.asarray(line)]))
    D.set_range(plot, "y", D.log_extent([np.asarray(line), *model.values()]))

def qq(view):
    overlay = style_group("Overlay", logx=True, logy=True, frame_width=300, frame_height=260, framewise=True,
                          xlabel="truth quantile (mm/h)", ylabel="model quantile (mm/h)",
                          legend_position="top_left", title="QQ: wet tail (levels 0.80-0.9999)")
    truth, model, (lo, hi) = qq_data(view)
    elems = [hv.Curve(([lo, hi], [lo, hi]), "truth", "model", label="1:1",
                      group=style_group("Curve", color="grey", line_dash="dashed", **_LAYER))]
    for name, y in model.items():
        color, marker = QQ_STYLE[name]
        elems.append(hv.Curve((truth, y), "truth", "model", label=name, group=style_group("Curve", color=color, **_LAYER)))
        elems.append(hv.Scatter((truth, y), "truth", "model", label=name,
                                group=style_group("Scatter", color=color, marker=marker, size=6, **_LAYER)))
    return hv.Overlay(elems, group=overlay)

def panels(stream) -> tuple[dict, hv.Layout]:
    """``({name: DynamicMap}, layout)`` of the spectra and QQ panels fed by ``stream``."""
    spec = hv.DynamicMap(spectra, streams=[stream])
    qq_map = hv.DynamicMap(qq, streams=[stream])
    return {"spectra": spec, "qq": qq_map}, hv.Layout([spec, qq_map]).cols(2)  # different axes: nothing shared
