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
    CONTROL_WIDTH, SharedState, alert, coasted, error_text, frame_size, grid_bounds, image,
    region_controls, time_controls,
)
from pages.ab_view import ABView
from pages.help import how_to_read
from pages.safe import SafeDocument, markdown
from pages.sources import PredictionsChoice
from ppviz.views import curves as C
from ppviz.views import cache as M
from ppviz.views import external as X
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
        dnames = self._offer_registered()
        if self.ckpt_a is None and dnames:
            self.ckpt_a = M.preferred_checkpoint("diffusion")
        if self.ckpt_b is None and dnames:
            others = [n for n in dnames if n != self.ckpt_a]
            self.ckpt_b = others[0] if others else dnames[0]
        follow_schedule(self, ("ckpt_a", "ckpt_b"))
        self._plan = None  # (source, hour, region) of an A/B against a predictions file
        self.b_source = PredictionsChoice(label="B is", with_time=False, with_crop=False)
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._ab = ABView(self._show, on_drawn=self._show_trajectory, extra_plots=self._training_plots)
        # names, kinds, architectures and dates on one line (a narrow column broke 'edm-pp-v1' at its hyphens)
        self._table = pn.pane.DataFrame(registry_table(), index=False, sizing_mode="stretch_width", max_height=260,
                                        stylesheets=["td:nth-child(-n+5), th { white-space: nowrap; }"])
        state.param.watch(self._registry_changed, "registry")
        self._card = SafeDocument("", sizing_mode="stretch_width", max_height=520, styles={"overflow-y": "auto"})
        self._traj_stream = TrajStream()
        self._traj = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self._player = pn.widgets.Player(label="Denoising step", start=0, end=1, value=0, interval=400,
                                         loop_policy="loop", width=420, visible=False)
        self._player.param.watch(lambda e: self._traj_stream.event(frame=int(e.new)), "value")
        self._url_note = url_state(self, {"card": "card", "ckpt_a": "ckpt_a", "ckpt_b": "ckpt_b", "members": "ab_members",
                                          "steps": "ab_steps", "seed": "ab_seed", "trajectory_of": "trajectory_of"})
        self._b_note = url_state(self.b_source, {"source": "ab_source", "path": "ab_pred", "var": "ab_var",
                                                 "units": "ab_units", "truth": "ab_truth"})
        self._cmp_btn = pn.widgets.Button(label="Compare A and B", color="primary", width=150)
        self._cmp_btn.on_click(self._on_compare)
        self.param.watch(self._show_card, "card")
        self.param.watch(self._show_trajectory, "trajectory_of")
        self._show_card()

    def _offer_registered(self) -> list[str]:
        """Offer the registered checkpoints in the card and A/B selectors; the diffusion names."""
        from ppviz.checkpoints import list_checkpoints

        names = [i.name for i in list_checkpoints() if i.shadowed_by is None]
        self.param.card.objects = names
        if self.card is None and names:
            self.card = M.preferred_checkpoint("diffusion") or names[0]
        diff = M.checkpoint_labels("diffusion")
        self.param.ckpt_a.objects = diff
        self.param.ckpt_b.objects = diff
        return list(diff.values())

    def _registry_changed(self, *_):
        """A checkpoint was registered in this session (e.g. a promoted snapshot): re-read the registry."""
        self._offer_registered()
        self._table.object = registry_table()

    def _update(self) -> None:
        """First opened: compare A and B through the queue (cached runs draw at once)."""
        if not self._ab.runs and not self._ab.busy and self.ckpt_a and self.ckpt_b:
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
        except Exception as exc:  # noqa: BLE001
            self._show(alert(error_text(exc)))
            return
        plan = self._plan
        self._ab.compare(reqs, derive=None if plan is None else (lambda runs: {**runs, "B": X.ab_run(*plan, runs["A"])}))

    def _training_plots(self, runs, _labels):
        # a predictions file (B) has no training log
        return [self._training_plot({tag: run.request.checkpoint for tag, run in runs.items()
                                     if not hasattr(run, "source")})]

    # -- trajectory -----------------------------------------------------------------------
    def _show_trajectory(self, *_):
        run = self._ab.runs.get(self.trajectory_of)
        if run is None or run.trajectory is None or len(run.trajectory) == 0:
            self._traj.object = None
            self._player.visible = False
            return
        traj = run.trajectory
        reg = run.ensemble.inputs.region
        fg = reg.fine_grid
        bounds = grid_bounds(fg.lat, fg.lon)
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
            return coasted(img.opts(**size), reg.bounds)

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
            self._cmp_btn, self._ab.jobs, width=CONTROL_WIDTH + 20,
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
        main = pn.Column(self._url_note, self._b_note, self._messages, how_to_read("checkpoints"), registry,
                         markdown("### A/B comparison"), self._ab.scores, self._ab.maps, self._ab.curves, traj,
                         sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
