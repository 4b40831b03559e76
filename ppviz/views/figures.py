"""Static figures (PNG via matplotlib's Agg backend) of what the dashboard shows.

Thread-safe (no pyplot state: each call builds its own :class:`matplotlib.figure.Figure`), no
browser needed. Colour conventions follow the dashboard: tp on a log scale from 0.1 to 20 mm/h
with drier cells left clear, PP on a diverging scale centred at 0; coastlines and borders from
:func:`ppviz.maps.map_features` when the Natural Earth files are there.
"""

from __future__ import annotations

import io

import numpy as np

from ppviz.constants import DRY_THRESHOLD_MMH

TP_MIN, TP_MAX = DRY_THRESHOLD_MMH, 20.0


def _edges(lat: np.ndarray, lon: np.ndarray) -> list[float]:
    rl = float(lat[1] - lat[0]) if lat.size > 1 else 1.0
    rn = float(lon[1] - lon[0]) if lon.size > 1 else 1.0
    return [lon[0] - rn / 2, lon[-1] + rn / 2, lat[0] - rl / 2, lat[-1] + rl / 2]


def draw_field(ax, values, lat, lon, *, kind: str, title: str, lim: float | None = None, coast=None):
    """One map on ``ax``: ``kind`` 'tp' (log, dry clear) or 'diverging' (centred at 0)."""
    from matplotlib.colors import LogNorm

    v = np.asarray(values, dtype=np.float64)
    ext = _edges(np.asarray(lat), np.asarray(lon))
    if kind == "tp":
        shown = np.ma.masked_less(v, TP_MIN)
        im = ax.imshow(shown, origin="lower", extent=ext, cmap="viridis", norm=LogNorm(TP_MIN, TP_MAX),
                       interpolation="nearest", aspect="equal")
        label = "mm/h"
    else:
        lim = lim or float(np.nanpercentile(np.abs(v), 99)) or 1.0
        im = ax.imshow(v, origin="lower", extent=ext, cmap="RdBu_r", vmin=-lim, vmax=lim,
                       interpolation="nearest", aspect="equal")
        label = ""
    if coast is not None:
        for name, (xs, ys) in coast.lines.items():
            ax.plot(xs, ys, color="black" if name == "coastline" else "#555555",
                    lw=0.7 if name == "coastline" else 0.4)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    if label:
        cb.set_label(label, fontsize=7)
    return im


def ensemble_png(run, *, member: int = 0, members=None, dpi: int = 100) -> bytes:
    """PNG of an :class:`ppviz.views.runs.EnsembleRun` (or a :class:`ppviz.views.external.ExternalRun`):
    inputs, PP, a member, mean, spread, truth, and the power spectra (the parts a source has)."""
    from matplotlib.figure import Figure

    from ppviz.views.curves import mean_and_spread, selected, spectra
    from ppviz.maps import map_features

    ens = run.ensemble
    inp = ens.inputs
    reg = inp.region
    fg, cg = reg.fine_grid, reg.coarse_grid
    coast = map_features(tuple(float(b) for b in reg.bounds))
    coast = coast if coast.available else None
    sel = selected(ens, members)
    member = member if member in sel else sel[0]
    mean, spread = mean_and_spread(ens, sel)
    when = f"{inp.time:%Y-%m-%d %H:%M} UTC"
    panels = [
        (inp.coarse_tp, cg, "tp", f"coarse input TP (1 deg), {when}"),
        (inp.coarse_pp, cg, "diverging", "coarse PP (1 deg)"),
        (inp.truth_pp, fg, "diverging", "truth PP (0.25 deg)"),
        (ens.tp_members[member], fg, "tp", f"member {member} TP"),
        (mean, fg, "tp", f"ensemble mean TP ({len(sel)} members)"),
        (spread, fg, "spread", "ensemble spread (std, mm/h)"),
        (inp.truth_tp, fg, "tp", "truth TP (0.25 deg)"),
    ]
    panels = [p for p in panels if p[0] is not None]
    fig = Figure(figsize=(16, 8.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(2, 4)
    for ax, (val, grid, kind, title) in zip(axes.flat, panels):
        if kind == "spread":
            im = ax.imshow(np.asarray(val), origin="lower", extent=_edges(grid.lat, grid.lon), cmap="magma",
                           interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.tick_params(labelsize=7)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
            if coast is not None:
                for name, (xs, ys) in coast.lines.items():
                    ax.plot(xs, ys, color="white", lw=0.5)
                ext = _edges(grid.lat, grid.lon)
                ax.set_xlim(ext[0], ext[1])
                ax.set_ylim(ext[2], ext[3])
        else:
            draw_field(ax, val, grid.lat, grid.lon, kind=kind, title=title, coast=coast)
    ax = axes.flat[len(panels)] if len(panels) < 8 else None
    if ax is not None:
        styles = {"truth": ("black", 2.0), "bicubic": ("tab:orange", 1.2), "PP bicubic": ("tab:green", 1.2),
                  "members (mean)": ("tab:blue", 2.0), "ensemble mean": ("tab:purple", 1.2)}
        for name, (wl, psd) in spectra(ens, sel, each_member=False).items():
            if name in styles:
                c, lw = styles[name]
                ax.loglog(wl, np.maximum(psd, 1e-12), color=c, lw=lw, label=name)
        ax.invert_xaxis()
        ax.set_xlabel("wavelength (km)", fontsize=8)
        ax.set_ylabel("PSD ((mm/h)^2 km^2)", fontsize=8)
        ax.set_title("power spectra of TP", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for extra in list(axes.flat)[len(panels) + 1:]:
        extra.set_visible(False)
    fig.suptitle(f"ppviz: {reg.title}, {run.caption}", fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
