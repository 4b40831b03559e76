"""Load: 8 browser sessions run ensembles at once through the bounded job queue (benchmarks/load_test.py).

The load test starts its own server (PPVIZ_MAX_JOBS=1) and browser; this runs its main function
and asserts that every session finished without errors, that the queue served the jobs in FIFO
order one at a time, and that the server's peak memory stayed under the bound.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]


def _load_test_module():
    spec = importlib.util.spec_from_file_location("ppviz_load_test", REPO / "benchmarks" / "load_test.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_eight_sessions_run_at_once(browser_type_launch_args):
    # browser_type_launch_args (conftest): fails when Debian chromium is missing
    lt = _load_test_module()
    res = lt.main(["--sessions", "8", "--members", "2", "--steps", "6", "--region", "sample", "--max-jobs", "1",
                   "--timeout", "150", "--memory-bound-mb", "2000",
                   "--chromium", browser_type_launch_args["executable_path"]])
    errors = {r["session"]: r["errors"] for r in res["records"] if r["errors"]}
    assert res["completed"] == 8, errors
    assert res["errors"] == 0, errors
    assert res["fifo_ok"]
    assert res["mem_ok"], f"peak server memory {res['peak_mb']:.0f} MB"
    assert res["ok"]
