"""Static evaluation figures (PNG, matplotlib Agg) of an ensemble run: the ``ppviz evaluate`` report.

Library only: no Panel, no display needed (the Agg backend is used through
:class:`matplotlib.figure.Figure`, never ``pyplot``, so nothing global is touched). Every figure
has units on its axes or colour bars and a legend; every map has coastlines and borders from
:func:`ppviz.maps.map_features` (offline Natural Earth; without the files the map says so).
PNGs are written atomically (temporary sibling, then rename).

Inputs
------
* ``metrics``: :class:`ppviz.metrics.EnsembleMetrics` (``curves``: ``spectrum`` (source,
  wavenumber), ``member_spectrum`` (member, wavenumber), ``spectral_ratio``, ``quantile_value``
  (source, quantile), ``rank_histogram`` (rank); ``scalars``: ``spread_skill_ratio`` ...).
* ``ratio``: percentile ratio maps, dims (forecast, percentile, lat, lon), dimensionless
  (:func:`ppviz.metrics.percentile_ratio_maps` per forecast).
* ``ds``: a :mod:`ppviz.pipeline` output (``tp`` (member, time, lat, lon), ``tp_truth``,
  ``tp_coarse`` on ``lat_coarse``/``lon_coarse``, ``pp`` or ``tp_z``), mm/h.

Functions
---------
:func:`spectra_figure`, :func:`qq_figure`, :func:`rank_histogram_figure`,
:func:`percentile_ratio_figure`, :func:`date_maps_figure` each save one PNG and return its path;
:func:`write_report` makes all of them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ppviz.constants import DRY_THRESHOLD_MMH, KM_PER_DEG

__all__ = [
    "FIGURES", "date_maps_figure", "percentile_ratio_figure", "qq_figure", "rank_histogram_figure", "save_figure",
    "spectra_figure", "write_report",
]

#: File names of :func:`write_report`.
FIGURES = {
    "spectra": "spectra.png",
    "qq": "qq.png",
    "rank_histogram": "rank_histogram.png",
    "percentile_ratio": "percentile_ratio.png",
    "maps": "maps.png",
}

_STYLE = {
    "truth": {"color": "black", "lw": 2.2, "label": "truth"},
    "ensemble": {"color": "tab:blue", "lw": 2.0, "label": "ensemble (mean of member spectra)"},
    "ensemble_mean": {"color": "tab:blue", "lw": 1.6, "ls": "--", "label": "ensemble-mean field"},
    "bicubic": {"color": "tab:orange", "lw": 1.5, "label": "bicubic"},
    "nearest": {"color": "tab:brown", "lw": 1.2, "ls": ":", "label": "nearest"},
    "pp_bicubic": {"color": "tab:green", "lw": 1.5, "label": "PP-bicubic"},
}


def _style(name: str) -> dict:
    return dict(_STYLE.get(name, {"lw": 1.3, "label": name}))


def _short(name: str) -> str:
    return {"ensemble": "ensemble", "ensemble_mean": "ensemble-mean field"}.get(name, _style(name)["label"])


def _figure(w: float, h: float, layout: str = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout=layout)  # maps: "compressed" (fixed-aspect grids)


def save_figure(fig, path) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically (temporary sibling, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a figure is for sharing
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- curves ------------------------------------------------------------------------------------


def spectra_figure(metrics, path, *, title: str = "") -> Path:
    """Power spectra (log-log, against wavelength in km) and their ratio to the truth's.

    Left: truth, every member (thin), the ensemble (mean of the member spectra) and each baseline.
    Right: ``forecast / truth`` per wavelength (1 = the truth's power). The coarse grid's Nyquist
    wavelength (2 x 111 km) is marked: scales left of it are in the input, right of it generated.
    """
    c = metrics.curves
    if "spectrum" not in c:
        raise ValueError("the metrics have no spectra (EnsembleAccumulator(spectra=False)?)")
    spec = c["spectrum"]
    wl = np.asarray(spec["wavelength_km"].values)
    fig = _figure(12, 4.8)
    ax, axr = fig.subplots(1, 2)
    if "member_spectrum" in c:
        ms = c["member_spectrum"]
        for i, m in enumerate(ms.transpose(..., "wavenumber").values.reshape(-1, wl.size)):
            ax.loglog(wl, m, color="tab:blue", lw=0.6, alpha=0.35, label="members" if i == 0 else None)
    for src in spec["source"].values:
        ax.loglog(wl, spec.sel(source=src).values, **_style(str(src)))
    for a in (ax, axr):
        a.axvline(2 * KM_PER_DEG, color="grey", lw=0.8, ls=":")
        a.set_xlim(wl.max() * 1.05, wl.min() / 1.05)  # large scales on the left
        a.set_xlabel("wavelength (km)")
        a.grid(True, which="both", alpha=0.25)
    ax.text(2 * KM_PER_DEG, 0.02, " 1\u00b0 grid Nyquist (222 km)", transform=ax.get_xaxis_transform(),
            fontsize=8, color="grey", rotation=90, va="bottom")
    ax.set_ylabel("power spectral density ((mm/h)\u00b2 km\u00b2)")
    ax.set_title("tp power spectra" + (f": {title}" if title else ""))
    ax.legend(fontsize=8, loc="lower left")
    ratio = c["spectral_ratio"] if "spectral_ratio" in c else None
    if ratio is not None:
        for f in ratio["forecast"].values:
            axr.loglog(wl, ratio.sel(forecast=f).values, **_style(str(f)))
    axr.axhline(1.0, color="black", lw=1.0)
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    axr.yaxis.set_major_formatter(plain)
    axr.yaxis.set_minor_formatter(plain)
    for band, col in (((25, 100), "tab:purple"), ((50, 200), "tab:olive")):
        axr.axvspan(max(band[0], wl.min()), band[1], color=col, alpha=0.07)
    axr.set_ylabel("spectral ratio forecast / truth (1)")
    axr.set_title("ratio to truth (shaded: 25-100 and 50-200 km bands)")
    axr.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


def qq_figure(metrics, path, *, title: str = "", min_value: float = 1e-3) -> Path:
    """Quantile-quantile plot: each forecast's pooled tp quantiles against the truth's (log axes).

    Levels where the truth's quantile is below ``min_value`` mm/h (dry) are left out (log axes).
    Points on the 1:1 line mean the same distribution; the top levels are annotated.
    """
    q = metrics.curves["quantile_value"]
    levels = np.asarray(q["quantile"].values)
    t = np.asarray(q.sel(source="truth").values)
    use = t >= min_value
    fig = _figure(6.2, 5.6)
    ax = fig.subplots()
    if not use.any():
        ax.text(0.5, 0.5, f"the truth is below {min_value} mm/h at every quantile level shown",
                ha="center", va="center", transform=ax.transAxes)
    else:
        lo = t[use].min() / 1.5
        hi = float(np.nanmax(q.values[..., use])) * 1.5
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1, ls="--", label="1:1")
        for src in q["source"].values:
            if src == "truth":
                continue
            v = np.asarray(q.sel(source=src).values)
            ok = use & (v > 0)
            st = _style(str(src))
            st.pop("lw", None)
            if src == "ensemble":
                st["label"] = "ensemble (members pooled)"
            ax.plot(t[ok], v[ok], marker="o", ms=3.5, lw=1.0, **st)
        for lev in (0.99, 0.999, 0.9999):
            k = np.flatnonzero(np.isclose(levels, lev))
            if k.size and use[k[0]]:
                ax.annotate(f"{100 * lev:g}%", (t[k[0]], t[k[0]]), textcoords="offset points", xytext=(6, -10),
                            fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xlabel("truth quantile (mm/h)")
    ax.set_ylabel("forecast quantile (mm/h)")
    ax.set_title("tp quantiles, pooled over space and time" + (f"\n{title}" if title else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    return save_figure(fig, path)


def rank_histogram_figure(metrics, path, *, title: str = "") -> Path:
    """Rank histogram of the truth among the members (relative frequency), flat line = reliable."""
    rh = metrics.curves["rank_histogram"]
    counts = np.asarray(rh.values, dtype=np.float64)
    freq = counts / counts.sum() if counts.sum() else counts
    fig = _figure(6.2, 4.2)
    ax = fig.subplots()
    ax.bar(np.arange(freq.size), freq, color="tab:blue", alpha=0.8, label="truth's rank")
    ax.axhline(1.0 / freq.size, color="black", ls="--", lw=1, label=f"uniform (1/{freq.size})")
    s = metrics.scalars
    ssr = s.get("spread_skill_ratio", float("nan"))
    ax.set_xlabel(f"rank of the truth among {freq.size - 1} members (ties broken at random)")
    ax.set_ylabel("relative frequency (1)")
    ax.set_xticks(np.arange(freq.size))
    ax.set_title(f"rank histogram; spread/skill {ssr:.2f}" + (f"\n{title}" if title else ""), fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# -- maps --------------------------------------------------------------------------------------


def _edges(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    d = np.diff(c).mean() if c.size > 1 else 1.0
    return np.concatenate([c - d / 2, [c[-1] + d / 2]])


def _bounds(lat, lon) -> tuple[float, float, float, float]:
    la, lo = _edges(lat), _edges(lon)
    return (float(la.min()), float(la.max()), float(lo.min()), float(lo.max()))


def _coastlines(ax, bounds) -> str:
    from ppviz.maps import map_features

    feats = map_features(tuple(round(b, 4) for b in bounds))
    for name, (x, y) in feats.lines.items():
        ax.plot(x, y, color="black" if name == "coastline" else "dimgrey", lw=0.7 if name == "coastline" else 0.45,
                ls="-" if name == "coastline" else "--")
    ax.set_xlim(bounds[2], bounds[3])
    ax.set_ylim(bounds[0], bounds[1])
    ax.set_aspect(1.0 / np.cos(np.deg2rad(0.5 * (bounds[0] + bounds[1]))))
    return "" if feats.available else feats.message


def _map(ax, lat, lon, values, bounds, *, norm, cmap, title, xlabel=False, ylabel=False, row_label=""):
    m = ax.pcolormesh(_edges(lon), _edges(lat), values, norm=norm, cmap=cmap, shading="flat", rasterized=True)
    msg = _coastlines(ax, bounds)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    if xlabel:
        ax.set_xlabel("longitude (\u00b0E)", fontsize=8)
    else:  # inner rows: no longitude labels (they would collide with the titles below)
        ax.tick_params(labelbottom=False)
    if ylabel:
        ax.set_ylabel((f"{row_label}\n" if row_label else "") + "latitude (\u00b0N)", fontsize=8)
    return m, msg


def _log_ticks(cb, ticks) -> None:
    """Plain-number major ticks on a log colour bar, no minor labels."""
    from matplotlib.ticker import NullFormatter

    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:g}" for t in ticks])
    cb.ax.yaxis.set_minor_formatter(NullFormatter())
    cb.ax.xaxis.set_minor_formatter(NullFormatter())


def _tp_cmap():
    import matplotlib

    return matplotlib.colormaps["YlGnBu"].with_extremes(bad=(0, 0, 0, 0), under=(0, 0, 0, 0))


def _masked_tp(a) -> np.ma.MaskedArray:
    a = np.asarray(a, dtype=np.float64)
    return np.ma.masked_where(~np.isfinite(a) | (a < DRY_THRESHOLD_MMH), a)


def percentile_ratio_figure(ratio: xr.DataArray, path, *,
                            forecasts: Sequence[str] | None = ("ensemble", "bicubic", "pp_bicubic"),
                            percentiles: Sequence[float] = (99.0, 99.9), title: str = "",
                            max_ratio: float = 5.0) -> Path:
    """Maps of per-cell percentile ratios forecast / truth (one row per forecast, one column per level).

    ``forecasts`` (those present) are drawn, by default the ensemble, bicubic and PP-bicubic
    (None: every forecast in ``ratio``). Colours: diverging, log-scaled, centred at 1 (white), from ``1 / max_ratio`` (brown, too dry)
    to ``max_ratio`` (teal, too wet), values beyond clipped to the ends; grey where the truth's
    percentile is 0 (no ratio defined).
    """
    import matplotlib
    from matplotlib.colors import LogNorm

    if "forecast" not in ratio.dims:
        ratio = ratio.expand_dims(forecast=["ensemble"])
    have = [str(f) for f in ratio["forecast"].values]
    forecasts = [f for f in forecasts if f in have] if forecasts is not None else have
    if not forecasts:
        raise ValueError(f"none of the forecasts is in the ratio maps ({have})")
    pcts = [p for p in percentiles if np.isclose(ratio["percentile"].values, p).any()]
    if not pcts:
        raise ValueError(f"none of the percentiles {list(percentiles)} is in the ratio maps")
    lat, lon = ratio["lat"].values, ratio["lon"].values
    bounds = _bounds(lat, lon)
    aspect = (bounds[3] - bounds[2]) * np.cos(np.deg2rad(np.mean(bounds[:2]))) / (bounds[1] - bounds[0])
    w = min(15.0, 2.0 + len(pcts) * 3.6 * max(1.0, min(aspect, 2.2)))
    fig = _figure(w, 0.9 + 3.0 * len(forecasts), "compressed")
    axes = np.atleast_2d(fig.subplots(len(forecasts), len(pcts), squeeze=False))
    cmap = matplotlib.colormaps["BrBG"].with_extremes(bad="lightgrey")
    norm = LogNorm(vmin=1.0 / max_ratio, vmax=max_ratio, clip=True)
    mappable, msgs = None, set()
    for i, f in enumerate(forecasts):
        for j, p in enumerate(pcts):
            r = ratio.sel(forecast=f).sel(percentile=p, method="nearest").values
            vals = np.ma.masked_invalid(np.clip(r, 1.0 / max_ratio, max_ratio))
            mappable, msg = _map(axes[i, j], lat, lon, vals, bounds, norm=norm, cmap=cmap,
                                 title=f"{_short(f)}: p{p:g} / truth p{p:g}",
                                 xlabel=i == len(forecasts) - 1, ylabel=j == 0)
            msgs.add(msg)
    cb = fig.colorbar(mappable, ax=axes, shrink=min(0.85, 0.35 + 0.1 * len(forecasts)), extend="both")
    cb.set_label("percentile ratio forecast / truth (1, log scale; grey: truth percentile 0)")
    ticks = [t for t in (0.1, 0.2, 0.25, 0.5, 1, 2, 4, 5, 10) if 1 / max_ratio - 1e-9 <= t <= max_ratio + 1e-9]
    _log_ticks(cb, ticks)
    sup = "per-cell percentiles over time (members pooled), ratio to the truth's" + (f"\n{title}" if title else "")
    msgs.discard("")
    if msgs:
        sup += "\n" + "; ".join(sorted(msgs))
    fig.suptitle(sup, fontsize=10)
    return save_figure(fig, path)


def date_maps_figure(ds: xr.Dataset, path, *, times=None, max_dates: int = 4, title: str = "") -> Path:
    """One row per date: coarse input, latent (PP or tp_z) of member 1, members 1 and 2, ensemble mean, truth.

    ``times`` None: the ``max_dates`` dates with the highest domain-mean truth tp (evenly spread
    dates without a truth), in time order.

    tp panels share one log colour scale (mm/h), values below :data:`DRY_THRESHOLD_MMH` clear; the latent
    has its own diverging scale (dimensionless). Coastlines and borders on every map.
    """
    import matplotlib
    from matplotlib.colors import LogNorm, Normalize

    if "tp" not in ds or "member" not in ds["tp"].dims:
        raise ValueError("date maps need the members 'tp' (member, time, lat, lon)")
    all_times = ds["time"].values
    if times is None:  # the wettest dates of the truth (most informative), in time order
        if "tp_truth" in ds:
            wet = np.asarray(ds["tp_truth"].mean(("lat", "lon")).values, dtype=np.float64)
            pick = np.sort(np.argsort(-np.nan_to_num(wet, nan=-1.0), kind="stable")[:max_dates])
        else:
            pick = np.unique(np.linspace(0, all_times.size - 1, min(max_dates, all_times.size)).round().astype(int))
        times = all_times[pick]
    times = list(times)[:max_dates]
    latent = "pp" if "pp" in ds else ("tp_z" if "tp_z" in ds else None)
    lat, lon = ds["lat"].values, ds["lon"].values
    bounds = _bounds(lat, lon)
    has_coarse = "tp_coarse" in ds
    truth = "tp_truth" in ds
    m = ds.sizes["member"]
    cols = []
    if has_coarse:
        cols.append("coarse")
    if latent:
        cols.append("latent")
    cols += [f"member{k}" for k in range(min(2, m))] + ["mean"] + (["truth"] if truth else [])
    sel = ds.sel(time=times)
    tp_stack = [sel["tp"].values]
    if truth:
        tp_stack.append(sel["tp_truth"].values[None])
    vmax = max(float(np.nanmax(np.concatenate([a.ravel() for a in tp_stack]))), 1.0)
    norm = LogNorm(vmin=DRY_THRESHOLD_MMH, vmax=vmax, clip=False)
    cmap = _tp_cmap()
    lnorm = None
    if latent:
        lv = np.asarray(sel[latent].isel(member=0).values)
        a = float(np.nanmax(np.abs(lv))) if np.isfinite(lv).any() else 1.0
        lnorm = Normalize(vmin=-a, vmax=a)
    aspect = (bounds[3] - bounds[2]) * np.cos(np.deg2rad(np.mean(bounds[:2]))) / (bounds[1] - bounds[0])
    panel_w = 2.6 * max(0.8, min(aspect, 2.0))
    fig = _figure(min(24.0, 1.2 + panel_w * len(cols)), 1.2 + 2.5 * len(times), "compressed")
    axes = np.atleast_2d(fig.subplots(len(times), len(cols), squeeze=False))
    tp_map = lat_map = None
    msgs = set()
    for i, t in enumerate(times):
        row = ds.sel(time=t)
        stamp = np.datetime_as_string(np.datetime64(t), unit="h") if np.issubdtype(np.asarray(t).dtype, np.datetime64) else str(t)
        for j, col in enumerate(cols):
            ax = axes[i, j]
            lab = {"xlabel": i == len(times) - 1, "ylabel": j == 0, "row_label": stamp.replace("T", " ") + " UTC"}
            if col == "coarse":
                mp, msg = _map(ax, ds["lat_coarse"].values, ds["lon_coarse"].values, _masked_tp(row["tp_coarse"].values),
                               bounds, norm=norm, cmap=cmap, title="coarse input tp (1\u00b0)", **lab)
                tp_map = mp
            elif col == "latent":
                name = "PP" if latent == "pp" else "transformed tp z"
                mp, msg = _map(ax, lat, lon, row[latent].isel(member=0).values, bounds, norm=lnorm,
                               cmap=matplotlib.colormaps["RdBu_r"], title=f"{name}, member 1 (latent)", **lab)
                lat_map = mp
            elif col.startswith("member"):
                k = int(col[6:])
                mp, msg = _map(ax, lat, lon, _masked_tp(row["tp"].isel(member=k).values), bounds, norm=norm, cmap=cmap,
                               title=f"tp member {k + 1}", **lab)
                tp_map = mp
            elif col == "mean":
                mp, msg = _map(ax, lat, lon, _masked_tp(row["tp"].mean("member").values), bounds, norm=norm, cmap=cmap,
                               title=f"ensemble mean ({m} members)", **lab)
            else:
                mp, msg = _map(ax, lat, lon, _masked_tp(row["tp_truth"].values), bounds, norm=norm, cmap=cmap,
                               title="truth tp (0.25\u00b0)", **lab)
            msgs.add(msg)
    # attached to every axis (a colour bar on a non-contiguous set of axes breaks the layout)
    cb = fig.colorbar(tp_map, ax=axes.ravel().tolist(), shrink=0.8, pad=0.01)
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100) if DRY_THRESHOLD_MMH <= t <= vmax]
    _log_ticks(cb, ticks)
    cb.set_label(f"tp (mm/h, log scale; < {DRY_THRESHOLD_MMH:g} clear; all tp panels)")
    if lat_map is not None:  # inset below the last latent map, so the columns keep their widths
        cax = axes[-1, cols.index("latent")].inset_axes([0.05, -0.42, 0.9, 0.07])
        cb2 = fig.colorbar(lat_map, cax=cax, orientation="horizontal")
        cb2.set_label("PP (1, standard normal)" if latent == "pp" else "transformed tp z (1)", fontsize=8)
        cb2.ax.tick_params(labelsize=7)
    msgs.discard("")
    sup = "downscaled tp by date" + (f"\n{title}" if title else "")
    if msgs:
        sup += "\n" + "; ".join(sorted(msgs))
    fig.suptitle(sup, fontsize=10)
    return save_figure(fig, path)


def write_report(metrics, out_dir, *, ds: xr.Dataset | None = None, ratio: xr.DataArray | None = None,
                 max_map_dates: int = 4, title: str = "") -> dict[str, Path]:
    """Every figure of the report into ``out_dir`` (names in :data:`FIGURES`); returns name -> path.

    The percentile-ratio maps need ``ratio``, the date maps ``ds``; they are skipped without them
    (or with ``max_map_dates=0``).
    """
    out = Path(out_dir)
    paths = {}
    if "spectrum" in metrics.curves:
        paths["spectra"] = spectra_figure(metrics, out / FIGURES["spectra"], title=title)
    paths["qq"] = qq_figure(metrics, out / FIGURES["qq"], title=title)
    paths["rank_histogram"] = rank_histogram_figure(metrics, out / FIGURES["rank_histogram"], title=title)
    if ratio is not None:
        paths["percentile_ratio"] = percentile_ratio_figure(ratio, out / FIGURES["percentile_ratio"], title=title)
    if ds is not None and max_map_dates > 0:
        paths["maps"] = date_maps_figure(ds, out / FIGURES["maps"], max_dates=max_map_dates, title=title)
    return paths
