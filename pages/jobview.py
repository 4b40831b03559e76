"""Progress of queue jobs in a page: a progress bar, queue position, elapsed time and a cancel button.

The jobs run on :func:`ppviz.jobs.default_queue`'s threads; this component polls them from the
session's own event loop (a periodic callback while something is in flight), so all widget
updates happen on the session's thread.
"""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from pages.common import CONTROL_WIDTH, alert
from pages.safe import markdown, text
from ppviz.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING

POLL_MS = 200


class JobView(pn.viewable.Viewer):
    """Watch one or more jobs; call ``on_done(jobs)`` when all finished well, else show why not."""

    def __init__(self, on_done: Callable[[list], None], on_message: Callable[..., None], width: int = CONTROL_WIDTH - 20):
        super().__init__()
        self.jobs: list = []
        self._on_done = on_done
        self._on_message = on_message
        self._poller = None
        self.progress = pn.indicators.Progress(label="progress", value=0, max=100, visible=False, width=width,
                                               bar_color="info")
        self.text = markdown("", width=width + 20)
        self.cancel_button = pn.widgets.Button(label="Cancel", color="warning", width=90, disabled=True)
        self.cancel_button.on_click(self.cancel)

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def watch(self, jobs: list) -> None:
        """Start showing ``jobs`` (replacing any previous ones, which keep running)."""
        self.jobs = list(jobs)
        self.cancel_button.disabled = False
        self.progress.visible = True
        self.progress.value = 0
        self.poll()
        if self.jobs and self._poller is None:
            self._poller = pn.state.add_periodic_callback(self.poll, period=POLL_MS)

    def cancel(self, _event=None) -> None:
        for j in self.jobs:
            j.cancel()
        self.text.object = "Cancelling..."

    def drop(self) -> None:
        """Stop watching, quietly: cancel the jobs, whose results are no longer wanted (a result
        the user loaded meanwhile must not be replaced by a late one)."""
        for j in self.jobs:
            j.cancel()
        self.jobs = []
        self._stop()
        self.text.object = ""

    def _stop(self) -> None:
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        self.cancel_button.disabled = True
        self.progress.visible = False

    def poll(self) -> None:
        jobs = self.jobs
        if not jobs:
            self._stop()
            return
        active = [j for j in jobs if j.status in (QUEUED, RUNNING)]
        if active:
            running = [j for j in active if j.status == RUNNING]
            if not running:
                pos = min(j.position for j in active)
                self.progress.value = -1
                self.text.object = f"Queued: position {pos} in line"
            else:
                frac = sum(j.progress if j.status != DONE else 1.0 for j in jobs) / len(jobs)
                self.progress.value = int(round(100 * frac))
                j = running[0]
                more = f" ({len(jobs)} jobs)" if len(jobs) > 1 else ""
                self.text.object = f"Running{more}: {text(j.message)} ({frac:.0%}, {j.elapsed:.1f} s)"
            return
        self.jobs = []
        self._stop()
        failed = [j for j in jobs if j.status == FAILED]
        if failed:
            self.text.object = "Failed."
            self._on_message(alert(f"The run failed: {text(failed[0].error)}"))
        elif any(j.status == CANCELLED for j in jobs):
            self.text.object = "Cancelled."
            self._on_message(alert("The run was cancelled; the queue is free for the next one.", "info"))
        else:
            self.text.object = f"Done in {max(j.elapsed for j in jobs):.1f} s."
            try:
                self._on_done(jobs)
            except Exception as exc:  # noqa: BLE001
                from pages.common import error_text

                self._on_message(alert(f"The result could not be shown: {error_text(exc)}"))

    def __panel__(self):
        return pn.Column(self.cancel_button, self.progress, self.text, width=CONTROL_WIDTH)
