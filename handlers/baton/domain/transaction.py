"""The one port the transitions need: reads and writes of a single read-write transaction.

Transitions are pure functions of a `RunTransaction`; the store runs them inside
Spanner's `run_in_transaction`, which may call them again on abort, so they must
have no side effect beyond the transaction's own writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from baton.domain.backfill import BackfillRecord
from baton.domain.records import CatalogEntry, CheckRecord, JobRecord, RunRecord, RunStatus


class RunTransaction(Protocol):
    """Reads and writes of one read-write transaction. Reads see this transaction's own writes."""

    def get_run(self, run_id: str) -> RunRecord | None: ...
    def get_job(self, run_id: str, job_key: str) -> JobRecord | None: ...
    def get_jobs(self, run_id: str, job_keys: Sequence[str]) -> list[JobRecord]:
        """Several jobs in one read; missing ones are left out."""
        ...

    def get_dependents(self, run_id: str, job_key: str, after: str | None = None, limit: int | None = None) -> list[str]:
        """The jobs that need `job_key`, in key order; only those after `after`, at most `limit`."""
        ...

    def put_run(self, run: RunRecord) -> None: ...
    def put_job(self, job: JobRecord) -> None: ...
    def get_check(self, run_id: str, job_key: str, attempt: int, name: str) -> CheckRecord | None: ...
    def get_checks(self, run_id: str, job_key: str, attempt: int) -> list[CheckRecord]:
        """The checks of one attempt of one job, by name."""
        ...

    def put_check(self, check: CheckRecord) -> None: ...
    def get_catalog(self, table_ref: str) -> CatalogEntry | None: ...
    def put_catalog(self, entry: CatalogEntry) -> None: ...
    def put_event(self, event: Mapping[str, Any]) -> None:
        """A run event into the outbox, committed with this transaction (domain/run_events.py)."""
        ...

    # Run queues (domain/transitions/run_queue.py).
    def queue_runs(self, queue: str, status: RunStatus, limit: int) -> list[RunRecord]:
        """Runs of `queue` in `status` (an open one), oldest first, at most `limit`; through an index, with this
        transaction's own writes (a run it ended is no longer RUNNING)."""
        ...

    def manifest_paused(self, manifest: str) -> bool:
        """An operator paused the manifest (`baton pause`)."""
        ...

    def get_backfill(self, backfill_id: str) -> BackfillRecord | None: ...
    def put_backfill(self, backfill: BackfillRecord) -> None: ...
    def backfill_runs(self, backfill_id: str) -> list[RunRecord]:
        """Every run of the backfill written so far, with this transaction's own writes."""
        ...
