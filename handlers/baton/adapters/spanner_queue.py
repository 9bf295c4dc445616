"""Spanner reads and writes of run queues and backfills (spanner_schema/0013_run_queue.sql), mixed into the
transaction adapter and the store of spanner_store.py so that those stay about runs and jobs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from google.cloud import spanner
from google.cloud.spanner_v1.database import Database

from baton.adapters.spanner_rows import JOB_COLUMNS, RUN_COLUMNS, job_from_row, run_from_row
from baton.domain.backfill import BackfillRecord, BackfillStatus
from baton.domain.records import JobRecord, RunRecord, RunStatus

BACKFILL_COLUMNS = (
    "BackfillId",
    "ManifestName",
    "Param",
    "FirstDate",
    "LastDate",
    "MaxActiveRuns",
    "TotalRuns",
    "SelectSpec",
    "ExcludeSpec",
    "Status",
    "CreatedAt",
    "FinishedAt",
    "Starting",
    "Params",
)
# Both indexes leave rows out (NULL_FILTERED); the equality on their first columns never needs those rows, which the
# emulator cannot prove, so it asks for its own hint (Cloud Spanner ignores it).
_NULL_FILTERED = "spanner_emulator.disable_query_null_filtered_index_check=true"
_QUEUE_SQL = (
    f"SELECT {', '.join(RUN_COLUMNS)} FROM Runs@{{FORCE_INDEX=OpenRunsByQueue, {_NULL_FILTERED}}} "
    "WHERE Queue = @queue AND OpenStatus = @status ORDER BY CreatedAt, RunId LIMIT @limit"
)
_BACKFILL_RUNS_SQL = (
    f"SELECT {', '.join(RUN_COLUMNS)} FROM Runs@{{FORCE_INDEX=RunsByBackfill, {_NULL_FILTERED}}} "
    "WHERE BackfillId = @backfill ORDER BY CreatedAt, RunId"
)
_WAITING_SQL = (
    f"SELECT {', '.join('j.' + c for c in JOB_COLUMNS)} FROM RunJobs@{{FORCE_INDEX=OpenRunJobs, {_NULL_FILTERED}}} AS j "
    "WHERE j.OpenStatus IN ('READY', 'QUEUED') AND j.RunId = @run"
)
_STRING, _INT64 = spanner.param_types.STRING, spanner.param_types.INT64


def _queue_query(queue: str, status: RunStatus, limit: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    return (
        _QUEUE_SQL,
        {"queue": queue, "status": str(status), "limit": limit},
        {"queue": _STRING, "status": _STRING, "limit": _INT64},
    )


def backfill_row(backfill: BackfillRecord) -> list[Any]:
    return [
        backfill.backfill_id,
        backfill.manifest_name,
        backfill.param,
        backfill.first_date,
        backfill.last_date,
        backfill.max_active_runs,
        backfill.total_runs,
        backfill.select,
        backfill.exclude,
        str(backfill.status),
        backfill.created_at,
        backfill.finished_at,
        backfill.starting,
        json.dumps(backfill.params, sort_keys=True, separators=(",", ":")),
    ]


def backfill_from_row(row: Sequence[Any]) -> BackfillRecord:
    return BackfillRecord(
        backfill_id=row[0],
        manifest_name=row[1],
        param=row[2],
        first_date=row[3],
        last_date=row[4],
        max_active_runs=row[5],
        total_runs=row[6],
        select=row[7],
        exclude=row[8],
        status=BackfillStatus(row[9]),
        created_at=row[10],
        finished_at=row[11],
        starting=bool(row[12]),  # NULL: written before spanner_schema/0016, never resumed
        params=json.loads(row[13]) if row[13] is not None else {},
    )


def _sorted(runs: Sequence[RunRecord]) -> list[RunRecord]:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(runs, key=lambda run: (run.created_at or epoch, run.run_id))


class QueueReads:
    """The RunTransaction methods of run queues, over the adapter's Spanner transaction and its write cache."""

    _tx: Any
    _runs: dict[str, RunRecord]
    _backfills: dict[str, BackfillRecord]
    rows_read: int

    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        written = {run_id: run for run_id, run in self._runs.items() if run.queue == queue}
        sql, params, types = _queue_query(queue, status, limit + len(written))
        found = {row[0]: run_from_row(row) for row in self._tx.execute_sql(sql, params=params, param_types=types)}
        self.rows_read += len(found)
        found.update(written)  # this transaction's writes win: a run it ended has left the queue
        return _sorted([run for run in found.values() if run.status == status])[:limit]

    def manifest_paused(self, manifest: str) -> bool:
        rows = list(self._tx.read("ManifestControls", ("Paused",), spanner.KeySet(keys=[[manifest]])))
        self.rows_read += len(rows)
        return bool(rows and rows[0][0])

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        if backfill_id in self._backfills:
            return self._backfills[backfill_id]
        rows = list(self._tx.read("Backfills", BACKFILL_COLUMNS, spanner.KeySet(keys=[[backfill_id]])))
        self.rows_read += len(rows)
        return backfill_from_row(rows[0]) if rows else None

    def put_backfill(self, backfill: BackfillRecord) -> None:
        self._backfills[backfill.backfill_id] = backfill

    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        rows = self._tx.execute_sql(_BACKFILL_RUNS_SQL, params={"backfill": backfill_id}, param_types={"backfill": _STRING})
        found = {row[0]: run_from_row(row) for row in rows}
        self.rows_read += len(found)
        found.update({run_id: run for run_id, run in self._runs.items() if run.backfill_id == backfill_id})
        return _sorted(list(found.values()))

    def backfill_writes(self) -> list[tuple[str, str, tuple[str, ...], list[list[Any]]]]:
        if not self._backfills:
            return []
        rows = [[*backfill_row(backfill), spanner.COMMIT_TIMESTAMP] for backfill in self._backfills.values()]
        return [("update", "Backfills", (*BACKFILL_COLUMNS, "UpdatedAt"), rows)]


class BackfillReads:
    """The RunStore methods of run queues and backfills, over the store's database."""

    database: Database
    _read_timeout: float

    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        sql, params, types = _queue_query(queue, status, limit)
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        return [run_from_row(row) for row in rows]

    def waiting_jobs(self, run_id: str) -> list[JobRecord]:
        with self.database.snapshot() as snapshot:
            params, types = {"run": run_id}, {"run": _STRING}
            rows = list(snapshot.execute_sql(_WAITING_SQL, params=params, param_types=types, timeout=self._read_timeout))
        return sorted((job_from_row(row) for row in rows), key=lambda job: job.job_key)

    def create_backfill(self, backfill: BackfillRecord) -> None:
        with self.database.batch() as batch:
            batch.insert("Backfills", (*BACKFILL_COLUMNS, "UpdatedAt"), [[*backfill_row(backfill), spanner.COMMIT_TIMESTAMP]])

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        with self.database.snapshot() as snapshot:
            keys = spanner.KeySet(keys=[[backfill_id]])
            rows = list(snapshot.read("Backfills", BACKFILL_COLUMNS, keys, timeout=self._read_timeout))
        return backfill_from_row(rows[0]) if rows else None

    def list_backfills(self, limit: int = 20, manifest: str | None = None) -> list[BackfillRecord]:
        """Newest first: an operator's listing of a small table."""
        sql = f"SELECT {', '.join(BACKFILL_COLUMNS)} FROM Backfills"
        params: dict[str, Any] = {"limit": limit}
        types: dict[str, Any] = {"limit": _INT64}
        if manifest is not None:
            sql += " WHERE ManifestName = @manifest"
            params["manifest"], types["manifest"] = manifest, _STRING
        sql += " ORDER BY CreatedAt DESC, BackfillId LIMIT @limit"
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        return [backfill_from_row(row) for row in rows]

    def starting_backfills(self, created_by: dt.datetime, limit: int) -> list[BackfillRecord]:
        """RUNNING backfills whose start has not written every date's run, created at or before `created_by`, oldest
        first. No index: a scan of a small table (finished backfills go after 90 days), once per reconciler pass."""
        sql = (
            f"SELECT {', '.join(BACKFILL_COLUMNS)} FROM Backfills WHERE Starting = TRUE AND Status = @status "
            "AND CreatedAt <= @by ORDER BY CreatedAt, BackfillId LIMIT @limit"
        )
        params = {"status": str(BackfillStatus.RUNNING), "by": created_by, "limit": limit}
        types = {"status": _STRING, "by": spanner.param_types.TIMESTAMP, "limit": _INT64}
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        return [backfill_from_row(row) for row in rows]

    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        with self.database.snapshot() as snapshot:
            rows = list(
                snapshot.execute_sql(
                    _BACKFILL_RUNS_SQL,
                    params={"backfill": backfill_id},
                    param_types={"backfill": _STRING},
                    timeout=self._read_timeout,
                )
            )
        return [run_from_row(row) for row in rows]
