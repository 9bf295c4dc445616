"""Use cases: start a run, take a completion, cancel. Glue between the pure engine and the ports.

Order matters on every path: commit the state change first, then talk to
BigQuery. A crash in between leaves READY jobs that a redelivered event or the
reconciler submits again under the same job ID, which BigQuery answers with 409.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baton import structured_log
from baton.engine import (
    RESUBMIT_AFTER,
    RETRYABLE_RUN_STATUSES,
    CheckCompletion,
    CheckRecord,
    CheckStatus,
    CompletionResult,
    JobError,
    JobRecord,
    JobStatus,
    RunRecord,
    RunStatus,
    Verdict,
    abandon_run,
    activate_run,
    apply_check_completion,
    apply_completion,
    apply_retry,
    baton_labels,
    cancel_run,
    check_labels,
    mark_submitted,
    new_run_id,
    plan_retry,
    plan_run,
)
from baton.engine import Completion as CompletionEvent
from baton.errors import RunNotFound, RunNotRetryable, TransientError
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
from baton.run_repair import in_flight, repair_run


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class ReconcilePolicy:
    """How the periodic reconciler looks for what events did not deliver (config.py reads overrides)."""

    interval: dt.timedelta = dt.timedelta(minutes=5)  # how often the scheduler calls it
    lost_after: dt.timedelta = dt.timedelta(minutes=5)  # a submitted job is first checked this long after submission
    resubmit_after: dt.timedelta = RESUBMIT_AFTER  # a READY job this old is taken for one a crash left unsubmitted
    stalled_after: dt.timedelta = dt.timedelta(minutes=15)  # a RUNNING run this old with nothing in flight is repaired
    abandon_creating_after: dt.timedelta = dt.timedelta(minutes=15)
    batch: int = 500  # rows per page, and BigQuery lookups per invocation
    max_pages: int = 10  # pages per status per invocation: bounded work


@dataclass
class ReconcileReport:
    submitted: int = 0  # READY jobs nobody submitted (crash, or backoff over)
    healed: int = 0  # DONE in BigQuery, but the completion event never arrived
    resubmitted_lost: int = 0  # SUBMITTED in Spanner, unknown to BigQuery
    checked_running: int = 0
    abandoned_runs: int = 0
    repaired_runs: int = 0  # RUNNING with nothing in flight: released, skipped or finished from their jobs
    scanned: int = 0  # open job rows read
    truncated: bool = False  # more open jobs than one invocation reads; the next one starts again from the oldest
    errors: int = 0  # jobs left for the next invocation after a transient failure


def unsubmitted(job: JobRecord, now: dt.datetime, policy: ReconcilePolicy) -> bool:
    """A READY job that nobody is submitting: its backoff is over, or it was released a while ago.

    Sooner than `resubmit_after`, the handler that released it may still be submitting it; a
    second insert would only be a 409, so a short time costs calls, never correctness.
    """
    if job.status != JobStatus.READY or (job.not_before is not None and job.not_before > now):
        return False
    return job.not_before is not None or job.ready_at is None or now - job.ready_at >= policy.resubmit_after


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

    def complete(self, event: CompletionEvent | CheckCompletion) -> CompletionResult:
        """Record a finished BigQuery job (or data check), then submit what it released and its checks."""
        now = self.clock()
        if isinstance(event, CheckCompletion):
            result = self.store.transact(lambda tx: apply_check_completion(tx, event, now))
        else:
            result = self.store.transact(lambda tx: apply_completion(tx, event, now))
        fields: dict[str, object] = {
            "run_id": event.run_id,
            "job_key": event.job_key,
            "attempt": event.attempt,
            "verdict": str(result.verdict),
        }
        if isinstance(event, CheckCompletion):
            fields.update(check=event.check_name, passed=event.passed, rows=event.rows)
        if result.verdict in (Verdict.UNKNOWN_RUN, Verdict.UNKNOWN_JOB):
            structured_log.warning("completion for a job Baton does not know; acknowledged", **fields)
        else:
            structured_log.info("completion applied", released=[job.job_key for job in result.ready], **fields)
        if result.run is not None and result.verdict in (Verdict.RECORDED, Verdict.RETRYING):
            self._publish_outcome(result, now)
        if result.checks and result.run is not None and result.job is not None:
            self.submit_checks(result.run, result.job, result.checks)
        if result.ready and result.run is not None:
            self.submit(result.run, result.ready)
        return result

    def submit_checks(self, run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord]) -> None:
        """jobs.insert each check under its deterministic ID. Nothing waits on them: each reports by its own event."""
        for check in checks:
            outcome = self.submitter.submit(self.check_request(run, job, check))
            structured_log.info(
                "check submitted",
                run_id=run.run_id,
                job_key=job.job_key,
                attempt=check.attempt,
                check=check.name,
                bigquery_job_id=check.bigquery_job_id,
                outcome=str(outcome),
            )

    def check_request(self, run: RunRecord, job: JobRecord, check: CheckRecord) -> SubmitRequest:
        """The check's compiled query, bound with the run's params like its job, labelled with `baton_check`."""
        spec = next(c for c in job.spec.checks if c.name == check.name)
        labels = {**job.spec.labels, **check_labels(run.environment, run.run_id, job.job_key, check.attempt, check.name)}
        return SubmitRequest(
            job_id=check.bigquery_job_id,
            sql=spec.sql,
            labels=labels,
            parameters=query_parameters(run.params, {**job.spec.params, **spec.params}),
        )

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
                marks = [(job.job_key, job.attempt) for job in done]
                self.store.transact(lambda tx: mark_submitted(tx, run.run_id, marks, now))

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

    def retry(self, run_id: str) -> RunRecord:
        """Re-run the FAILED, SKIPPED and CANCELLED jobs of a finished run, as a continuation of that run.

        Each becomes its next attempt (a new BigQuery job ID), READY if its upstreams all
        succeeded, else PENDING on those that did not; the run is RUNNING again. An operator
        action: it reads every job of the run, which the completion path never does.
        """
        run = self.store.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.status not in RETRYABLE_RUN_STATUSES:
            raise RunNotRetryable(run_id, f"it is {run.status}; only FAILED or CANCELLED runs can be retried")
        jobs = self.store.list_jobs(run_id)
        if len(jobs) != run.total_jobs:
            raise RunNotRetryable(run_id, "it was abandoned before all its jobs were written; start a new run")
        now = self.clock()
        planned = plan_retry(run.environment, jobs, now)
        # Jobs a crashed earlier retry already reset are kept as they are; READY ones are submitted below too.
        leftover = [job for job in jobs if not job.status.terminal]
        if not planned and not leftover:
            raise RunNotRetryable(run_id, "no job is FAILED, SKIPPED or CANCELLED")
        size = max(1, self.store.jobs_per_commit)
        chunks = [planned[start : start + size] for start in range(0, len(planned), size)] or [[]]
        for chunk in chunks[:-1]:
            if self.store.transact(lambda tx, chunk=chunk: apply_retry(tx, run_id, chunk, reopen=False)) is None:  # type: ignore[misc]
                raise RunNotRetryable(run_id, "it changed while being retried")
        reopened = self.store.transact(lambda tx: apply_retry(tx, run_id, chunks[-1], reopen=True))
        if reopened is None:
            raise RunNotRetryable(run_id, "it changed while being retried")
        structured_log.info(
            "run retried",
            run_id=run_id,
            manifest=run.manifest_name,
            jobs=[job.job_key for job in planned],
            previous=str(run.status),
        )
        self.events.publish(run_event("run.retried", reopened, now))
        self.submit(reopened, [job for job in (*planned, *leftover) if job.status == JobStatus.READY])
        return reopened

    def _publish_outcome(self, result: CompletionResult, now: dt.datetime) -> None:
        run, job = result.run, result.job
        assert run is not None and job is not None
        if job.status == JobStatus.FAILED:
            self.events.publish(run_event("job.failed", run, now, job=job, checks=result.failed_checks))
        elif job.status == JobStatus.SUCCEEDED and result.failed_checks:
            self.events.publish(run_event("job.warning", run, now, job=job, checks=result.failed_checks))
        if result.run_finished and run.status != RunStatus.RUNNING:
            structured_log.info("run finished", run_id=run.run_id, status=str(run.status), manifest=run.manifest_name)
            self.events.publish(run_event(finished_event_type(run.status), run, now))

    def _reconcile_checks(self, run: RunRecord, job: JobRecord, report: ReconcileReport) -> None:
        """A CHECKING job whose check events were lost, or whose checks a crash left unsubmitted."""
        for check in self.store.list_checks(job.run_id, job.job_key):
            if check.attempt != job.attempt or check.status != CheckStatus.PENDING:
                continue
            remote = self.submitter.lookup(check.bigquery_job_id)
            if remote is None:
                self.submitter.submit(self.check_request(run, job, check))
                report.resubmitted_lost += 1
            elif remote.state == RemoteState.DONE:
                error = JobError(remote.error_reason, remote.error_message or "") if remote.error_reason else None
                if error is None and remote.output_rows is None:
                    # Passing needs proof of zero rows: an unknown count must not pass a check.
                    error = JobError("unknownResult", "BigQuery did not report how many rows the check returned")
                event = CheckCompletion(
                    job.run_id,
                    job.job_key,
                    check.attempt,
                    check.name,
                    check.bigquery_job_id,
                    remote.output_rows,
                    error,
                    remote.stats,
                )
                self.complete(event)
                report.healed += 1
            else:
                report.checked_running += 1

    def reconcile(self, policy: ReconcilePolicy | None = None) -> ReconcileReport:
        """Heal what events missed, from Spanner's open jobs and BigQuery's own job state.

        Bounded: at most `max_pages` pages of `batch` rows per status and `batch` BigQuery
        lookups. Safe beside event delivery and beside another reconciler, since every step
        is an idempotent transition or a jobs.insert under the job's deterministic ID.
        """
        policy = policy or ReconcilePolicy()
        now = self.clock()
        report = ReconcileReport()
        runs: dict[str, RunRecord | None] = {}
        busy: set[str] = set()  # runs with a job in flight

        def live_run(run_id: str) -> RunRecord | None:
            if run_id not in runs:
                runs[run_id] = self.store.get_run(run_id)
            run = runs[run_id]
            return run if run is not None and run.status == RunStatus.RUNNING else None

        for job in self._open_jobs(JobStatus.READY, policy, report):
            busy.add(job.run_id)
            run = live_run(job.run_id)
            if run is None or not unsubmitted(job, now, policy):
                continue
            if self._heal(report, job, lambda run=run, job=job: self.submit(run, [job])):  # type: ignore[misc]
                report.submitted += 1

        lookups = 0
        for job in self._open_jobs(JobStatus.SUBMITTED, policy, report):
            busy.add(job.run_id)
            if job.submitted_at is None or job.bigquery_job_id is None or live_run(job.run_id) is None:
                continue
            if lookups >= policy.batch or not due_for_check(now - job.submitted_at, policy):
                continue
            lookups += 1
            self._heal(report, job, lambda job=job: self._settle_submitted(job, report))  # type: ignore[misc]

        for job in self._open_jobs(JobStatus.CHECKING, policy, report):
            busy.add(job.run_id)
            run = live_run(job.run_id)
            if run is None or job.checks_started_at is None or not due_for_check(now - job.checks_started_at, policy):
                continue
            self._heal(report, job, lambda run=run, job=job: self._reconcile_checks(run, job, report))  # type: ignore[misc]

        self._repair_stalled(policy, now, busy, report)
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

    def _open_jobs(self, status: JobStatus, policy: ReconcilePolicy, report: ReconcileReport) -> Iterator[JobRecord]:
        token: str | None = None
        seen: set[tuple[str, str]] = set()  # a row updated meanwhile moves to the end of the index
        for _ in range(policy.max_pages):
            jobs, token = self.store.jobs_page(status, policy.batch, token)
            report.scanned += len(jobs)
            for job in jobs:
                if (job.run_id, job.job_key) not in seen:
                    seen.add((job.run_id, job.job_key))
                    yield job
            if token is None:
                return
        report.truncated = True

    def _heal(self, report: ReconcileReport, job: JobRecord, step: Callable[[], object]) -> bool:
        """One job's healing; a transient failure leaves it for the next invocation instead of stopping the rest."""
        try:
            step()
        except TransientError as exc:
            report.errors += 1
            structured_log.warning("reconcile step failed; next time", run_id=job.run_id, job_key=job.job_key, error=str(exc))
            return False
        return True

    def _settle_submitted(self, job: JobRecord, report: ReconcileReport) -> None:
        """Ask BigQuery by the deterministic ID; a DONE job goes through the same path as its event would."""
        assert job.bigquery_job_id is not None
        remote = self.submitter.lookup(job.bigquery_job_id)
        if remote is None:
            run = self.store.get_run(job.run_id)
            if run is not None and run.status == RunStatus.RUNNING:
                self.submitter.submit(self.request_for(run, job))
                report.resubmitted_lost += 1
        elif remote.state == RemoteState.DONE:
            error = JobError(remote.error_reason or "internalError", remote.error_message or "") if remote.error_reason else None
            self.complete(CompletionEvent(job.run_id, job.job_key, job.attempt, job.bigquery_job_id, error, remote.stats))
            report.healed += 1
        else:
            report.checked_running += 1

    def _repair_stalled(self, policy: ReconcilePolicy, now: dt.datetime, busy: set[str], report: ReconcileReport) -> None:
        """RUNNING runs with no job in flight cannot progress on events alone: release, skip or finish from their jobs."""
        for run in self.store.list_runs(limit=policy.batch, status=RunStatus.RUNNING):
            if run.run_id in busy or run.created_at is None or now - run.created_at < policy.stalled_after:
                continue
            jobs = self.store.list_jobs(run.run_id)
            if any(in_flight(job) for job in jobs):
                continue  # released after the scans read their pages
            keys = [job.job_key for job in jobs]
            repair = self.store.transact(lambda tx, run_id=run.run_id, keys=keys: repair_run(tx, run_id, keys, now))  # type: ignore[misc]
            if repair.missing_rows:
                structured_log.error("stalled run is missing job rows", run_id=run.run_id, missing=repair.missing_rows)
            if not repair.changed or repair.run is None:
                continue
            report.repaired_runs += 1
            fixed = repair.run
            structured_log.warning(
                "stalled run repaired",
                run_id=fixed.run_id,
                released=[job.job_key for job in repair.released],
                skipped=repair.skipped,
                status=str(fixed.status),
            )
            if repair.finished:
                self.events.publish(run_event(finished_event_type(fixed.status), fixed, now))
            elif repair.released:
                self.submit(fixed, repair.released)
