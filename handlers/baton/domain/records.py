"""Run, job, check and catalog records, their states, and the events that move them.

Plain frozen dataclasses: the store persists them, the transitions replace them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from baton.domain.specs import BoundParam, JobSpec, Severity


class JobStatus(StrEnum):
    PENDING = "PENDING"  # waiting for upstreams
    QUEUED = "QUEUED"  # upstreams done, waiting for a slot of its pool (domain/transitions/pools.py)
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
    QUEUED = "QUEUED"  # rows written; waits for room in its queue (domain/transitions/run_queue.py)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class JobError:
    """`reason_inferred`: the reason was read off a google.rpc code that stands for several reasons
    (an audit entry carries no BigQuery reason), so jobs.get must say which one before a retry decision."""

    reason: str
    message: str
    reason_inferred: bool = False

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
    referenced_tables: tuple[str, ...] = ()  # `project.dataset.table` the job read (the audit entry's referencedTables)
    table_rows: int | None = None  # the destination's size after the job (tables.get), for the catalog
    table_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, tuple):
                if value:
                    out[name] = list(value)
            elif value is not None:
                out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobStats:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if value is not None and name in ("start_time", "end_time"):
                value = dt.datetime.fromisoformat(value)
            if name == "referenced_tables":
                value = tuple(value or ())
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class Usage:
    """What BigQuery metered for a set of jobs: the quantities a price applies to (see domain/cost.py)."""

    bytes_processed: int = 0
    bytes_billed: int = 0
    slot_ms: int = 0

    def plus(self, *stats: JobStats | None) -> Usage:
        """This usage with each job's reported figures added; a figure BigQuery left out counts as 0."""
        processed, billed, slot_ms = self.bytes_processed, self.bytes_billed, self.slot_ms
        for one in stats:
            if one is not None:
                processed += one.total_bytes_processed or 0
                billed += one.total_bytes_billed or 0
                slot_ms += one.total_slot_ms or 0
        return Usage(processed, billed, slot_ms)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.bytes_processed + other.bytes_processed, self.bytes_billed + other.bytes_billed, self.slot_ms + other.slot_ms
        )


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
    # Every attempt's job and checks whose completion was recorded, retried attempts included.
    usage: Usage = field(default_factory=Usage)
    # The queue the run waits in and how many of its runs may be RUNNING at once (None: no limit); see
    # domain/transitions/run_queue.py. None for runs from before queues.
    queue: str | None = None
    queue_limit: int | None = None
    backfill_id: str | None = None
    started_at: dt.datetime | None = None  # when it last became RUNNING (a queued run waits first)
    # `baton hold`: while set on a RUNNING run, nothing of it is submitted (domain/transitions/hold.py).
    held_at: dt.datetime | None = None
    hold_reason: str | None = None
    # The manifest's run_timeout: past `deadline`, the reconciler cancels the run (domain/transitions/run_timeout.py).
    timeout_seconds: int | None = None
    deadline: dt.datetime | None = None
    end_reason: str | None = None  # why a rule, not its jobs, ended the run (a timeout)


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
    # A SUCCEEDED job with more dependents than one commit may update: its dependents up to this key
    # (in key order) are released, the rest is handed on as a Continuation. None: nothing is pending.
    release_cursor: str | None = None
    reused_from: str | None = None  # a rerun took this job's success from that earlier run instead of running it
    deadline: dt.datetime | None = None  # submitted with a timeout: past this, the reconciler times it out


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
    rows: int | None = None  # offending rows the check's query returned (at most the check's row limit)
    error: str | None = None  # the check's own query failed
    stats: JobStats | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    # A failed check's first offending rows (domain/samples.py bounds them); None: not read.
    sample_rows: tuple[Mapping[str, Any], ...] | None = None

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
    table_rows: int | None = None  # the table's size after the write
    table_bytes: int | None = None
    upstream_tables: tuple[str, ...] = ()  # what the writing job read: the catalog's lineage edges


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
    sample_rows: tuple[Mapping[str, Any], ...] | None = None  # read from the check's result when it failed

    @property
    def found_rows(self) -> bool:
        """It ran and returned offending rows: the only case with rows to keep."""
        return self.error is None and bool(self.rows)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.rows


@dataclass(frozen=True)
class NewRun:
    """Every row of a new run: written before anything is submitted."""

    run: RunRecord
    jobs: list[JobRecord]
    edges: list[tuple[str, str]]  # (upstream, dependent)


@dataclass(frozen=True)
class Continuation:
    """Work a transition could not finish within one commit, to be handed on by message (never by waiting).

    `release`: release the dependents of `job_key` (SUCCEEDED at `attempt`) after `after`.
    `skip`: skip the PENDING jobs downstream of `frontier` ((job key, after dependent key) pairs), caused by `cause`.
    `submit`: submit `job_keys` (READY) of the run.
    """

    kind: str
    run_id: str
    job_key: str | None = None
    attempt: int | None = None
    after: str | None = None
    frontier: tuple[tuple[str, str | None], ...] = ()
    cause: str | None = None
    job_keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The message body (entrypoints/work_item.py decodes it): only the fields its kind uses."""
        out: dict[str, Any] = {"kind": self.kind, "run_id": self.run_id}
        if self.job_key is not None:
            out.update(job_key=self.job_key, attempt=self.attempt, after=self.after)
        if self.frontier:
            out.update(frontier=[list(pair) for pair in self.frontier], cause=self.cause)
        if self.job_keys:
            out["job_keys"] = list(self.job_keys)
        return out


@dataclass(frozen=True)
class PoolUsage:
    """A pool's size (from the environment's config) and the slots its jobs hold now (from Spanner)."""

    name: str
    size: int
    in_use: int = 0

    @property
    def room(self) -> int:
        return max(self.size - self.in_use, 0)


@dataclass(frozen=True)
class QueueEntry:
    """A QUEUED job's place in its pool's queue: higher priority first, then the older (`queued_at`), then by key."""

    pool: str
    priority: int
    queued_at: dt.datetime
    run_id: str
    job_key: str
    attempt: int

    @property
    def order(self) -> tuple[int, dt.datetime, str, str]:
        return (-self.priority, self.queued_at, self.run_id, self.job_key)
