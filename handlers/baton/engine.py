"""The run state machine: pure rules, no Google client, no clock, no I/O.

Every function here takes a `RunTransaction` (one read-write transaction of the
store) and mutates run and job rows through it. Each event touches the job,
its run, and the job's dependents by key, so its cost follows the job's
out-degree, never the manifest's size.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from baton.checks import CheckSpec, Severity
from baton.manifest import BoundParam, JobSpec, Manifest


class JobStatus(StrEnum):
    PENDING = "PENDING"  # waiting for upstreams
    READY = "READY"  # released; to be submitted (once not_before has passed)
    SUBMITTED = "SUBMITTED"  # BigQuery has the job under its deterministic ID
    CHECKING = "CHECKING"  # its BigQuery job succeeded; its data checks are running
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # an upstream failed
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_JOB


_TERMINAL_JOB = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED}


class RunStatus(StrEnum):
    CREATING = "CREATING"  # rows being written; nothing submitted yet
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class JobError:
    reason: str
    message: str

    def to_text(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass(frozen=True)
class JobStats:
    """What BigQuery reported about a finished job; every field optional."""

    total_bytes_processed: int | None = None
    total_bytes_billed: int | None = None
    total_slot_ms: int | None = None
    rows_affected: int | None = None
    destination_table: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobStats:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if value is not None and name in ("start_time", "end_time"):
                value = dt.datetime.fromisoformat(value)
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class Completion:
    """A BigQuery job reached DONE. `error` is None on success."""

    run_id: str
    job_key: str
    attempt: int
    bigquery_job_id: str
    error: JobError | None = None
    stats: JobStats = field(default_factory=JobStats)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    manifest_name: str
    manifest_version: str
    environment: str
    params: Mapping[str, BoundParam]
    status: RunStatus
    total_jobs: int
    open_jobs: int
    succeeded_jobs: int = 0
    failed_jobs: int = 0
    skipped_jobs: int = 0
    cancelled_jobs: int = 0
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None


@dataclass(frozen=True)
class JobRecord:
    run_id: str
    job_key: str
    status: JobStatus
    attempt: int
    pending_upstreams: int
    spec: JobSpec
    bigquery_job_id: str | None = None
    error: str | None = None
    error_reason: str | None = None
    stats: JobStats | None = None
    not_before: dt.datetime | None = None
    ready_at: dt.datetime | None = None
    submitted_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    pending_checks: int = 0  # checks of this attempt still running (CHECKING only)
    checks_started_at: dt.datetime | None = None


class CheckStatus(StrEnum):
    PENDING = "PENDING"
    PASSED = "PASSED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class CheckRecord:
    """One check of one attempt of a job: written PENDING when the job's BigQuery job succeeds."""

    run_id: str
    job_key: str
    attempt: int
    name: str
    severity: Severity
    status: CheckStatus
    bigquery_job_id: str
    rows: int | None = None  # offending rows the check's query returned (at most checks.ROW_LIMIT)
    error: str | None = None  # the check's own query failed
    stats: JobStats | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    def describe(self) -> str:
        if self.error:
            return f"check '{self.name}' could not run: {self.error}"
        return f"check '{self.name}' failed: {self.rows or 0} offending row(s)"


@dataclass(frozen=True)
class CatalogEntry:
    """The last successful write to a table by a Baton job."""

    table_ref: str
    run_id: str
    job_key: str
    bigquery_job_id: str
    written_at: dt.datetime
    rows_affected: int | None = None
    bytes_processed: int | None = None


@dataclass(frozen=True)
class CheckCompletion:
    """A check's BigQuery job reached DONE. It passed if it ran and returned no rows."""

    run_id: str
    job_key: str
    attempt: int
    check_name: str
    bigquery_job_id: str
    rows: int | None = None  # outputRowCount; proto3 JSON omits zero, so None reads as 0
    error: JobError | None = None
    stats: JobStats = field(default_factory=JobStats)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.rows


class RunTransaction(Protocol):
    """Reads and writes of one read-write transaction. Reads see this transaction's own writes."""

    def get_run(self, run_id: str) -> RunRecord | None: ...
    def get_job(self, run_id: str, job_key: str) -> JobRecord | None: ...
    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        """Several jobs in one read; missing ones are left out."""
        ...

    def get_dependents(self, run_id: str, job_key: str) -> list[str]: ...
    def put_run(self, run: RunRecord) -> None: ...
    def put_job(self, job: JobRecord) -> None: ...
    def get_check(self, run_id: str, job_key: str, attempt: int, name: str) -> CheckRecord | None: ...
    def get_checks(self, run_id: str, job_key: str, attempt: int) -> list[CheckRecord]:
        """The checks of one attempt of one job, by name."""
        ...

    def put_check(self, check: CheckRecord) -> None: ...
    def get_catalog(self, table_ref: str) -> CatalogEntry | None: ...
    def put_catalog(self, entry: CatalogEntry) -> None: ...


def new_run_id() -> str:
    """Random, so that Spanner spreads runs across splits instead of hotspotting one."""
    return secrets.token_hex(16)


def bigquery_job_id(environment: str, run_id: str, job_key: str, attempt: int) -> str:
    """The one BigQuery job ID for (run, job, attempt): resubmitting is a harmless 409."""
    return f"baton_{environment}_{run_id}_{job_key}_{attempt}"


def baton_labels(environment: str, run_id: str, job_key: str, attempt: int) -> dict[str, str]:
    """Labels that route the completion back: the sink filters on env, the handler looks up the rest."""
    return {
        "baton_env": environment,
        "baton_run": run_id,
        "baton_job": job_key,
        "baton_attempt": str(attempt),
    }


def check_job_id(environment: str, run_id: str, job_key: str, attempt: int, check_name: str) -> str:
    """The one BigQuery job ID of a check. '-' never occurs in a job's own ID, so the two cannot collide."""
    return f"{bigquery_job_id(environment, run_id, job_key, attempt)}-check-{check_name}"


def check_labels(environment: str, run_id: str, job_key: str, attempt: int, check_name: str) -> dict[str, str]:
    return {**baton_labels(environment, run_id, job_key, attempt), "baton_check": check_name}


# --- starting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRun:
    run: RunRecord
    jobs: list[JobRecord]
    edges: list[tuple[str, str]]  # (upstream, dependent)


def plan_run(manifest: Manifest, params: Mapping[str, BoundParam], environment: str, run_id: str, now: dt.datetime) -> NewRun:
    """All rows of a new run. Roots are READY already; the run stays CREATING until activated."""
    jobs = []
    for spec in manifest.jobs:
        root = not spec.needs
        jobs.append(
            JobRecord(
                run_id=run_id,
                job_key=spec.key,
                status=JobStatus.READY if root else JobStatus.PENDING,
                attempt=1,
                pending_upstreams=len(spec.needs),
                spec=spec,
                bigquery_job_id=bigquery_job_id(environment, run_id, spec.key, 1),
                ready_at=now if root else None,
            )
        )
    edges = [(upstream, spec.key) for spec in manifest.jobs for upstream in spec.needs]
    run = RunRecord(
        run_id=run_id,
        manifest_name=manifest.name,
        manifest_version=manifest.version,
        environment=environment,
        params=dict(params),
        status=RunStatus.CREATING,
        total_jobs=len(jobs),
        open_jobs=len(jobs),
        created_at=now,
    )
    return NewRun(run=run, jobs=jobs, edges=edges)


# --- completing -------------------------------------------------------------------------------


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


def apply_completion(tx: RunTransaction, event: Completion, now: dt.datetime) -> CompletionResult:
    """Record one finished BigQuery job and release what it unblocks. Idempotent and monotonic."""
    job = tx.get_job(event.run_id, event.job_key)
    if job is None:
        verdict = Verdict.UNKNOWN_JOB if tx.get_run(event.run_id) else Verdict.UNKNOWN_RUN
        return CompletionResult(verdict)
    if job.status.terminal and job.attempt == event.attempt:
        # A redelivery. If the first delivery crashed before submitting what it released,
        # hand those jobs out again: submitting is idempotent, and this heals the crash.
        ready = [] if job.status != JobStatus.SUCCEEDED else _ready_dependents(tx, job, now)
        return _with_live_run(tx, CompletionResult(Verdict.DUPLICATE, job=job, ready=ready))
    if job.status == JobStatus.CHECKING and job.attempt == event.attempt:
        # Likewise for checks a crash left unsubmitted; a 409 answers those that made it.
        stuck = job.checks_started_at is None or now - job.checks_started_at >= RESUBMIT_AFTER
        pending = [c for c in tx.get_checks(job.run_id, job.job_key, job.attempt) if c.status == CheckStatus.PENDING]
        return _with_live_run(tx, CompletionResult(Verdict.DUPLICATE, job=job, checks=pending if stuck else []))
    if (
        event.attempt != job.attempt
        or event.bigquery_job_id != job.bigquery_job_id
        or job.status not in (JobStatus.READY, JobStatus.SUBMITTED)
    ):
        # The same healing for a retry whose resubmission was lost.
        retry_lost = job.attempt == event.attempt + 1 and _stuck(job, now)
        return _with_live_run(tx, CompletionResult(Verdict.STALE, job=job, ready=[job] if retry_lost else []))
    run = tx.get_run(event.run_id)
    if run is None:
        return CompletionResult(Verdict.UNKNOWN_RUN)
    if run.status.terminal:
        return CompletionResult(Verdict.RUN_FINISHED, job=job, run=run)

    result = CompletionResult(Verdict.RECORDED, run=run)
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
        job, run = _succeed(tx, run, replace(job, stats=event.stats), now, result)
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
        run, result.skipped = _skip_downstream(tx, run, job.job_key, now)
    return _record(tx, run, job, now, result)


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


def _succeed(
    tx: RunTransaction, run: RunRecord, job: JobRecord, now: dt.datetime, result: CompletionResult
) -> tuple[JobRecord, RunRecord]:
    """The job is done for good: count it, release its dependents, record the table it wrote."""
    job = replace(job, status=JobStatus.SUCCEEDED, finished_at=now, error=None, error_reason=None, pending_checks=0)
    run = replace(run, open_jobs=run.open_jobs - 1, succeeded_jobs=run.succeeded_jobs + 1)
    for dependent in tx.get_jobs(job.run_id, tx.get_dependents(job.run_id, job.job_key)):
        if dependent.status != JobStatus.PENDING:
            continue
        left = dependent.pending_upstreams - 1
        if left == 0:
            dependent = replace(dependent, pending_upstreams=0, status=JobStatus.READY, ready_at=now)
            result.ready.append(dependent)
        else:
            dependent = replace(dependent, pending_upstreams=left)
        tx.put_job(dependent)
    _record_write(tx, job, now)
    return job, run


def _record_write(tx: RunTransaction, job: JobRecord, now: dt.datetime) -> None:
    """Upsert the catalog row of the table the job wrote, unless a later write is already recorded.

    DML scripts name no destination, so they leave no row.
    """
    stats = job.stats or JobStats()
    table = stats.destination_table or job.spec.destination
    if table is None or job.bigquery_job_id is None:
        return
    written_at = stats.end_time or now
    current = tx.get_catalog(table)
    if current is not None and current.written_at > written_at:
        return
    tx.put_catalog(
        CatalogEntry(
            table_ref=table,
            run_id=job.run_id,
            job_key=job.job_key,
            bigquery_job_id=job.bigquery_job_id,
            written_at=written_at,
            rows_affected=stats.rows_affected,
            bytes_processed=stats.total_bytes_processed,
        )
    )


def apply_check_completion(tx: RunTransaction, event: CheckCompletion, now: dt.datetime) -> CompletionResult:
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
    )
    tx.put_check(check)
    result = CompletionResult(Verdict.RECORDED, job=job, run=run)
    job = replace(job, pending_checks=max(job.pending_checks - 1, 0))
    if job.pending_checks > 0:
        tx.put_job(job)
        result.job = job
        return result

    outcomes = tx.get_checks(job.run_id, job.job_key, job.attempt)
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
        run, result.skipped = _skip_downstream(tx, run, job.job_key, now)
    else:
        job, run = _succeed(tx, run, job, now, result)
    return _record(tx, run, job, now, result)


# error_reason of a job failed by an `error` check; no BigQuery reason is spelled like it.
CHECK_FAILED_REASON = "checkFailed"


def _due(job: JobRecord, now: dt.datetime) -> bool:
    return job.not_before is None or job.not_before <= now


# A redelivery hands out a READY job again only once it has sat unsubmitted this long:
# sooner, it is a duplicate racing the first delivery, which is still submitting.
RESUBMIT_AFTER = dt.timedelta(seconds=30)


def _stuck(job: JobRecord, now: dt.datetime) -> bool:
    return job.status == JobStatus.READY and _due(job, now) and (job.ready_at is None or now - job.ready_at >= RESUBMIT_AFTER)


def _ready_dependents(tx: RunTransaction, job: JobRecord, now: dt.datetime) -> list[JobRecord]:
    dependents = tx.get_jobs(job.run_id, tx.get_dependents(job.run_id, job.job_key))
    return [d for d in dependents if _stuck(d, now)]


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


def _skip_downstream(tx: RunTransaction, run: RunRecord, failed_key: str, now: dt.datetime) -> tuple[RunRecord, list[str]]:
    """Mark every PENDING job downstream of a failure SKIPPED (none of them can have been released)."""
    skipped: list[str] = []
    frontier = [failed_key]
    while frontier:
        key = frontier.pop()
        for dependent in tx.get_jobs(run.run_id, tx.get_dependents(run.run_id, key)):
            if dependent.status != JobStatus.PENDING:
                continue
            tx.put_job(replace(dependent, status=JobStatus.SKIPPED, error=f"upstream '{failed_key}' failed", finished_at=now))
            skipped.append(dependent.job_key)
            frontier.append(dependent.job_key)
    run = replace(run, open_jobs=run.open_jobs - len(skipped), skipped_jobs=run.skipped_jobs + len(skipped))
    return run, skipped


def _record(tx: RunTransaction, run: RunRecord, job: JobRecord, now: dt.datetime, result: CompletionResult) -> CompletionResult:
    """Write the job's new state and the run's counters; finish the run if nothing is left open."""
    tx.put_job(job)
    result.job = job
    run = _finish_if_done(run, now)
    result.run_finished = run.status.terminal
    tx.put_run(run)
    result.run = run
    return result


def _finish_if_done(run: RunRecord, now: dt.datetime) -> RunRecord:
    if run.open_jobs > 0 or run.status.terminal:
        return run
    clean = run.failed_jobs == 0 and run.skipped_jobs == 0 and run.cancelled_jobs == 0
    return replace(run, status=RunStatus.SUCCEEDED if clean else RunStatus.FAILED, finished_at=now)


# --- submitting -------------------------------------------------------------------------------


def mark_submitted(tx: RunTransaction, run_id: str, submitted: Sequence[tuple[str, int]], now: dt.datetime) -> int:
    """READY -> SUBMITTED once BigQuery holds the jobs: (job key, attempt) pairs, read in one go.

    A fast job's completion may have been recorded first: then only the submission
    time is filled in, so reports still show when the job went out. Returns how many
    jobs moved to SUBMITTED.
    """
    jobs = {job.job_key: job for job in tx.get_jobs(run_id, [key for key, _ in submitted])}
    moved = 0
    for key, attempt in submitted:
        job = jobs.get(key)
        if job is None or job.attempt != attempt:
            continue
        if job.status == JobStatus.READY:
            tx.put_job(replace(job, status=JobStatus.SUBMITTED, submitted_at=now))
            moved += 1
        elif job.submitted_at is None and job.status != JobStatus.PENDING:
            tx.put_job(replace(job, submitted_at=now))
    return moved


def abandon_run(tx: RunTransaction, run_id: str, now: dt.datetime) -> RunRecord | None:
    """A run stuck CREATING (its starter crashed mid-write) ends FAILED; nothing of it was submitted."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.CREATING:
        return None
    run = replace(run, status=RunStatus.FAILED, finished_at=now)
    tx.put_run(run)
    return run


def activate_run(tx: RunTransaction, run_id: str) -> RunRecord | None:
    """CREATING -> RUNNING: all rows are written, roots may now be submitted."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.CREATING:
        return None
    run = replace(run, status=RunStatus.RUNNING)
    tx.put_run(run)
    return run


# --- cancelling -------------------------------------------------------------------------------


@dataclass
class CancelResult:
    run: RunRecord | None
    changed: bool
    to_cancel_in_bigquery: list[str] = field(default_factory=list)


def cancel_run(tx: RunTransaction, run_id: str, open_job_keys: Sequence[str], now: dt.datetime) -> CancelResult:
    """Stop a run: open jobs become CANCELLED. Released ones are returned for BigQuery to cancel,
    READY included, since a handler may be submitting one right now."""
    run = tx.get_run(run_id)
    if run is None or run.status.terminal:
        return CancelResult(run=run, changed=False)
    to_cancel = []
    cancelled = 0
    for key in open_job_keys:
        job = tx.get_job(run_id, key)
        if job is None or job.status.terminal:
            continue
        if job.status in (JobStatus.READY, JobStatus.SUBMITTED) and job.bigquery_job_id:
            to_cancel.append(job.bigquery_job_id)
        tx.put_job(replace(job, status=JobStatus.CANCELLED, finished_at=now, error="run cancelled"))
        cancelled += 1
    run = replace(
        run,
        status=RunStatus.CANCELLED,
        open_jobs=run.open_jobs - cancelled,
        cancelled_jobs=run.cancelled_jobs + cancelled,
        finished_at=now,
    )
    tx.put_run(run)
    return CancelResult(run=run, changed=True, to_cancel_in_bigquery=to_cancel)


# --- retrying a finished run ------------------------------------------------------------------

RETRIED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED})
RETRYABLE_RUN_STATUSES = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


def plan_retry(environment: str, jobs: Sequence[JobRecord], now: dt.datetime) -> list[JobRecord]:
    """Every FAILED, SKIPPED or CANCELLED job of a finished run as its next attempt.

    A job is READY when all its upstreams already SUCCEEDED, else PENDING on the
    ones that did not; those are all retried too, so each will release it once.
    """
    status = {job.job_key: job.status for job in jobs}
    planned = []
    for job in jobs:
        if job.status not in RETRIED_STATUSES:
            continue
        attempt = job.attempt + 1
        waiting = sum(1 for upstream in job.spec.needs if status.get(upstream) != JobStatus.SUCCEEDED)
        planned.append(
            JobRecord(
                run_id=job.run_id,
                job_key=job.job_key,
                status=JobStatus.PENDING if waiting else JobStatus.READY,
                attempt=attempt,
                pending_upstreams=waiting,
                spec=job.spec,
                bigquery_job_id=bigquery_job_id(environment, job.run_id, job.job_key, attempt),
                ready_at=None if waiting else now,
            )
        )
    return planned


def apply_retry(tx: RunTransaction, run_id: str, planned: Sequence[JobRecord], reopen: bool) -> RunRecord | None:
    """Write (part of) a retry plan; with `reopen`, put the run back to RUNNING with its counters fixed.

    While the run stays finished its jobs are inert, so a plan too large for one commit
    is written in several and the run reopened in the last. A job is only written if it
    is still at the attempt the plan was made from, so repeating a crashed retry is safe.
    Returns None when the run is not (any more) FAILED or CANCELLED.
    """
    run = tx.get_run(run_id)
    if run is None or run.status not in RETRYABLE_RUN_STATUSES:
        return None
    current = {job.job_key: job for job in tx.get_jobs(run_id, [job.job_key for job in planned])}
    for job in planned:
        before = current.get(job.job_key)
        if before is not None and before.status in RETRIED_STATUSES and before.attempt == job.attempt - 1:
            tx.put_job(job)
    if reopen:
        # Every job that did not succeed is open again; succeeded_jobs did not move while the run was finished.
        run = replace(
            run,
            status=RunStatus.RUNNING,
            open_jobs=run.total_jobs - run.succeeded_jobs,
            failed_jobs=0,
            skipped_jobs=0,
            cancelled_jobs=0,
            finished_at=None,
        )
        tx.put_run(run)
    return run
