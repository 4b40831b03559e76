"""The dashboard's job queue and result cache: order, bounded concurrency, cancel, errors, eviction."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ppviz.jobs import (
    CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobCancelled, JobQueue, ResultCache, default_max_jobs, nbytes_of,
)
from ppviz.request import DownscaleRequest


def ensemble_key(checkpoint, pp_checkpoint, time, region, seed, steps, members, churn=0.0):
    return DownscaleRequest(checkpoint, time, region, members, steps, seed, churn, pp_checkpoint).key


@pytest.fixture
def queue():
    q = JobQueue(1)
    yield q
    q.shutdown(wait=True)


def _until(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return False


def test_fifo_order_and_positions(queue):
    gate = threading.Event()
    order = []

    def work(tag):
        def fn(job):
            gate.wait(5)
            order.append(tag)
            return tag
        return fn

    jobs = [queue.submit(work(i), label=f"j{i}") for i in range(4)]
    assert _until(lambda: jobs[0].status == RUNNING)
    assert [j.position for j in jobs] == [0, 1, 2, 3]
    assert [j.status for j in jobs[1:]] == [QUEUED] * 3
    assert "position 2" in jobs[2].describe()
    gate.set()
    for j in jobs:
        assert j.wait(5)
    assert order == [0, 1, 2, 3]
    assert [j.result for j in jobs] == [0, 1, 2, 3]
    assert all(j.status == DONE and j.progress == 1.0 and j.position == 0 for j in jobs)


def test_bounded_concurrency():
    q = JobQueue(2)
    lock = threading.Lock()
    now = {"n": 0, "max": 0}

    def fn(job):
        with lock:
            now["n"] += 1
            now["max"] = max(now["max"], now["n"])
        time.sleep(0.05)
        with lock:
            now["n"] -= 1

    jobs = [q.submit(fn) for _ in range(6)]
    assert _until(lambda: all(j.done for j in jobs))
    q.shutdown()
    assert now["max"] == 2
    assert all(j.status == DONE for j in jobs)


def test_cancel_running_and_queued_leaves_queue_usable(queue):
    steps = []

    def long(job):
        for i in range(1000):
            time.sleep(0.005)
            steps.append(i)
            job.report((i + 1) / 1000, f"step {i + 1}/1000")  # raises JobCancelled once cancelled
        return "finished"

    running = queue.submit(long, label="long")
    waiting = queue.submit(lambda job: "never", label="waiting")
    assert _until(lambda: running.progress > 0)
    assert running.status == RUNNING and "step" in running.message
    assert waiting.cancel()
    assert waiting.status == CANCELLED and waiting.done  # left the line at once
    assert running.cancel()
    assert running.wait(5)
    assert running.status == CANCELLED and running.result is None and running.error is None
    assert len(steps) < 1000
    assert not running.cancel()  # already finished
    after = queue.submit(lambda job: 42, label="after")
    assert after.wait(5) and after.status == DONE and after.result == 42


def test_failing_job_reports_error_and_worker_survives(queue):
    def bad(job):
        raise ValueError("region too small")

    j = queue.submit(bad)
    assert j.wait(5)
    assert j.status == FAILED
    assert j.error == "ValueError: region too small"
    assert "Traceback" in j.traceback
    assert "failed: ValueError" in j.describe()
    ok = queue.submit(lambda job: "ok")
    assert ok.wait(5) and ok.result == "ok"


def test_check_raises_when_cancelled(queue):
    started = threading.Event()
    seen = []

    def fn(job):
        started.set()
        while True:
            try:
                job.check()
            except JobCancelled:
                seen.append("cancelled")
                raise
            time.sleep(0.002)

    j = queue.submit(fn)
    assert started.wait(5)
    j.cancel()
    assert j.wait(5) and j.status == CANCELLED and seen == ["cancelled"]


def test_max_jobs_from_env(monkeypatch):
    monkeypatch.setenv("PPVIZ_MAX_JOBS", "3")
    assert default_max_jobs() == 3
    monkeypatch.setenv("PPVIZ_MAX_JOBS", "zero")
    with pytest.raises(ValueError, match="PPVIZ_MAX_JOBS"):
        default_max_jobs()
    monkeypatch.delenv("PPVIZ_MAX_JOBS")
    assert default_max_jobs() in (1, 2)


def test_cache_evicts_least_recently_used_by_count():
    c = ResultCache(max_items=2, max_bytes=10**9)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert "b" not in c and c.keys() == ["a", "c"]
    assert c.get("b", "missing") == "missing"
    assert c.hits == 1 and c.misses == 1


def test_cache_evicts_by_bytes_and_refuses_oversized():
    c = ResultCache(max_items=100, max_bytes=1000)
    for k in range(4):
        c.put(k, np.zeros(50, np.float32))  # 200 bytes each
    assert len(c) == 4 and c.nbytes == 800
    c.put("big", np.zeros(100, np.float32))  # 400 bytes: the oldest goes
    assert c.keys() == [1, 2, 3, "big"] and c.nbytes == 1000
    c.get(1)
    c.put("big2", np.zeros(100, np.float32))  # 2 and 3 (least recently used) go, 1 stays
    assert c.keys() == ["big", 1, "big2"]  # least recently used first
    assert not c.put("huge", np.zeros(1000, np.float32))
    assert "huge" not in c


def test_nbytes_and_key():
    assert nbytes_of({"a": np.zeros(10, np.float64), "b": [np.zeros(4, np.float32)]}) == 96
    k1 = ensemble_key("tiny", "pp-mlp-v1", "2021-01-02 06:00", "Sample", 0, 4, 2)
    k2 = ensemble_key("tiny", "pp-mlp-v1", "2021-01-02T06", "sample", 0, 4, 2, 0.0)
    assert k1 == k2 and k1.region == "sample" and k1.time == "2021-01-02T06:00"
    # boxes that snap to the same 1 deg cells are the same region
    assert ensemble_key("t", "p", "2021-01-02", "44.9,49.1,5,12", 0, 4, 2) == \
        ensemble_key("t", "p", "2021-01-02", "45,49,5.2,12", 0, 4, 2)
