"""Training runs for the dashboard: the run directories below the configured roots, and each
run's timeline (loss, held-out scores of its snapshots) as tables. No panel, no torch.

Roots: ``$PPVIZ_RUNS``, ``os.pathsep``-separated directories; none set, no runs are listed. A run
is a directory (at most two levels below a root) holding the ``train_log.jsonl`` of
``ppviz train diffusion --state-dir``. Paths outside the roots are refused, also through a
symlink or ``..`` (:func:`ppviz.training.snapshots.is_inside`). Strings read from run
directories are untrusted: pages show them through ``pages/safe.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ppviz.training.snapshots import LOG_FILE, is_inside, list_snapshots, read_run_log

RUNS_ENV = "PPVIZ_RUNS"
SCORE_COLUMNS = ("crps_fair", "lsd_db", "p99_ratio", "wet_fraction", "wet_fraction_truth")


def run_roots() -> list[Path]:
    """The directories of ``$PPVIZ_RUNS`` (resolved); empty when unset."""
    raw = os.environ.get(RUNS_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]


def list_runs(roots=None) -> list[Path]:
    """Run directories up to two levels below ``roots`` (default :func:`run_roots`), newest log first."""
    roots = run_roots() if roots is None else [Path(r).resolve() for r in roots]
    found = set()
    for r in roots:
        if not r.is_dir():
            continue
        for pattern in (f"*/{LOG_FILE}", f"*/*/{LOG_FILE}"):
            for log in r.glob(pattern):
                if is_inside(log.parent, [r]):
                    found.add(log.parent.resolve())
    return sorted(found, key=lambda p: (p / LOG_FILE).stat().st_mtime, reverse=True)


def open_run(path, roots=None) -> Path:
    """``path`` resolved, if it is a run directory below one of ``roots``; else ValueError."""
    roots = run_roots() if roots is None else [Path(r).resolve() for r in roots]
    p = Path(path)
    if not roots:
        raise ValueError(f"no training-run roots are configured; set {RUNS_ENV}")
    if not is_inside(p, roots):
        raise ValueError(f"{p} is not below the training-run roots ({', '.join(map(str, roots))}; "
                         f"set {RUNS_ENV} to change them)")
    if not (p / LOG_FILE).is_file():
        raise ValueError(f"{p} is not a training run (no {LOG_FILE})")
    return p.resolve()


def timeline(path, roots=None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The loss lines, the snapshot scores and the log's problems of a run below the roots.

    Returns
    -------
    loss : DataFrame with columns step, loss, lr, seconds
    scores : DataFrame with columns step and :data:`SCORE_COLUMNS` (one row per scored snapshot)
    problems : list of str, one per skipped log line
    """
    run = open_run(path, roots)
    records, problems = read_run_log(run / LOG_FILE)
    loss = pd.DataFrame([{k: r.get(k) for k in ("step", "loss", "lr", "seconds")} for r in records if "loss" in r],
                        columns=["step", "loss", "lr", "seconds"])
    rows = [{"step": r["step"], **{k: (r.get("scores") or {}).get(k) for k in SCORE_COLUMNS}}
            for r in records if r.get("event") == "snapshot"]
    scores = pd.DataFrame(rows, columns=["step", *SCORE_COLUMNS])
    return loss, scores, problems


def snapshots(path, roots=None) -> list[int]:
    """Steps of the complete snapshots of a run below the roots."""
    return list_snapshots(open_run(path, roots))
