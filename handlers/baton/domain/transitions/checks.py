"""A data check's BigQuery job reached DONE: record it; the last check of an attempt decides the job."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from baton.domain.records import CheckCompletion, CheckStatus, JobStatus
from baton.domain.specs import Severity
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.completion import CompletionResult, Verdict, record
from baton.domain.transitions.failure import skip_downstream
from baton.domain.transitions.release import succeed

# error_reason of a job failed by an `error` check; no BigQuery reason is spelled like it.
CHECK_FAILED_REASON = "checkFailed"


def apply_check_completion(tx: RunTransaction, event: CheckCompletion, now: dt.datetime, limit: int) -> CompletionResult:
    """Record one finished check; the last one of an attempt decides the job. Idempotent and monotonic."""
    job = tx.get_job(event.run_id, event.job_key)
    if job is None:
        return CompletionResult(Verdict.UNKNOWN_JOB if tx.get_run(event.run_id) else Verdict.UNKNOWN_RUN)
    if event.attempt != job.attempt:
        return CompletionResult(Verdict.STALE, job=job)
    check = tx.get_check(event.run_id, event.job_key, event.attempt, event.check_name)
    if check is None or check.bigquery_job_id != event.bigquery_job_id:
        return CompletionResult(Verdict.STALE, job=job)
    if check.status != CheckStatus.PENDING or job.status != JobStatus.CHECKING:
        return CompletionResult(Verdict.DUPLICATE, job=job)
    run = tx.get_run(event.run_id)
    if run is None:
        return CompletionResult(Verdict.UNKNOWN_RUN)
    if run.status.terminal:
        return CompletionResult(Verdict.RUN_FINISHED, job=job, run=run)

    check = replace(
        check,
        status=CheckStatus.PASSED if event.passed else CheckStatus.FAILED,
        rows=event.rows or 0,
        error=event.error.to_text() if event.error else None,
        stats=event.stats,
        finished_at=now,
        sample_rows=event.sample_rows,
    )
    tx.put_check(check)
    result = CompletionResult(Verdict.RECORDED, job=job, run=run)
    job = replace(job, pending_checks=max(job.pending_checks - 1, 0))
    if job.pending_checks > 0:
        tx.put_job(job)
        result.job = job
        return result

    outcomes = tx.get_checks(job.run_id, job.job_key, job.attempt)
    # The run's usage takes the attempt's checks at once, with the last of them: no run write per check.
    run = replace(run, usage=run.usage.plus(*(c.stats for c in outcomes)))
    result.failed_checks = [c for c in outcomes if c.status == CheckStatus.FAILED]
    blocking = [c for c in result.failed_checks if c.severity == Severity.ERROR]
    if blocking:
        job = replace(
            job,
            status=JobStatus.FAILED,
            error="; ".join(c.describe() for c in blocking),
            error_reason=CHECK_FAILED_REASON,
            finished_at=now,
        )
        run = replace(run, open_jobs=run.open_jobs - 1, failed_jobs=run.failed_jobs + 1)
        step = skip_downstream(tx, run, job.job_key, now, limit)
        run, result.skipped, result.continuation = step.run, step.skipped, step.continuation
    else:
        job, run, result.ready, result.continuation = succeed(tx, run, job, now, limit)
    return record(tx, run, job, now, result)
