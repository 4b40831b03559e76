"""Checkpoints page: the registry with model cards, an A/B comparison, the denoising trajectory."""

from __future__ import annotations

import functools

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from pages.common import (
    LazyPage, follow_schedule, url_state,
    WAVELENGTH_TICKS, CONTROL_WIDTH, SharedState, alert, coast_paths, error_text, frame_size, grid_bounds, image,
    region_controls, time_controls,
)
from pages.jobview import JobView
from pages.help import how_to_read
from pages.safe import SafeDocument, code, markdown, text
from pages.sources import PredictionsChoice
from ppviz.views import curves as C
from ppviz.views import cache as M
from ppviz.views import external as X
from ppviz.views import runs as R
from ppviz.request import MAX_MEMBERS, DownscaleRequest

TrajStream = hv.streams.Stream.define("TrajStream", frame=0)


def registry_table() -> pd.DataFrame:
    """Every registered checkpoint, broken ones included (with their error)."""
    from ppviz.checkpoints import list_checkpoints

    rows = []
    for i in list_checkpoints():
        status = "ok" if i.ok else f"broken: {i.error}"
        if i.shadowed_by is not None:
            status = f"shadowed by {i.shadowed_by}"
        rows.append({"name": i.name, "kind": i.kind or "?", "architecture": i.architecture or "?",
                     "default": "yes" if i.default else "", "created": (i.created or "")[:19],
                     "sha256": i.sha256 or "", "summary": i.summary, "status": status, "path": str(i.path)})
    return pd.DataFrame(rows)


class CheckpointsPage(LazyPage):
    """Model cards and training curves; A vs B on the same hour, region and seeds (computed when the
    page is first opened); one member's denoising, animated."""

    card = param.Selector(default=None, objects=[], allow_None=True, doc="checkpoint whose model card is shown")
    ckpt_a = param.Selector(default=None, objects=[], allow_None=True)
    ckpt_b = param.Selector(default=None, objects=[], allow_None=True)
    members = param.Integer(default=4, bounds=(1, MAX_MEMBERS))
    steps = param.Integer(default=8, bounds=(2, 200))
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))
    trajectory_of = param.Selector(default="A", objects=["A", "B"])

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        from ppviz.checkpoints import list_checkpoints

        names = [i.name for i in list_checkpoints() if i.shadowed_by is None]
        self.param.card.objects = names
        if self.card is None and names:
            self.card = M.preferred_checkpoint("diffusion") or names[0]
        diff = M.checkpoint_labels("diffusion")
        self.param.ckpt_a.objects = diff
        self.param.ckpt_b.objects = diff
        dnames = list(diff.values())
        if self.ckpt_a is None and dnames:
            self.ckpt_a = M.preferred_checkpoint("diffusion")
        if self.ckpt_b is None and dnames:
            others = [n for n in dnames if n != self.ckpt_a]
            self.ckpt_b = others[0] if others else dnames[0]
        follow_schedule(self, ("ckpt_a", "ckpt_b"))
        self._runs: dict[str, R.EnsembleRun] = {}
        self._plan = None  # (source, hour, region) of an A/B against a predictions file
        self.b_source = PredictionsChoice(label="B is", with_time=False, with_crop=False)
        self._messages = pn.Column(sizing_mode="stretch_width")
        # names, kinds, architectures and dates on one line (a narrow column broke 'edm-pp-v1' at its hyphens)
        self._table = pn.pane.DataFrame(registry_table(), index=False, sizing_mode="stretch_width", max_height=260,
                                        stylesheets=["td:nth-child(-n+5), th { white-space: nowrap; }"])
        self._card = SafeDocument("", sizing_mode="stretch_width", max_height=520, styles={"overflow-y": "auto"})
        self._cmp_maps = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._cmp_curves = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._cmp_scores = markdown("", sizing_mode="stretch_width")
        self._traj_stream = TrajStream()
        self._traj = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._player = pn.widgets.Player(label="Denoising step", start=0, end=1, value=0, interval=400,
                                         loop_policy="loop", width=420, visible=False)
        self._player.param.watch(lambda e: self._traj_stream.event(frame=int(e.new)), "value")
        self._jobs = JobView(on_done=self._compared, on_message=self._show)
        self._url_note = url_state(self, {"card": "card", "ckpt_a": "ckpt_a", "ckpt_b": "ckpt_b", "members": "ab_members",
                                          "steps": "ab_steps", "seed": "ab_seed", "trajectory_of": "trajectory_of"})
        self._b_note = url_state(self.b_source, {"source": "ab_source", "path": "ab_pred", "var": "ab_var",
                                                 "units": "ab_units", "truth": "ab_truth"})
        self._cmp_btn = pn.widgets.Button(label="Compare A and B", color="primary", width=150)
        self._cmp_btn.on_click(self._on_compare)
        self.param.watch(self._show_card, "card")
        self.param.watch(self._show_trajectory, "trajectory_of")
        self._show_card()

    def _update(self) -> None:
        """First opened: compare A and B through the queue (cached runs draw at once)."""
        if not self._runs and not self._jobs.busy and self.ckpt_a and self.ckpt_b:
            self._on_compare()

    def _show(self, *objs):
        self._messages.objects = list(objs)

    def _show_card(self, *_):
        if not self.card:
            self._card.object = "*No checkpoints are registered.*"
            return
        try:
            self._card.object = M.read_model_card(self.card)
        except Exception as exc:  # noqa: BLE001
            self._card.object = f"**The model card could not be read:** {error_text(exc)}"

    @staticmethod
    def _training_plot(names: dict):
        """Loss vs step of the checkpoints ``{tag: name}`` from their training logs (drawn with the
        A/B: a plot drawn on the page before the comparison left the comparison's plots blank)."""
        colors = {"A": "#1f77b4", "B": "#d62728"}
        curves = []
        for tag, name in names.items():
            log = C.training_curves(name)
            if log is not None and "loss" in log:
                curves.append(hv.Curve((log["step"], log["loss"]), "step", "loss", label=f"{tag}: {name}").opts(
                    color=colors.get(tag, "black"), line_width=2))
        if not curves:
            return hv.Curve([], "step", "loss").opts(frame_width=280, frame_height=250,
                                                     title="Training curves: no training log")
        positive = all(np.nanmin(c.dimension_values(1)) > 0 for c in curves)
        return hv.Overlay(curves).opts(frame_width=280, frame_height=250, logy=positive, legend_position="top_right",
                                       xlabel="training step", ylabel="loss",
                                       title="Training curves (training_log.jsonl)")

    # -- A/B ------------------------------------------------------------------------------
    def _requests(self):
        """The runs to compare: A and B, or only A (on the predictions' hour and cells) when B is a file."""
        region, hour = self.state.parsed_region(), self.state.timestamp
        self._plan = None
        tags = (("A", self.ckpt_a), ("B", self.ckpt_b))
        if self.b_source.active:
            spec = self.b_source.spec()
            hour, region = X.ab_plan(spec, hour, region, self.state.ds)
            self._plan = (spec, hour, region)
            tags = tags[:1]
        out = {}
        for tag, name in tags:
            if not name:
                raise ValueError(f"choose a diffusion checkpoint for {tag}")
            out[tag] = DownscaleRequest(checkpoint=name, time=hour.strftime("%Y-%m-%dT%H:%M"),
                                    region=region.slug_or_box, members=self.members, steps=self.steps, seed=self.seed,
                                    data=self.state.data)
        return out

    def _on_compare(self, _=None):
        try:
            reqs = self._requests()
            pending = []
            self._pending = reqs
            for tag, req in reqs.items():
                run, job = R.submit(req)
                if job is not None:
                    pending.append(job)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        self._show()
        if pending:
            self._jobs.watch(pending)
        else:
            self._compared([])

    def _compared(self, _jobs):
        runs = {tag: R.cached(req) for tag, req in self._pending.items()}
        missing = [t for t, r in runs.items() if r is None]
        if missing:
            self._show(alert(f"Run {text(missing[0])} is no longer in the cache; press Compare again.", "warning"))
            return
        if self._plan is not None:
            try:
                runs["B"] = X.ab_run(*self._plan, runs["A"])
            except Exception as exc:  # noqa: BLE001
                self._show(alert(error_text(exc)))
                return
        self._runs = runs
        with pn.io.hold():
            self._draw_comparison(runs)
        # not in the same hold: a stream event there leaves the plots built with it blank
        self._show_trajectory()

    def _draw_comparison(self, runs):
        a, b = runs["A"], runs["B"]
        ea, eb = a.ensemble, b.ensemble
        reg = ea.inputs.region
        fg = reg.fine_grid
        bounds = grid_bounds(fg.lat, fg.lon)
        coast, _ = coast_paths(reg.bounds)
        size = frame_size(reg, 260, 300)
        ma, _ = C.mean_and_spread(ea)
        mb, _ = C.mean_and_spread(eb)
        cg = reg.coarse_grid
        truth = ea.inputs.truth_tp if ea.inputs.truth_tp is not None else np.full(fg.shape, np.nan, np.float32)
        panels = [(bounds, "truth TP (0.25°)", truth),
                  (bounds, f"A member 0: {a.label}", ea.tp_members[0]), (bounds, "A ensemble mean", ma),
                  (grid_bounds(cg.lat, cg.lon), "coarse input TP (1°)", ea.inputs.coarse_tp),
                  (bounds, f"B member 0: {b.label}", eb.tp_members[0]), (bounds, "B ensemble mean", mb)]
        self._cmp_maps.object = hv.Layout([
            hv.Overlay([image(v, bnd, kind="tp", title=t).opts(**size), *coast]) for bnd, t, v in panels
        ]).cols(3).opts(shared_axes=True)
        sa, sb = C.spectra(ea, each_member=False), C.spectra(eb, each_member=False)
        curves = []
        if "truth" in sa:
            curves.append(hv.Curve(sa["truth"], "wavelength", "psd", label="truth").opts(color="black", line_width=2.5))
        curves += [hv.Curve(sa["bicubic"], "wavelength", "psd", label="bicubic").opts(color="#ff7f0e", line_dash="dashed"),
                   hv.Curve(sa["members (mean)"], "wavelength", "psd", label="A members").opts(color="#1f77b4", line_width=2),
                   hv.Curve(sb["members (mean)"], "wavelength", "psd", label="B members").opts(color="#d62728", line_width=2)]
        spec = hv.Overlay(curves).opts(logx=True, logy=True, invert_xaxis=True, frame_width=300, frame_height=250,
                                       xlabel="wavelength (km)", xticks=WAVELENGTH_TICKS, ylabel="PSD ((mm/h)² km²)", title="Power spectra",
                                       legend_position="bottom_left")
        items = [spec]
        if ea.inputs.truth_tp is not None:
            qa, qb = C.quantiles(ea), C.quantiles(eb)
            t = np.maximum(qa["truth"], 0.01)
            hi = max(float(t.max()) * 1.5, 1.0)
            qq = hv.Overlay([
                hv.Curve(([0.01, hi], [0.01, hi]), "truth", "model", label="1:1").opts(color="grey", line_dash="dashed"),
                hv.Scatter((t, np.maximum(qa["members"], 0.01)), "truth", "model", label="A").opts(color="#1f77b4", size=6),
                hv.Scatter((t, np.maximum(qb["members"], 0.01)), "truth", "model", label="B").opts(color="#d62728", size=6),
                hv.Scatter((t, np.maximum(qa["bicubic"], 0.01)), "truth", "model", label="bicubic").opts(
                    color="#ff7f0e", marker="triangle", size=6),
            ]).opts(logx=True, logy=True, frame_width=260, frame_height=250, xlabel="truth quantile (mm/h)",
                    ylabel="model quantile (mm/h)", title="QQ (wet tail)", legend_position="top_left")
            items.append(qq)
        try:
            items.append(self._training_plot({t: r.label for t, r in runs.items() if not hasattr(r, "source")}))
        except Exception as exc:  # noqa: BLE001 - the comparison is still shown
            self._show(alert(f"The training logs could not be read: {error_text(exc)}"))
        self._cmp_curves.object = hv.Layout(items).cols(3).opts(shared_axes=False)
        ca, cb = C.crps_scores(ea), C.crps_scores(eb)
        if ca:
            rows = [f"| A: {text(a.label)} | {next(iter(ca.values())):.4f} | {a.seconds:.1f} s |",
                    f"| B: {text(b.label)} | {next(iter(cb.values())):.4f} | {b.seconds:.1f} s |"]
            rows += [f"| {text(k)} | {v:.4f} | |" for k, v in list(ca.items())[1:]]
            same = (f"same hour, region and member seeds ({a.request.members} members, {a.request.steps} steps, "
                    f"seed {a.request.seed})")
            if hasattr(b, "source"):
                same = (f"{a.time:%Y-%m-%d %H:%M} UTC on the same cells ({text(reg.title)}); A: {a.request.members} "
                        f"members x {a.request.steps} steps, seed {a.request.seed}; B: the {b.members} members of "
                        f"{code(b.label)}; both against the data's truth{self._own_truth_note(b)}")
            self._cmp_scores.object = (f"**CRPS of each ensemble (fair; MAE for baselines), mm/h**, {same}\n\n"
                                       "| forecast | CRPS | run / read time |\n|---|---|---|\n" + "\n".join(rows))
        else:
            self._cmp_scores.object = "*No truth on this grid: no CRPS.*"

    @staticmethod
    def _own_truth_note(run) -> str:
        """How far the predictions' own truth is from the data's (the A/B scores both against the data's)."""
        if run.own_truth is None:
            return " (the file has no truth)"
        diff = float(np.max(np.abs(run.own_truth - run.ensemble.inputs.truth_tp)))
        return f" (the file's own truth differs from it by at most {diff:.3g} mm/h)"

    # -- trajectory -----------------------------------------------------------------------
    def _show_trajectory(self, *_):
        run = self._runs.get(self.trajectory_of)
        if run is None or run.trajectory is None or len(run.trajectory) == 0:
            self._traj.object = None
            self._player.visible = False
            return
        traj = run.trajectory
        reg = run.ensemble.inputs.region
        fg = reg.fine_grid
        bounds = grid_bounds(fg.lat, fg.lon)
        coast, _ = coast_paths(reg.bounds)
        size = frame_size(reg, 260, 320)
        def frame(name, frame):
            k = int(np.clip(frame, 0, len(traj) - 1))
            step, sigma = int(traj.step[k]), float(traj.sigma[k])
            head = f"step {step + 1}/{run.request.steps}"
            if name == "x":
                img = image(traj.x[k], bounds, kind="pp", title=f"noisy state x, {head}, σ={sigma:.3g}")
            elif name == "denoised":
                img = image(traj.denoised[k], bounds, kind="pp", title=f"denoised estimate D(x; σ) ({traj.latent})")
            else:
                img = image(traj.tp[k], bounds, kind="tp", title="denoised estimate as TP")
            return hv.Overlay([img.opts(**size), *coast])

        dmaps = [hv.DynamicMap(functools.partial(frame, n), streams=[self._traj_stream])
                 for n in ("x", "denoised", "tp")]
        self._traj_stream.update(frame=0)
        self._traj.object = hv.Layout(dmaps).cols(3).opts(shared_axes=True)
        self._player.param.update(start=0, end=max(len(traj) - 1, 1), value=0, visible=True)

    def __panel__(self):
        w = CONTROL_WIDTH - 20
        self._ckpt_b = pn.widgets.Select.from_param(self.param.ckpt_b, label="B", width=w,
                                                    visible=not self.b_source.active)
        self.b_source.param.watch(lambda e: setattr(self._ckpt_b, "visible", not self.b_source.active), "source")
        controls = pn.Column(
            markdown("**A/B comparison** on the hour and region below, same member seeds:"),
            time_controls(self.state), region_controls(self.state),
            pn.widgets.Select.from_param(self.param.ckpt_a, label="A", width=w),
            self.b_source.controls(), self._ckpt_b,
            pn.Row(pn.widgets.IntInput.from_param(self.param.members, label="Members", width=80),
                   pn.widgets.IntInput.from_param(self.param.steps, label="Steps", width=80),
                   pn.widgets.IntInput.from_param(self.param.seed, label="Seed", width=90)),
            self._cmp_btn, self._jobs, width=CONTROL_WIDTH + 20,
        )
        registry = pn.Column(
            markdown("### Registered checkpoints\n`pretrained/` first, then each directory of "
                             "`$PPVIZ_CHECKPOINTS`; the first of a name wins."),
            self._table,
            pn.widgets.Select.from_param(self.param.card, label="Model card of", width=300),
            self._card, sizing_mode="stretch_width")
        traj = pn.Column(
            markdown("### Denoising trajectory of member 0\nPress play: the sampler's state x and its "
                             "denoised estimate at each kept step (from the comparison run)."),
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.trajectory_of, width=120), self._player),
            self._traj, sizing_mode="stretch_width")
        main = pn.Column(self._url_note, self._b_note, self._messages, how_to_read("checkpoints"), registry, markdown("### A/B comparison"), self._cmp_scores,
                         self._cmp_maps, self._cmp_curves, traj, sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
