"""Use cases: start a run, take a completion, cancel. Glue between the pure engine and the ports.

Order matters on every path: commit the state change first, then talk to
BigQuery. A crash in between leaves READY jobs that a redelivered event or the
reconciler submits again under the same job ID, which BigQuery answers with 409.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baton import structured_log
from baton.engine import Completion as CompletionEvent
from baton.engine import (
    CompletionResult,
    JobError,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    Verdict,
    abandon_run,
    activate_run,
    apply_completion,
    baton_labels,
    cancel_run,
    mark_submitted,
    needs_submission,
    new_run_id,
    plan_run,
)
from baton.errors import RunNotFound
from baton.manifest import ManifestRepository
from baton.ports import (
    EventPublisher,
    JobSubmitter,
    NoEventPublisher,
    RemoteState,
    RunStore,
    SubmitRequest,
    query_parameters,
)
from baton.run_events import finished_event_type, run_event


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ReconcilePolicy:
    """How the periodic reconciler looks for what events did not deliver."""

    interval: dt.timedelta = dt.timedelta(minutes=5)  # how often the scheduler calls it
    lost_after: dt.timedelta = dt.timedelta(minutes=5)  # a submitted job is first checked this long after submission
    abandon_creating_after: dt.timedelta = dt.timedelta(minutes=15)
    batch: int = 500  # rows per status per invocation: bounded work


@dataclass
class ReconcileReport:
    submitted: int = 0  # READY jobs nobody submitted (crash, or backoff over)
    healed: int = 0  # DONE in BigQuery, but the completion event never arrived
    resubmitted_lost: int = 0  # SUBMITTED in Spanner, unknown to BigQuery
    checked_running: int = 0
    abandoned_runs: int = 0


def due_for_check(age: dt.timedelta, policy: ReconcilePolicy) -> bool:
    """Check a running job when its age crosses lost_after x 2^k since the previous pass.

    So a job that runs for T is looked up O(log T) times: the reconciler's cost does
    not grow with how long jobs run.
    """
    if age < policy.lost_after:
        return False
    previous = age - policy.interval
    if previous < policy.lost_after:
        return True
    checkpoint = policy.lost_after
    while checkpoint <= previous:
        checkpoint *= 2
    return checkpoint <= age


class Orchestrator:
    def __init__(
        self,
        store: RunStore,
        submitter: JobSubmitter,
        manifests: ManifestRepository,
        environment: str,
        events: EventPublisher | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.store = store
        self.submitter = submitter
        self.manifests = manifests
        self.environment = environment
        self.events = events or NoEventPublisher()
        self.clock = clock

    def start(self, manifest_name: str, params: Mapping[str, Any]) -> RunRecord:
        """Snapshot the manifest into a new run and submit its roots. Bad input raises before any write."""
        manifest = self.manifests.load(manifest_name)
        now = self.clock()
        bound = manifest.bind_params(params, today=now.date())
        plan = plan_run(manifest, bound, self.environment, new_run_id(), now)
        self.store.create_run(plan)
        run = self.store.transact(lambda tx: activate_run(tx, plan.run.run_id))
        assert run is not None, "a run just created must activate"
        structured_log.info(
            "run started", run_id=run.run_id, manifest=run.manifest_name, jobs=run.total_jobs, version=run.manifest_version
        )
        self.events.publish(run_event("run.started", run, now))
        self.submit(run, [job for job in plan.jobs if job.status == JobStatus.READY])
        return run

    def complete(self, event: CompletionEvent) -> CompletionResult:
        """Record a finished BigQuery job, then submit what it released."""
        now = self.clock()
        result = self.store.transact(lambda tx: apply_completion(tx, event, now))
        fields = {"run_id": event.run_id, "job_key": event.job_key, "attempt": event.attempt, "verdict": str(result.verdict)}
        if result.verdict in (Verdict.UNKNOWN_RUN, Verdict.UNKNOWN_JOB):
            structured_log.warning("completion for a job Baton does not know; acknowledged", **fields)
        else:
            structured_log.info("completion applied", released=[job.job_key for job in result.ready], **fields)
        if result.run is not None and result.verdict in (Verdict.RECORDED, Verdict.RETRYING):
            self._publish_outcome(result, now)
        if result.ready and result.run is not None:
            self.submit(result.run, result.ready)
        return result

    def submit(self, run: RunRecord, jobs: Sequence[JobRecord]) -> None:
        """jobs.insert each job under its deterministic ID, then mark them SUBMITTED in one commit.

        If BigQuery fails part-way, the ones that made it are still marked and the
        error propagates so the caller's message is redelivered for the rest.
        """
        done: list[JobRecord] = []
        try:
            for job in jobs:
                assert job.bigquery_job_id is not None
                outcome = self.submitter.submit(self.request_for(run, job))
                structured_log.info(
                    "job submitted",
                    run_id=run.run_id,
                    job_key=job.job_key,
                    attempt=job.attempt,
                    bigquery_job_id=job.bigquery_job_id,
                    outcome=str(outcome),
                )
                done.append(job)
        finally:
            if done:
                now = self.clock()
                self.store.transact(lambda tx: [mark_submitted(tx, j.run_id, j.job_key, j.attempt, now) for j in done])

    def request_for(self, run: RunRecord, job: JobRecord) -> SubmitRequest:
        assert job.bigquery_job_id is not None
        labels = {**job.spec.labels, **baton_labels(run.environment, run.run_id, job.job_key, job.attempt)}
        return SubmitRequest(
            job_id=job.bigquery_job_id,
            sql=job.spec.sql,
            labels=labels,
            parameters=query_parameters(run.params, job.spec.params),
            destination=job.spec.destination,
            write_disposition=job.spec.write_disposition,
        )

    def cancel(self, run_id: str) -> RunRecord:
        """Stop new submissions at once, then ask BigQuery to cancel what was released."""
        open_keys = [job.job_key for job in self.store.list_jobs(run_id) if not job.status.terminal]
        now = self.clock()
        result = self.store.transact(lambda tx: cancel_run(tx, run_id, open_keys, now))
        if result.run is None:
            raise RunNotFound(run_id)
        if result.changed:
            self.events.publish(run_event("run.cancelled", result.run, now))
            for job_id in result.to_cancel_in_bigquery:
                self.submitter.cancel(job_id)
        return result.run

    def _publish_outcome(self, result: CompletionResult, now: dt.datetime) -> None:
        run, job = result.run, result.job
        assert run is not None and job is not None
        if job.status == JobStatus.FAILED:
            self.events.publish(run_event("job.failed", run, now, job=job))
        if result.run_finished and run.status != RunStatus.RUNNING:
            structured_log.info("run finished", run_id=run.run_id, status=str(run.status), manifest=run.manifest_name)
            self.events.publish(run_event(finished_event_type(run.status), run, now))

    def reconcile(self, policy: ReconcilePolicy | None = None) -> ReconcileReport:
        """Heal what events missed, from Spanner's open jobs and BigQuery's own job state."""
        policy = policy or ReconcilePolicy()
        now = self.clock()
        report = ReconcileReport()
        runs: dict[str, RunRecord | None] = {}

        def live_run(run_id: str) -> RunRecord | None:
            if run_id not in runs:
                runs[run_id] = self.store.get_run(run_id)
            run = runs[run_id]
            return run if run is not None and run.status == RunStatus.RUNNING else None

        for job in self.store.jobs_in_status(JobStatus.READY, policy.batch):
            run = live_run(job.run_id)
            if run is not None and needs_submission(job, now):
                self.submit(run, [job])
                report.submitted += 1

        for job in self.store.jobs_in_status(JobStatus.SUBMITTED, policy.batch):
            if job.submitted_at is None or job.bigquery_job_id is None or live_run(job.run_id) is None:
                continue
            if not due_for_check(now - job.submitted_at, policy):
                continue
            remote = self.submitter.lookup(job.bigquery_job_id)
            if remote is None:
                run = live_run(job.run_id)
                assert run is not None
                self.submitter.submit(self.request_for(run, job))
                report.resubmitted_lost += 1
            elif remote.state == RemoteState.DONE:
                error = (
                    JobError(remote.error_reason or "internalError", remote.error_message or "") if remote.error_reason else None
                )
                self.complete(CompletionEvent(job.run_id, job.job_key, job.attempt, job.bigquery_job_id, error, remote.stats))
                report.healed += 1
            else:
                report.checked_running += 1

        stale = [
            run.run_id
            for run in self.store.list_runs(limit=policy.batch, status=RunStatus.CREATING)
            if run.created_at is not None and now - run.created_at >= policy.abandon_creating_after
        ]
        for run_id in stale:
            if self.store.transact(lambda tx, run_id=run_id: abandon_run(tx, run_id, now)) is not None:  # type: ignore[misc]
                report.abandoned_runs += 1
        structured_log.info("reconciled", **report.__dict__)
        return report
