"""The service's ports: what it needs from storage, BigQuery, messaging and the manifest folder.

Adapters (Spanner, BigQuery, Pub/Sub) implement these at the edge; unit tests
use in-memory fakes that record what happened.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from baton.domain.backfill import BackfillRecord
from baton.domain.lineage import LineageEvent
from baton.domain.records import (
    CatalogEntry,
    CheckRecord,
    Continuation,
    JobError,
    JobRecord,
    JobStats,
    JobStatus,
    NewRun,
    PoolUsage,
    RunRecord,
    RunStatus,
)
from baton.domain.specs import CopySpec, ExtractSpec, LoadSpec
from baton.domain.transaction import RunTransaction
from baton.manifests.model import Manifest

T = TypeVar("T")


class ManifestSource(Protocol):
    """Manifests by name (baton.manifests.loading.ManifestRepository reads them from a folder)."""

    def load(self, name: str) -> Manifest: ...


class RunStore(abc.ABC):
    """Run state. `transact` runs `fn` in one read-write transaction, retrying it on contention."""

    # How many job rows one `transact` may rewrite: operator actions over a whole run split by it.
    jobs_per_commit: int = 2000
    # The environment's pools (name -> size, BATON_POOLS): transactions read them with the slots in use.
    pool_sizes: Mapping[str, int] = MappingProxyType({})

    @abc.abstractmethod
    def transact(self, fn: Callable[[RunTransaction], T]) -> T: ...

    @abc.abstractmethod
    def create_run(self, new_run: NewRun) -> None:
        """Write all rows of a new (CREATING) run, in as many commits as the mutation limit needs. RunExists if a
        run with its ID is written already (nothing is written then)."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None: ...

    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        """Several jobs of a run by key, outside any transaction; missing ones are left out."""
        return self.transact(lambda tx: tx.get_jobs(run_id, job_keys))

    @abc.abstractmethod
    def list_jobs(self, run_id: str) -> list[JobRecord]:
        """Every job of a run: for operators and cancellation, never on the completion path."""

    @abc.abstractmethod
    def list_runs(
        self,
        limit: int = 20,
        manifest: str | None = None,
        status: RunStatus | None = None,
        since: dt.datetime | None = None,
        *,
        oldest_first: bool = False,
    ) -> list[RunRecord]:
        """Runs by creation time, newest first (operators), or oldest first (the reconciler's repairs);
        `since` keeps runs created at or after it."""

    @abc.abstractmethod
    def jobs_in_status(self, status: JobStatus, limit: int) -> list[JobRecord]:
        """Jobs in one status across runs, oldest update first: the reconciler's work list. Jobs of QUEUED runs are
        left out: they wait for their run's start, which submits them."""

    @abc.abstractmethod
    def jobs_past_deadline(self, now: dt.datetime, limit: int) -> list[JobRecord]:
        """SUBMITTED jobs whose timeout ran out before `now`, across runs: the reconciler times them out."""

    @abc.abstractmethod
    def runs_past_deadline(self, now: dt.datetime, limit: int) -> list[RunRecord]:
        """RUNNING runs whose run_timeout ran out before `now`, earliest deadline first: the reconciler cancels them."""

    def jobs_page(self, status: JobStatus, limit: int, page_token: str | None = None) -> tuple[list[JobRecord], str | None]:
        """One page of `jobs_in_status` and the token of the next (None: no more), so the reconciler
        reaches jobs behind long-running ones. A store that cannot page serves the first page only."""
        return self.jobs_in_status(status, limit), None

    @abc.abstractmethod
    def list_checks(self, run_id: str, job_key: str | None = None) -> list[CheckRecord]:
        """Check outcomes of a run (or of one job), every attempt, ordered by job, attempt and name."""

    @abc.abstractmethod
    def list_catalog(self, limit: int = 100, prefix: str | None = None) -> list[CatalogEntry]:
        """Tables Baton wrote, by table reference; `prefix` narrows to e.g. a dataset (`proj.sales.`)."""

    @abc.abstractmethod
    def paused(self) -> dict[str, str]:
        """Paused manifests and why: an operator's `baton pause`. A paused manifest starts no run."""

    @abc.abstractmethod
    def set_paused(self, manifest: str, reason: str | None) -> None:
        """Pause `manifest` with a reason, or resume it with None."""

    @abc.abstractmethod
    def unpublished_events(self, limit: int, written_before: dt.datetime) -> list[dict[str, Any]]:
        """Run events still in the outbox that were written before `written_before`, oldest first."""

    @abc.abstractmethod
    def forget_events(self, keys: Sequence[tuple[str, str]]) -> None:
        """Delete published events from the outbox by (run ID, event ID)."""

    @abc.abstractmethod
    def pool_usage(self) -> list[tuple[PoolUsage, int]]:
        """Each configured pool with its slots in use, and how many jobs its queue holds: `baton pools`."""

    @abc.abstractmethod
    def pool_drift(self, pools: Sequence[str]) -> dict[str, int]:
        """For each of `pools`: its slots counted in use minus the jobs holding one (READY or SUBMITTED, of any run),
        both read at one instant. Not 0 only if a slot leaked, and then it stays what it is while jobs move, since
        every move changes both alike (domain/transitions/pools.py `recount`)."""

    def queued_without_entry(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        """The QUEUED jobs among `jobs` that have no entry in their pool's queue (a crash before admission).
        A store that cannot tell returns them all: admitting a queued job again is harmless."""
        return [job for job in jobs if job.status == JobStatus.QUEUED]

    # Run queues and backfills (domain/transitions/run_queue.py, domain/backfill.py).
    @abc.abstractmethod
    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        """Runs of `queue` in `status` (an open one), oldest first, through an index."""

    @abc.abstractmethod
    def waiting_jobs(self, run_id: str) -> list[JobRecord]:
        """The run's READY and QUEUED jobs, through the open-jobs index: what a run started from its queue
        submits, or admits to its pool."""

    @abc.abstractmethod
    def create_backfill(self, backfill: BackfillRecord) -> None: ...

    @abc.abstractmethod
    def get_backfill(self, backfill_id: str) -> BackfillRecord | None: ...

    @abc.abstractmethod
    def list_backfills(self, limit: int = 20, manifest: str | None = None) -> list[BackfillRecord]:
        """Newest first."""

    @abc.abstractmethod
    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        """Every run of the backfill, oldest (first date) first."""

    @abc.abstractmethod
    def starting_backfills(self, created_by: dt.datetime, limit: int) -> list[BackfillRecord]:
        """RUNNING backfills still `starting` (not every date's run written), created at or before `created_by`,
        oldest first: starts that stopped, for the reconciler to finish."""


@dataclass(frozen=True)
class QueryParameter:
    name: str
    type: str
    value: str | int | float | bool


@dataclass(frozen=True)
class SubmitRequest:
    """One jobs.insert: a query (`sql`), or a load, copy or extract job when its spec is set."""

    job_id: str
    sql: str
    labels: Mapping[str, str]
    parameters: Sequence[QueryParameter] = ()
    destination: str | None = None
    write_disposition: str | None = None
    load: LoadSpec | None = None
    copy: CopySpec | None = None
    extract: ExtractSpec | None = None


class SubmitOutcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_EXISTS = "already_exists"  # a 409: an earlier attempt got there first


class RemoteState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"


@dataclass(frozen=True)
class RemoteJob:
    """BigQuery's own view of a job, for the reconciler."""

    job_id: str
    state: RemoteState
    error_reason: str | None = None
    error_message: str | None = None
    stats: JobStats = field(default_factory=JobStats)
    output_rows: int | None = None  # rows a query returned; only looked up for checks

    @property
    def error(self) -> JobError | None:
        """The job's error, if it failed: jobs.get reports BigQuery's own reason."""
        return JobError(self.error_reason, self.error_message or "") if self.error_reason else None


@dataclass(frozen=True)
class TableSize:
    rows: int | None
    bytes: int | None


class JobSubmitter(abc.ABC):
    @abc.abstractmethod
    def submit(self, request: SubmitRequest) -> SubmitOutcome: ...

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None: ...

    @abc.abstractmethod
    def lookup(self, job_id: str) -> RemoteJob | None:
        """BigQuery's state of a job, None if it does not exist: the reconciler's healing, and the completion
        path when an audit entry lacks what a decision needs (the error's reason, a check's row count)."""

    @abc.abstractmethod
    def sample_rows(self, job_id: str, limit: int) -> list[dict[str, Any]]:
        """The first `limit` rows of a finished query's result (a failed check's offending rows); never waits."""

    @abc.abstractmethod
    def table_size(self, table_ref: str) -> TableSize | None:
        """A table's rows and bytes now (tables.get), None if it does not exist: what the catalog records."""


class EventPublisher(abc.ABC):
    """Run events (started, succeeded, failed, cancelled, job failed) for alerting."""

    # False: this process has nowhere to publish, so events stay in the outbox for one that has (the reconciler).
    delivers = True

    @abc.abstractmethod
    def publish(self, event: Mapping[str, Any]) -> None: ...


class NoEventPublisher(EventPublisher):
    """Used when no run-events topic is configured (an operator's `baton` without BATON_RUN_EVENTS_TOPIC):
    publishes nothing, and says so, so that the events it is handed stay in the outbox."""

    delivers = False

    def publish(self, event: Mapping[str, Any]) -> None:
        raise RuntimeError("no run-events topic configured in this process")


class LineageEmitter(abc.ABC):
    """Where each job's OpenLineage run events go (adapters/openlineage.py): a topic, or a file locally."""

    @abc.abstractmethod
    def emit(self, event: LineageEvent) -> None: ...


class NoLineage(LineageEmitter):
    """No lineage transport configured."""

    def emit(self, event: LineageEvent) -> None:
        return None


# The message attribute that marks a continuation (its kind) among the completion function's messages.
WORK_ATTRIBUTE = "baton_work"


class WorkQueue(abc.ABC):
    """Where continuations go: work a transition could not finish in one commit, handed on by message.

    Deployed, a Pub/Sub topic whose push subscription calls bigquery_job_completed again;
    without one (unit tests), the service runs continuations in-process instead.
    """

    @abc.abstractmethod
    def publish(self, items: Sequence[Continuation]) -> None:
        """Hand the items on; raise TransientError if that failed, so the caller's message is redelivered."""


class DeadLetters(abc.ABC):
    """Where messages go that Baton acknowledges without processing."""

    @abc.abstractmethod
    def put(self, data: bytes, attributes: Mapping[str, str]) -> str | None:
        """Publish one dead letter and return its message ID; raise TransientError if that failed."""


class NoDeadLetters(DeadLetters):
    """No dead-letter topic configured: the handler's log line is the only record."""

    def put(self, data: bytes, attributes: Mapping[str, str]) -> str | None:
        return None
