"""One downscaling run for the dashboard: validated request, queue job, trajectory, cache.

A :class:`ppviz.request.DownscaleRequest` names everything a result depends on (checkpoints, time,
region, seed, steps, members, churn); its :attr:`~ppviz.request.DownscaleRequest.key` is the
:class:`ppviz.jobs.ResultCache` key.
:func:`submit` returns a cached :class:`EnsembleRun` at once, joins an identical run already in
the queue, or queues a new one on :func:`ppviz.jobs.default_queue`. The job reports progress
after every sampler step and stops there when cancelled (the sampler callback calls
:meth:`ppviz.jobs.Job.report`, which raises :class:`ppviz.jobs.JobCancelled`).
"""

from __future__ import annotations

import functools
import os
import threading
import time as _time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ppviz.jobs import FINISHED, Job, JobQueue, ResultCache, default_queue
from ppviz.request import DownscaleRequest

MAX_FRAMES = 60  # trajectory frames kept per run (evenly spaced over the steps)
CACHE_ITEMS_ENV = "PPVIZ_CACHE_ITEMS"
CACHE_MB_ENV = "PPVIZ_CACHE_MB"
RUN_ON_OPEN_ENV = "PPVIZ_RUN_ON_OPEN"  # 0: the landing page waits for Run (the load test's burst)
DEFAULT_MEMBERS = 4  # the landing page's first run
DEFAULT_STEPS = 8
DEFAULT_SEED = 0


@dataclass
class Trajectory:
    """The denoising path of one member: the state ``x`` after each kept step, the step's
    denoised estimate (both full fine fields (H, W) of the model's latent: PP, or transformed tp
    for a tp-target model, see ``latent``) and that estimate decoded to tp (mm/h)."""

    member: int
    step: np.ndarray  # (n,) 0-based sampler step of each frame
    sigma: np.ndarray  # (n,) noise level reached by that step
    x: np.ndarray  # (n, H, W)
    denoised: np.ndarray  # (n, H, W)
    tp: np.ndarray  # (n, H, W) decode(denoised), mm/h
    latent: str = "PP"

    def __len__(self) -> int:
        return int(self.step.size)


class ShownRun:
    """What the pages read from every run they draw (a ppviz run, or a predictions file's time):
    the region, time and member count of its ``ensemble``."""

    ensemble: object

    @property
    def region(self):
        return self.ensemble.inputs.region

    @property
    def time(self) -> pd.Timestamp:
        return self.ensemble.inputs.time

    @property
    def members(self) -> int:
        return int(self.ensemble.tp_members.shape[0])


@dataclass
class EnsembleRun(ShownRun):
    """A finished run: the :class:`ppviz.pipeline.Ensemble`, the trajectory of member 0, timing."""

    request: DownscaleRequest
    ensemble: object  # ppviz.pipeline.Ensemble
    trajectory: Trajectory | None
    seconds: float
    provenance: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The checkpoint (what a comparison calls this run)."""
        return str(self.request.checkpoint)

    @property
    def caption(self) -> str:
        r = self.request
        return f"{r.checkpoint}, {r.members} members x {r.steps} steps, seed {r.seed}"

    def to_dataset(self):
        """The ensemble as a CF dataset, with the checkpoints and sampler settings as attributes."""
        out = self.ensemble.to_dataset()
        r = self.request
        out.attrs = {
            "Conventions": "CF-1.8",
            "title": f"ppviz PP-diffusion downscaling over {self.region.title}",
            "source": "ppviz dashboard: coarse PP -> EDM diffusion ensemble -> PP decoder",
            "region": self.region.slug_or_box,
            "region_bounds": list(self.region.bounds),
            "members": r.members, "steps": r.steps, "seed": r.seed, "churn": r.churn,
            "sampler": "heun (EDM Algorithm 2)",
            **{k: str(v) for k, v in self.provenance.items()},
        }
        return out


@dataclass
class View:
    """What the Downscale page's maps and curves show: inputs of the hour, the run (or None), the selection."""

    inputs: object
    run: object | None
    member: int = 0
    shown: list = field(default_factory=list)

    @functools.cached_property
    def mean_spread(self):
        if self.run is None:
            return None
        from ppviz.views.curves import mean_and_spread

        return mean_and_spread(self.run.ensemble, self.shown)

    @property
    def when(self) -> str:
        return f"{self.inputs.time:%Y-%m-%d %H:%M}"


def _frames_kept(steps: int) -> set[int]:
    return set(np.linspace(0, steps - 1, min(steps, MAX_FRAMES)).round().astype(int).tolist())


def run_ensemble(request: DownscaleRequest, job: Job | None = None, *, ds=None, trajectory: bool = True) -> EnsembleRun:
    """Run ``request`` now (in this thread), reporting to ``job`` after every sampler step."""
    from ppviz.views.cache import dataset, load_models
    from ppviz.pipeline import downscale_time

    region = request.validate()
    ds = dataset(request.data) if ds is None else ds
    if job is not None:
        job.report(0.0, "loading models")
    models = load_models(request.checkpoint, request.pp_checkpoint)
    keep = _frames_kept(int(request.steps))
    frames: dict[str, list] = {"step": [], "sigma": [], "x": [], "denoised": []}
    steps = int(request.steps)

    def callback(info: dict) -> None:
        i = int(info["i"])
        members = list(info.get("members", [0]))
        if trajectory and i in keep and 0 in members:
            k = members.index(0)
            frames["step"].append(i)
            frames["sigma"].append(float(info.get("sigma_next", np.nan)))
            frames["x"].append(info["x"][k, 0].detach().float().cpu().numpy())
            frames["denoised"].append(info["denoised"][k, 0].detach().float().cpu().numpy())
        if job is not None:
            # all members run in one batch: step i of N is (i + 1) / N of the work
            lo = members[0] if members else 0
            frac = (lo + len(members) * (i + 1) / steps) / int(request.members)
            job.report(frac, f"step {i + 1}/{steps}", step=i + 1, steps=steps)

    t0 = _time.perf_counter()
    ens = downscale_time(models, ds, request.time, region, members=int(request.members), steps=steps,
                         seed=int(request.seed), churn=float(request.churn), callback=callback,
                         sampler=request.sampler)
    seconds = _time.perf_counter() - t0
    traj = None
    if trajectory and frames["x"]:
        den = np.stack(frames["denoised"])
        transform = getattr(models, "transform", None)
        tp = models.decode(den) if transform is None else transform.inverse(den)
        traj = Trajectory(0, np.asarray(frames["step"]), np.asarray(frames["sigma"]), np.stack(frames["x"]), den,
                          np.asarray(tp, dtype=np.float32), "PP" if transform is None else "transformed tp")
    return EnsembleRun(request, ens, traj, seconds, models.provenance)


# -- the process-wide cache and de-duplication ----------------------------------------------

_cache: ResultCache | None = None
_inflight: dict[tuple, Job] = {}
_lock = threading.Lock()


def default_cache() -> ResultCache:
    """Finished runs of this process (``$PPVIZ_CACHE_ITEMS``, default 64; ``$PPVIZ_CACHE_MB``, default 1024)."""
    global _cache
    with _lock:
        if _cache is None:
            items = int(os.environ.get(CACHE_ITEMS_ENV, "64") or 64)
            mb = int(os.environ.get(CACHE_MB_ENV, "1024") or 1024)
            _cache = ResultCache(max_items=max(1, items), max_bytes=max(1, mb) * 2**20)
        return _cache


def cached(request: DownscaleRequest) -> EnsembleRun | None:
    """The finished run of ``request`` if this process has it."""
    return default_cache().get(request.key)


def submit(request: DownscaleRequest, *, queue: JobQueue | None = None, cache: ResultCache | None = None,
           trajectory: bool = True) -> tuple[EnsembleRun | None, Job | None]:
    """``(run, None)`` from the cache, or ``(None, job)``: a new job, or the identical one already
    queued or running (so two sessions asking the same thing share one run).

    Raises ValueError at once for an invalid request (nothing is queued).
    """
    request.validate()
    cache = default_cache() if cache is None else cache
    hit = cache.get(request.key)
    if hit is not None:
        return hit, None
    with _lock:
        job = _inflight.get(request.key)
        if job is not None and job.status not in FINISHED and not job.cancel_requested:
            return None, job

        def work(j: Job) -> EnsembleRun:
            try:
                run = run_ensemble(request, j, trajectory=trajectory)
                cache.put(request.key, run)
                return run
            finally:
                with _lock:
                    if _inflight.get(request.key) is j:
                        del _inflight[request.key]

        job = (queue or default_queue()).submit(work, label=request.label, key=request.key)
        _inflight[request.key] = job
        return None, job


# -- the landing page's first run, warmed at server start -----------------------------------

def default_request(ds, checkpoint: str) -> DownscaleRequest:
    """The :class:`ppviz.request.DownscaleRequest` the landing page shows first with ``checkpoint``
    (its default members, steps and seed, at :func:`ppviz.views.highlights.default_view`)."""
    from ppviz.views.highlights import default_view

    t, region = default_view(ds)
    return DownscaleRequest(checkpoint=checkpoint, time=t.strftime("%Y-%m-%dT%H:%M"), region=region,
                            members=DEFAULT_MEMBERS, steps=DEFAULT_STEPS, seed=DEFAULT_SEED)


def warm(ds=None, checkpoint: str | None = None):
    """Queue the landing page's default run (:func:`default_request` with the preferred diffusion
    checkpoint), so the first visitor finds it cached. Returns the job, or None when it is cached
    already or no diffusion checkpoint is registered."""
    from ppviz.views import cache as M

    ds = M.dataset() if ds is None else ds
    checkpoint = checkpoint or M.preferred_checkpoint("diffusion")
    if not checkpoint:
        return None
    _, job = submit(default_request(ds, checkpoint))
    return job


WARM_ENV = "PPVIZ_WARM"


def warm_in_background() -> None:
    """:func:`warm` in a daemon thread (server start must not wait for the dataset or torch);
    ``$PPVIZ_WARM=0`` turns it off. Failures are logged: the page then runs it on open."""
    import logging

    if os.environ.get(WARM_ENV, "1").strip() == "0":
        return

    def work():
        try:
            warm()
        except Exception:  # noqa: BLE001 - the landing page submits the same run when opened
            logging.getLogger("ppviz.dashboard").warning("warming the landing run failed", exc_info=True)

    threading.Thread(target=work, name="ppviz-warm", daemon=True).start()


def run_on_open() -> bool:
    """Whether the landing page computes its ensemble when first opened (``$PPVIZ_RUN_ON_OPEN``,
    default 1; 0 leaves it to the Run button)."""
    return os.environ.get(RUN_ON_OPEN_ENV, "1").strip() != "0"
