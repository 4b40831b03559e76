"""Training runs page: the runs below ``$PPVIZ_RUNS`` as they train (loss and held-out snapshot
scores against step, refreshed while the log grows), an A/B comparison of any two snapshots on
the same hour, region and seeds, and promotion of a snapshot to a registered checkpoint.

Runs and snapshots are named by label (``exp1/run-a``, ``exp1/run-a@2000``,
:mod:`ppviz.views.training_runs`), never by a free path: a label (from the URL too) that leads
outside the roots is refused with a message. While the page is the open tab a periodic callback
(``$PPVIZ_RUNS_REFRESH_MS``, default 3 s) looks at the open run's log and re-reads it only when
its modification time or size changed; it stops when the tab is left or the session closes.
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from pages.ab_view import ABView
from pages.common import CONTROL_WIDTH, LazyPage, SharedState, alert, error_text, region_controls, time_controls, url_state
from pages.help import how_to_read
from pages.safe import code, markdown, text
from ppviz.request import MAX_MEMBERS
from ppviz.views import training_runs as T

#: the snapshot score plots: (column, title, y label, reference column or constant)
SCORE_PLOTS = (
    ("crps_fair", "Held-out fair CRPS (lower is better)", "CRPS (mm/h)", None),
    ("lsd_db", "Held-out LSD 50-200 km (lower is better)", "LSD (dB)", 0.0),
    ("p99_ratio", "Held-out p99 ratio (1 is right)", "p99 members / truth", 1.0),
    ("wet_fraction", "Held-out wet fraction (dashed: truth)", "share of cells > 0.1 mm/h", "wet_fraction_truth"),
)
NONE = "(none chosen)"
PLOT_SIZE = {"frame_width": 330, "frame_height": 200}


def _loss_plot(data: pd.DataFrame):
    return hv.Curve(data, "step", "loss", label="loss").opts(
        color="#1f4e79", line_width=2, framewise=True, title="Training loss (train_log.jsonl)", xlabel="training step",
        ylabel="loss (mean over the logged window)", tools=["hover"], **PLOT_SIZE)


def _score_plot(column: str, title: str, ylabel: str, ref, data: pd.DataFrame):
    elems = [hv.Curve(data, "step", column, label="snapshots").opts(color="#d62728", line_width=2),
             hv.Scatter(data, "step", column, label="snapshots").opts(color="#d62728", size=7, tools=["hover"])]
    if isinstance(ref, str):
        elems.append(hv.Curve(data, "step", (ref, column), label="truth").opts(color="black", line_dash="dashed"))
    elif ref is not None:
        elems.append(hv.HLine(ref).opts(color="grey", line_dash="dashed", line_width=1))
    return hv.Overlay(elems).opts(title=title, xlabel="training step", ylabel=ylabel, framewise=True,
                                  show_legend=False, **PLOT_SIZE)


class TrainingRunsPage(LazyPage):
    """Watch training runs; compare and promote their snapshots (see the module docstring)."""

    run = param.String(default="", doc="the run whose curves are drawn: its label below a root of PPVIZ_RUNS")
    snap_a = param.String(default="", doc="snapshot A as RUN@STEP")
    snap_b = param.String(default="", doc="snapshot B as RUN@STEP")
    members = param.Integer(default=4, bounds=(1, MAX_MEMBERS))
    steps = param.Integer(default=8, bounds=(2, 200))
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1))

    def __init__(self, state: SharedState, **params):
        super().__init__(**params)
        self.state = state
        self._poller = None
        self._signature = None
        self._runs: list[str] = []
        self._snaps: list[str] = []
        self._messages = pn.Column(sizing_mode="stretch_width")
        self._run_note = pn.Column(sizing_mode="stretch_width")
        self._snap_note = pn.Column(sizing_mode="stretch_width")
        self._syncing = False
        self._status = markdown("", sizing_mode="stretch_width")
        self._ab = ABView(self._show)
        w = CONTROL_WIDTH - 20
        self._run_select = pn.widgets.Select(label="Run", options={NONE: ""}, width=w)
        self._a_select = pn.widgets.Select(label="A", options={NONE: ""}, width=w)
        self._b_select = pn.widgets.Select(label="B", options={NONE: ""}, width=w)
        self._promote_select = pn.widgets.Select(label="Snapshot to promote", options=[], width=w)
        self._promote_name = pn.widgets.TextInput(label="Checkpoint name", placeholder="e.g. edm-run-a-step2000", width=w)
        self._promote_btn = pn.widgets.Button(label="Promote", color="success", width=110)
        self._promote_btn.on_click(self._on_promote)
        self._cmp_btn = pn.widgets.Button(label="Compare A and B", color="primary", width=150)
        self._cmp_btn.on_click(self._on_compare)
        self._loss_pipe = hv.streams.Pipe(data=pd.DataFrame({"step": [], "loss": []}))
        self._score_pipe = hv.streams.Pipe(data=pd.DataFrame(columns=["step", *T.SCORE_COLUMNS], dtype=float))
        self._curves = pn.pane.HoloViews(hv.Layout([hv.DynamicMap(_loss_plot, streams=[self._loss_pipe])] + [
            hv.DynamicMap(lambda data, spec=spec: _score_plot(*spec, data), streams=[self._score_pipe])
            for spec in SCORE_PLOTS]).cols(3).opts(shared_axes=False), linked_axes=False, sizing_mode="stretch_width")
        self._url_note = url_state(self, {"run": "run", "snap_a": "snap_a", "snap_b": "snap_b",
                                          "members": "runs_members", "steps": "runs_steps", "seed": "runs_seed"})
        self._refresh_lists()
        if not self.run and self._runs:
            self.run = self._runs[0]
        self._default_snapshots()
        self._run_select.param.watch(lambda e: self._chosen("run", e.new), "value")
        self._a_select.param.watch(lambda e: self._chosen("snap_a", e.new), "value")
        self._b_select.param.watch(lambda e: self._chosen("snap_b", e.new), "value")
        self.param.watch(self._run_changed, "run")
        self.param.watch(self._sync_selects, ["snap_a", "snap_b"])
        self._sync_selects()
        self._load_run()
        if pn.state.curdoc is not None:
            pn.state.on_session_destroyed(lambda _ctx: self._stop_polling())

    # -- lists, polling -------------------------------------------------------------------
    def _refresh_lists(self) -> bool:
        """Re-read the runs and snapshots below the roots; whether they changed."""
        try:
            runs, snaps = T.run_choices(), T.snapshot_choices()
        except (OSError, ValueError) as exc:
            self._run_note.objects = [alert(f"The training runs could not be listed: {error_text(exc)}")]
            return False
        if runs == self._runs and snaps == self._snaps:
            return False
        self._runs, self._snaps = runs, snaps
        self._syncing = True  # a select whose choice left its options moves to another: not a choice
        try:
            # a blank first option: a refused choice shows as blank (a Select whose value is not
            # among its options takes the first one when drawn, which would hide the refusal)
            self._run_select.options = {NONE: "", **{r: r for r in runs}}
            self._a_select.options = self._b_select.options = {NONE: "", **{r: r for r in snaps}}
            chosen = self._promote_select.value
            self._promote_select.options = snaps
            if snaps and chosen not in snaps:
                self._promote_select.value = snaps[-1] if not self.run else next(
                    (s for s in reversed(snaps) if s.rpartition("@")[0] == self.run), snaps[-1])
        finally:
            self._syncing = False
        self._sync_selects()
        return True

    def _default_snapshots(self) -> None:
        """A: the run's first snapshot, B: its last (unless chosen, e.g. in the URL)."""
        own = [s for s in self._snaps if s.rpartition("@")[0] == self.run] or self._snaps
        if own and not self.snap_a:
            self.snap_a = own[0]
        if own and not self.snap_b:
            self.snap_b = own[-1]

    def _sync_selects(self, *_):
        """Show the chosen run and snapshots in the selects; a chosen snapshot that is not one
        (e.g. from the URL) is refused with the reason."""
        self._syncing = True
        try:
            for select, value in ((self._run_select, self.run), (self._a_select, self.snap_a),
                                  (self._b_select, self.snap_b)):
                select.value = value if value in select.values else ""
        finally:
            self._syncing = False
        notes = []
        for tag, ref in (("A", self.snap_a), ("B", self.snap_b)):
            if ref and ref not in self._snaps:
                try:
                    T.parse_snapshot(ref)
                except Exception as exc:  # noqa: BLE001
                    notes.append(alert(f"Refused snapshot {tag} {code(ref[:200])}: {error_text(exc)}", "warning"))
        self._snap_note.objects = notes

    def _chosen(self, name: str, value) -> None:
        """A select's choice (not the page's own syncing) becomes the page's ``name``."""
        if value and not self._syncing:
            setattr(self, name, value)

    def set_visible(self, visible: bool) -> None:
        if visible:
            self._start_polling()
        else:
            self._stop_polling()
        super().set_visible(visible)

    def _update(self) -> None:
        self._refresh_lists()
        self._load_run()

    def _start_polling(self) -> None:
        if self._poller is None and pn.state.curdoc is not None:
            self._poller = pn.state.add_periodic_callback(self._poll, period=T.refresh_ms())

    def _stop_polling(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None

    def _poll(self) -> None:
        """Refresh the lists; re-read the open run's log when its mtime or size changed."""
        if self._refresh_lists():
            self._default_snapshots()
        if self.run and T.log_signature(self.run) != self._signature:
            self._load_run()

    # -- the open run ---------------------------------------------------------------------
    def _run_changed(self, *_):
        self._sync_selects()
        own = [s for s in self._snaps if s.rpartition("@")[0] == self.run]
        if own:
            self._promote_select.value = own[-1]
        self._load_run()

    def _load_run(self) -> None:
        self._signature = T.log_signature(self.run) if self.run else None
        if not self.run:
            roots = T.run_roots()
            where = ", ".join(code(str(r)) for r in roots) if roots else f"(none: set {T.RUNS_ENV})"
            self._status.object = f"*No training runs below the roots {where}.*"
            self._run_note.objects = []
            self._set_curves(None, None)
            return
        try:
            loss, scores, problems = T.timeline(T.resolve_run(self.run))
        except Exception as exc:  # noqa: BLE001 - e.g. a run outside the roots (from the URL)
            self._run_note.objects = [alert(f"Refused run {code(self.run[:200])}: {error_text(exc)}")]
            self._status.object = ""
            self._set_curves(None, None)
            return
        notes = []
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            notes.append(alert("The run's log has lines that were skipped: "
                               + "; ".join(text(p) for p in problems[:3]) + more, "warning"))
        self._run_note.objects = notes
        self._set_curves(loss, scores)
        last = loss.iloc[-1] if len(loss) else None
        n = len(scores)
        head = f"**{text(self.run)}**: "
        head += (f"step {int(last['step'])}, loss {float(last['loss']):.4g}" if last is not None else "no loss logged yet")
        head += f"; {n} scored snapshot{'s' if n != 1 else ''}"
        if self._poller is not None:
            head += f" · watching the log (every {T.refresh_ms() / 1000:g} s)"
        self._status.object = head

    def _set_curves(self, loss, scores) -> None:
        if loss is None:
            loss = pd.DataFrame({"step": [], "loss": []})
        if scores is None:
            scores = pd.DataFrame(columns=["step", *T.SCORE_COLUMNS])
        loss = loss[["step", "loss"]].apply(pd.to_numeric, errors="coerce").astype(float)
        scores = scores.apply(pd.to_numeric, errors="coerce").astype(float)
        self._loss_pipe.send(loss.replace([np.inf, -np.inf], np.nan))
        self._score_pipe.send(scores.replace([np.inf, -np.inf], np.nan))

    # -- A/B and promotion ----------------------------------------------------------------
    def _show(self, *objs):
        self._messages.objects = list(objs)

    def _on_compare(self, _=None):
        try:
            region = self.state.parsed_region()
            reqs = {tag: T.snapshot_request(ref, time=self.state.timestamp.strftime("%Y-%m-%dT%H:%M"),
                                            region=region.slug_or_box, members=self.members, steps=self.steps,
                                            seed=self.seed, data=self.state.data)
                    for tag, ref in (("A", self.snap_a), ("B", self.snap_b))}
        except Exception as exc:  # noqa: BLE001
            self._show(alert(f"Cannot compare: {error_text(exc)}"))
            return
        self._ab.compare(reqs, labels={"A": self.snap_a, "B": self.snap_b})

    def _on_promote(self, _=None):
        ref, name = self._promote_select.value, self._promote_name.value
        try:
            path = T.promote(ref or "", name)
        except Exception as exc:  # noqa: BLE001
            self._show(alert(f"Not promoted: {error_text(exc)}"))
            return
        self._show(alert(f"Promoted {text(ref)} to the checkpoint **{text(path.name)}** in {code(str(path.parent))}, "
                         "with its model card; it is now offered on the Checkpoints and Downscale pages.", "success"))
        self.state.registry += 1

    def __panel__(self):
        roots = T.run_roots()
        where = ", ".join(code(str(r)) for r in roots) if roots else f"none (set `{T.RUNS_ENV}`)"
        try:
            into = code(str(T.promote_root()))
        except ValueError as exc:
            into = f"nowhere yet: {text(exc)}"
        controls = pn.Column(
            markdown(f"**Training runs** below {where}"), self._run_select,
            markdown("**A/B comparison of two snapshots** on the hour and region below, same member seeds:"),
            time_controls(self.state), region_controls(self.state), self._a_select, self._b_select,
            pn.Row(pn.widgets.IntInput.from_param(self.param.members, label="Members", width=80),
                   pn.widgets.IntInput.from_param(self.param.steps, label="Steps", width=80),
                   pn.widgets.IntInput.from_param(self.param.seed, label="Seed", width=90)),
            self._cmp_btn, self._ab.jobs,
            markdown(f"**Promote a snapshot** to a registered checkpoint (with its model card) in {into}:"),
            self._promote_select, self._promote_name, self._promote_btn, width=CONTROL_WIDTH + 20,
        )
        main = pn.Column(self._url_note, self._snap_note, self._messages, how_to_read("training_runs"), self._status, self._run_note,
                         self._curves, markdown("### A/B comparison of two snapshots"),
                         self._ab.scores, self._ab.maps, self._ab.curves, sizing_mode="stretch_width")
        return pn.Row(controls, main, sizing_mode="stretch_width")
