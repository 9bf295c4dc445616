"""The service as one object: the dependencies plus the use cases, for the composition root and the tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from baton.domain.records import CheckCompletion, CheckRecord, Completion, Continuation, JobRecord, RunRecord
from baton.domain.timing import ReconcilePolicy
from baton.domain.transitions.completion import CompletionResult
from baton.domain.transitions.rerun import VersionChange
from baton.service import backfills, completion, continuations, reconciler, runs, submission
from baton.service.backfills import BackfillProgress
from baton.service.dependencies import Dependencies
from baton.service.ports import SubmitRequest
from baton.service.reconciler import ReconcileReport


class Orchestrator(Dependencies):
    """Each method is one use case; the modules they call hold the logic."""

    def start(
        self, manifest_name: str, params: Mapping[str, Any], select: str | None = None, exclude: str | None = None
    ) -> RunRecord:
        return runs.start(self, manifest_name, params, select, exclude)

    def complete(self, event: Completion | CheckCompletion) -> CompletionResult:
        return completion.complete(self, event)

    def pause(self, manifest_name: str, reason: str) -> None:
        runs.pause(self, manifest_name, reason)

    def resume(self, manifest_name: str) -> list[RunRecord]:
        return runs.resume(self, manifest_name)

    def start_backfill(
        self,
        manifest_name: str,
        first: dt.date,
        last: dt.date,
        param: str | None = None,
        max_active: int = 1,
        select: str | None = None,
        exclude: str | None = None,
        params: Mapping[str, Any] | None = None,
        on_date: backfills.DateWritten | None = None,
    ) -> BackfillProgress:
        return backfills.start_backfill(
            self, manifest_name, first, last, param, max_active, select, exclude, params, on_date=on_date
        )

    def backfill(self, backfill_id: str) -> BackfillProgress:
        return backfills.progress(self, backfill_id)

    def cancel_backfill(self, backfill_id: str) -> BackfillProgress:
        return backfills.cancel_backfill(self, backfill_id)

    def retry_backfill(self, backfill_id: str) -> BackfillProgress:
        return backfills.retry_backfill(self, backfill_id)

    def hold(self, run_id: str, reason: str) -> tuple[RunRecord, bool]:
        return runs.hold(self, run_id, reason)

    def release(self, run_id: str) -> tuple[RunRecord, int]:
        return runs.release(self, run_id)

    def rerun(self, run_id: str, from_key: str) -> tuple[RunRecord, VersionChange]:
        return runs.rerun(self, run_id, from_key)

    def cancel(self, run_id: str) -> RunRecord:
        return runs.cancel(self, run_id)

    def retry(self, run_id: str) -> RunRecord:
        return runs.retry(self, run_id)

    def carry_out(self, item: Continuation) -> None:
        continuations.carry_out(self, item)

    def reconcile(self, policy: ReconcilePolicy | None = None) -> ReconcileReport:
        return reconciler.reconcile(self, policy or ReconcilePolicy())

    def submit(self, run: RunRecord, jobs: list[JobRecord]) -> None:
        submission.submit(self, run, jobs)

    def request_for(self, run: RunRecord, job: JobRecord) -> SubmitRequest:
        return submission.request_for(run, job)

    def check_request(self, run: RunRecord, job: JobRecord, check: CheckRecord) -> SubmitRequest:
        return submission.check_request(run, job, check, self.scratch_dataset)
