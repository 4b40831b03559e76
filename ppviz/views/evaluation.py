"""The Evaluation page's view-model: metrics over a date range as a queue job; directories to load.

:func:`evaluate_range` downscales every hour of a range over a region (reporting progress per
sampler step to its :class:`ppviz.jobs.Job`), assembles the hours into a ``ppviz downscale``
output and scores it with :func:`ppviz.evaluation.run.evaluate_ensemble`, the same code as
``ppviz evaluate`` (streaming metrics, per-cell percentile ratios, the Gibbs comparison of the
truth, the ensemble-mean field as an extra deterministic forecast).

:func:`open_predictions_file` and :func:`evaluate_predictions` score a predictions file made
elsewhere (:mod:`ppviz.data.predictions`) like ``ppviz evaluate --predictions``.

Evaluation directories are written and read by :mod:`ppviz.evaluation.store`. The dashboard reads
directories and predictions files only below the roots in ``$PPVIZ_EVAL_ROOTS`` (``os.pathsep``-separated; default: the
working directory and the data cache), since the path comes from a browser.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from ppviz.evaluation.store import EvaluationResult, read_evaluation, save_evaluation
from ppviz.request import DownscaleRequest, check_request

__all__ = ["EVAL_ROOTS_ENV", "MAX_TIMES", "SHIPPED_DIR", "EvaluationResult", "allowed_roots", "evaluate_predictions",
           "evaluate_range", "load_evaluation", "open_predictions_file", "save_evaluation", "shipped_evaluation",
           "validate_evaluation"]

EVAL_ROOTS_ENV = "PPVIZ_EVAL_ROOTS"
MAX_TIMES = 72
SHIPPED_DIR = "evaluation"  # a checkpoint's held-out evaluation: <checkpoint>/evaluation/ (ppviz evaluate)


def validate_evaluation(request: DownscaleRequest, ds) -> tuple:
    """``(region, hours)`` of an evaluation over ``request.time .. request.end``, after
    :meth:`ppviz.request.DownscaleRequest.validate`; ValueError for fewer than 2 members or a bad or too
    long range (more than :data:`MAX_TIMES` hours)."""
    check_request(request.members, request.steps)
    if int(request.members) < 2:
        raise ValueError("evaluation needs at least 2 members (the fair CRPS and the rank histogram)")
    region = request.validate()
    times = request.times(ds)
    if len(times) > MAX_TIMES:
        raise ValueError(f"the range holds {len(times)} hourly steps; the dashboard evaluates at most "
                         f"{MAX_TIMES} (use `ppviz downscale` and an offline evaluation for longer ranges)")
    return region, times


def evaluate_range(request: DownscaleRequest, job=None, *, ds=None) -> EvaluationResult:
    """Downscale each hour of ``request`` and score them like ``ppviz evaluate``."""
    from ppviz.evaluation.run import evaluate_ensemble
    from ppviz.views.cache import dataset, load_models
    from ppviz.pipeline import downscale_time

    ds = dataset(request.data) if ds is None else ds
    region, times = validate_evaluation(request, ds)
    models = load_models(request.checkpoint, request.pp_checkpoint)
    n, steps = len(times), int(request.steps)
    parts = []
    for i, t in enumerate(times):
        def cb(info, i=i, t=t):
            if job is not None:
                job.report((i + (int(info["i"]) + 1) / steps) / n,
                           f"hour {i + 1}/{n} ({t:%Y-%m-%d %H:%M}), step {int(info['i']) + 1}/{steps}")

        ens = downscale_time(models, ds, t, region, members=int(request.members), steps=steps,
                             seed=int(request.seed), callback=cb, sampler=request.sampler)
        if ens.inputs.truth_tp is None:
            raise ValueError("the data are on the 1 deg grid: there is no fine truth to evaluate against")
        parts.append(ens.to_dataset())
    if job is not None:
        job.report(1.0, "computing metrics")
    out = parts[0] if len(parts) == 1 else xr.concat(parts, dim="time", data_vars="minimal", coords="minimal",
                                                     compat="override", join="override")
    out.attrs = {**models.provenance, "region": region.slug_or_box, "members": int(request.members),
                 "steps": steps, "seed": int(request.seed)}
    return evaluate_ensemble(out)


def allowed_roots() -> list[Path]:
    """Directories an evaluation may be loaded from (``$PPVIZ_EVAL_ROOTS``, see the module docstring)."""
    raw = os.environ.get(EVAL_ROOTS_ENV, "")
    roots = [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]
    if not roots:
        roots = [Path.cwd()]
        from ppviz.data.source import cache_dir

        try:
            roots.append(Path(cache_dir()))
        except Exception:  # noqa: BLE001
            pass
    return [r.resolve() for r in roots]


def _allowed_path(path, roots, empty: str) -> Path:
    """``path`` resolved, if below one of ``roots`` (default :func:`allowed_roots`); ValueError otherwise."""
    text = str(path).strip()
    if not text:
        raise ValueError(empty)
    p = Path(text).expanduser().resolve()
    roots = allowed_roots() if roots is None else [Path(r).resolve() for r in roots]
    if not any(p == r or p.is_relative_to(r) for r in roots):
        raise ValueError(f"{p} is outside the directories evaluations may be read from "
                         f"({', '.join(map(str, roots))}; set {EVAL_ROOTS_ENV} to change them)")
    return p


def load_evaluation(path, roots=None) -> EvaluationResult:
    """Read an evaluation directory below one of ``roots`` (default :func:`allowed_roots`).

    Raises ValueError saying what is missing or not allowed.
    """
    return read_evaluation(_allowed_path(path, roots, "enter the path of an evaluation directory "
                                                      "(holding metrics.json)"))


def open_predictions_file(path, *, truth=None, var=None, truth_var=None, member_dim=None, units=None,
                          roots=None, min_members: int = 2, max_times: int | None = MAX_TIMES,
                          truth_required: bool = True):
    """:func:`ppviz.data.predictions.open_predictions` of files below the allowed roots (both paths checked).

    Empty strings mean "not given". Raises ValueError for a path outside the roots, fewer than
    ``min_members`` members (2: the ensemble scores) or more than ``max_times`` time steps (None:
    any number; the Downscale page reads one time), and every refusal of the reader.
    ``truth_required`` False: a file without a truth opens with ``tp`` alone.
    """
    from ppviz.data.predictions import open_predictions

    def opt(x):
        return str(x).strip() or None if x is not None else None

    p = _allowed_path(path, roots, "enter the path of a predictions file (netCDF or zarr)")
    t = _allowed_path(truth, roots, "") if opt(truth) else None
    for f in (p, t):
        if f is not None and not f.exists():
            raise ValueError(f"{f}: no such file or directory")
    ds = open_predictions(p, truth=t, var=opt(var), truth_var=opt(truth_var), member_dim=opt(member_dim),
                          units=opt(units), truth_required=truth_required)
    if ds.sizes["member"] < min_members:
        raise ValueError(f"{p} has {ds.sizes['member']} member; the ensemble scores need at least {min_members}")
    if max_times is not None and ds.sizes["time"] > max_times:
        raise ValueError(f"{p} holds {ds.sizes['time']} time steps; the dashboard scores at most {max_times} "
                         "(use `ppviz evaluate --predictions` for more)")
    return ds


def evaluate_predictions(ds, job=None) -> EvaluationResult:
    """Score an :func:`open_predictions_file` result like ``ppviz evaluate --predictions`` (no baselines, no Gibbs)."""
    from ppviz.evaluation.run import evaluate_ensemble

    if job is not None:
        job.report(0.0, f"scoring {ds.sizes['time']} times x {ds.sizes['member']} members")
    res = evaluate_ensemble(ds, baselines=(), gibbs=False)
    res.source = ds.attrs.get("predictions", "predictions")
    return res


def shipped_evaluation(checkpoint: str) -> EvaluationResult | None:
    """The held-out evaluation shipped beside the registered ``checkpoint`` (its
    ``evaluation/`` directory, written by ``ppviz evaluate``), or None when it has none. The path
    comes from the registry, never from a browser, so no root check applies."""
    from ppviz.checkpoints import resolve_checkpoint

    path = resolve_checkpoint(checkpoint, allow_paths=False) / SHIPPED_DIR
    if not (path / "metrics.json").is_file():
        return None
    res = read_evaluation(path)
    res.source = f"{checkpoint}/{SHIPPED_DIR} (held-out evaluation shipped with the checkpoint)"
    return res
