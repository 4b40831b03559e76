"""The A/B comparison of two diffusion models on the same hour, region and member seeds, used by
the Checkpoints page (two registered checkpoints) and the Training runs page (two snapshots of
any runs): the queued runs with their progress, then truth, coarse input, member 0 and ensemble
mean of A and B, their spectra, the wet-tail QQ and the CRPS of each."""

from __future__ import annotations

from collections.abc import Callable

import holoviews as hv
import numpy as np
import panel as pn

from pages.common import WAVELENGTH_TICKS, alert, coasted, error_text, frame_size, grid_bounds, image
from pages.jobview import JobView
from pages.safe import code, markdown, text
from ppviz.views import curves as C
from ppviz.views import runs as R

COLORS = {"A": "#1f77b4", "B": "#d62728"}


def own_truth_note(run) -> str:
    """How far a predictions file's own truth is from the data's (the A/B scores both against the data's)."""
    if run.own_truth is None:
        return " (the file has no truth)"
    diff = float(np.max(np.abs(run.own_truth - run.ensemble.inputs.truth_tp)))
    return f" (the file's own truth differs from it by at most {diff:.3g} mm/h)"


class ABView:
    """Compare two runs: :meth:`compare` queues them (cached ones draw at once), :meth:`draw` draws.

    ``on_message(*panes)`` shows messages; ``on_drawn(runs)`` is called after a comparison is drawn;
    ``extra_plots(runs, labels)`` returns more HoloViews plots for the curves row (e.g. training
    curves). ``labels`` name A and B in titles and the score table (default: the checkpoint names).
    """

    def __init__(self, on_message: Callable[..., None], on_drawn: Callable[[dict], None] | None = None,
                 extra_plots: Callable[[dict, dict], list] | None = None):
        self._on_message = on_message
        self._on_drawn = on_drawn
        self._extra_plots = extra_plots
        self._pending: dict = {}
        self._derive: Callable[[dict], dict] | None = None
        self._labels: dict[str, str] = {}
        self.runs: dict[str, R.EnsembleRun] = {}
        self.maps = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self.curves = pn.pane.HoloViews(None, linked_axes=False, sizing_mode="stretch_width")
        self.scores = markdown("", sizing_mode="stretch_width")
        self.jobs = JobView(on_done=self._compared, on_message=on_message)

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def compare(self, requests: dict, labels: dict[str, str] | None = None,
                derive: Callable[[dict], dict] | None = None) -> None:
        """Run ``{"A": request_or_(request, models), "B": ...}`` (``models``: as in
        :func:`ppviz.views.runs.submit`) and draw them when done; a refused request is shown.
        ``derive(runs)``, when given, returns the runs to draw from the computed ones (e.g. B read
        from a predictions file on A's hour and cells: only A is requested then)."""
        try:
            reqs = {tag: (r if isinstance(r, tuple) else (r, None)) for tag, r in requests.items()}
            pending = []
            for req, models in reqs.values():
                _, job = R.submit(req, models=models)
                if job is not None:
                    pending.append(job)
        except Exception as exc:  # noqa: BLE001
            self._on_message(alert(error_text(exc)))
            return
        self._pending = {tag: req for tag, (req, _) in reqs.items()}
        self._derive = derive
        self._labels = dict(labels or {tag: str(req.checkpoint) for tag, req in self._pending.items()})
        self._on_message()
        if pending:
            self.jobs.watch(pending)
        else:
            self._compared([])

    def _compared(self, _jobs) -> None:
        runs = {tag: R.cached(req) for tag, req in self._pending.items()}
        missing = [t for t, r in runs.items() if r is None]
        if missing:
            self._on_message(alert(f"Run {text(missing[0])} is no longer in the cache; press Compare again.", "warning"))
            return
        if self._derive is not None:
            try:
                runs = self._derive(runs)
            except Exception as exc:  # noqa: BLE001
                self._on_message(alert(error_text(exc)))
                return
        self.runs = runs
        with pn.io.hold():
            self.draw(runs, self._labels)
        if self._on_drawn is not None:  # not in the same hold: a stream event there blanks the plots
            self._on_drawn(runs)

    def draw(self, runs: dict, labels: dict[str, str]) -> None:
        """Draw runs ``{"A": EnsembleRun, "B": EnsembleRun}`` of the same hour, region and seeds."""
        a, b = runs["A"], runs["B"]
        la, lb = labels.get("A", a.label), labels.get("B", b.label)
        ea, eb = a.ensemble, b.ensemble
        reg = ea.inputs.region
        fg = reg.fine_grid
        bounds = grid_bounds(fg.lat, fg.lon)
        size = frame_size(reg, 260, 300)
        ma, _ = C.mean_and_spread(ea)
        mb, _ = C.mean_and_spread(eb)
        cg = reg.coarse_grid
        truth = ea.inputs.truth_tp if ea.inputs.truth_tp is not None else np.full(fg.shape, np.nan, np.float32)
        panels = [(bounds, "truth TP (0.25°)", truth),
                  (bounds, f"A member 0: {la}", ea.tp_members[0]), (bounds, "A ensemble mean", ma),
                  (grid_bounds(cg.lat, cg.lon), "coarse input TP (1°)", ea.inputs.coarse_tp),
                  (bounds, f"B member 0: {lb}", eb.tp_members[0]), (bounds, "B ensemble mean", mb)]
        self.maps.object = hv.Layout([
            coasted(image(v, bnd, kind="tp", title=t).opts(**size), reg.bounds) for bnd, t, v in panels
        ]).cols(3).opts(shared_axes=True)
        items = [self._spectra(ea, eb)]
        if ea.inputs.truth_tp is not None:
            items.append(self._qq(ea, eb))
        if self._extra_plots is not None:
            try:
                items += self._extra_plots(runs, {"A": la, "B": lb})
            except Exception as exc:  # noqa: BLE001 - the comparison is still shown
                self._on_message(alert(f"A plot beside the comparison could not be drawn: {error_text(exc)}"))
        self.curves.object = hv.Layout(items).cols(3).opts(shared_axes=False)
        ca, cb = C.crps_scores(ea), C.crps_scores(eb)
        if ca:
            rows = [f"| A: {text(la)} | {next(iter(ca.values())):.4f} | {a.seconds:.1f} s |",
                    f"| B: {text(lb)} | {next(iter(cb.values())):.4f} | {b.seconds:.1f} s |"]
            rows += [f"| {text(k)} | {v:.4f} | |" for k, v in list(ca.items())[1:]]
            same = (f"same hour, region and member seeds ({a.request.members} members, {a.request.steps} steps, "
                    f"seed {a.request.seed})")
            if hasattr(b, "source"):  # B read from a predictions file
                same = (f"{a.time:%Y-%m-%d %H:%M} UTC on the same cells ({text(reg.title)}); A: {a.request.members} "
                        f"members x {a.request.steps} steps, seed {a.request.seed}; B: the {b.members} members of "
                        f"{code(b.label)}; both against the data's truth{own_truth_note(b)}")
            self.scores.object = (f"**CRPS of each ensemble (fair; MAE for baselines), mm/h**, {same}\n\n"
                                  "| forecast | CRPS | run / read time |\n|---|---|---|\n" + "\n".join(rows))
        else:
            self.scores.object = (f"*No truth on this grid: no CRPS* (same hour, region and member seeds: "
                                  f"{a.request.members} members, {a.request.steps} steps, seed {a.request.seed}).")

    @staticmethod
    def _spectra(ea, eb):
        sa, sb = C.spectra(ea, each_member=False), C.spectra(eb, each_member=False)
        curves = []
        if "truth" in sa:
            curves.append(hv.Curve(sa["truth"], "wavelength", "psd", label="truth").opts(color="black", line_width=2.5))
        curves += [hv.Curve(sa["bicubic"], "wavelength", "psd", label="bicubic").opts(color="#ff7f0e", line_dash="dashed"),
                   hv.Curve(sa["members (mean)"], "wavelength", "psd", label="A members").opts(color=COLORS["A"], line_width=2),
                   hv.Curve(sb["members (mean)"], "wavelength", "psd", label="B members").opts(color=COLORS["B"], line_width=2)]
        return hv.Overlay(curves).opts(logx=True, logy=True, invert_xaxis=True, frame_width=300, frame_height=250,
                                       xlabel="wavelength (km)", xticks=WAVELENGTH_TICKS, ylabel="PSD ((mm/h)² km²)",
                                       title="Power spectra", legend_position="bottom_left")

    @staticmethod
    def _qq(ea, eb):
        qa, qb = C.quantiles(ea), C.quantiles(eb)
        t = np.maximum(qa["truth"], 0.01)
        hi = max(float(t.max()) * 1.5, 1.0)
        return hv.Overlay([
            hv.Curve(([0.01, hi], [0.01, hi]), "truth", "model", label="1:1").opts(color="grey", line_dash="dashed"),
            hv.Scatter((t, np.maximum(qa["members"], 0.01)), "truth", "model", label="A").opts(color=COLORS["A"], size=6),
            hv.Scatter((t, np.maximum(qb["members"], 0.01)), "truth", "model", label="B").opts(color=COLORS["B"], size=6),
            hv.Scatter((t, np.maximum(qa["bicubic"], 0.01)), "truth", "model", label="bicubic").opts(
                color="#ff7f0e", marker="triangle", size=6),
        ]).opts(logx=True, logy=True, frame_width=260, frame_height=250, xlabel="truth quantile (mm/h)",
                ylabel="model quantile (mm/h)", title="QQ (wet tail)", legend_position="top_left")
