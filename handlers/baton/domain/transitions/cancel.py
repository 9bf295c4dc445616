"""Cancelling a run: open jobs end CANCELLED; the ones BigQuery may hold are handed back to cancel there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from baton.domain.records import CheckStatus, JobStatus, RunRecord, RunStatus
from baton.domain.transaction import RunTransaction
from baton.domain.transitions import pools
from baton.domain.transitions.pools import Released


@dataclass
class CancelResult:
    run: RunRecord | None
    changed: bool
    to_cancel_in_bigquery: list[str] = field(default_factory=list)
    pool_released: Released = field(default_factory=list)  # QUEUED jobs of other runs the freed slots went to


def cancel_run(
    tx: RunTransaction,
    run_id: str,
    job_keys: Sequence[str],
    now: dt.datetime,
    reason: str | None = None,
    *,
    only_cancelled: bool = False,
) -> CancelResult:
    """Stop a run: it becomes CANCELLED, and the open ones among `job_keys` become CANCELLED too.

    Released jobs (READY included, since a handler may be submitting one right now) are
    returned for BigQuery to cancel, and so are the pending checks of a CHECKING job
    (service/submission.py says why this and submission agree). A run with more open jobs
    than one commit may update is cancelled in several calls with the next keys each: the
    first flips the run (and `changed` says so), later ones only close jobs of the
    already-CANCELLED run. `reason`: why, when a rule and not an operator cancels it (a timeout);
    kept as the run's end reason and each cancelled job's error. `only_cancelled`: close jobs of a run that
    is CANCELLED already, never cancel one (the reconciler finishing an interrupted cancel, which a retry
    may have overtaken).
    """
    run = tx.get_run(run_id)
    if run is None or (run.status.terminal and run.status != RunStatus.CANCELLED):
        return CancelResult(run=run, changed=False)
    if only_cancelled and run.status != RunStatus.CANCELLED:
        return CancelResult(run=run, changed=False)
    changed = not run.status.terminal
    error = reason or (None if changed else run.end_reason) or "run cancelled"  # later chunks keep the first's reason
    to_cancel = []
    cancelled = 0
    moves = []
    for job in tx.get_jobs(run_id, job_keys):
        if job.status.terminal:
            continue
        if job.status in (JobStatus.READY, JobStatus.SUBMITTED) and job.bigquery_job_id:
            to_cancel.append(job.bigquery_job_id)
        elif job.status == JobStatus.CHECKING:  # its data checks are BigQuery jobs too
            checks = tx.get_checks(run_id, job.job_key, job.attempt)
            to_cancel.extend(check.bigquery_job_id for check in checks if check.status == CheckStatus.PENDING)
        closed = replace(job, status=JobStatus.CANCELLED, finished_at=now, error=error)
        tx.put_job(closed)
        moves.append((job, closed))
        cancelled += 1
    if not changed and not cancelled:
        return CancelResult(run=run, changed=False)
    run = replace(
        run,
        status=RunStatus.CANCELLED,
        open_jobs=run.open_jobs - cancelled,
        cancelled_jobs=run.cancelled_jobs + cancelled,
        finished_at=run.finished_at if run.finished_at and not changed else now,
        end_reason=reason if changed else run.end_reason,
    )
    tx.put_run(run)
    # After the run is CANCELLED in this transaction, so freed slots go to other runs, never to this one's queued jobs.
    released = pools.moved_many(tx, moves, now)
    return CancelResult(run=run, changed=changed, to_cancel_in_bigquery=to_cancel, pool_released=released)
