"""A process-wide bounded job queue and an LRU result cache, for the dashboard (no Panel here).

Sampling a diffusion ensemble takes seconds to minutes, so a dashboard must not run it inside a
browser callback, and many sessions must not each start one at once. :class:`JobQueue` runs at
most ``max_workers`` jobs concurrently on its own threads, in FIFO order; everything else waits
in line and knows its position. A :class:`Job` carries its status, progress fraction and
message, its result or error, and a cancel flag:

- a *queued* job that is cancelled leaves the line at once (status ``cancelled``);
- a *running* job is cancelled cooperatively: :meth:`Job.cancel` sets a flag, and the work
  function sees it the next time it calls :meth:`Job.report` or :meth:`Job.check` (e.g. from
  the sampler callback of :func:`ppviz.pipeline.downscale_time`), which raise
  :class:`JobCancelled`. The worker thread then takes the next job: a cancel never blocks the
  queue.

The work function has the signature ``fn(job) -> result``; an exception it raises becomes the
job's ``error`` (status ``failed``), never the worker's death.

:func:`default_queue` is the one queue of the process (size from ``$PPVIZ_MAX_JOBS``, default 1
on a CPU-only machine, 2 with a GPU). :class:`ResultCache` keeps finished results by key with a
least-recently-used bound on both count and bytes (the key of a downscaling run is
:attr:`ppviz.request.DownscaleRequest.key`).
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from ppviz.env import env_int

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
MAX_JOBS_ENV = "PPVIZ_MAX_JOBS"


class JobCancelled(Exception):
    """Raised inside a job's work function when the job has been cancelled."""


class Job:
    """One unit of work in a :class:`JobQueue`; thread-safe to read from any thread.

    Attributes
    ----------
    id : int
        Increasing number, unique in the process.
    label : str
        What the job does, for people.
    status : str
        ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
    progress : float
        Fraction done in [0, 1] as last reported by the work function (1 when done).
    message : str
        Last progress message (e.g. ``step 3/18``).
    info : dict
        Extra data of the last :meth:`report` call (e.g. the current step's fields).
    result : Any
        What the work function returned (status ``done``).
    error : str or None
        ``"ExceptionType: message"`` of a failed job.
    """

    _ids = itertools.count(1)

    def __init__(self, fn: Callable[["Job"], Any], label: str = "", key: Hashable | None = None):
        self.id = next(self._ids)
        self.fn = fn
        self.label = label or f"job {self.id}"
        self.key = key
        self.status = QUEUED
        self.progress = 0.0
        self.message = "waiting"
        self.info: dict = {}
        self.result: Any = None
        self.error: str | None = None
        self.traceback: str | None = None
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._queue: "JobQueue | None" = None

    # -- called by the work function ---------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (call it often while working)."""
        if self._cancel.is_set():
            raise JobCancelled(f"{self.label} was cancelled")

    def report(self, progress: float | None = None, message: str | None = None, **info) -> None:
        """Record progress (fraction in [0, 1]) and a message, then :meth:`check` for a cancel."""
        if progress is not None:
            self.progress = float(min(1.0, max(0.0, progress)))
        if message is not None:
            self.message = message
        if info:
            self.info = info
        self.check()

    # -- called by anyone ----------------------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> bool:
        """Ask the job to stop. A queued job leaves the line at once; a running one stops at its
        next :meth:`check`. Returns False if the job had already finished."""
        if self.status in FINISHED:
            return False
        self._cancel.set()
        if self._queue is not None:
            self._queue._drop_queued(self)
        return True

    @property
    def done(self) -> bool:
        """True once the job has finished (done, failed or cancelled)."""
        return self._done.is_set()

    @property
    def position(self) -> int:
        """0 while running or finished; 1 for the next job to start, 2 after it, ..."""
        if self.status != QUEUED or self._queue is None:
            return 0
        return self._queue.position(self)

    @property
    def elapsed(self) -> float:
        """Seconds spent running so far (or in total once finished)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished; returns False on timeout."""
        return self._done.wait(timeout)

    def describe(self) -> str:
        """One line for a status display."""
        if self.status == QUEUED:
            return f"{self.label}: queued, position {self.position}"
        if self.status == RUNNING:
            return f"{self.label}: {self.message} ({self.progress:.0%}, {self.elapsed:.1f} s)"
        if self.status == DONE:
            return f"{self.label}: done in {self.elapsed:.1f} s"
        if self.status == CANCELLED:
            return f"{self.label}: cancelled"
        return f"{self.label}: failed: {self.error}"

    def _finish(self, status: str) -> None:
        self.status = status
        self.finished = time.monotonic()
        if status == DONE:
            self.progress = 1.0
        self._done.set()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.label!r} {self.status}>"


def default_max_jobs() -> int:
    """``$PPVIZ_MAX_JOBS``, else 2 with a CUDA GPU and 1 on a CPU-only machine."""
    n = env_int(MAX_JOBS_ENV, 1, 64, unit="jobs")
    if n is not None:
        return n
    try:
        import torch

        return 2 if torch.cuda.is_available() else 1
    except ImportError:  # pragma: no cover - torch is a dependency
        return 1


class JobQueue:
    """FIFO queue running at most ``max_workers`` jobs at once on daemon threads.

    Parameters
    ----------
    max_workers : int, optional
        Concurrent jobs; default :func:`default_max_jobs`.
    name : str
        Thread-name prefix.
    """

    def __init__(self, max_workers: int | None = None, name: str = "ppviz-job"):
        n = default_max_jobs() if max_workers is None else int(max_workers)
        if n < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = n
        self._pending: deque[Job] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._worker, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[[Job], Any], label: str = "", key: Hashable | None = None) -> Job:
        """Queue ``fn(job)``; returns the :class:`Job` at once."""
        job = Job(fn, label, key)
        job._queue = self
        with self._cond:
            if self._closed:
                raise RuntimeError("the job queue is shut down")
            self._pending.append(job)
            self._cond.notify()
        return job

    def position(self, job: Job) -> int:
        """1-based place of a queued job in line (0 if it is not waiting)."""
        with self._cond:
            for i, j in enumerate(self._pending):
                if j is job:
                    return i + 1
        return 0

    @property
    def pending(self) -> list[Job]:
        with self._cond:
            return list(self._pending)

    @property
    def running(self) -> list[Job]:
        with self._cond:
            return list(self._running)

    def _drop_queued(self, job: Job) -> None:
        with self._cond:
            try:
                self._pending.remove(job)
            except ValueError:
                return  # already running (stops at its next check) or finished
            job.message = "cancelled before it started"
            job._finish(CANCELLED)

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                job = self._pending.popleft()
                job.status = RUNNING
                job.started = time.monotonic()
                job.message = "started"
                self._running.append(job)
            try:
                job.check()
                job.result = job.fn(job)
                status = CANCELLED if job.cancel_requested else DONE
                if status == CANCELLED:
                    job.result = None
            except JobCancelled:
                status = CANCELLED
            except BaseException as exc:  # noqa: BLE001 - a job's failure must not kill the worker
                if job.cancel_requested:
                    status = CANCELLED
                else:
                    status = FAILED
                    job.error = f"{type(exc).__name__}: {exc}"
                    job.traceback = traceback.format_exc()
            if status == CANCELLED:
                job.message = "cancelled"
            with self._cond:
                self._running.remove(job)
                job._finish(status)

    def shutdown(self, cancel_pending: bool = True, wait: bool = True) -> None:
        """Stop taking jobs; cancel the waiting ones (default) and let the running ones end."""
        with self._cond:
            self._closed = True
            waiting = list(self._pending) if cancel_pending else []
        for job in waiting:
            job.cancel()
        with self._cond:
            self._cond.notify_all()
        if wait:
            for t in self._threads:
                t.join()


_DEFAULT: JobQueue | None = None
_DEFAULT_LOCK = threading.Lock()


def default_queue() -> JobQueue:
    """The process-wide queue, created on first use with :func:`default_max_jobs` workers."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = JobQueue()
        return _DEFAULT


# -- results cache ------------------------------------------------------------------------------


def nbytes_of(obj: Any, _depth: int = 0) -> int:
    """Approximate memory of a result: numpy arrays, tensors, xarray objects, containers, dataclasses."""
    if _depth > 6 or obj is None:
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "nbytes") and not isinstance(obj, (str, bytes)):
        try:
            return int(obj.nbytes)
        except Exception:  # noqa: BLE001
            pass
    if hasattr(obj, "element_size") and hasattr(obj, "nelement"):  # torch tensor
        return int(obj.element_size() * obj.nelement())
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, dict):
        return sum(nbytes_of(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes_of(v, _depth + 1) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return sum(nbytes_of(getattr(obj, f.name), _depth + 1) for f in fields(obj))
    return 64


class ResultCache:
    """Thread-safe LRU cache bounded by entry count and total bytes.

    Parameters
    ----------
    max_items : int
        Most entries kept.
    max_bytes : int
        Most bytes kept (by :func:`nbytes_of`, or the size given to :meth:`put`); the least
        recently used entries are dropped first. A single entry larger than this is not kept.
    """

    def __init__(self, max_items: int = 64, max_bytes: int = 512 * 2**20):
        if max_items < 1 or max_bytes < 1:
            raise ValueError("max_items and max_bytes must be positive")
        self.max_items = int(max_items)
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key`` (now the most recently used), or ``default``."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key][0]
            self.misses += 1
            return default

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> bool:
        """Store ``value``; returns False if it alone exceeds ``max_bytes`` (then nothing is stored)."""
        size = nbytes_of(value) if nbytes is None else int(nbytes)
        with self._lock:
            self._data.pop(key, None)
            if size > self.max_bytes:
                return False
            self._data[key] = (value, size)
            self._evict()
            return True

    def _evict(self) -> None:
        total = sum(s for _, s in self._data.values())
        while self._data and (len(self._data) > self.max_items or total > self.max_bytes):
            _, (_, s) = self._data.popitem(last=False)
            total -= s

    def keys(self) -> list:
        with self._lock:
            return list(self._data)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(s for _, s in self._data.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
