"""A BigQuery job of the run reached DONE: record the outcome, retry, fail or succeed. Idempotent and monotonic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum

from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import (
    CheckRecord,
    CheckStatus,
    Completion,
    Continuation,
    JobError,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
)
from baton.domain.specs import CheckSpec
from baton.domain.timing import awaiting_submission, lease_expired
from baton.domain.transaction import RunTransaction
from baton.domain.transitions import pools
from baton.domain.transitions.failure import skip_downstream
from baton.domain.transitions.finish import finish_if_done
from baton.domain.transitions.pools import Released
from baton.domain.transitions.release import succeed


class Verdict(StrEnum):
    """What an event did. Everything but RECORDED/RETRYING is an acknowledged no-op."""

    RECORDED = "recorded"
    RETRYING = "retrying"
    DUPLICATE = "duplicate"  # the job already finished this attempt
    STALE = "stale"  # an older attempt, or a job not yet submitted under this ID
    RUN_FINISHED = "run_finished"  # e.g. a late completion of a cancelled run
    UNKNOWN_RUN = "unknown_run"
    UNKNOWN_JOB = "unknown_job"


@dataclass
class CompletionResult:
    verdict: Verdict
    job: JobRecord | None = None
    run: RunRecord | None = None
    ready: list[JobRecord] = field(default_factory=list)  # submit these after commit
    skipped: list[str] = field(default_factory=list)
    run_finished: bool = False
    checks: list[CheckRecord] = field(default_factory=list)  # submit these after commit too
    # Failed checks, once the last check of the job reported: the job failed if one is `error`, else they are warnings.
    failed_checks: list[CheckRecord] = field(default_factory=list)
    continuation: Continuation | None = None  # what did not fit in this commit: hand it on after commit
    pool_released: Released = field(default_factory=list)  # QUEUED jobs (of any run) a freed slot went to: submit them


def apply_completion(tx: RunTransaction, event: Completion, now: dt.datetime, limit: int) -> CompletionResult:
    """Record one finished BigQuery job and release what it unblocks. Idempotent and monotonic.

    `limit` bounds the job rows it writes besides its own (dependents released or skipped).
    """
    job = tx.get_job(event.run_id, event.job_key)
    if job is None:
        verdict = Verdict.UNKNOWN_JOB if tx.get_run(event.run_id) else Verdict.UNKNOWN_RUN
        return CompletionResult(verdict)
    if job.status.terminal and job.attempt == event.attempt:
        # A redelivery. If the first delivery crashed before submitting what it released,
        # hand those jobs out again: submitting is idempotent, and this heals the crash.
        ready = [] if job.status != JobStatus.SUCCEEDED else _unsubmitted_dependents(tx, job, now, limit)
        return _with_live_run(tx, CompletionResult(Verdict.DUPLICATE, job=job, ready=ready))
    if job.status == JobStatus.CHECKING and job.attempt == event.attempt:
        # Likewise for checks a crash left unsubmitted; a 409 answers those that made it.
        stuck = lease_expired(job.checks_started_at, now)
        pending = [c for c in tx.get_checks(job.run_id, job.job_key, job.attempt) if c.status == CheckStatus.PENDING]
        return _with_live_run(tx, CompletionResult(Verdict.DUPLICATE, job=job, checks=pending if stuck else []))
    if (
        event.attempt != job.attempt
        or event.bigquery_job_id != job.bigquery_job_id
        or job.status not in (JobStatus.READY, JobStatus.SUBMITTED)
    ):
        # The same healing for a retry whose resubmission was lost.
        retry_lost = job.attempt == event.attempt + 1 and awaiting_submission(job, now)
        return _with_live_run(tx, CompletionResult(Verdict.STALE, job=job, ready=[job] if retry_lost else []))
    run = tx.get_run(event.run_id)
    if run is None:
        return CompletionResult(Verdict.UNKNOWN_RUN)
    if run.status.terminal:
        return CompletionResult(Verdict.RUN_FINISHED, job=job, run=run)

    run = replace(run, usage=run.usage.plus(event.stats))  # every attempt BigQuery ran is billed, retried or not
    result = CompletionResult(Verdict.RECORDED, run=run)
    before = job
    if event.error is None and job.spec.checks:
        job = replace(
            job,
            status=JobStatus.CHECKING,
            stats=event.stats,
            error=None,
            error_reason=None,
            pending_checks=len(job.spec.checks),
            checks_started_at=now,
        )
        for spec in job.spec.checks:
            check = _new_check(run, job, spec, now)
            tx.put_check(check)
            result.checks.append(check)
    elif event.error is None:
        job, run, result.ready, result.continuation = succeed(tx, run, replace(job, stats=event.stats), now, limit)
    elif _retryable(job, event.error):
        attempt = job.attempt + 1
        delay = job.spec.retry.delay_before(attempt)
        job = replace(
            job,
            status=JobStatus.READY,
            attempt=attempt,
            bigquery_job_id=bigquery_job_id(run.environment, run.run_id, job.job_key, attempt),
            error=event.error.to_text(),
            error_reason=event.error.reason,
            stats=event.stats,
            ready_at=now,
            submitted_at=None,
            not_before=now + dt.timedelta(seconds=delay) if delay else None,
        )
        result.verdict = Verdict.RETRYING
        if job.not_before is None:
            result.ready.append(job)
    else:
        job = replace(
            job,
            status=JobStatus.FAILED,
            error=event.error.to_text(),
            error_reason=event.error.reason,
            stats=event.stats,
            finished_at=now,
        )
        run = replace(run, open_jobs=run.open_jobs - 1, failed_jobs=run.failed_jobs + 1)
        step = skip_downstream(tx, run, job.job_key, now, limit)
        run, result.skipped, result.continuation = step.run, step.skipped, step.continuation
    result.pool_released = pools.moved(tx, before, job, now)
    return record(tx, run, job, now, result)


def record(tx: RunTransaction, run: RunRecord, job: JobRecord, now: dt.datetime, result: CompletionResult) -> CompletionResult:
    """Write the job's new state and the run's counters; finish the run if nothing is left open."""
    tx.put_job(job)
    result.job = job
    run = finish_if_done(run, now)
    result.run_finished = run.status.terminal
    tx.put_run(run)
    result.run = run
    return result


def _new_check(run: RunRecord, job: JobRecord, spec: CheckSpec, now: dt.datetime) -> CheckRecord:
    return CheckRecord(
        run_id=job.run_id,
        job_key=job.job_key,
        attempt=job.attempt,
        name=spec.name,
        severity=spec.severity,
        status=CheckStatus.PENDING,
        bigquery_job_id=check_job_id(run.environment, run.run_id, job.job_key, job.attempt, spec.name),
        created_at=now,
    )


def _unsubmitted_dependents(tx: RunTransaction, job: JobRecord, now: dt.datetime, limit: int) -> list[JobRecord]:
    """Released dependents nobody submitted, among the first `limit` (a release continuation hands out the rest)."""
    dependents = tx.get_jobs(job.run_id, tx.get_dependents(job.run_id, job.job_key, limit=limit))
    return [d for d in dependents if awaiting_submission(d, now)]


def _with_live_run(tx: RunTransaction, result: CompletionResult) -> CompletionResult:
    """Attach the run when there is something to resubmit, unless the run has ended meanwhile."""
    if (result.ready or result.checks) and result.job is not None:
        run = tx.get_run(result.job.run_id)
        if run is None or run.status != RunStatus.RUNNING:
            result.ready, result.checks = [], []
        result.run = run
    return result


def _retryable(job: JobRecord, error: JobError) -> bool:
    return job.attempt < job.spec.retry.max_attempts and error.reason in job.spec.retry.retryable_reasons
