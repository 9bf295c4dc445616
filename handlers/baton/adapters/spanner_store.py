"""Run state in Cloud Spanner: every transition in one read-write transaction, point reads by key.

Spanner does not let a transaction read its own buffered writes, so the
transaction adapter keeps them in a small cache: the transitions see their writes,
and they are flushed as mutations when its function returns.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import spanner
from google.cloud.spanner_v1.database import Database

from baton.adapters.spanner_mutations import MUTATION_LIMIT, PRIMARY_KEYS, row_mutations
from baton.adapters.spanner_queue import BackfillReads, QueueReads
from baton.adapters.spanner_rows import (
    CATALOG_COLUMNS,
    CHECK_COLUMNS,
    DEPENDENT_COLUMNS,
    JOB_COLUMNS,
    JOB_UPDATE_COLUMNS,
    POOL_COLUMNS,
    QUEUE_COLUMNS,
    RUN_COLUMNS,
    RUN_STATE_COLUMNS,
    RUN_STATE_KEY,
    catalog_from_row,
    catalog_row,
    changed_columns,
    check_from_row,
    check_row,
    job_from_row,
    job_row,
    queue_entry_from_row,
    queue_entry_key,
    queue_entry_row,
    run_from_row,
    run_from_state,
    run_row,
    run_state,
    run_state_row,
    run_state_status,
)
from baton.domain.backfill import BackfillRecord
from baton.domain.limits import POOL_RELEASES_PER_COMMIT
from baton.domain.records import (
    CatalogEntry,
    CheckRecord,
    JobRecord,
    JobStatus,
    NewRun,
    PoolUsage,
    QueueEntry,
    RunRecord,
    RunStatus,
)
from baton.domain.timing import TimeBudget
from baton.domain.transitions.pools import entry_of
from baton.errors import CommitTooLarge, RunExists, TransientError
from baton.service.ports import RunStore

T = TypeVar("T")

# Dependents' keys kept on the job's row up to this many (spanner_schema/0011_dependent_keys.sql).
DEPENDENT_KEYS_ON_ROW = 64
# Reads of one transaction that do not depend on each other run side by side on these threads.
_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spanner-read")

# A commit's time grows faster than its rows: releasing 1,000 dependents committed in 2.5 s on the emulator,
# 3,000 in 50 s (benchmarks/scale.py, docs/benchmarks.md). The budget alone (~4,100 job rows) would let one
# step of a 10,000-wide release run near the function's 120 s timeout; 1,000 rows keep each step to seconds.
JOBS_PER_COMMIT_MAX = 1_000

# Mutations kept free in a transition's commit for the rows besides the jobs it releases or skips:
# the run, the completing job, its checks, its catalog entry.
JOB_UPDATE = (*JOB_UPDATE_COLUMNS, "UpdatedAt")
POOL_UPDATE = (*POOL_COLUMNS, "UpdatedAt")
# A pooled job released or skipped may also write (or delete) its queue entry: counted with each job row.
JOB_ROW_MUTATIONS = row_mutations("RunJobs", JOB_UPDATE) + row_mutations("PoolQueue", QUEUE_COLUMNS)
# ... and a freed slot hands itself on to at most POOL_RELEASES_PER_COMMIT queued jobs per pool.
_RESERVED_MUTATIONS = 2_000 + POOL_RELEASES_PER_COMMIT * JOB_ROW_MUTATIONS

# Before running an aborted transaction again: 5-20 ms, then four times longer each time, up to 2 s. The client
# waits only when the abort carries a retry delay (Spanner sends one; the emulator never does); otherwise it
# fell back to 2**attempt + up to 1 s, so with four handlers a third abort of one event ran past its call
# deadline and came back as a 503 and a redelivery 10 s later, while the transaction that won held its locks
# for milliseconds. A fixed short delay instead made the losers collide again and again. (Where an abort carries
# its own delay, the client waits that first.)
_FIRST_RETRY_S = (0.005, 0.02)
_RETRY_GROWTH = 4
_RETRY_MAX_S = 2.0


def _retry_delay(attempt: int) -> float:
    """Seconds to wait before `attempt` (2 or more) of a transaction the emulator aborted without a delay."""
    low, high = (bound * _RETRY_GROWTH ** (attempt - 2) for bound in _FIRST_RETRY_S)
    return min(_RETRY_MAX_S, random.uniform(low, high))  # noqa: S311 (jitter, not a secret)


class SeenDependents:
    """The dependents' keys of the last job completed in each recent run, kept by one store (one function instance).

    Siblings of a fan-in share their dependents, so the next sibling's completion reads the shared rows with its
    own row in one round trip instead of two (the job's DependentKeys still decide which rows are its
    dependents: a guess that misses only costs the read it would have made anyway, a row guessed wrongly is
    left unused). Bounded in runs and keys, so a guess never reads more than a few rows.
    """

    RUNS = 256
    KEYS = 4

    def __init__(self) -> None:
        self._by_run: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()  # an instance may serve requests on several threads

    def guess(self, run_id: str, job_key: str) -> tuple[str, ...]:
        return tuple(key for key in self._by_run.get(run_id, ()) if key != job_key)

    def saw(self, run_id: str, dependents: Sequence[str]) -> None:
        if not 0 < len(dependents) <= self.KEYS:
            return
        with self._lock:
            self._by_run[run_id] = tuple(dependents)
            self._by_run.move_to_end(run_id)
            while len(self._by_run) > self.RUNS:
                self._by_run.popitem(last=False)


def run_paced(database: Any, work: Callable[[Any], T], deadline_s: float) -> T:
    """`run_in_transaction`, with an aborted attempt run again after `_retry_delay` rather than the client's
    fallback of seconds. Public so that a benchmark's baseline transaction is paced exactly like the store's."""
    attempts = 0

    def paced(transaction: Any) -> T:
        nonlocal attempts
        attempts += 1
        if attempts > 1:  # before the first read, which begins the new attempt's transaction
            time.sleep(_retry_delay(attempts))
        return work(transaction)

    result: T = database.run_in_transaction(paced, timeout_secs=deadline_s, default_retry_delay=0.0)
    return result


class _CountedReads:
    """The client's transaction, counting its reads (round trips): tests and benchmarks read how many an event made."""

    def __init__(self, transaction: Any) -> None:
        self._transaction = transaction
        self._lock = threading.Lock()  # reads of one transaction may run side by side
        self.reads = 0

    def read(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.reads += 1
        return self._transaction.read(*args, **kwargs)

    def execute_sql(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.reads += 1
        return self._transaction.execute_sql(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transaction, name)


class SpannerTransaction(QueueReads):
    """RunTransaction over a Spanner read-write transaction, with read-your-writes."""

    def __init__(
        self,
        transaction: Any,
        mutation_budget: int = MUTATION_LIMIT,
        pool_sizes: Mapping[str, int] | None = None,
        seen: SeenDependents | None = None,
    ) -> None:
        self._counted = _CountedReads(transaction)
        self._tx = self._counted
        self._seen = seen or SeenDependents()
        self.mutation_budget = mutation_budget
        self._pool_sizes = pool_sizes or {}
        self._pools: dict[str, PoolUsage] = {}
        self._read_pools: dict[str, PoolUsage | None] = {}  # as read (size as last written)
        self._queue: dict[tuple[Any, ...], QueueEntry | None] = {}  # written entries by key; None: deleted
        self.mutations = 0
        self._runs: dict[str, RunRecord] = {}
        self._jobs: dict[tuple[str, str], JobRecord] = {}
        self._checks: dict[tuple[str, str, int, str], CheckRecord] = {}
        self._catalog: dict[str, CatalogEntry] = {}
        self._events: dict[tuple[str, str], str] = {}  # the outbox: (run ID, event ID) -> JSON
        self._backfills: dict[str, BackfillRecord] = {}
        self.rows_read = 0
        # Rows read ahead, never written unless a transition puts them; dependents' keys from the job's row.
        self._read_runs: dict[str, RunRecord | None] = {}
        self._read_jobs: dict[tuple[str, str], JobRecord] = {}
        self._read_dependents: dict[tuple[str, str], list[str]] = {}
        # Every run and job row as this transaction read it: flush writes only the columns a transition changed.
        self._runs_before: dict[str, RunRecord] = {}
        self._state_rows: set[str] = set()  # runs whose state row (spanner_schema/0015) this transaction read
        self._jobs_before: dict[tuple[str, str], JobRecord] = {}

    @property
    def reads(self) -> int:
        return self._counted.reads

    def _read_one(self, table: str, columns: Sequence[str], key: list[Any]) -> list[Any] | None:
        rows = list(self._tx.read(table, columns, spanner.KeySet(keys=[key])))
        self.rows_read += len(rows)
        return rows[0] if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        if run_id in self._runs:
            return self._runs[run_id]
        if run_id in self._read_runs:
            return self._read_runs[run_id]
        row = self._read_one("Runs", RUN_COLUMNS, [run_id])
        if row is None:
            return None
        run = self._runs_before[run_id] = run_from_row(row)
        return run

    def get_job(self, run_id: str, job_key: str) -> JobRecord | None:
        """The job; the first time, its run and its dependents' rows come with it (see `_read_ahead`)."""
        key = (run_id, job_key)
        if key in self._jobs:
            return self._jobs[key]
        if key not in self._read_jobs:
            self._read_ahead(run_id, job_key)
        return self._read_jobs.get(key)

    def _read_ahead(self, run_id: str, job_key: str) -> None:
        """What a completion reads, in one round trip: the job's row (with its dependents' keys when it keeps them),
        the rows of the dependents its run's last completed job had (see `SeenDependents`) and its run's state row
        (spanner_schema/0015). Dependents not guessed, or the Runs row of a run without a state row, are read
        then, side by side (the transaction has begun by then)."""
        guessed = [key for key in self._seen.guess(run_id, job_key) if not self._has_job(run_id, key)]
        state = [RUN_STATE_KEY] if run_id not in self._runs and run_id not in self._read_runs else []
        keys = spanner.KeySet(keys=[[run_id, key] for key in (job_key, *guessed, *state)])
        rows = {row[1]: row for row in self._tx.read("RunJobs", (*JOB_COLUMNS, "DependentKeys", "RunState"), keys)}
        self.rows_read += len(rows)
        state_row = rows.get(RUN_STATE_KEY)
        if state_row is not None and state_row[-1] is not None:
            self._read_runs[run_id] = self._runs_before[run_id] = run_from_state(state_row[-1])
            self._state_rows.add(run_id)
        row = rows.get(job_key)
        if row is None:
            return
        self._read_jobs[(run_id, job_key)] = self._jobs_before[(run_id, job_key)] = job_from_row(row)
        dependents = row[len(JOB_COLUMNS)]
        if dependents is not None:
            self._read_dependents[(run_id, job_key)] = sorted(dependents)
            self._seen.saw(run_id, dependents)
        for key in dependents or ():
            if key in rows and not self._has_job(run_id, key):
                self._read_jobs[(run_id, key)] = self._jobs_before[(run_id, key)] = job_from_row(rows[key])
        wanted = [key for key in dependents or () if not self._has_job(run_id, key)]
        read_run = run_id not in self._runs and run_id not in self._read_runs
        jobs: list[list[Any]] = []
        if read_run and wanted:  # side by side: on Spanner they overlap
            run_read = _READS.submit(self._rows, "Runs", RUN_COLUMNS, spanner.KeySet(keys=[[run_id]]))
            jobs = self._job_rows_by_key(run_id, wanted)
            runs = run_read.result()
        elif read_run:  # one read: here, sparing a thread hand-off
            runs = self._rows("Runs", RUN_COLUMNS, spanner.KeySet(keys=[[run_id]]))
        elif wanted:
            jobs = self._job_rows_by_key(run_id, wanted)
        if read_run:
            self.rows_read += len(runs)
            self._read_runs[run_id] = run = run_from_row(runs[0]) if runs else None
            if run is not None:
                self._runs_before[run_id] = run  # its state row is written with it (flush)
        for row in jobs:
            self.rows_read += 1
            self._read_jobs[(run_id, row[1])] = self._jobs_before[(run_id, row[1])] = job_from_row(row)

    def _job_rows_by_key(self, run_id: str, job_keys: Sequence[str]) -> list[list[Any]]:
        return self._rows("RunJobs", JOB_COLUMNS, spanner.KeySet(keys=[[run_id, key] for key in job_keys]))

    def _has_job(self, run_id: str, job_key: str) -> bool:
        return (run_id, job_key) in self._jobs or (run_id, job_key) in self._read_jobs

    def _rows(self, table: str, columns: Sequence[str], keys: Any) -> list[list[Any]]:
        return list(self._tx.read(table, columns, keys))

    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        wanted = [key for key in job_keys if (run_id, key) not in self._jobs and (run_id, key) not in self._read_jobs]
        fetched: dict[str, JobRecord] = {}
        if wanted:
            keyset = spanner.KeySet(keys=[[run_id, key] for key in wanted])
            for row in self._tx.read("RunJobs", JOB_COLUMNS, keyset):
                fetched[row[1]] = self._jobs_before[(run_id, row[1])] = job_from_row(row)
            self.rows_read += len(fetched)
        found = (self._jobs.get((run_id, key)) or self._read_jobs.get((run_id, key)) or fetched.get(key) for key in job_keys)
        return [job for job in found if job is not None]

    def get_dependents(self, run_id: str, job_key: str, after: str | None = None, limit: int | None = None) -> list[str]:
        known = self._read_dependents.get((run_id, job_key))
        if known is not None:  # kept on the job's row (few dependents; edges never change within a run)
            following = [key for key in known if after is None or key > after]
            return following[:limit] if limit else following
        if after is None:
            keys = spanner.KeyRange(start_closed=[run_id, job_key], end_closed=[run_id, job_key])
        else:
            keys = spanner.KeyRange(start_open=[run_id, job_key, after], end_closed=[run_id, job_key])
        rows = list(self._tx.read("RunJobDependents", ["DependentKey"], spanner.KeySet(ranges=[keys]), limit=limit or 0))
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
        return check_from_row(row) if row else None

    def get_checks(self, run_id: str, job_key: str, attempt: int) -> list[CheckRecord]:
        prefix = spanner.KeyRange(start_closed=[run_id, job_key, attempt], end_closed=[run_id, job_key, attempt])
        rows = list(self._tx.read("RunJobChecks", CHECK_COLUMNS, spanner.KeySet(ranges=[prefix])))
        self.rows_read += len(rows)
        found = {check.name: check for check in map(check_from_row, rows)}
        found.update({key[3]: check for key, check in self._checks.items() if key[:3] == (run_id, job_key, attempt)})
        return [found[name] for name in sorted(found)]

    def put_check(self, check: CheckRecord) -> None:
        self._checks[(check.run_id, check.job_key, check.attempt, check.name)] = check

    def get_catalog(self, table_ref: str) -> CatalogEntry | None:
        if table_ref in self._catalog:
            return self._catalog[table_ref]
        row = self._read_one("Catalog", CATALOG_COLUMNS, [table_ref])
        return catalog_from_row(row) if row else None

    def put_catalog(self, entry: CatalogEntry) -> None:
        self._catalog[entry.table_ref] = entry

    def put_event(self, event: Mapping[str, Any]) -> None:
        self._events[(str(event["run_id"]), str(event["event_id"]))] = json.dumps(event, sort_keys=True, default=str)

    def get_pool(self, name: str) -> PoolUsage | None:
        """The configured size wins; without one (an operator's CLI may lack BATON_POOLS), the size last written."""
        if name in self._pools:
            return self._pools[name]
        if name not in self._read_pools:
            row = self._read_one("Pools", POOL_COLUMNS, [name])
            self._read_pools[name] = PoolUsage(name, int(row[1]), int(row[2])) if row else None
        read = self._read_pools[name]
        size = self._pool_sizes.get(name)
        if size is not None:
            return PoolUsage(name, size, read.in_use if read else 0)
        return read

    def put_pool(self, pool: PoolUsage) -> None:
        self._pools[pool.name] = pool

    def queue_head(self, pool: str, limit: int) -> list[QueueEntry]:
        written = {key: entry for key, entry in self._queue.items() if key[0] == pool}
        deleted = sum(1 for entry in written.values() if entry is None)
        prefix = spanner.KeyRange(start_closed=[pool], end_closed=[pool])
        rows = list(self._tx.read("PoolQueue", QUEUE_COLUMNS, spanner.KeySet(ranges=[prefix]), limit=limit + deleted))
        self.rows_read += len(rows)
        found: dict[tuple[Any, ...], QueueEntry | None] = {queue_entry_key(e): e for e in map(queue_entry_from_row, rows)}
        found.update(written)
        entries = [entry for entry in found.values() if entry is not None]
        return sorted(entries, key=lambda entry: entry.order)[:limit]

    def put_queue_entry(self, entry: QueueEntry) -> None:
        self._queue[queue_entry_key(entry)] = entry

    def delete_queue_entry(self, entry: QueueEntry) -> None:
        self._queue[queue_entry_key(entry)] = None

    def flush(self) -> None:
        """Buffer the writes as mutations, after counting them: over the budget, nothing is written."""
        writes: list[tuple[str, str, tuple[str, ...], list[list[Any]]]] = []
        for columns, rows in changed_columns(RUN_COLUMNS, 1, map(self._run_rows, self._runs.values())):
            writes.append(("update", "Runs", (*columns, "UpdatedAt"), [[*row, spanner.COMMIT_TIMESTAMP] for row in rows]))
        writes += self._run_state_writes()
        for columns, rows in changed_columns(JOB_UPDATE_COLUMNS, 2, map(self._job_rows, self._jobs.values())):
            writes.append(("update", "RunJobs", (*columns, "UpdatedAt"), [[*row, spanner.COMMIT_TIMESTAMP] for row in rows]))
        if self._checks:
            rows = [[*check_row(check), spanner.COMMIT_TIMESTAMP] for check in self._checks.values()]
            writes.append(("insert_or_update", "RunJobChecks", (*CHECK_COLUMNS, "UpdatedAt"), rows))
        if self._catalog:
            rows = [[*catalog_row(entry), spanner.COMMIT_TIMESTAMP] for entry in self._catalog.values()]
            writes.append(("insert_or_update", "Catalog", (*CATALOG_COLUMNS, "UpdatedAt"), rows))
        if self._events:
            rows = [[run_id, event_id, payload, spanner.COMMIT_TIMESTAMP] for (run_id, event_id), payload in self._events.items()]
            writes.append(("insert_or_update", "RunEventOutbox", ("RunId", "EventId", "Payload", "CreatedAt"), rows))
        writes += self.backfill_writes()
        if self._pools:
            rows = [[pool.name, pool.size, pool.in_use, spanner.COMMIT_TIMESTAMP] for pool in self._pools.values()]
            writes.append(("insert_or_update", "Pools", POOL_UPDATE, rows))
        queued = [queue_entry_row(entry) for entry in self._queue.values() if entry is not None]
        if queued:
            writes.append(("insert_or_update", "PoolQueue", QUEUE_COLUMNS, queued))
        dequeued = [list(key) for key, entry in self._queue.items() if entry is None]
        self.mutations = sum(row_mutations(table, columns) * len(rows) for _, table, columns, rows in writes)
        self.mutations += row_mutations("PoolQueue", PRIMARY_KEYS["PoolQueue"]) * len(dequeued)
        if self.mutations > self.mutation_budget:
            raise CommitTooLarge(self.mutations, self.mutation_budget)
        for method, table, columns, rows in writes:
            getattr(self._tx, method)(table, columns, rows)
        if dequeued:
            self._tx.delete("PoolQueue", spanner.KeySet(keys=dequeued))

    def _run_state_writes(self) -> list[tuple[str, str, tuple[str, ...], list[list[Any]]]]:
        """Each changed run's state row, with its Runs row: an update of the state (and of the status only when it
        moved) where this transaction read the row, else the whole row (a run from before state rows gets one)."""
        groups: dict[tuple[str, tuple[str, ...]], list[list[Any]]] = {}
        for run in self._runs.values():
            before = self._runs_before.get(run.run_id)
            if before == run:
                continue
            if run.run_id not in self._state_rows:
                groups.setdefault(("insert_or_update", RUN_STATE_COLUMNS), []).append(run_state_row(run))
                continue
            assert before is not None  # read with its state row
            moved = run_state_status(run) != run_state_status(before)
            columns = ("RunId", "JobKey", *(("Status",) if moved else ()), "RunState")
            row = [run.run_id, RUN_STATE_KEY, *((run_state_status(run),) if moved else ()), run_state(run)]
            groups.setdefault(("update", columns), []).append(row)
        return [
            (method, "RunJobs", (*columns, "UpdatedAt"), [[*row, spanner.COMMIT_TIMESTAMP] for row in rows])
            for (method, columns), rows in groups.items()
        ]

    def _run_rows(self, run: RunRecord) -> tuple[list[Any], list[Any] | None]:
        """The run's row to write, and as this transaction read it (None if it did not)."""
        before = self._runs_before.get(run.run_id)
        return run_row(run), (run_row(before) if before is not None else None)

    def _job_rows(self, job: JobRecord) -> tuple[list[Any], list[Any] | None]:
        before = self._jobs_before.get((job.run_id, job.job_key))
        return job_row(job, with_spec=False), (job_row(before, with_spec=False) if before is not None else None)


def _kept_on_row(dependents: list[str]) -> list[str] | None:
    return sorted(dependents) if len(dependents) <= DEPENDENT_KEYS_ON_ROW else None


# The open-jobs index (spanner_schema/0005) holds no terminal rows; an equality on OpenStatus never needs them.
# The emulator cannot prove that and asks for its own hint, which Cloud Spanner ignores.
_OPEN_JOBS_INDEX = "FORCE_INDEX=OpenRunJobs, spanner_emulator.disable_query_null_filtered_index_check=true"
# The WHERE clause needs OpenDeadline, so no row the NULL_FILTERED index leaves out could match (the emulator cannot tell).
_DEADLINE_INDEX = "FORCE_INDEX=RunJobsByDeadline, spanner_emulator.disable_query_null_filtered_index_check=true"
_RUN_DEADLINE_INDEX = "FORCE_INDEX=RunsByDeadline, spanner_emulator.disable_query_null_filtered_index_check=true"
# A QUEUED run's jobs wait READY (or QUEUED) for the run to start (domain/transitions/run_queue.py): nothing to heal.
# Left out of the reconciler's pages, so that a long queue (a backfill's dates) cannot fill them and hide the open
# jobs of started runs behind it. The Runs row of each index entry is a point lookup (the parent of its RunJobs row).
_OF_STARTED_RUNS = "JOIN Runs AS r ON r.RunId = j.RunId AND r.Status != 'QUEUED'"
# The jobs holding a slot of each pool (domain/transitions/pools.py HOLDS_SLOT), of any run.
_POOL_HOLDERS_SQL = (
    f"SELECT JSON_VALUE(j.Spec, '$.pool') AS Pool, COUNT(*) FROM RunJobs@{{{_OPEN_JOBS_INDEX}}} AS j "
    "WHERE j.OpenStatus IN ('READY', 'SUBMITTED') AND JSON_VALUE(j.Spec, '$.pool') IN UNNEST(@pools) GROUP BY Pool"
)
_SHARDS = list("0123456789abcdef")  # the first hex digit of a RunId: the deadline indexes' first key


class SpannerRunStore(BackfillReads, RunStore):
    def __init__(
        self,
        database: Database,
        mutation_budget: int = MUTATION_LIMIT,
        budget: TimeBudget | None = None,
        pool_sizes: Mapping[str, int] | None = None,
    ) -> None:
        """`mutation_budget` is what one commit may cost: Spanner's limit, or less in tests, so chunking shows.
        `budget` bounds each call in time (domain/timing.py); `pool_sizes` are the environment's pools."""
        self.database = database
        self.pool_sizes = dict(pool_sizes or {})
        self.mutation_budget = mutation_budget
        # Job rows a transition may write besides its own few rows: within the budget, and never more than
        # JOBS_PER_COMMIT_MAX, so that each step of a wide release or skip also finishes in bounded time.
        self.jobs_per_commit = max(
            1,
            min(
                JOBS_PER_COMMIT_MAX,
                (mutation_budget - min(_RESERVED_MUTATIONS, mutation_budget // 2)) // JOB_ROW_MUTATIONS,
            ),
        )
        self._seen_dependents = SeenDependents()
        self.last_rows_read = 0  # of the last transaction; benchmarks and tests read it
        self.last_reads = 0  # reads (round trips) of the last transaction, likewise
        self.largest_commit = 0  # mutations of the largest commit so far; benchmarks and tests read it
        # Read-write transactions committed, and attempts at them (an attempt the emulator or Spanner aborted is
        # run again by the client): the difference is what contention cost. Benchmarks read them.
        self.transactions = 0
        self.transaction_attempts = 0
        # run_in_transaction retries aborts for 30 s by default, whatever the function's timeout.
        self.budget = budget or TimeBudget()
        self._read_timeout = self.budget.call_deadline_s  # a snapshot read or query; the clients' own default is an hour

    @classmethod
    def connect(
        cls,
        project: str,
        instance: str,
        database: str,
        mutation_budget: int = MUTATION_LIMIT,
        budget: TimeBudget | None = None,
        pool_sizes: Mapping[str, int] | None = None,
    ) -> SpannerRunStore:
        client = spanner.Client(project=project)
        return cls(client.instance(instance).database(database), mutation_budget, budget, pool_sizes)

    def transact(self, fn: Callable[[Any], T]) -> T:
        def work(transaction: Any) -> T:
            self.transaction_attempts += 1
            tx = SpannerTransaction(transaction, self.mutation_budget, self.pool_sizes, self._seen_dependents)
            result = fn(tx)
            tx.flush()
            self.last_rows_read = tx.rows_read
            self.last_reads = tx.reads
            self.largest_commit = max(self.largest_commit, tx.mutations)
            return result

        try:
            result: T = run_paced(self.database, work, self.budget.call_deadline_s)
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.Aborted, gexc.InternalServerError) as exc:
            raise TransientError(f"Spanner: {exc}") from exc
        self.transactions += 1
        return result

    def create_run(self, new_run: NewRun) -> None:
        """Rows in commits under the mutation limit; the run row goes first and stays CREATING meanwhile."""
        now_columns = (*JOB_COLUMNS, "DependentKeys", "UpdatedAt")
        run, state = run_row(new_run.run), run_state_row(new_run.run)
        try:
            with self.database.batch() as batch:
                batch.insert("Runs", (*RUN_COLUMNS, "UpdatedAt"), [[*run, spanner.COMMIT_TIMESTAMP]])
                batch.insert("RunJobs", (*RUN_STATE_COLUMNS, "UpdatedAt"), [[*state, spanner.COMMIT_TIMESTAMP]])
        except gexc.AlreadyExists:
            raise RunExists(new_run.run.run_id) from None
        dependents: dict[str, list[str]] = defaultdict(list)
        for upstream, dependent in new_run.edges:
            dependents[upstream].append(dependent)
        job_rows = [
            [*job_row(job), _kept_on_row(dependents.get(job.job_key, [])), spanner.COMMIT_TIMESTAMP] for job in new_run.jobs
        ]
        edge_rows = [[new_run.run.run_id, upstream, dependent] for upstream, dependent in new_run.edges]
        # RunJobs rows must exist before their interleaved dependents, so jobs go first.
        for table, columns, chunk in self._chunks(
            [("RunJobs", now_columns, job_rows), ("RunJobDependents", DEPENDENT_COLUMNS, edge_rows)]
        ):
            with self.database.batch() as batch:
                batch.insert(table, columns, chunk)

    def _chunks(
        self, tables: Iterable[tuple[str, Sequence[str], list[list[Any]]]]
    ) -> Iterator[tuple[str, Sequence[str], list[list[Any]]]]:
        for table, columns, rows in tables:
            per_commit = max(1, self.mutation_budget // row_mutations(table, columns))
            for start in range(0, len(rows), per_commit):
                chunk = rows[start : start + per_commit]
                self.largest_commit = max(self.largest_commit, row_mutations(table, columns) * len(chunk))
                yield table, columns, chunk

    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        keyset = spanner.KeySet(keys=[[run_id, key] for key in job_keys])
        with self.database.snapshot() as snapshot:
            found = {row[1]: job_from_row(row) for row in snapshot.read("RunJobs", JOB_COLUMNS, keyset)}
        return [found[key] for key in job_keys if key in found]

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("Runs", RUN_COLUMNS, spanner.KeySet(keys=[[run_id]]), timeout=self._read_timeout))
        return run_from_row(rows[0]) if rows else None

    def list_jobs(self, run_id: str) -> list[JobRecord]:
        prefix = spanner.KeyRange(start_open=[run_id, RUN_STATE_KEY], end_closed=[run_id])  # the jobs, not the state row
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("RunJobs", JOB_COLUMNS, spanner.KeySet(ranges=[prefix]), timeout=self._read_timeout))
        return [job_from_row(row) for row in rows]

    def list_runs(
        self,
        limit: int = 20,
        manifest: str | None = None,
        status: RunStatus | None = None,
        since: dt.datetime | None = None,
        *,
        oldest_first: bool = False,
    ) -> list[RunRecord]:
        where: list[str] = []
        params: dict[str, Any] = {}
        types: dict[str, Any] = {}
        if since is not None:
            where.append("CreatedAt >= @since")
            params["since"], types["since"] = since, spanner.param_types.TIMESTAMP
        if manifest is not None:
            where.append("ManifestName = @manifest")
            params["manifest"], types["manifest"] = manifest, spanner.param_types.STRING
        if status is not None:
            # Open statuses through the OpenRuns index (spanner_schema/0005); terminal ones scan, for the CLI only.
            where.append("Status = @status" if status.terminal else "OpenStatus = @status")
            params["status"], types["status"] = str(status), spanner.param_types.STRING
        sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM Runs"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        sql += f" ORDER BY CreatedAt {'ASC' if oldest_first else 'DESC'}, RunId LIMIT @limit"
        params["limit"], types["limit"] = limit, spanner.param_types.INT64
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        return [run_from_row(row) for row in rows]

    def jobs_in_status(self, status: JobStatus, limit: int) -> list[JobRecord]:
        columns = ", ".join(f"j.{c}" for c in JOB_COLUMNS)
        sql = (
            f"SELECT {columns} FROM RunJobs@{{{_OPEN_JOBS_INDEX}}} AS j {_OF_STARTED_RUNS} "
            "WHERE j.OpenStatus = @status ORDER BY j.UpdatedAt LIMIT @limit"
        )
        with self.database.snapshot() as snapshot:
            rows = snapshot.execute_sql(
                sql,
                params={"status": str(status), "limit": limit},
                param_types={"status": spanner.param_types.STRING, "limit": spanner.param_types.INT64},
                timeout=self._read_timeout,
            )
            return [job_from_row(row) for row in rows]

    def jobs_past_deadline(self, now: dt.datetime, limit: int) -> list[JobRecord]:
        """Along RunJobsByDeadline, one range per RunId shard (the index's first key: 16 hex digits)."""
        return [job_from_row(row) for row in self._past_deadline("RunJobs", _DEADLINE_INDEX, JOB_COLUMNS, now, limit)]

    def runs_past_deadline(self, now: dt.datetime, limit: int) -> list[RunRecord]:
        """Along RunsByDeadline (RUNNING, timed runs only), one range per RunId shard, as jobs_past_deadline."""
        return [run_from_row(row) for row in self._past_deadline("Runs", _RUN_DEADLINE_INDEX, RUN_COLUMNS, now, limit)]

    def _past_deadline(
        self, table: str, index_hint: str, columns: Sequence[str], now: dt.datetime, limit: int
    ) -> list[list[Any]]:
        """Rows whose OpenDeadline has passed, earliest first, read along a deadline index sharded by DeadlineShard."""
        sql = (
            f"SELECT {', '.join(f't.{c}' for c in columns)} FROM {table}@{{{index_hint}}} AS t "
            "WHERE t.DeadlineShard IN UNNEST(@shards) AND t.OpenDeadline < @now ORDER BY t.OpenDeadline LIMIT @limit"
        )
        with self.database.snapshot() as snapshot:
            rows = snapshot.execute_sql(
                sql,
                params={"shards": _SHARDS, "now": now, "limit": limit},
                param_types={
                    "shards": spanner.param_types.Array(spanner.param_types.STRING),
                    "now": spanner.param_types.TIMESTAMP,
                    "limit": spanner.param_types.INT64,
                },
                timeout=self._read_timeout,
            )
            return [list(row) for row in rows]

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
            f"SELECT {columns} FROM RunJobs@{{{_OPEN_JOBS_INDEX}}} AS j {_OF_STARTED_RUNS} "
            f"WHERE j.OpenStatus = @status{after} ORDER BY j.RunId, j.JobKey LIMIT @limit"
        )
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        jobs = [job_from_row(row) for row in rows]
        if len(rows) < limit:
            return jobs, None
        return jobs, json.dumps([jobs[-1].run_id, jobs[-1].job_key])

    def list_checks(self, run_id: str, job_key: str | None = None) -> list[CheckRecord]:
        key = [run_id] if job_key is None else [run_id, job_key]
        prefix = spanner.KeyRange(start_closed=key, end_closed=key)
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("RunJobChecks", CHECK_COLUMNS, spanner.KeySet(ranges=[prefix]), timeout=self._read_timeout))
        return [check_from_row(row) for row in rows]

    def paused(self) -> dict[str, str]:
        with self.database.snapshot() as snapshot:
            rows = snapshot.execute_sql("SELECT ManifestName, Reason FROM ManifestControls WHERE Paused")
            return {row[0]: row[1] or "" for row in rows}

    def set_paused(self, manifest: str, reason: str | None) -> None:
        with self.database.batch() as batch:
            batch.insert_or_update(
                "ManifestControls",
                ("ManifestName", "Paused", "Reason", "UpdatedAt"),
                [[manifest, reason is not None, reason, spanner.COMMIT_TIMESTAMP]],
            )

    def unpublished_events(self, limit: int, written_before: dt.datetime) -> list[dict[str, Any]]:
        sql = "SELECT Payload FROM RunEventOutbox WHERE CreatedAt <= @before ORDER BY CreatedAt, RunId, EventId LIMIT @limit"
        with self.database.snapshot() as snapshot:
            rows = list(
                snapshot.execute_sql(
                    sql,
                    params={"before": written_before, "limit": limit},
                    param_types={"before": spanner.param_types.TIMESTAMP, "limit": spanner.param_types.INT64},
                    timeout=self._read_timeout,
                )
            )
        return [json.loads(row[0]) for row in rows]

    def forget_events(self, keys: Sequence[tuple[str, str]]) -> None:
        if not keys:
            return
        with self.database.batch() as batch:
            batch.delete("RunEventOutbox", spanner.KeySet(keys=[list(key) for key in keys]))

    def list_catalog(self, limit: int = 100, prefix: str | None = None) -> list[CatalogEntry]:
        sql = f"SELECT {', '.join(CATALOG_COLUMNS)} FROM Catalog"
        params: dict[str, Any] = {"limit": limit}
        types: dict[str, Any] = {"limit": spanner.param_types.INT64}
        if prefix:
            sql += " WHERE STARTS_WITH(TableRef, @prefix)"
            params["prefix"], types["prefix"] = prefix, spanner.param_types.STRING
        sql += " ORDER BY TableRef LIMIT @limit"
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.execute_sql(sql, params=params, param_types=types, timeout=self._read_timeout))
        return [catalog_from_row(row) for row in rows]

    def pool_usage(self) -> list[tuple[PoolUsage, int]]:
        """Configured pools, and those only Spanner knows (a process without BATON_POOLS), with their sizes as written."""
        with self.database.snapshot(multi_use=True) as snapshot:
            written = {
                row[0]: (int(row[1]), int(row[2])) for row in snapshot.execute_sql("SELECT PoolName, Size, InUse FROM Pools")
            }
            queued = {
                row[0]: int(row[1]) for row in snapshot.execute_sql("SELECT PoolName, COUNT(*) FROM PoolQueue GROUP BY PoolName")
            }
        names = sorted({*self.pool_sizes, *written})
        return [
            (
                PoolUsage(name, self.pool_sizes.get(name, written.get(name, (0, 0))[0]), written.get(name, (0, 0))[1]),
                queued.get(name, 0),
            )
            for name in names
        ]

    def pool_drift(self, pools: Sequence[str]) -> dict[str, int]:
        """One snapshot: the pools' rows, and their holders counted along the open-jobs index (the pool is in each
        job's Spec). Read only for pools that look stuck (service/pools.py), so its cost is paid rarely."""
        with self.database.snapshot(multi_use=True) as snapshot:
            keys = spanner.KeySet(keys=[[name] for name in pools])
            in_use = {
                row[0]: int(row[1]) for row in snapshot.read("Pools", ("PoolName", "InUse"), keys, timeout=self._read_timeout)
            }
            params, types = {"pools": list(pools)}, {"pools": spanner.param_types.Array(spanner.param_types.STRING)}
            rows = snapshot.execute_sql(_POOL_HOLDERS_SQL, params=params, param_types=types, timeout=self._read_timeout)
            holders = {row[0]: int(row[1]) for row in rows}
        return {name: in_use.get(name, 0) - holders.get(name, 0) for name in pools}

    def queued_without_entry(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        """One snapshot read of the entries the QUEUED ones would have."""
        queued = [job for job in jobs if job.status == JobStatus.QUEUED and job.spec.pool and job.ready_at]
        if not queued:
            return []
        keys = [list(queue_entry_key(entry_of(job))) for job in queued]
        with self.database.snapshot() as snapshot:
            rows = list(snapshot.read("PoolQueue", QUEUE_COLUMNS, spanner.KeySet(keys=keys), timeout=self._read_timeout))
        present = {queue_entry_key(queue_entry_from_row(row)) for row in rows}
        return [job for job in queued if queue_entry_key(entry_of(job)) not in present]
