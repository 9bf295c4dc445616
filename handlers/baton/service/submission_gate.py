"""The check before jobs.insert: is the run still RUNNING and not held, as of a read made just now?

A completion that released jobs commits, then inserts them one after another; a cancel
or a hold may commit in between. Reading the run again right before the inserts closes
that gap: nothing is inserted for a run whose cancel (or hold) committed before the
read. The read is paid once per batch, and only when the batch has a job in it; a
batch of slow inserts reads again once the last read is SUBMIT_RECHECK_AFTER old, so
a cancel stops it within about that long (a quick batch still costs one read). What
the gate keeps back stays READY: a cancel closes it, a release submits it.
"""

from __future__ import annotations

import datetime as dt

from baton import structured_log
from baton.domain.records import RunRecord
from baton.domain.timing import SUBMIT_RECHECK_AFTER
from baton.domain.transitions.hold import accepts_submissions
from baton.service.dependencies import Dependencies


class SubmissionGate:
    """Open while the run accepts submissions (domain/transitions/hold.py), as last read from the store."""

    def __init__(self, deps: Dependencies, run: RunRecord, read_at: dt.datetime | None = None) -> None:
        """`read_at`: when the caller read `run` from the store; younger than SUBMIT_RECHECK_AFTER, it counts as
        the first check (a submit batch that just read it, the reconciler's pass), else the gate reads again."""
        self._deps = deps
        self._run_id = run.run_id
        self._open = accepts_submissions(run)
        self._read_at = read_at

    def open(self) -> bool:
        """Whether the next jobs.insert may go out; reads the run when it has not, or when that read is old."""
        now = self._deps.clock()
        if self._read_at is None or (self._open and now - self._read_at >= SUBMIT_RECHECK_AFTER):
            run = self._deps.store.get_run(self._run_id)
            self._open, self._read_at = accepts_submissions(run), now
            if not self._open:
                status = "gone" if run is None else f"{run.status}{', held' if run.held_at else ''}"
                structured_log.info("run accepts no submissions now; its READY jobs wait", run_id=self._run_id, run=status)
        return self._open
