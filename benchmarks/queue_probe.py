"""``panel serve`` with the process-wide job queue instrumented, for benchmarks/load_test.py.

``python benchmarks/queue_probe.py serve app.py ...`` is ``panel serve app.py ...`` after wrapping
:meth:`ppviz.jobs.JobQueue.submit` and ``Job._finish`` so that every submit and every finished job
appends one JSON line (id, label, status, created/started/finished on the monotonic clock) to
``$PPVIZ_QUEUE_LOG``. Nothing else changes: the load test reads the log to check the queue order.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from ppviz import jobs

_LOCK = threading.Lock()
_PATH = os.environ["PPVIZ_QUEUE_LOG"]


def _write(**record) -> None:
    with _LOCK, open(_PATH, "a") as f:
        f.write(json.dumps(record) + "\n")


_submit = jobs.JobQueue.submit
_finish = jobs.Job._finish


def submit(self, fn, label="", key=None):
    job = _submit(self, fn, label, key)
    _write(event="submit", id=job.id, label=job.label, t=time.monotonic(), max_workers=self.max_workers)
    return job


def finish(self, status):
    _finish(self, status)
    _write(event="finish", id=self.id, label=self.label, status=status, created=self.created, started=self.started,
           finished=self.finished, error=self.error)


jobs.JobQueue.submit = submit
jobs.Job._finish = finish

if __name__ == "__main__":
    from panel.command import main

    sys.argv = ["panel", *sys.argv[1:]]
    sys.exit(main())
