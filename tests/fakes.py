"""Hand-written fakes of the ports, for unit tests of the core. They record; tests assert on state."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from baton.domain.backfill import BackfillRecord, BackfillStatus
from baton.domain.lineage import LineageEvent
from baton.domain.records import (
    CatalogEntry,
    CheckRecord,
    Continuation,
    JobRecord,
    JobStatus,
    NewRun,
    PoolUsage,
    QueueEntry,
    RunRecord,
    RunStatus,
)
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.pools import HOLDS_SLOT, entry_of
from baton.errors import RunExists
from baton.service.ports import (
    EventPublisher,
    JobSubmitter,
    LineageEmitter,
    RemoteJob,
    RunStore,
    SubmitOutcome,
    SubmitRequest,
    TableSize,
    WorkQueue,
)

T = TypeVar("T")


class _MemoryTransaction:
    def __init__(self, store: InMemoryRunStore) -> None:
        self.store = store
        self.runs: dict[str, RunRecord] = {}
        self.jobs: dict[tuple[str, str], JobRecord] = {}
        self.checks: dict[tuple[str, str, int, str], CheckRecord] = {}
        self.catalog: dict[str, CatalogEntry] = {}
        self.outbox: dict[tuple[str, str], dict[str, Any]] = {}
        self.pools: dict[str, int] = {}  # slots in use, as written
        self.queue: dict[tuple[Any, ...], QueueEntry | None] = {}  # None: deleted
        self.backfills: dict[str, BackfillRecord] = {}
        self.reads = 0

    def get_run(self, run_id: str) -> RunRecord | None:
        self.reads += 1
        return self.runs.get(run_id, self.store.runs.get(run_id))

    def get_job(self, run_id: str, job_key: str) -> JobRecord | None:
        self.reads += 1
        key = (run_id, job_key)
        return self.jobs.get(key, self.store.jobs.get(key))

    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        found = (self.get_job(run_id, key) for key in job_keys)
        return [job for job in found if job is not None]

    def get_dependents(self, run_id: str, job_key: str, after: str | None = None, limit: int | None = None) -> list[str]:
        self.reads += 1
        keys = sorted(key for key in self.store.dependents.get((run_id, job_key), []) if after is None or key > after)
        return keys if limit is None else keys[:limit]

    def put_run(self, run: RunRecord) -> None:
        self.runs[run.run_id] = run

    def put_job(self, job: JobRecord) -> None:
        self.jobs[(job.run_id, job.job_key)] = job

    def get_check(self, run_id: str, job_key: str, attempt: int, name: str) -> CheckRecord | None:
        self.reads += 1
        key = (run_id, job_key, attempt, name)
        return self.checks.get(key, self.store.checks.get(key))

    def get_checks(self, run_id: str, job_key: str, attempt: int) -> list[CheckRecord]:
        self.reads += 1
        merged = {**self.store.checks, **self.checks}
        return [c for k, c in sorted(merged.items()) if k[:3] == (run_id, job_key, attempt)]

    def put_check(self, check: CheckRecord) -> None:
        self.checks[(check.run_id, check.job_key, check.attempt, check.name)] = check

    def get_catalog(self, table_ref: str) -> CatalogEntry | None:
        self.reads += 1
        return self.catalog.get(table_ref, self.store.catalog.get(table_ref))

    def put_catalog(self, entry: CatalogEntry) -> None:
        self.catalog[entry.table_ref] = entry

    def put_event(self, event: Mapping[str, Any]) -> None:
        self.outbox[(str(event["run_id"]), str(event["event_id"]))] = dict(event)

    def get_pool(self, name: str) -> PoolUsage | None:
        if name not in self.store.pool_sizes:
            return None
        self.reads += 1
        return PoolUsage(name, self.store.pool_sizes[name], self.pools.get(name, self.store.pools_in_use.get(name, 0)))

    def put_pool(self, pool: PoolUsage) -> None:
        self.pools[pool.name] = pool.in_use

    def queue_head(self, pool: str, limit: int) -> list[QueueEntry]:
        self.reads += 1
        merged = {**self.store.queue, **self.queue}
        entries = [entry for entry in merged.values() if entry is not None and entry.pool == pool]
        return sorted(entries, key=lambda entry: entry.order)[:limit]

    def put_queue_entry(self, entry: QueueEntry) -> None:
        self.queue[_queue_key(entry)] = entry

    def delete_queue_entry(self, entry: QueueEntry) -> None:
        self.queue[_queue_key(entry)] = None

    def _all_runs(self) -> list[RunRecord]:
        return list({**self.store.runs, **self.runs}.values())

    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        self.reads += 1
        return _oldest_first(r for r in self._all_runs() if r.queue == queue and r.status == status)[:limit]

    def manifest_paused(self, manifest: str) -> bool:
        self.reads += 1
        return manifest in self.store.paused_manifests

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        self.reads += 1
        return self.backfills.get(backfill_id, self.store.backfills.get(backfill_id))

    def put_backfill(self, backfill: BackfillRecord) -> None:
        self.backfills[backfill.backfill_id] = backfill

    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        self.reads += 1
        return _oldest_first(r for r in self._all_runs() if r.backfill_id == backfill_id)


def _queue_key(entry: QueueEntry) -> tuple[Any, ...]:
    return (entry.pool, *entry.order)


def _oldest_first(runs: Iterable[RunRecord]) -> list[RunRecord]:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(runs, key=lambda r: (r.created_at or epoch, r.run_id))


class InMemoryRunStore(RunStore):
    """All-or-nothing commits under one lock, like a serializable database."""

    def __init__(self, pool_sizes: Mapping[str, int] | None = None) -> None:
        self.pool_sizes = dict(pool_sizes or {})
        self.pools_in_use: dict[str, int] = {}
        self.queue: dict[tuple[Any, ...], QueueEntry] = {}
        self.runs: dict[str, RunRecord] = {}
        self.jobs: dict[tuple[str, str], JobRecord] = {}
        self.dependents: dict[tuple[str, str], list[str]] = {}
        self.checks: dict[tuple[str, str, int, str], CheckRecord] = {}
        self.catalog: dict[str, CatalogEntry] = {}
        self.outbox: dict[tuple[str, str], dict[str, Any]] = {}  # (run ID, event ID) -> event
        self.lock = threading.Lock()
        self.commits = 0
        self.last_reads = 0  # reads of the last transaction
        self.paused_manifests: dict[str, str] = {}
        self.backfills: dict[str, BackfillRecord] = {}
        self.largest_commit_jobs = 0  # job rows written by the largest commit: chunked paths keep it bounded
        self.crash_after_commit: Callable[[], bool] = lambda: False

    def transact(self, fn: Callable[[RunTransaction], T]) -> T:
        with self.lock:
            tx = _MemoryTransaction(self)
            result = fn(tx)
            self.runs.update(tx.runs)
            self.jobs.update(tx.jobs)
            self.checks.update(tx.checks)
            self.catalog.update(tx.catalog)
            self.outbox.update(tx.outbox)
            self.pools_in_use.update(tx.pools)
            for key, entry in tx.queue.items():
                if entry is None:
                    self.queue.pop(key, None)
                else:
                    self.queue[key] = entry
            self.backfills.update(tx.backfills)
            self.commits += 1
            self.last_reads = tx.reads
            self.largest_commit_jobs = max(self.largest_commit_jobs, len(tx.jobs))
            return result

    def create_run(self, new_run: NewRun) -> None:
        with self.lock:
            if new_run.run.run_id in self.runs:
                raise RunExists(new_run.run.run_id)
            self.runs[new_run.run.run_id] = new_run.run
            for job in new_run.jobs:
                self.jobs[(job.run_id, job.job_key)] = job
            for upstream, dependent in new_run.edges:
                self.dependents.setdefault((new_run.run.run_id, upstream), []).append(dependent)

    def get_run(self, run_id: str) -> RunRecord | None:
        return self.runs.get(run_id)

    def list_jobs(self, run_id: str) -> list[JobRecord]:
        return sorted((j for (r, _), j in self.jobs.items() if r == run_id), key=lambda j: j.job_key)

    def list_runs(
        self,
        limit: int = 20,
        manifest: str | None = None,
        status: RunStatus | None = None,
        since: dt.datetime | None = None,
        *,
        oldest_first: bool = False,
    ) -> list[RunRecord]:
        """In the Spanner store's order: by creation time, newest first unless `oldest_first`, then run ID."""
        runs = [r for r in self.runs.values() if (manifest is None or r.manifest_name == manifest)]
        runs = [r for r in runs if status is None or r.status == status]
        runs = [r for r in runs if since is None or (r.created_at is not None and r.created_at >= since)]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        runs.sort(key=lambda r: r.run_id)
        runs.sort(key=lambda r: r.created_at or epoch, reverse=not oldest_first)
        return runs[:limit]

    def jobs_in_status(self, status: JobStatus, limit: int) -> list[JobRecord]:
        started = {run_id for run_id, run in self.runs.items() if run.status != RunStatus.QUEUED}
        return [j for j in self.jobs.values() if j.status == status and j.run_id in started][:limit]

    def jobs_past_deadline(self, now: dt.datetime, limit: int) -> list[JobRecord]:
        late = [j for j in self.jobs.values() if j.status == JobStatus.SUBMITTED and j.deadline and j.deadline < now]
        return late[:limit]

    def runs_past_deadline(self, now: dt.datetime, limit: int) -> list[RunRecord]:
        late = [r for r in self.runs.values() if r.status == RunStatus.RUNNING and r.deadline and r.deadline < now]
        return sorted(late, key=lambda r: (r.deadline, r.run_id))[:limit]

    def list_checks(self, run_id: str, job_key: str | None = None) -> list[CheckRecord]:
        keys = sorted(k for k in self.checks if k[0] == run_id and job_key in (None, k[1]))
        return [self.checks[k] for k in keys]

    def list_catalog(self, limit: int = 100, prefix: str | None = None) -> list[CatalogEntry]:
        return [self.catalog[t] for t in sorted(self.catalog) if t.startswith(prefix or "")][:limit]

    def paused(self) -> dict[str, str]:
        return dict(self.paused_manifests)

    def set_paused(self, manifest: str, reason: str | None) -> None:
        if reason is None:
            self.paused_manifests.pop(manifest, None)
        else:
            self.paused_manifests[manifest] = reason

    def unpublished_events(self, limit: int, written_before: dt.datetime) -> list[dict[str, Any]]:
        with self.lock:
            events = [e for e in self.outbox.values() if dt.datetime.fromisoformat(e["time"]) <= written_before]
        return sorted(events, key=lambda e: (e["time"], e["event_id"]))[:limit]

    def forget_events(self, keys: Sequence[tuple[str, str]]) -> None:
        with self.lock:
            for key in keys:
                self.outbox.pop(key, None)

    def pool_usage(self) -> list[tuple[PoolUsage, int]]:
        queued = [entry.pool for entry in self.queue.values()]
        return [
            (PoolUsage(name, size, self.pools_in_use.get(name, 0)), queued.count(name))
            for name, size in sorted(self.pool_sizes.items())
        ]

    def pool_drift(self, pools: Sequence[str]) -> dict[str, int]:
        with self.lock:
            holders = [job.spec.pool for job in self.jobs.values() if job.status in HOLDS_SLOT]
            return {name: self.pools_in_use.get(name, 0) - holders.count(name) for name in pools}

    def queued_without_entry(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        queued = [job for job in jobs if job.status == JobStatus.QUEUED and job.spec.pool]
        return [job for job in queued if _queue_key(entry_of(job)) not in self.queue]

    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        return _oldest_first(r for r in self.runs.values() if r.queue == queue and r.status == status)[:limit]

    def waiting_jobs(self, run_id: str) -> list[JobRecord]:
        return [job for job in self.list_jobs(run_id) if job.status in (JobStatus.READY, JobStatus.QUEUED)]

    def create_backfill(self, backfill: BackfillRecord) -> None:
        self.backfills[backfill.backfill_id] = backfill

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None:
        return self.backfills.get(backfill_id)

    def list_backfills(self, limit: int = 20, manifest: str | None = None) -> list[BackfillRecord]:
        found = [b for b in self.backfills.values() if manifest in (None, b.manifest_name)]
        return sorted(found, key=lambda b: (b.created_at, b.backfill_id), reverse=True)[:limit]

    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        return _oldest_first(r for r in self.runs.values() if r.backfill_id == backfill_id)

    def starting_backfills(self, created_by: dt.datetime, limit: int) -> list[BackfillRecord]:
        found = [
            b for b in self.backfills.values() if b.starting and b.status == BackfillStatus.RUNNING and b.created_at <= created_by
        ]
        return sorted(found, key=lambda b: (b.created_at, b.backfill_id))[:limit]


class CollectingWorkQueue(WorkQueue):
    """Keeps continuations for the test to deliver (or redeliver, or lose), as Pub/Sub would."""

    def __init__(self) -> None:
        self.items: list[Continuation] = []

    def publish(self, items: Sequence[Continuation]) -> None:
        self.items.extend(items)


class RecordingSubmitter(JobSubmitter):
    """Remembers every submission; a second submit of the same job ID answers ALREADY_EXISTS like BigQuery."""

    def __init__(self) -> None:
        self.requests: list[SubmitRequest] = []
        self.job_ids: set[str] = set()
        self.cancelled: list[str] = []
        self.fail_next: Exception | None = None
        # Failures that last, as BigQuery's client raises them (google.api_core.exceptions): every insert
        # of a request `refuse` answers with an error fails with it, every lookup of a job ID in `lookup_errors` too.
        self.refuse: Callable[[SubmitRequest], Exception | None] = lambda request: None
        self.lookup_errors: dict[str, Exception] = {}
        self.remote: dict[str, RemoteJob] = {}  # what lookup() answers; unknown IDs answer None
        self.lookups: list[str] = []
        self.refused: list[SubmitRequest] = []
        self.calls: list[tuple[str, str]] = []  # ("insert" | "cancel", job ID), in the order BigQuery saw them
        self.results: dict[str, Any] = {}  # job ID -> rows sample_rows() answers (or an exception it raises)
        self.sampled: list[str] = []
        self.tables: dict[str, TableSize] = {}  # what table_size() answers; unknown tables answer None
        self.sized: list[str] = []
        self.lock = threading.Lock()

    def submit(self, request: SubmitRequest) -> SubmitOutcome:
        with self.lock:
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise error
            refusal = self.refuse(request)
            if refusal is not None:
                self.refused.append(request)
                raise refusal
            self.requests.append(request)
            self.calls.append(("insert", request.job_id))
            if request.job_id in self.job_ids:
                return SubmitOutcome.ALREADY_EXISTS
            self.job_ids.add(request.job_id)
            return SubmitOutcome.SUBMITTED

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.calls.append(("cancel", job_id))

    def lookup(self, job_id: str) -> RemoteJob | None:
        self.lookups.append(job_id)
        if job_id in self.lookup_errors:
            raise self.lookup_errors[job_id]
        return self.remote.get(job_id)

    def table_size(self, table_ref: str) -> TableSize | None:
        self.sized.append(table_ref)
        return self.tables.get(table_ref)

    def sample_rows(self, job_id: str, limit: int) -> list[dict[str, Any]]:
        """What `results` holds for the job (the test sets it), as BigQuery's first page would; a test can make it raise."""
        self.sampled.append(job_id)
        rows = self.results.get(job_id, [])
        if isinstance(rows, Exception):
            raise rows
        return rows[:limit]

    def submitted_keys(self) -> list[str]:
        return [r.labels["baton_job"] for r in self.requests]


class RecordingPublisher(EventPublisher):
    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.fail: Exception | None = None  # every publish raises it while set (Pub/Sub down)

    def publish(self, event: Mapping[str, Any]) -> None:
        if self.fail is not None:
            raise self.fail
        self.events.append(event)

    def types(self) -> list[str]:
        return [str(e["type"]) for e in self.events]


class RecordingLineage(LineageEmitter):
    def __init__(self) -> None:
        self.events: list[LineageEvent] = []

    def emit(self, event: LineageEvent) -> None:
        self.events.append(event)
