"""Training runs for the dashboard: the run directories below the configured roots, each
run's timeline (loss, held-out scores of its snapshots) as tables, its snapshots as downscaling
requests, and promotion of a snapshot into the checkpoint registry. No panel; torch only when a
snapshot's model is loaded.

Roots: ``$PPVIZ_RUNS``, ``os.pathsep``-separated directories; none set, no runs are listed. A run
is a directory (at most two levels below a root) holding the ``train_log.jsonl`` of
``ppviz train diffusion --state-dir``. The page names a run by its **label**, its path relative
to its root (``exp1/run-a``; with several roots the first holding it wins), and a snapshot as
``LABEL@STEP``. Paths outside the roots are refused, also through a symlink or ``..``
(:func:`ppviz.training.snapshots.is_inside`). Strings read from run directories are untrusted:
pages show them through ``pages/safe.py``.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import pandas as pd

from ppviz.env import env_int
from ppviz.training.snapshots import LOG_FILE, is_inside, list_snapshots, promote_snapshot, read_run_log, snapshot_dir

RUNS_ENV = "PPVIZ_RUNS"
#: How often (ms) the Training runs page looks at the open run's log (default 3000).
REFRESH_ENV = "PPVIZ_RUNS_REFRESH_MS"
DEFAULT_REFRESH_MS = 3000
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


# -- runs and snapshots by label --------------------------------------------------------------


def refresh_ms() -> int:
    """The page's refresh interval: ``$PPVIZ_RUNS_REFRESH_MS`` (100..600000), default 3000 ms."""
    return env_int(REFRESH_ENV, 100, 600_000, unit="ms") or DEFAULT_REFRESH_MS


def _roots(roots) -> list[Path]:
    return run_roots() if roots is None else [Path(r).resolve() for r in roots]


def run_label(path, roots=None) -> str:
    """The label of the run directory ``path``: its path relative to the first root holding it."""
    p = Path(path).resolve()
    for r in _roots(roots):
        if is_inside(p, [r]):
            return p.relative_to(r).as_posix()
    raise ValueError(f"{p} is not below the training-run roots")


def run_choices(roots=None) -> list[str]:
    """Labels of the runs below the roots, newest log first."""
    return [run_label(p, roots) for p in list_runs(roots)]


def resolve_run(label, roots=None) -> Path:
    """The run directory of ``label`` (relative to a root; an absolute path must lie below one).

    ValueError: no roots configured, an empty label, a path outside the roots (also through
    ``..`` or a symlink), a directory without ``train_log.jsonl``.
    """
    roots = _roots(roots)
    text = str(label or "").strip()
    if not roots:
        raise ValueError(f"no training-run roots are configured; set {RUNS_ENV}")
    if not text:
        raise ValueError("no training run chosen")
    if Path(text).is_absolute():
        return open_run(text, roots)
    inside = [r / text for r in roots if is_inside(r / text, [r])]
    for cand in inside:
        if (cand / LOG_FILE).is_file():
            return cand.resolve()
    if not inside:
        raise ValueError(f"run {text!r} is not below the training-run roots ({', '.join(map(str, roots))}; "
                         f"set {RUNS_ENV} to change them)")
    raise ValueError(f"run {text!r} is not a training run (no {LOG_FILE} there)")


def log_signature(label, roots=None) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of the run's log (None when it cannot be read): the page re-reads the
    log only when this changes."""
    try:
        st = (resolve_run(label, roots) / LOG_FILE).stat()
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


def snapshot_ref(label: str, step: int) -> str:
    """``LABEL@STEP``: how the page names a snapshot."""
    return f"{label}@{int(step)}"


def snapshot_choices(roots=None) -> list[str]:
    """``LABEL@STEP`` of every complete snapshot below the roots (newest run first, steps ascending)."""
    return [snapshot_ref(label, s) for label, run in ((run_label(p, roots), p) for p in list_runs(roots))
            for s in list_snapshots(run)]


def parse_snapshot(ref, roots=None) -> tuple[Path, int]:
    """``(run directory, step)`` of a complete snapshot ``LABEL@STEP`` below the roots.

    ValueError naming the problem: not of the form ``LABEL@STEP``, a run outside the roots,
    no complete snapshot at that step (a snapshot being written is a hidden temporary directory,
    not listed; the message names the steps there are).
    """
    text = str(ref or "").strip()
    label, sep, step = text.rpartition("@")
    if not sep or not label or not step.isdigit():
        raise ValueError(f"{text!r} is not a snapshot; choose one as RUN@STEP (e.g. exp1/run-a@2000)")
    run = resolve_run(label, roots)
    have = list_snapshots(run)
    if int(step) not in have:
        raise ValueError(f"run {label!r} has no complete snapshot at step {int(step)}; snapshots: "
                         f"{', '.join(map(str, have)) if have else 'none yet'}")
    return run, int(step)


_models: dict[tuple, object] = {}
_lock = threading.Lock()
MAX_MODELS = 8  # snapshot models kept loaded per process


def load_snapshot_models(path, ref: str, sha: str):
    """:class:`ppviz.pipeline.Models` of the snapshot directory ``path`` (its diffusion model and
    the PP checkpoint it was trained with), loaded once per ``(path, sha)``; a snapshot that
    cannot be loaded is a ValueError saying it is incomplete or damaged."""
    from ppviz.pipeline import Models

    key = (str(path), sha)
    with _lock:
        if key not in _models:
            try:
                models = Models.load(Path(path))
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"snapshot {ref} is incomplete or damaged ({exc})") from None
            while len(_models) >= MAX_MODELS:
                _models.pop(next(iter(_models)))
            _models[key] = models
        return _models[key]


def snapshot_request(ref, *, time: str, region: str, members: int, steps: int | None, seed: int,
                     data: str | None = None, roots=None):
    """``(request, models)`` to downscale one hour with snapshot ``ref`` (``LABEL@STEP``) through
    :func:`ppviz.views.runs.submit` (``models=``): the request's ``checkpoint`` is
    ``LABEL@STEP#SHA`` (the first 12 hex digits of its weights, so a rewritten snapshot is a new
    cache key), ``models`` loads it (:func:`load_snapshot_models`). ValueError: a bad ``ref``
    (:func:`parse_snapshot`), an unreadable snapshot config, too few sampler steps for its schedule,
    or a bad request field."""
    from ppviz.checkpoints import CheckpointError, read_config
    from ppviz.checkpoints.schedule import schedule_from_config
    from ppviz.request import DownscaleRequest

    run, step = parse_snapshot(ref, roots)
    ref = snapshot_ref(run_label(run, roots), step)
    path = snapshot_dir(run, step)
    try:
        doc = read_config(path, ref)
        sha = str(doc["weights"]["sha256"])[:12]
    except CheckpointError as exc:
        raise ValueError(f"snapshot {ref} is incomplete or damaged ({exc})") from None
    if steps is not None:
        schedule_from_config(doc).check_steps(int(steps), ref)
    req = DownscaleRequest(checkpoint=f"{ref}#{sha}", time=time, region=region, members=members, steps=steps,
                           seed=seed, data=data)
    req.check()
    return req, functools.partial(load_snapshot_models, path, ref, sha)


# -- promotion ---------------------------------------------------------------------------------


def promote_root() -> Path:
    """Where the page promotes snapshots to: the first directory of ``$PPVIZ_CHECKPOINTS`` (the
    registry's user checkpoints; the shipped ``pretrained/`` is never written). ValueError when
    none is set or it is not a writable directory."""
    from ppviz.checkpoints import ENV_DIRS, checkpoint_dirs

    dirs = checkpoint_dirs()[1:]
    if not dirs:
        raise ValueError(f"no writable checkpoint directory: set {ENV_DIRS} to one to promote snapshots into")
    root = dirs[0]
    if not root.is_dir() or not os.access(root, os.W_OK):
        raise ValueError(f"{root} (the first directory of {ENV_DIRS}) is not a writable directory; "
                         "snapshots cannot be promoted there")
    return root


def promote(ref, name: str, roots=None) -> Path:
    """Promote snapshot ``ref`` (``LABEL@STEP``) to the registered checkpoint ``name`` in
    :func:`promote_root`, with its model card (:func:`ppviz.training.snapshots.promote_snapshot`).

    ValueError: a bad ``ref``, an invalid name, a name already registered (any directory of
    the registry: the first of a name wins, so the new one would be hidden), a damaged snapshot.
    """
    from ppviz.checkpoints import list_checkpoints
    from ppviz.checkpoints.format import NAME_RULE
    from ppviz.checkpoints.lookup import is_valid_name

    name = str(name or "").strip()
    if not is_valid_name(name):
        raise ValueError(f"{name!r} is not a valid checkpoint name (names match {NAME_RULE})")
    run, step = parse_snapshot(ref, roots)
    clash = next((i for i in list_checkpoints() if i.name == name), None)
    if clash is not None:
        raise ValueError(f"a checkpoint named {name!r} is already registered ({clash.path}); choose another name")
    root = promote_root()
    return promote_snapshot(run, step, root / name)
