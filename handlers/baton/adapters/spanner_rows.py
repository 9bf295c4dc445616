"""Records <-> Spanner rows: the column lists and the conversions, in one place for the store and its tests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any

from baton.domain.records import (
    CatalogEntry,
    CheckRecord,
    CheckStatus,
    JobRecord,
    JobStats,
    JobStatus,
    QueueEntry,
    RunRecord,
    RunStatus,
    Usage,
)
from baton.domain.specs import BoundParam, JobSpec, Severity

RUN_COLUMNS = (
    "RunId",
    "ManifestName",
    "ManifestVersion",
    "Environment",
    "Params",
    "Status",
    "TotalJobs",
    "OpenJobs",
    "SucceededJobs",
    "FailedJobs",
    "SkippedJobs",
    "CancelledJobs",
    "CreatedAt",
    "FinishedAt",
    "BytesProcessed",
    "BytesBilled",
    "SlotMs",
    "Queue",
    "QueueLimit",
    "BackfillId",
    "StartedAt",
    "HeldAt",
    "HoldReason",
    "TimeoutSeconds",
    "Deadline",
    "EndReason",
)
JOB_COLUMNS = (
    "RunId",
    "JobKey",
    "Status",
    "Attempt",
    "PendingUpstreams",
    "Spec",
    "BigQueryJobId",
    "Error",
    "ErrorReason",
    "Stats",
    "NotBefore",
    "ReadyAt",
    "SubmittedAt",
    "FinishedAt",
    "PendingChecks",
    "ChecksStartedAt",
    "ReleaseCursor",
    "ReusedFrom",
    "Deadline",
)
# The spec is a snapshot written once at creation; transitions never rewrite it.
JOB_UPDATE_COLUMNS = tuple(c for c in JOB_COLUMNS if c != "Spec")
DEPENDENT_COLUMNS = ("RunId", "JobKey", "DependentKey")
CHECK_COLUMNS = (
    "RunId",
    "JobKey",
    "Attempt",
    "CheckName",
    "Severity",
    "Status",
    "BigQueryJobId",
    "OutputRows",
    "Error",
    "Stats",
    "CreatedAt",
    "FinishedAt",
    "SampleRows",
)
CATALOG_COLUMNS = (
    "TableRef",
    "RunId",
    "JobKey",
    "BigQueryJobId",
    "RowsAffected",
    "BytesProcessed",
    "WrittenAt",
    "TableRows",
    "TableBytes",
    "UpstreamTables",
)


def changed_columns(
    columns: Sequence[str], keys: int, rows: Iterable[tuple[list[Any], list[Any] | None]]
) -> list[tuple[tuple[str, ...], list[list[Any]]]]:
    """Rows to update, each cut to its key and the columns that differ from the row as read (`None`: not read, so
    every column), grouped by the columns written: an update of a few columns costs Spanner fewer mutations and
    touches no index whose columns it leaves alone (a fan-in's sink only counts down PendingUpstreams)."""
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for row, before in rows:
        kept = range(len(columns)) if before is None else [i for i in range(len(columns)) if i < keys or row[i] != before[i]]
        groups.setdefault(tuple(columns[i] for i in kept), []).append([row[i] for i in kept])
    return list(groups.items())


def run_row(run: RunRecord) -> list[Any]:
    return [
        run.run_id,
        run.manifest_name,
        run.manifest_version,
        run.environment,
        json.dumps({name: bound.to_json() for name, bound in sorted(run.params.items())}),
        str(run.status),
        run.total_jobs,
        run.open_jobs,
        run.succeeded_jobs,
        run.failed_jobs,
        run.skipped_jobs,
        run.cancelled_jobs,
        run.created_at,
        run.finished_at,
        run.usage.bytes_processed,
        run.usage.bytes_billed,
        run.usage.slot_ms,
        run.queue,
        run.queue_limit,
        run.backfill_id,
        run.started_at,
        run.held_at,
        run.hold_reason,
        run.timeout_seconds,
        run.deadline,
        run.end_reason,
    ]


# A run's state row in RunJobs (spanner_schema/0015_run_state_row.sql): the key no job has, and its columns.
RUN_STATE_KEY = ""
RUN_STATE_COLUMNS = ("RunId", "JobKey", "Status", "Attempt", "PendingUpstreams", "Spec", "RunState")
_RUN_TIMESTAMPS = frozenset({"CreatedAt", "FinishedAt", "StartedAt", "HeldAt", "Deadline"})


def run_state_status(run: RunRecord) -> str:
    """'RUN' while open, so that no job query matches the row; the final status keeps it out of OpenRunJobs."""
    return str(run.status) if run.status.terminal else "RUN"


def run_state(run: RunRecord) -> str:
    """The run's Runs row as JSON, by column name: a column added later reads as NULL from an older state."""
    values = zip(RUN_COLUMNS, run_row(run), strict=True)
    return json.dumps({c: v.isoformat() if isinstance(v, dt.datetime) else v for c, v in values}, separators=(",", ":"))


def run_state_row(run: RunRecord) -> list[Any]:
    """The whole state row (RUN_STATE_COLUMNS), for a run whose row may not exist yet."""
    return [run.run_id, RUN_STATE_KEY, run_state_status(run), 0, 0, "{}", run_state(run)]


def run_from_state(text: str) -> RunRecord:
    state = json.loads(text)
    values = ((column, state.get(column)) for column in RUN_COLUMNS)
    return run_from_row([dt.datetime.fromisoformat(v) if c in _RUN_TIMESTAMPS and v is not None else v for c, v in values])


def run_from_row(row: Sequence[Any]) -> RunRecord:
    params = {name: BoundParam(value["type"], value["value"]) for name, value in json.loads(row[4]).items()}
    return RunRecord(
        run_id=row[0],
        manifest_name=row[1],
        manifest_version=row[2],
        environment=row[3],
        params=params,
        status=RunStatus(row[5]),
        total_jobs=row[6],
        open_jobs=row[7],
        succeeded_jobs=row[8],
        failed_jobs=row[9],
        skipped_jobs=row[10],
        cancelled_jobs=row[11],
        created_at=row[12],
        finished_at=row[13],
        usage=Usage(row[14] or 0, row[15] or 0, row[16] or 0),
        queue=row[17],
        queue_limit=row[18],
        backfill_id=row[19],
        started_at=row[20],
        held_at=row[21],
        hold_reason=row[22],
        timeout_seconds=row[23],
        deadline=row[24],
        end_reason=row[25],
    )


def job_row(job: JobRecord, with_spec: bool = True) -> list[Any]:
    row: list[Any] = [job.run_id, job.job_key, str(job.status), job.attempt, job.pending_upstreams]
    if with_spec:
        row.append(json.dumps(job.spec.to_json(), sort_keys=True))
    row += [
        job.bigquery_job_id,
        job.error,
        job.error_reason,
        json.dumps(job.stats.to_json()) if job.stats else None,
        job.not_before,
        job.ready_at,
        job.submitted_at,
        job.finished_at,
        job.pending_checks,
        job.checks_started_at,
        job.release_cursor,
        job.reused_from,
        job.deadline,
    ]
    return row


def job_from_row(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        run_id=row[0],
        job_key=row[1],
        status=JobStatus(row[2]),
        attempt=row[3],
        pending_upstreams=row[4],
        spec=JobSpec.from_json(json.loads(row[5])),
        bigquery_job_id=row[6],
        error=row[7],
        error_reason=row[8],
        stats=JobStats.from_json(json.loads(row[9])) if row[9] else None,
        not_before=row[10],
        ready_at=row[11],
        submitted_at=row[12],
        finished_at=row[13],
        pending_checks=row[14] or 0,
        checks_started_at=row[15],
        release_cursor=row[16],
        reused_from=row[17],
        deadline=row[18],
    )


def check_row(check: CheckRecord) -> list[Any]:
    return [
        check.run_id,
        check.job_key,
        check.attempt,
        check.name,
        str(check.severity),
        str(check.status),
        check.bigquery_job_id,
        check.rows,
        check.error,
        json.dumps(check.stats.to_json()) if check.stats else None,
        check.created_at,
        check.finished_at,
        json.dumps(list(check.sample_rows), sort_keys=True) if check.sample_rows is not None else None,
    ]


def check_from_row(row: Sequence[Any]) -> CheckRecord:
    return CheckRecord(
        run_id=row[0],
        job_key=row[1],
        attempt=row[2],
        name=row[3],
        severity=Severity(row[4]),
        status=CheckStatus(row[5]),
        bigquery_job_id=row[6],
        rows=row[7],
        error=row[8],
        stats=JobStats.from_json(json.loads(row[9])) if row[9] else None,
        created_at=row[10],
        finished_at=row[11],
        sample_rows=tuple(json.loads(row[12])) if row[12] else None,
    )


def catalog_row(entry: CatalogEntry) -> list[Any]:
    return [
        entry.table_ref,
        entry.run_id,
        entry.job_key,
        entry.bigquery_job_id,
        entry.rows_affected,
        entry.bytes_processed,
        entry.written_at,
        entry.table_rows,
        entry.table_bytes,
        list(entry.upstream_tables),
    ]


def catalog_from_row(row: Sequence[Any]) -> CatalogEntry:
    return CatalogEntry(
        table_ref=row[0],
        run_id=row[1],
        job_key=row[2],
        bigquery_job_id=row[3],
        rows_affected=row[4],
        bytes_processed=row[5],
        written_at=row[6],
        table_rows=row[7],
        table_bytes=row[8],
        upstream_tables=tuple(row[9] or ()),
    )


POOL_COLUMNS = ("PoolName", "Size", "InUse")
# Rank is the negated priority, so that the key's ascending order puts the highest priority first.
QUEUE_COLUMNS = ("PoolName", "Rank", "QueuedAt", "RunId", "JobKey", "Attempt")


def queue_entry_key(entry: QueueEntry) -> tuple[Any, ...]:
    return (entry.pool, -entry.priority, _plain(entry.queued_at), entry.run_id, entry.job_key)


def _plain(moment: dt.datetime) -> dt.datetime:
    """A plain UTC datetime (the client reads DatetimeWithNanoseconds), so keys compare and hash alike."""
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, tzinfo=dt.UTC)


def queue_entry_row(entry: QueueEntry) -> list[Any]:
    return [*queue_entry_key(entry), entry.attempt]


def queue_entry_from_row(row: Sequence[Any]) -> QueueEntry:
    return QueueEntry(
        pool=row[0], priority=-int(row[1]), queued_at=_plain(row[2]), run_id=row[3], job_key=row[4], attempt=int(row[5])
    )
