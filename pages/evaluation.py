"""Evaluation page: metrics over a date range (run in the background) or from an evaluation directory."""

from __future__ import annotations

import io
import json

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from pages.common import (
    LazyPage, follow_schedule, offer_checkpoints, url_state,
    WAVELENGTH_TICKS, CONTROL_WIDTH, SharedState, alert, error_text, grid_bounds, image, region_controls,
)
from pages.jobview import JobView
from pages.help import how_to_read
from pages.safe import markdown, text
from ppviz.views import cache as M
from ppviz.views import evaluation as E
from ppviz.jobs import default_queue
from ppviz.request import DownscaleRequest

SOURCE_STYLE = {"truth": ("black", 2.5), "ensemble": ("#1f77b4", 2.5), "bicubic": ("#ff7f0e", 1.5),
                "nearest": ("#8c564b", 1.2), "pp_bicubic": ("#2ca02c", 1.5), "ensemble_mean": ("#9467bd", 1.5)}


def _color(name):
    return SOURCE_STYLE.get(name, ("#7f7f7f", 1.2))


class EvaluationPage(LazyPage):
    """Spectra, QQ, rank histogram, CRPS vs baselines and percentile-ratio maps of a run; opens on the
    checkpoint's shipped held-out evaluation (else computes the range shown, through the queue)."""

    checkpoint = param.Selector(default=None, objects=[], allow_None=True)
    start = param.String(default="")
    end = param.String(default="")
    members = param.Integer(default=4, bounds=(2, 16))
    steps = param.Integer(default=8, bounds=(2, 100))
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))
    directory = param.String(default="", doc="evaluation directory to load (metrics.json + netCDF)")
    predictions = param.String(default="", doc="predictions file made elsewhere (netCDF or zarr)")
    truth = param.String(default="", doc="truth file (empty: in the predictions file)")
    pred_var = param.String(default="", doc="predictions variable (empty: found by CF standard_name or name)")
    pred_units = param.String(default="", doc="units of the predictions (empty: the file's)")

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        offer_checkpoints(self, "checkpoint", "diffusion", state)
        follow_schedule(self)
        t = state.timestamp
        if not self.start:
            self.start = t.strftime("%Y-%m-%dT%H:00")
        if not self.end:
            self.end = min(t + pd.Timedelta(hours=5), state.last).strftime("%Y-%m-%dT%H:00")
        self.result: E.EvaluationResult | None = None
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._summary = markdown("", sizing_mode="stretch_width")
        self._curves = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._maps = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._jobs = JobView(on_done=self._done, on_message=self._show)
        self._url_note = url_state(self, {"checkpoint": "eval_ckpt", "start": "eval_start", "end": "eval_end",
                                          "members": "eval_members", "steps": "eval_steps", "seed": "eval_seed",
                                          "directory": "eval_dir", "predictions": "eval_pred",
                                          "truth": "eval_truth", "pred_var": "eval_var", "pred_units": "eval_units"})
        self._run_btn = pn.widgets.Button(label="Evaluate range", color="primary", width=140)
        self._run_btn.on_click(self._on_run)
        self._load_btn = pn.widgets.Button(label="Load directory", color="default", width=140)
        self._load_btn.on_click(self._on_load)
        self._pred_btn = pn.widgets.Button(label="Score predictions", color="default", width=140)
        self._pred_btn.on_click(self._on_predictions)
        self._json = pn.widgets.FileDownload(callback=self._metrics_json, filename="metrics.json",
                                             label="metrics.json", color="success", width=140, disabled=True)

    def _show(self, *objs):
        self._messages.objects = list(objs)

    def _update(self) -> None:
        """First opened: the directory named in the URL, else the checkpoint's shipped evaluation,
        else an evaluation of the range shown (queued), so the page never opens blank."""
        if self.result is not None or self._jobs.busy:
            return
        if self.directory.strip():
            self._on_load()
            return
        try:
            res = E.shipped_evaluation(self.checkpoint) if self.checkpoint else None
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            res = None
        if res is not None:
            self._set_result(res)
            self._show(*self._other_data_note(res))
        else:
            self._on_run()

    def _other_data_note(self, res) -> list:
        """An info box when the shipped evaluation was made on other data than the header's
        choice (it is made on the synthetic data: on ERA5 it would otherwise pass for ERA5 scores)."""
        made_on = str((res.settings or {}).get("data", ""))
        if not made_on or ("synthetic" in made_on) == (self.state.ds.attrs.get("source") == "synthetic"):
            return []
        return [alert(f"Shown: the evaluation shipped with {text(self.checkpoint)}, made on {text(made_on)}, not on "
                      f"the data chosen in the header ({text(M.dataset_label(self.state.ds))}). "
                      "**Evaluate range** scores the chosen data.", "info")]

    def _on_run(self, _=None):
        try:
            region = self.state.parsed_region()
            if not self.checkpoint:
                raise ValueError("no diffusion checkpoint is available to evaluate")
            req = DownscaleRequest(self.checkpoint, self.start, region.slug_or_box, self.members, self.steps,
                                   self.seed, end=self.end, data=self.state.data)
            E.validate_evaluation(req, self.state.ds)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        self._show()
        job = default_queue().submit(lambda j: E.evaluate_range(req, j), label=f"evaluate {req.start}..{req.end}")
        self._jobs.watch([job])

    def _on_predictions(self, _=None):
        try:
            ds = E.open_predictions_file(self.predictions, truth=self.truth, var=self.pred_var, units=self.pred_units)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        self._show(alert(f"Scoring {text(ds.attrs['predictions_var'])} ({text(ds.attrs['time_step'])}, "
                         f"{ds.sizes['member']} members x {ds.sizes['time']} times) against "
                         f"{text(ds.attrs['truth_var'])}", "info"))
        job = default_queue().submit(lambda j: E.evaluate_predictions(ds, j), label="score predictions")
        self._jobs.watch([job])

    def _done(self, jobs):
        self._set_result(jobs[0].result)

    def _on_load(self, _=None):
        try:
            res = E.load_evaluation(self.directory)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        self._jobs.drop()  # an evaluation still running (e.g. the one started on open) would replace it
        self._show(alert(f"Loaded {text(res.source)}", "success"))
        self._set_result(res)

    def _set_result(self, res: E.EvaluationResult):
        self.result = res
        try:
            with pn.io.hold():
                self._summary.object = self._summary_text(res)
                self._curves.object = self._curve_layout(res)
                self._maps.object = self._map_layout(res)
                self._json.disabled = False
        except Exception as exc:  # noqa: BLE001
            self._show(alert(f"The results could not be drawn: {error_text(exc)}"))

    def _metrics_json(self):
        if self.result is None:
            return None
        doc = {"scalars": self.result.scalars, "settings": self.result.settings}
        return io.BytesIO(json.dumps(doc, indent=1, default=float).encode())

    # -- drawing ----------------------------------------------------------------------------
    @staticmethod
    def _summary_text(res) -> str:
        def num(v, fmt=".4f"):
            return format(v, fmt) if isinstance(v, (int, float)) and v is not None else "—"

        s, st = res.scalars, res.settings
        lines = [f"**Source:** {text(res.source)}"]
        if st:
            shown = {k: v for k, v in st.items() if k not in ("history", "diffusion_checkpoint_sha256")}
            lines.append(" · ".join(f"{text(k)}: {text(v)}" for k, v in shown.items()))
        crps = s.get("crps", {})
        if crps:
            skill = s.get("crps_skill_score", {})
            rows = "\n".join(f"| {text(k)} | {num(v)} | {num(skill.get(k), '.3f') if k != 'ensemble' else '—'} |"
                             for k, v in crps.items())
            lines.append("| forecast | CRPS / MAE (mm/h) | CRPS skill of the ensemble over this baseline (1 - CRPS / MAE; > 0: ensemble better) |\n|---|---|---|\n" + rows)
        extra = [f"{k}: {num(s[k], '.3f') if isinstance(s[k], float) else text(s[k])}"
                 for k in ("n_times", "n_members", "spread_skill_ratio") if k in s]
        if extra:
            lines.append(" · ".join(extra))
        g = res.gibbs or {}
        if "tp_truncated" in g and "pp_truncated_decoded" in g:
            a, b = g["tp_truncated"], g["pp_truncated_decoded"]
            lines.append(f"**Gibbs (truth, cutoff {num(g.get('cutoff_km'), '.0f')} km):** negative cells "
                         f"{num(a.get('negative_fraction'), '.2%')} truncating TP vs "
                         f"{num(b.get('negative_fraction'), '.2%')} truncating PP and decoding; spurious drizzle "
                         f"{num(a.get('spurious_drizzle_fraction'), '.2%')} vs {num(b.get('spurious_drizzle_fraction'), '.2%')}")
        return "\n\n".join(lines)

    @staticmethod
    def _curve_layout(res):
        items = []
        s, c = res.scalars, res.curves
        crps = {k: v for k, v in s.get("crps", {}).items() if isinstance(v, (int, float))}
        if crps:
            names = list(crps)
            bars = hv.Bars([(n, float(crps[n])) for n in names], "forecast", "CRPS (mm/h)").opts(
                color="forecast", cmap=[_color(n)[0] for n in names], frame_width=260, frame_height=240,
                title="Ensemble CRPS vs baseline MAE", xrotation=20, show_legend=False)
            items.append(bars)
        if c is not None and "spectrum" in c:
            sp = c["spectrum"]
            wl = sp["wavelength_km"].values if "wavelength_km" in sp.coords else 1.0 / sp["wavenumber"].values
            curves = [hv.Curve((wl, np.maximum(sp.sel(source=n).values, 1e-12)), "wavelength", "psd", label=str(n)).opts(
                color=_color(str(n))[0], line_width=_color(str(n))[1]) for n in sp["source"].values]
            items.append(hv.Overlay(curves).opts(logx=True, logy=True, invert_xaxis=True, frame_width=300,
                                                 frame_height=240, xlabel="wavelength (km)", xticks=WAVELENGTH_TICKS, ylabel="PSD ((mm/h)² km²)",
                                                 title="Mean power spectra", legend_position="bottom_left", legend_cols=2,
                                                 legend_opts={"background_fill_alpha": 0.5}))  # lines show through
        if c is not None and "quantile_value" in c:
            q = c["quantile_value"]
            truth = np.maximum(q.sel(source="truth").values, 0.01)
            hi = max(float(np.nanmax(truth)) * 1.5, 1.0)
            elems = [hv.Curve(([0.01, hi], [0.01, hi]), "truth", "model", label="1:1").opts(color="grey", line_dash="dashed")]
            for n in q["source"].values:
                if str(n) == "truth":
                    continue
                y = np.maximum(q.sel(source=n).values, 0.01)
                elems.append(hv.Curve((truth, y), "truth", "model", label=str(n)).opts(color=_color(str(n))[0])
                             * hv.Scatter((truth, y), "truth", "model", label=str(n)).opts(color=_color(str(n))[0], size=5))
            items.append(hv.Overlay(elems).opts(logx=True, logy=True, frame_width=260, frame_height=240,
                                                xlabel="truth quantile (mm/h)", ylabel="model quantile (mm/h)",
                                                title="QQ (pooled over hours and cells)", legend_position="top_left"))
        if c is not None and "rank_histogram" in c:
            rh = c["rank_histogram"]
            counts = np.asarray(rh.values, dtype=float)
            frac = counts / max(counts.sum(), 1.0)
            items.append((hv.Bars([(str(int(r)), f) for r, f in zip(rh["rank"].values, frac)], "rank of truth", "fraction")
                          .opts(color="#1f77b4")
                          * hv.HLine(1.0 / counts.size).opts(color="black", line_dash="dashed"))
                         .opts(frame_width=260, frame_height=240, title="Rank histogram (flat = calibrated)"))
        if not items:
            return None
        return hv.Layout(items).cols(3).opts(shared_axes=False)

    @staticmethod
    def _map_layout(res):
        panels = []
        if res.maps is not None and "percentile_ratio" in res.maps:
            pr = res.maps["percentile_ratio"]
            if "forecast" in pr.dims:  # ppviz evaluate: one map per forecast; show the ensemble's
                names = [str(f) for f in pr["forecast"].values]
                pr = pr.isel(forecast=names.index("ensemble") if "ensemble" in names else 0)
            lat, lon = pr["lat"].values, pr["lon"].values
            b = grid_bounds(lat, lon)
            for p in pr["percentile"].values:
                r = pr.sel(percentile=p).values
                with np.errstate(divide="ignore", invalid="ignore"):
                    lr = np.log2(r)
                panels.append(image(lr, b, kind="diverging", clim=(-2, 2), label="log2 ratio",
                                    title=f"log2(ensemble / truth), {p:g}th pct").opts(frame_width=280, frame_height=240))
        if res.gridded is not None and "crps" in res.gridded and "forecast" in res.gridded["crps"].dims:
            g = res.gridded["crps"]
            lat, lon = g["lat"].values, g["lon"].values
            b = grid_bounds(lat, lon)
            ens = g.isel(forecast=0).values
            panels.append(image(ens, b, kind="spread", clim=(1e-3, max(float(np.nanmax(ens)), 1e-2)),
                                label="CRPS", title=f"CRPS map ({g['forecast'].values[0]})").opts(
                frame_width=280, frame_height=240))
        if not panels:
            return None
        return hv.Layout(panels).cols(3).opts(shared_axes=True)

    def __panel__(self):
        w = CONTROL_WIDTH - 20
        controls = pn.Column(
            markdown("**Run the metrics** for a range of hours (inclusive) over the region:"),
            pn.widgets.TextInput.from_param(self.param.start, label="Start (YYYY-MM-DDTHH:00)", width=w),
            pn.widgets.TextInput.from_param(self.param.end, label="End", width=w),
            region_controls(self.state),
            pn.widgets.Select.from_param(self.param.checkpoint, label="Diffusion checkpoint", width=w),
            pn.Row(pn.widgets.IntInput.from_param(self.param.members, label="Members", width=80),
                   pn.widgets.IntInput.from_param(self.param.steps, label="Steps", width=80),
                   pn.widgets.IntInput.from_param(self.param.seed, label="Seed", width=90)),
            self._run_btn, self._jobs,
            markdown("**Or load** a directory written by `ppviz evaluate` (`metrics.json` and `metrics.nc`):"),
            pn.widgets.TextInput.from_param(self.param.directory, label="Directory on the server", width=w),
            self._load_btn,
            markdown("**Or score** a predictions file made elsewhere (CorrDiff, Earth2Studio, CF, cfgrib ensembles):"),
            pn.widgets.TextInput.from_param(self.param.predictions, label="Predictions file on the server", width=w),
            pn.widgets.TextInput.from_param(self.param.truth, label="Truth file (empty: in the same file)", width=w),
            pn.Row(pn.widgets.TextInput.from_param(self.param.pred_var, label="Variable", width=w // 2 - 5),
                   pn.widgets.TextInput.from_param(self.param.pred_units, label="Units", width=w // 2 - 5)),
            self._pred_btn, self._json,
            width=CONTROL_WIDTH + 20,
        )
        main = pn.Column(self._url_note, self._messages, how_to_read("evaluation"), self._summary, self._curves, self._maps, sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
