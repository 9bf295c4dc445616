"""The reconciler: the scheduler's periodic pass that heals what events did not deliver.

From Spanner's open jobs and BigQuery's own job state it submits what a crash left
READY, completes what finished without an event, repairs stalled runs, abandons
runs whose starter died and finishes backfill starts that stopped. Bounded per invocation, and each job's healing is its own
step: one that fails is logged, counted and left for the next pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from baton import structured_log
from baton.domain.outcomes import completion_of
from baton.domain.records import CheckCompletion, CheckStatus, Completion, JobError, JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.timing import TIMEOUT_REASON, ReconcilePolicy, awaiting_submission, due_for_check, lease_expired
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.hold import accepts_submissions
from baton.domain.transitions.repair import Repair, in_flight, repair_run
from baton.domain.transitions.run_queue import end_events
from baton.domain.transitions.start import abandon_run
from baton.errors import JobRefused, TransientError, one_line
from baton.service.backfills import resume_start
from baton.service.completion import complete
from baton.service.continuations import start_dequeued, submit_released
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record
from baton.service.pools import heal_queued, pump_pools, recount_stuck_pools
from baton.service.ports import RemoteState
from baton.service.runs import close_cancelled, time_out
from baton.service.submission import check_request, record_refusal, request_for, submit

# Dates of stopped backfill starts one pass writes (a run each, a few commits per run), and backfills it looks at.
BACKFILL_DATES_PER_PASS = 100
BACKFILLS_PER_PASS = 10


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
    published_events: int = 0  # run events left in the outbox by a failed publish or a crash
    timed_out: int = 0  # SUBMITTED past their manifest timeout: cancelled in BigQuery, failed with reason `timeout`
    requeued: int = 0  # QUEUED jobs missing from their pool's queue (a crash before admission), admitted again
    pool_released: int = 0  # QUEUED jobs given a slot left free (a capped release, a larger pool)
    pools_recounted: int = 0  # full pools with a queue whose slots in use were more (or fewer) than the jobs holding one
    timed_out_runs: int = 0  # RUNNING past their run_timeout: cancelled, with run.timed_out
    cancels_closed: int = 0  # CANCELLED runs with jobs left open by an interrupted cancel: closed, and cancelled in BigQuery
    backfill_runs_written: int = 0  # dates' runs of a backfill whose start stopped before writing them all
    errors: int = 0  # steps that failed (any error), each logged with its job and left for the next invocation


def reconcile(deps: Dependencies, policy: ReconcilePolicy) -> ReconcileReport:
    """Heal what events missed, from Spanner's open jobs and BigQuery's own job state.

    Bounded: at most `max_pages` pages of `batch` rows per status and `batch` BigQuery
    lookups (of jobs and checks together). Safe beside event delivery and beside another reconciler, since every step
    is an idempotent transition or a jobs.insert under the job's deterministic ID.
    """
    now = deps.clock()
    report = ReconcileReport()
    runs: dict[str, RunRecord | None] = {}
    read_at: dict[str, dt.datetime] = {}  # when each was read: submission re-reads a run only once its read is old
    busy: set[str] = set()  # runs with a job in flight
    lookups = _Lookups(policy.batch)  # jobs.get calls, jobs' and checks' alike

    def live_run(run_id: str) -> RunRecord | None:
        if run_id not in runs:
            read_at[run_id] = deps.clock()
            runs[run_id] = deps.store.get_run(run_id)
        run = runs[run_id]
        return run if run is not None and run.status == RunStatus.RUNNING else None

    def submit_ready(job: JobRecord) -> None:
        run = live_run(job.run_id)
        if accepts_submissions(run) and awaiting_submission(job, now, policy.resubmit_after):  # a held run's wait
            assert run is not None
            report.submitted += submit(deps, run, [job], run_read_at=read_at[job.run_id])

    def settle_submitted(job: JobRecord) -> None:
        if live_run(job.run_id) is not None:
            _settle_submitted(deps, job, report)

    def settle_checks(job: JobRecord) -> None:
        run = live_run(job.run_id)
        if run is not None and job.checks_started_at is not None and due_for_check(now - job.checks_started_at, policy):
            _settle_checks(deps, run, job, report, lookups)

    for job in _open_jobs(deps, JobStatus.READY, policy, report):
        busy.add(job.run_id)
        _heal(report, job, lambda job=job: submit_ready(job))  # type: ignore[misc]

    for job in _open_jobs(deps, JobStatus.SUBMITTED, policy, report):
        busy.add(job.run_id)
        if job.submitted_at is None or job.bigquery_job_id is None:
            continue
        if not due_for_check(now - job.submitted_at, policy) or not lookups.take():
            continue  # a lookup that fails still counts: a failing job cannot make a pass unbounded
        _heal(report, job, lambda job=job: settle_submitted(job))  # type: ignore[misc]

    for job in _open_jobs(deps, JobStatus.CHECKING, policy, report):
        busy.add(job.run_id)
        _heal(report, job, lambda job=job: settle_checks(job))  # type: ignore[misc]

    if deps.store.pool_sizes:
        _isolated(report, "pools", lambda: _pools(deps, policy, now, busy, report))

    _isolated(report, "time out late jobs", lambda: _time_out(deps, policy, now, report))
    _isolated(report, "time out late runs", lambda: _time_out_runs(deps, policy, now, report))
    running: set[str] = set()
    _isolated(report, "repair stalled runs", lambda: running.update(_repair_stalled(deps, policy, now, busy, report)))
    _isolated(report, "close interrupted cancels", lambda: _close_cancelled(deps, policy, busy - running, runs, report))
    _isolated(report, "abandon stuck runs", lambda: _abandon_creating(deps, policy, now, report))
    _isolated(report, "finish stopped backfill starts", lambda: _finish_backfill_starts(deps, policy, now, report))
    _isolated(report, "publish the outbox", lambda: _publish_outbox(deps, policy, now, report))
    structured_log.info("reconciled", **report.__dict__)
    return report


def _pools(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, busy: set[str], report: ReconcileReport) -> None:
    """QUEUED jobs a crash left out of their queue are admitted again, a full pool whose count drifted from the jobs
    holding its slots is recounted, and free slots go to the queues' heads.

    Both are safety nets: on the event path every freed slot is handed on in its own transaction.
    """
    lost = []
    for job in _open_jobs(deps, JobStatus.QUEUED, policy, report):
        busy.add(job.run_id)
        if lease_expired(job.ready_at, now, policy.resubmit_after):
            lost.append(job)
    report.requeued += heal_queued(deps, lost, now)

    def recounted() -> None:
        report.pools_recounted += recount_stuck_pools(deps)

    _isolated(report, "recount full pools", recounted)  # a failure here must not keep free slots from the queues
    report.pool_released += pump_pools(deps, now)


def _time_out(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, report: ReconcileReport) -> None:
    """Jobs past their timeout, found through the deadline index (no new polling: this pass already runs).

    Each is cancelled in BigQuery first, then failed like a job BigQuery failed, with reason `timeout`:
    dependents skipped, the run failed, `job.failed` published. BigQuery's own event of the stopped job
    arrives later and is a duplicate.
    """
    for job in deps.store.jobs_past_deadline(now, policy.batch):
        _heal(report, job, lambda job=job: _time_out_one(deps, job, report))  # type: ignore[misc]


def _time_out_one(deps: Dependencies, job: JobRecord, report: ReconcileReport) -> None:
    assert job.bigquery_job_id is not None
    deps.submitter.cancel(job.bigquery_job_id)
    timeout = job.spec.timeout_seconds
    error = JobError(TIMEOUT_REASON, f"ran past its timeout of {timeout} s; cancelled in BigQuery")
    complete(deps, Completion(job.run_id, job.job_key, job.attempt, job.bigquery_job_id, error=error))
    structured_log.warning("job timed out", run_id=job.run_id, job_key=job.job_key, bigquery_job_id=job.bigquery_job_id)
    report.timed_out += 1


def _time_out_runs(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, report: ReconcileReport) -> None:
    """Runs past their run_timeout, through the run deadline index: each cancelled on its own (runs.time_out)."""
    for run in deps.store.runs_past_deadline(now, policy.batch):
        try:
            if time_out(deps, run.run_id) is not None:
                report.timed_out_runs += 1
        except Exception as exc:  # one run that cannot be timed out must not stop the others
            report.errors += 1
            _log_failure("timing out a run failed; next time", exc, run_id=run.run_id)


class _Lookups:
    """The pass's allowance of BigQuery lookups (`batch`): jobs.get of a job or of a check, each one."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def _open_jobs(deps: Dependencies, status: JobStatus, policy: ReconcilePolicy, report: ReconcileReport) -> Iterator[JobRecord]:
    """Each open job of `status` once per pass, in the store's page order.

    A job whose step fails is not rewritten, so it keeps its place in that order and would
    come first again next pass; the pass goes on with the rest of the page after it, and
    `seen` means no job is tried twice in one pass. A page that cannot be read ends this
    status's scan only.
    """
    token: str | None = None
    seen: set[tuple[str, str]] = set()  # a row updated meanwhile moves to the end of the index
    for _ in range(policy.max_pages):
        try:
            jobs, token = deps.store.jobs_page(status, policy.batch, token)
        except Exception as exc:  # the other statuses and the run repairs still go on
            report.errors += 1
            _log_failure(f"reading {status} jobs", exc)
            return
        report.scanned += len(jobs)
        for job in jobs:
            if (job.run_id, job.job_key) not in seen:
                seen.add((job.run_id, job.job_key))
                yield job
        if token is None:
            return
    report.truncated = True


def _heal(report: ReconcileReport, job: JobRecord, step: Callable[[], object]) -> bool:
    """One job's healing. Any failure, not only a transient one, is logged with the job, counted and
    left for the next pass: one bad job (a 400 on insert, an undecodable answer) never stops the others."""
    try:
        step()
    except Exception as exc:
        report.errors += 1
        _log_failure("reconcile step failed; next time", exc, run_id=job.run_id, job_key=job.job_key, attempt=job.attempt)
        return False
    return True


def _isolated(report: ReconcileReport, what: str, step: Callable[[], object]) -> None:
    try:
        step()
    except Exception as exc:
        report.errors += 1
        _log_failure(f"{what} failed; next time", exc)


def _log_failure(message: str, exc: Exception, **fields: object) -> None:
    """A transient failure is a warning; anything else is an error someone should look at."""
    log = structured_log.warning if isinstance(exc, TransientError) else structured_log.error
    log(message, error_type=type(exc).__name__, error=one_line(str(exc), 500), **fields)


def _settle_submitted(deps: Dependencies, job: JobRecord, report: ReconcileReport) -> None:
    """Ask BigQuery by the deterministic ID; a DONE job goes through the same path as its event would."""
    assert job.bigquery_job_id is not None
    remote = deps.submitter.lookup(job.bigquery_job_id)
    if remote is None:
        run = deps.store.get_run(job.run_id)
        if run is not None and accepts_submissions(run):  # a held run's lost job goes again when released
            try:
                deps.submitter.submit(request_for(run, job))
            except JobRefused as refusal:  # refused for good: the job fails, as on the event path
                error = JobError(refusal.reason, refusal.message)
                record_refusal(deps, Completion(job.run_id, job.job_key, job.attempt, job.bigquery_job_id, error=error))
                return
            report.resubmitted_lost += 1
    elif remote.state == RemoteState.DONE:
        event = completion_of(
            job.run_id, job.job_key, job.attempt, job.bigquery_job_id, check_name=None, error=remote.error, stats=remote.stats
        )
        complete(deps, event, looked_up=True)
        report.healed += 1
    else:
        report.checked_running += 1


def _settle_checks(deps: Dependencies, run: RunRecord, job: JobRecord, report: ReconcileReport, lookups: _Lookups) -> None:
    """A CHECKING job whose check events were lost, or whose checks a crash left unsubmitted."""
    for check in deps.store.list_checks(job.run_id, job.job_key):
        if check.attempt != job.attempt or check.status != CheckStatus.PENDING:
            continue
        if not lookups.take():
            return  # the rest next pass
        remote = deps.submitter.lookup(check.bigquery_job_id)
        if remote is None:
            try:
                deps.submitter.submit(check_request(run, job, check, deps.scratch_dataset))
            except JobRefused as refusal:
                error = JobError(refusal.reason, refusal.message)
                refused = CheckCompletion(job.run_id, job.job_key, check.attempt, check.name, check.bigquery_job_id, error=error)
                record_refusal(deps, refused)
                continue
            report.resubmitted_lost += 1
        elif remote.state == RemoteState.DONE:
            event = completion_of(
                job.run_id,
                job.job_key,
                check.attempt,
                check.bigquery_job_id,
                check_name=check.name,
                error=remote.error,
                stats=remote.stats,
                output_rows=remote.output_rows,
            )
            complete(deps, event, looked_up=True)
            report.healed += 1
        else:
            report.checked_running += 1


def _repair_stalled(
    deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, busy: set[str], report: ReconcileReport
) -> set[str]:
    """RUNNING runs with no job in flight cannot progress on events alone: release, skip or finish from their jobs.

    Oldest first: with more RUNNING runs than `batch`, the newest wait, not the ones that have stalled longest.
    Runs with a job in flight are skipped without counting, so old healthy runs cannot crowd the stalled
    ones out: the read covers `batch` runs beyond the busy ones, and at most `batch` are examined.
    Returns the RUNNING runs it read.
    """
    listed = deps.store.list_runs(limit=policy.batch + len(busy), status=RunStatus.RUNNING, oldest_first=True)
    examined = 0
    for run in listed:
        if run.run_id in busy or run.created_at is None or now - run.created_at < policy.stalled_after:
            continue
        if examined >= policy.batch:
            break
        examined += 1
        try:
            _repair_one(deps, run, now, report)
        except Exception as exc:  # one run that cannot be repaired must not stop the repair of the others
            report.errors += 1
            _log_failure("stalled run repair failed; next time", exc, run_id=run.run_id)
    return {run.run_id for run in listed}


def _repair_one(deps: Dependencies, run: RunRecord, now: dt.datetime, report: ReconcileReport) -> None:
    jobs = deps.store.list_jobs(run.run_id)
    if any(in_flight(job) for job in jobs):
        return  # released after the scans read their pages
    keys = [job.job_key for job in jobs]

    def repaired(tx: RunTransaction) -> tuple[Repair, list[dict[str, Any]]]:
        repair = repair_run(tx, run.run_id, keys, now, deps.store.jobs_per_commit)
        if not repair.finished or repair.run is None:
            return repair, []
        finished = run_event(finished_event_type(repair.run.status), repair.run, now, pricing=deps.pricing)
        return repair, record(tx, [finished, *end_events(tx, repair.run, now)])

    repair, events = deps.store.transact(repaired)
    if repair.missing_rows:
        structured_log.error("stalled run is missing job rows", run_id=run.run_id, missing=repair.missing_rows)
    if not repair.changed or repair.run is None:
        return
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
        publish_recorded(deps, events)
        start_dequeued(deps, events)
    elif repair.released:
        submit_released(deps, fixed, repair.released)


# Interrupted cancels a pass finishes at most: each takes a few commits and a BigQuery cancel per job left open.
CANCELS_CLOSED_PER_PASS = 10


def _close_cancelled(
    deps: Dependencies,
    policy: ReconcilePolicy,
    candidates: set[str],
    read: dict[str, RunRecord | None],
    report: ReconcileReport,
) -> None:
    """Runs with jobs in flight that are not RUNNING: a CANCELLED one is a cancel (an operator's, or a run
    timeout's) stopped between its commits, whose open jobs nothing else would close, since every other step
    skips runs that are not RUNNING. `candidates` leaves out the RUNNING runs the repair step read; `read` holds
    the runs this pass read already (the close itself re-checks the status in its transactions)."""
    closed = 0
    for run_id in sorted(candidates)[: policy.batch]:
        run = read[run_id] if run_id in read else deps.store.get_run(run_id)
        if run is None or run.status != RunStatus.CANCELLED:
            continue
        if closed >= CANCELS_CLOSED_PER_PASS:
            report.truncated = True
            return
        closed += 1
        try:
            if close_cancelled(deps, run_id) is not None:
                report.cancels_closed += 1
        except Exception as exc:  # one run that cannot be closed must not stop the others
            report.errors += 1
            _log_failure("closing an interrupted cancel failed; next time", exc, run_id=run_id)


def _abandon_creating(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, report: ReconcileReport) -> None:
    """CREATING runs whose starter died: marked FAILED, each on its own."""
    stale = [
        run.run_id
        for run in deps.store.list_runs(limit=policy.batch, status=RunStatus.CREATING, oldest_first=True)
        if run.created_at is not None and now - run.created_at >= policy.abandon_creating_after
    ]

    def abandon(tx: RunTransaction, run_id: str) -> tuple[RunRecord | None, list[dict[str, Any]]]:
        run = abandon_run(tx, run_id, now)
        return run, record(tx, end_events(tx, run, now)) if run is not None else []  # a backfill's run may be its last

    for run_id in stale:
        try:
            abandoned, events = deps.store.transact(lambda tx, run_id=run_id: abandon(tx, run_id))  # type: ignore[misc]
            if abandoned is not None:
                report.abandoned_runs += 1
                publish_recorded(deps, events)
                start_dequeued(deps, events)
        except Exception as exc:
            report.errors += 1
            _log_failure("abandoning a run failed; next time", exc, run_id=run_id)


def _finish_backfill_starts(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, report: ReconcileReport) -> None:
    """Backfills whose start stopped before writing every date's run (a crash, a Ctrl-C of the CLI): their other
    dates written, at most BACKFILL_DATES_PER_PASS a pass, each backfill on its own. A start older than a run may
    stay CREATING has stopped; one still going meanwhile only finds its next date written (one ID per date)."""
    room = BACKFILL_DATES_PER_PASS
    for backfill in deps.store.starting_backfills(now - policy.abandon_creating_after, BACKFILLS_PER_PASS):
        if room <= 0:
            report.truncated = True
            return
        try:
            written = resume_start(deps, backfill, room)
        except Exception as exc:
            report.errors += 1
            _log_failure("finishing a backfill's start failed; next time", exc, backfill_id=backfill.backfill_id)
            continue
        report.backfill_runs_written += written
        room -= written


def _publish_outbox(deps: Dependencies, policy: ReconcilePolicy, now: dt.datetime, report: ReconcileReport) -> None:
    """Run events a failed publish or a crash left in the outbox, oldest first. Only those older than the
    resubmit lease: the handler that wrote a younger one may be publishing it right now."""
    events = deps.store.unpublished_events(policy.batch, written_before=now - policy.resubmit_after)
    report.published_events += publish_recorded(deps, events)
