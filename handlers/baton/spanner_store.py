"""Run state in Cloud Spanner: every transition in one read-write transaction, point reads by key.

Spanner does not let a transaction read its own buffered writes, so the
transaction adapter keeps them in a small cache: the engine sees its writes,
and they are flushed as mutations when its function returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import spanner
from google.cloud.spanner_v1.database import Database

from baton.checks import Severity
from baton.engine import (
    CatalogEntry,
    CheckRecord,
    CheckStatus,
    JobRecord,
    JobStats,
    JobStatus,
    NewRun,
    RunRecord,
    RunStatus,
)
from baton.errors import TransientError
from baton.manifest import BoundParam, JobSpec
from baton.ports import RunStore
from baton.schema import Migration

T = TypeVar("T")

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
)
CATALOG_COLUMNS = ("TableRef", "RunId", "JobKey", "BigQueryJobId", "RowsAffected", "BytesProcessed", "WrittenAt")
MUTATION_LIMIT = 80_000
# Headroom for secondary index entries and the commit-timestamp column.
_CELL_BUDGET = MUTATION_LIMIT // 2


def _run_row(run: RunRecord) -> list[Any]:
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
    ]


def _run_from_row(row: Sequence[Any]) -> RunRecord:
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
    )


def _job_row(job: JobRecord, with_spec: bool = True) -> list[Any]:
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
    ]
    return row


def _job_from_row(row: Sequence[Any]) -> JobRecord:
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
    )


def _check_row(check: CheckRecord) -> list[Any]:
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
    ]


def _check_from_row(row: Sequence[Any]) -> CheckRecord:
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
    )


def _catalog_row(entry: CatalogEntry) -> list[Any]:
    return [
        entry.table_ref,
        entry.run_id,
        entry.job_key,
        entry.bigquery_job_id,
        entry.rows_affected,
        entry.bytes_processed,
        entry.written_at,
    ]


def _catalog_from_row(row: Sequence[Any]) -> CatalogEntry:
    return CatalogEntry(
        table_ref=row[0],
        run_id=row[1],
        job_key=row[2],
        bigquery_job_id=row[3],
        rows_affected=row[4],
        bytes_processed=row[5],
        written_at=row[6],
    )


class SpannerTransaction:
    """RunTransaction over a Spanner read-write transaction, with read-your-writes."""

    def __init__(self, transaction: Any) -> None:
        self._tx = transaction
        self._runs: dict[str, RunRecord] = {}
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._checks: dict[tuple[str, str, int, str], CheckRecord] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self.rows_read = 0

    def _read_one(self, table: str, columns: Sequence[str], key: list[Any]) -> list[Any] | None:
        rows = list(self._tx.read(table, columns, spanner.KeySet(keys=[key])))
        self.rows_read += len(rows)
        return rows[0] if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        if run_id in self._runs:
            return self._runs[run_id]
        row = self._read_one("Runs", RUN_COLUMNS, [run_id])
        return _run_from_row(row) if row else None

    def get_job(self, run_id: str, job_key: str) -> JobRecord | None:
        if (run_id, job_key) in self._jobs:
            return self._jobs[(run_id, job_key)]
        row = self._read_one("RunJobs", JOB_COLUMNS, [run_id, job_key])
        return _job_from_row(row) if row else None

    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        wanted = [key for key in job_keys if (run_id, key) not in self._jobs]
        fetched: dict[str, JobRecord] = {}
        if wanted:
            keyset = spanner.KeySet(keys=[[run_id, key] for key in wanted])
            for row in self._tx.read("RunJobs", JOB_COLUMNS, keyset):
                fetched[row[1]] = _job_from_row(row)
            self.rows_read += len(fetched)
        found = (self._jobs.get((run_id, key)) or fetched.get(key) for key in job_keys)
        return [job for job in found if job is not None]

    def get_dependents(self, run_id: str, job_key: str) -> list[str]:
        prefix = spanner.KeyRange(start_closed=[run_id, job_key], end_closed=[run_id, job_key])
        rows = list(self._tx.read("RunJobDependents", ["DependentKey"], spanner.KeySet(ranges=[prefix])))
        self.rows_read += len(rows)
        return [row[0] for row in rows]

    def put_run(self, run: RunRecord) -> None:
        self._runs[run.run_id] = run

    def put_job(self, job: JobRecord) -> None:
        self._jobs[(job.run_id, job.job_key)] = job

    def get_check(self, run_id: str, job_key: str, attempt: int, name: str) -> CheckRecord | None:
        key = (run_id, job_key, attempt, name)
        if key in self._checks:
            return self._checks[key]
        row = self._read_one("RunJobChecks", CHECK_COLUMNS, [run_id, job_key, attempt, name])
        return _check_from_row(row) if row else None

    def get_checks(self, run_id: str, job_key: str, attempt: int) -> list[CheckRecord]:
        prefix = spanner.KeyRange(start_closed=[run_id, job_key, attempt], end_closed=[run_id, job_key, attempt])
        rows = list(self._tx.read("RunJobChecks", CHECK_COLUMNS, spanner.KeySet(ranges=[prefix])))
        self.rows_read += len(rows)
        found = {check.name: check for check in map(_check_from_row, rows)}
        found.update({key[3]: check for key, check in self._checks.items() if key[:3] == (run_id, job_key, attempt)})
        return [found[name] for name in sorted(found)]

    def put_check(self, check: CheckRecord) -> None:
        self._checks[(check.run_id, check.job_key, check.attempt, check.name)] = check

    def get_catalog(self, table_ref: str) -> CatalogEntry | None:
        if table_ref in self._catalog:
            return self._catalog[table_ref]
        row = self._read_one("Catalog", CATALOG_COLUMNS, [table_ref])
        return _catalog_from_row(row) if row else None

    def put_catalog(self, entry: CatalogEntry) -> None:
        self._catalog[entry.table_ref] = entry

    def flush(self) -> None:
        if self._runs:
            self._tx.update(
                "Runs",
                (*RUN_COLUMNS, "UpdatedAt"),
                [[*_run_row(run), spanner.COMMIT_TIMESTAMP] for run in self._runs.values()],
            )
        if self._jobs:
            self._tx.update(
                "RunJobs",
                (*JOB_UPDATE_COLUMNS, "UpdatedAt"),
                [[*_job_row(job, with_spec=False), spanner.COMMIT_TIMESTAMP] for job in self._jobs.values()],
            )
        if self._checks:
            self._tx.insert_or_update(
                "RunJobChecks",
                (*CHECK_COLUMNS, "UpdatedAt"),
                [[*_check_row(check), spanner.COMMIT_TIMESTAMP] for check in self._checks.values()],
            )
        if self._catalog:
            self._tx.insert_or_update(
                "Catalog",
                (*CATALOG_COLUMNS, "UpdatedAt"),
                [[*_catalog_row(entry), spanner.COMMIT_TIMESTAMP] for entry in self._catalog.values()],
            )


# The open-jobs index (spanner_schema/0004) holds no terminal rows; an equality on OpenStatus never needs them.
# The emulator cannot prove that and asks for its own hint, which Cloud Spanner ignores.
_OPEN_JOBS_INDEX = "FORCE_INDEX=OpenRunJobs, spanner_emulator.disable_query_null_filtered_index_check=true"


class SpannerRunStore(RunStore):
    # A job update is its columns, the commit timestamp and an index entry (delete + insert).
    jobs_per_commit = _CELL_BUDGET // (len(JOB_UPDATE_COLUMNS) + 3)

    def __init__(self, database: Database) -> None:
        self.database = database
        self.last_rows_read = 0  # of the last transaction; benchmarks and tests read it

    @classmethod
    def connect(cls, project: str, instance: str, database: str) -> SpannerRunStore:
        client = spanner.Client(project=project)
        return cls(client.instance(instance).database(database))

    def transact(self, fn: Callable[[Any], T]) -> T:
        def work(transaction: Any) -> T:
            tx = SpannerTransaction(transaction)
            result = fn(tx)
            tx.flush()
            self.last_rows_read = tx.rows_read
            return result

        try:
            result: T = self.database.run_in_transaction(work)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.Aborted, gexc.InternalServerError) as exc:
            raise TransientError(f"Spanner: {exc}") from exc
        return result

    def create_run(self, new_run: NewRun) -> None:
        """Rows in commits under the mutation limit; the run row goes first and stays CREATING meanwhile."""
        now_columns = (*JOB_COLUMNS, "UpdatedAt")
        with self.database.batch() as batch:
            batch.insert("Runs", (*RUN_COLUMNS, "UpdatedAt"), [[*_run_row(new_run.run), spanner.COMMIT_TIMESTAMP]])
        job_rows = [[*_job_row(job), spanner.COMMIT_TIMESTAMP] for job in new_run.jobs]
        edge_rows = [[new_run.run.run_id, upstream, dependent] for upstream, dependent in new_run.edges]
        # RunJobs rows must exist before their interleaved dependents, so jobs go first.
        for table, columns, chunk in _chunks(
            [("RunJobs", now_columns, job_rows), ("RunJobDependents", DEPENDENT_COLUMNS, edge_rows)]
        ):
            with self.database.batch() as batch:
                batch.insert(table, columns, chunk)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("Runs", RUN_COLUMNS, spanner.KeySet(keys=[[run_id]])))
        return _run_from_row(rows[0]) if rows else None

    def list_jobs(self, run_id: str) -> list[JobRecord]:
        prefix = spanner.KeyRange(start_closed=[run_id], end_closed=[run_id])
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("RunJobs", JOB_COLUMNS, spanner.KeySet(ranges=[prefix])))
        return [_job_from_row(row) for row in rows]

    def list_runs(self, limit: int = 20, manifest: str | None = None, status: RunStatus | None = None) -> list[RunRecord]:
        where: list[str] = []
        params: dict[str, Any] = {}
        types: dict[str, Any] = {}
        if manifest is not None:
            where.append("ManifestName = @manifest")
            params["manifest"], types["manifest"] = manifest, spanner.param_types.STRING
        if status is not None:
            # Open statuses through the OpenRuns index (spanner_schema/0004); terminal ones scan, for the CLI only.
            where.append("Status = @status" if status.terminal else "OpenStatus = @status")
            params["status"], types["status"] = str(status), spanner.param_types.STRING
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM Runs"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += " ORDER BY CreatedAt DESC LIMIT @limit"
        params["limit"], types["limit"] = limit, spanner.param_types.INT64
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types))
        return [_run_from_row(row) for row in rows]

    def jobs_in_status(self, status: JobStatus, limit: int) -> list[JobRecord]:
        columns = ", ".join(f"j.{c}" for c in JOB_COLUMNS)
        sql = (
            f"SELECT {columns} FROM RunJobs@{{{_OPEN_JOBS_INDEX}}} AS j "
            "WHERE j.OpenStatus = @status ORDER BY j.UpdatedAt LIMIT @limit"
        )
        with self.database.snapshot() as snapshot:
            rows = snapshot.execute_sql(
                sql,
                params={"status": str(status), "limit": limit},
                param_types={"status": spanner.param_types.STRING, "limit": spanner.param_types.INT64},
            )
            return [_job_from_row(row) for row in rows]

    def jobs_page(self, status: JobStatus, limit: int, page_token: str | None = None) -> tuple[list[JobRecord], str | None]:
        """Keyset pagination along OpenRunJobs (open jobs only): (RunId, JobKey) of the last row is the token."""
        columns = ", ".join(f"j.{c}" for c in JOB_COLUMNS)
        params: dict[str, Any] = {"status": str(status), "limit": limit}
        types: dict[str, Any] = {"status": spanner.param_types.STRING, "limit": spanner.param_types.INT64}
        after = ""
        if page_token is not None:
            run_id, job_key = json.loads(page_token)
            params.update(run_id=run_id, job_key=job_key)
            types.update(run_id=spanner.param_types.STRING, job_key=spanner.param_types.STRING)
            after = " AND (j.RunId > @run_id OR (j.RunId = @run_id AND j.JobKey > @job_key))"
        sql = (
            f"SELECT {columns} FROM RunJobs@{{{_OPEN_JOBS_INDEX}}} AS j WHERE j.OpenStatus = @status{after} "
            "ORDER BY j.RunId, j.JobKey LIMIT @limit"
        )
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types))
        jobs = [_job_from_row(row) for row in rows]
        if len(rows) < limit:
            return jobs, None
        return jobs, json.dumps([jobs[-1].run_id, jobs[-1].job_key])

    def list_checks(self, run_id: str, job_key: str | None = None) -> list[CheckRecord]:
        key = [run_id] if job_key is None else [run_id, job_key]
        prefix = spanner.KeyRange(start_closed=key, end_closed=key)
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("RunJobChecks", CHECK_COLUMNS, spanner.KeySet(ranges=[prefix])))
        return [_check_from_row(row) for row in rows]

    def list_catalog(self, limit: int = 100, prefix: str | None = None) -> list[CatalogEntry]:
        sql = f"SELECT {', '.join(CATALOG_COLUMNS)} FROM Catalog"
        params: dict[str, Any] = {"limit": limit}
        types: dict[str, Any] = {"limit": spanner.param_types.INT64}
        if prefix:
            sql += " WHERE STARTS_WITH(TableRef, @prefix)"
            params["prefix"], types["prefix"] = prefix, spanner.param_types.STRING
        sql += " ORDER BY TableRef LIMIT @limit"
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types))
        return [_catalog_from_row(row) for row in rows]


def _chunks(
    tables: Iterable[tuple[str, Sequence[str], list[list[Any]]]],
) -> Iterator[tuple[str, Sequence[str], list[list[Any]]]]:
    for table, columns, rows in tables:
        per_commit = max(1, _CELL_BUDGET // (len(columns) + 2))
        for start in range(0, len(rows), per_commit):
            yield table, columns, rows[start : start + per_commit]


# --- schema migrations ------------------------------------------------------------------------

_MIGRATIONS_DDL = (
    "CREATE TABLE SchemaMigrations (Version INT64 NOT NULL, Name STRING(256) NOT NULL, "
    "AppliedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true)) PRIMARY KEY (Version)"
)


def applied_versions(database: Database) -> set[int]:
    try:
        with database.snapshot() as snapshot:
            return {row[0] for row in snapshot.execute_sql("SELECT Version FROM SchemaMigrations")}
    except gexc.NotFound:
        return set()
    except gexc.InvalidArgument as exc:  # the emulator says "Table not found" this way
        if "SchemaMigrations" in str(exc):
            return set()
        raise


def migrate(database: Database, migrations: Sequence[Migration], timeout: float = 300) -> list[Migration]:
    """Apply the migrations not yet recorded, in order, recording each. Running it twice is a no-op."""
    applied = applied_versions(database)
    if not applied and not _has_table(database, "SchemaMigrations"):
        database.update_ddl([_MIGRATIONS_DDL]).result(timeout)
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        database.update_ddl(list(migration.statements)).result(timeout)
        with database.batch() as batch:
            batch.insert(
                "SchemaMigrations",
                ("Version", "Name", "AppliedAt"),
                [[migration.version, migration.name, spanner.COMMIT_TIMESTAMP]],
            )
        done.append(migration)
    return done


def _has_table(database: Database, name: str) -> bool:
    with database.snapshot() as snapshot:
        rows = list(
            snapshot.execute_sql(
                "SELECT t.TABLE_NAME FROM INFORMATION_SCHEMA.TABLES AS t WHERE t.TABLE_SCHEMA = '' AND t.TABLE_NAME = @name",
                params={"name": name},
                param_types={"name": spanner.param_types.STRING},
            )
        )
    return bool(rows)
