"""The reconciler: the scheduler's periodic pass that heals what events did not deliver.

From Spanner's open jobs and BigQuery's own job state it submits what a crash left
READY, completes what finished without an event, repairs stalled runs and abandons
runs whose starter died. Bounded per invocation, and each job's healing is its own
step: one that fails is logged, counted and left for the next pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from baton import structured_log
from baton.domain.outcomes import completion_of
from baton.domain.records import CheckStatus, JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.timing import ReconcilePolicy, awaiting_submission, due_for_check
from baton.domain.transitions.repair import in_flight, repair_run
from baton.domain.transitions.start import abandon_run
from baton.errors import TransientError
from baton.service.completion import complete
from baton.service.continuations import submit_released
from baton.service.dependencies import Dependencies
from baton.service.ports import RemoteState
from baton.service.submission import check_request, request_for, submit


@dataclass
class ReconcileReport:
    submitted: int = 0  # READY jobs nobody submitted (crash, or backoff over)
    healed: int = 0  # DONE in BigQuery, but the completion event never arrived
    resubmitted_lost: int = 0  # SUBMITTED in Spanner, unknown to BigQuery
    checked_running: int = 0
    abandoned_runs: int = 0
    repaired_runs: int = 0  # RUNNING with nothing in flight: released, skipped or finished from their jobs
    scanned: int = 0  # open job rows read
    truncated: bool = False  # more open jobs than one invocation reads; the next one starts again from the oldest
    errors: int = 0  # jobs left for the next invocation after a transient failure


def reconcile(deps: Dependencies, policy: ReconcilePolicy) -> ReconcileReport:
    """Heal what events missed, from Spanner's open jobs and BigQuery's own job state.

    Bounded: at most `max_pages` pages of `batch` rows per status and `batch` BigQuery
    lookups. Safe beside event delivery and beside another reconciler, since every step
    is an idempotent transition or a jobs.insert under the job's deterministic ID.
    """
    now = deps.clock()
    report = ReconcileReport()
    runs: dict[str, RunRecord | None] = {}
    busy: set[str] = set()  # runs with a job in flight

    def live_run(run_id: str) -> RunRecord | None:
        if run_id not in runs:
            runs[run_id] = deps.store.get_run(run_id)
        run = runs[run_id]
        return run if run is not None and run.status == RunStatus.RUNNING else None

    for job in _open_jobs(deps, JobStatus.READY, policy, report):
        busy.add(job.run_id)
        run = live_run(job.run_id)
        if run is None or not awaiting_submission(job, now, policy.resubmit_after):
            continue
        if _heal(report, job, lambda run=run, job=job: submit(deps, run, [job])):  # type: ignore[misc]
            report.submitted += 1

    lookups = 0
    for job in _open_jobs(deps, JobStatus.SUBMITTED, policy, report):
        busy.add(job.run_id)
        if job.submitted_at is None or job.bigquery_job_id is None or live_run(job.run_id) is None:
            continue
        if lookups >= policy.batch or not due_for_check(now - job.submitted_at, policy):
            continue
        lookups += 1
        _heal(report, job, lambda job=job: _settle_submitted(deps, job, report))  # type: ignore[misc]

    for job in _open_jobs(deps, JobStatus.CHECKING, policy, report):
        busy.add(job.run_id)
        run = live_run(job.run_id)
        if run is None or job.checks_started_at is None or not due_for_check(now - job.checks_started_at, policy):
            continue
        _heal(report, job, lambda run=run, job=job: _settle_checks(deps, run, job, report))  # type: ignore[misc]

    _repair_stalled(deps, policy, now, busy, report)
    stale = [
        run.run_id
        for run in deps.store.list_runs(limit=policy.batch, status=RunStatus.CREATING)
        if run.created_at is not None and now - run.created_at >= policy.abandon_creating_after
    ]
    for run_id in stale:
        if deps.store.transact(lambda tx, run_id=run_id: abandon_run(tx, run_id, now)) is not None:  # type: ignore[misc]
            report.abandoned_runs += 1
    structured_log.info("reconciled", **report.__dict__)
    return report


def _open_jobs(deps: Dependencies, status: JobStatus, policy: ReconcilePolicy, report: ReconcileReport) -> Iterator[JobRecord]:
    token: str | None = None
    seen: set[tuple[str, str]] = set()  # a row updated meanwhile moves to the end of the index
    for _ in range(policy.max_pages):
        jobs, token = deps.store.jobs_page(status, policy.batch, token)
        report.scanned += len(jobs)
        for job in jobs:
            if (job.run_id, job.job_key) not in seen:
                seen.add((job.run_id, job.job_key))
                yield job
        if token is None:
            return
    report.truncated = True


def _heal(report: ReconcileReport, job: JobRecord, step: Callable[[], object]) -> bool:
    """One job's healing; a transient failure leaves it for the next invocation instead of stopping the rest."""
    try:
        step()
    except TransientError as exc:
        report.errors += 1
        structured_log.warning("reconcile step failed; next time", run_id=job.run_id, job_key=job.job_key, error=str(exc))
        return False
    return True


def _settle_submitted(deps: Dependencies, job: JobRecord, report: ReconcileReport) -> None:
    """Ask BigQuery by the deterministic ID; a DONE job goes through the same path as its event would."""
    assert job.bigquery_job_id is not None
    remote = deps.submitter.lookup(job.bigquery_job_id)
    if remote is None:
        run = deps.store.get_run(job.run_id)
        if run is not None and run.status == RunStatus.RUNNING:
            deps.submitter.submit(request_for(run, job))
            report.resubmitted_lost += 1
    elif remote.state == RemoteState.DONE:
        event = completion_of(
            job.run_id, job.job_key, job.attempt, job.bigquery_job_id, check_name=None, error=remote.error, stats=remote.stats
        )
        complete(deps, event)
        report.healed += 1
    else:
        report.checked_running += 1


def _settle_checks(deps: Dependencies, run: RunRecord, job: JobRecord, report: ReconcileReport) -> None:
    """A CHECKING job whose check events were lost, or whose checks a crash left unsubmitted."""
    for check in deps.store.list_checks(job.run_id, job.job_key):
        if check.attempt != job.attempt or check.status != CheckStatus.PENDING:
            continue
        remote = deps.submitter.lookup(check.bigquery_job_id)
        if remote is None:
            deps.submitter.submit(check_request(run, job, check))
            report.resubmitted_lost += 1
        elif remote.state == RemoteState.DONE:
            event = completion_of(
                job.run_id,
                job.job_key,
                check.attempt,
                check.bigquery_job_id,
                check_name=check.name,
                error=remote.error,
                stats=remote.stats,
                output_rows=remote.output_rows,
            )
            complete(deps, event)
            report.healed += 1
        else:
            report.checked_running += 1


def _repair_stalled(
    deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, busy: set[str], report: ReconcileReport
) -> None:
    """RUNNING runs with no job in flight cannot progress on events alone: release, skip or finish from their jobs."""
    for run in deps.store.list_runs(limit=policy.batch, status=RunStatus.RUNNING):
        if run.run_id in busy or run.created_at is None or now - run.created_at < policy.stalled_after:
            continue
        jobs = deps.store.list_jobs(run.run_id)
        if any(in_flight(job) for job in jobs):
            continue  # released after the scans read their pages
        keys = [job.job_key for job in jobs]
        repair = deps.store.transact(
            lambda tx, run_id=run.run_id, keys=keys: repair_run(tx, run_id, keys, now, deps.store.jobs_per_commit)  # type: ignore[misc]
        )
        if repair.missing_rows:
            structured_log.error("stalled run is missing job rows", run_id=run.run_id, missing=repair.missing_rows)
        if not repair.changed or repair.run is None:
            continue
        report.repaired_runs += 1
        fixed = repair.run
        structured_log.warning(
            "stalled run repaired",
            run_id=fixed.run_id,
            released=[job.job_key for job in repair.released],
            skipped=repair.skipped,
            status=str(fixed.status),
        )
        if repair.finished:
            deps.events.publish(run_event(finished_event_type(fixed.status), fixed, now, pricing=deps.pricing))
        elif repair.released:
            submit_released(deps, fixed, repair.released)
