"""Run use cases an operator or a scheduler asks for: start, cancel, retry, hold and release, and a run's timeout.

Order matters on every path: commit the state change first, then talk to
BigQuery. A crash in between leaves READY jobs that a redelivered event or the
reconciler submits again under the same job ID, which BigQuery answers with 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from baton import structured_log
from baton.domain.naming import new_run_id
from baton.domain.records import JobStatus, RunRecord, RunStatus
from baton.domain.run_events import run_event
from baton.domain.timing import due
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.cancel import CancelResult, cancel_run
from baton.domain.transitions.hold import HoldChange, hold_run, release_run
from baton.domain.transitions.pools import Released
from baton.domain.transitions.rerun import VersionChange, plan_rerun, version_change
from baton.domain.transitions.retry import RETRYABLE_RUN_STATUSES, apply_retry, plan_retry
from baton.domain.transitions.run_queue import admit, end_events, reopen_backfill
from baton.domain.transitions.run_timeout import TIMED_OUT_EVENT, rearmed, time_out_run, with_run_timeout
from baton.domain.transitions.start import plan_run
from baton.errors import CancelIncomplete, CannotRerun, RunNotFound, RunNotHoldable, RunNotRetryable, one_line
from baton.manifests import selection
from baton.service import run_queue
from baton.service.continuations import admit_planned, start_dequeued, submit_released
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record
from baton.service.pools import submit_pool_released


def start(
    deps: Dependencies, manifest_name: str, params: Mapping[str, Any], select: str | None = None, exclude: str | None = None
) -> RunRecord:
    """Snapshot the manifest (or the part `select` and `exclude` leave) into a new run and submit its roots, or
    leave it QUEUED behind the manifest's run in progress (`concurrency:`) or while it is paused (`when_paused:`).

    Bad input, and a refusal the manifest asks for, raise before any write.
    """
    manifest = deps.manifests.load(manifest_name)
    refuse_when_full = manifest.concurrency == "skip"
    queue_when_paused = manifest.when_paused == "queue"
    run_queue.refuse_early(deps, manifest.name, queue_when_paused, refuse_when_full)
    now = deps.clock()
    bound = manifest.bind_params(params, today=now.date())
    plan = plan_run(selection.select(manifest, select, exclude), bound, deps.environment, new_run_id(), now)
    plan = replace(plan, run=replace(plan.run, queue=manifest.name, queue_limit=manifest.queue_limit))
    plan = with_run_timeout(plan, manifest.run_timeout_seconds)
    deps.store.create_run(plan)
    return run_queue.activate(deps, plan, now, refuse_when_full=refuse_when_full, queue_when_paused=queue_when_paused)


def pause(deps: Dependencies, manifest_name: str, reason: str) -> None:
    """Scheduled and manual starts of the manifest are refused until it is resumed; runs in flight go on."""
    deps.manifests.load(manifest_name)  # an unknown or invalid manifest is refused, not paused
    deps.store.set_paused(manifest_name, reason)
    structured_log.warning("manifest paused", manifest=manifest_name, reason=reason)


def resume(deps: Dependencies, manifest_name: str) -> list[RunRecord]:
    """Starts go through again; the runs queued while paused start now, as their queues have room. The runs started."""
    deps.store.set_paused(manifest_name, None)
    queues = [
        manifest_name,
        *(b.queue for b in deps.store.list_backfills(limit=1000, manifest=manifest_name) if not b.status.terminal),
    ]
    started = [run for queue in queues for run in run_queue.fill_queue(deps, queue)]
    structured_log.info("manifest resumed", manifest=manifest_name, started=[run.run_id for run in started])
    return started


def hold(deps: Dependencies, run_id: str, reason: str) -> tuple[RunRecord, bool]:
    """Submit nothing more of a RUNNING run until it is released; what is in flight finishes and is recorded,
    and what it releases waits READY (domain/transitions/hold.py). Returns the run and whether it was not held yet."""
    now = deps.clock()

    def held(tx: RunTransaction) -> tuple[HoldChange, list[dict[str, Any]]]:
        change = hold_run(tx, run_id, now, reason)
        if not change.changed or change.run is None:
            return change, []
        return change, record(tx, [run_event("run.held", change.run, now, reason=reason)])

    change, events = deps.store.transact(held)
    run = _holdable(change, run_id, "held")
    if change.changed:
        structured_log.warning("run held", run_id=run_id, manifest=run.manifest_name, reason=reason)
    publish_recorded(deps, events)
    return run, change.changed


def release(deps: Dependencies, run_id: str) -> tuple[RunRecord, int]:
    """Let a held run go on: every READY job of it whose backoff is over is submitted (inline up to
    SUBMIT_INLINE, the rest in continuations); later ones the reconciler submits when due.
    Returns the run and how many jobs were handed to submission. Releasing a run not held changes nothing."""
    now = deps.clock()

    def released(tx: RunTransaction) -> tuple[HoldChange, list[dict[str, Any]]]:
        change = release_run(tx, run_id)
        if not change.changed or change.run is None:
            return change, []
        return change, record(tx, [run_event("run.released", change.run, now)])

    change, events = deps.store.transact(released)
    run = _holdable(change, run_id, "released")
    publish_recorded(deps, events)
    if not change.changed:
        return run, 0
    ready = [job for job in deps.store.list_jobs(run_id) if job.status == JobStatus.READY and due(job, now)]
    structured_log.info("run released", run_id=run_id, manifest=run.manifest_name, ready=len(ready))
    submit_released(deps, run, ready)
    return run, len(ready)


def _holdable(change: HoldChange, run_id: str, action: str) -> RunRecord:
    if change.run is None:
        raise RunNotFound(run_id)
    if change.run.status != RunStatus.RUNNING:
        raise RunNotHoldable(run_id, action, f"it is {change.run.status}; only a RUNNING run is held and released")
    return change.run


def rerun(deps: Dependencies, run_id: str, from_key: str) -> tuple[RunRecord, VersionChange]:
    """A new run of the manifest's current version with `run_id`'s params: `from_key` and what follows it run,
    the rest is reused from `run_id` (domain/transitions/rerun.py). Returns it and what changed in the manifest."""
    earlier_run = deps.store.get_run(run_id)
    if earlier_run is None:
        raise RunNotFound(run_id)
    if not earlier_run.status.terminal:
        raise CannotRerun(run_id, f"it is {earlier_run.status}; rerun a finished run (or cancel this one first)")
    manifest = deps.manifests.load(earlier_run.manifest_name)
    if all(spec.key != from_key for spec in manifest.jobs):
        raise CannotRerun(run_id, f"job '{from_key}' is not in manifest '{manifest.name}' as it is now")
    earlier = {job.job_key: job for job in deps.store.list_jobs(run_id)}
    change = version_change([job.spec for job in earlier.values()], manifest.jobs)
    now = deps.clock()
    plan = plan_rerun(manifest, earlier_run, earlier, from_key, deps.environment, new_run_id(), now)
    plan = replace(plan, run=replace(plan.run, queue=manifest.name, queue_limit=manifest.queue_limit))
    plan = with_run_timeout(plan, manifest.run_timeout_seconds)
    deps.store.create_run(plan)
    run = run_queue.activate(deps, plan, now, refuse_when_full=False, queue_when_paused=True)
    structured_log.info("rerun", run_id=run.run_id, rerun_of=run_id, rerun_from=from_key, reused=run.succeeded_jobs)
    return run, change


def cancel(deps: Dependencies, run_id: str) -> RunRecord:
    """Stop new submissions at once, then ask BigQuery to cancel what was released (`_cancel`)."""
    run = _cancel(deps, run_id, timed_out=False)
    assert run is not None
    return run


def time_out(deps: Dependencies, run_id: str) -> RunRecord | None:
    """Cancel a run past its run_timeout, as `cancel` does, with the reason and run.timed_out before run.cancelled.

    None when it is not (any more) RUNNING past its deadline: it ended, or a retry gave it a new one.
    """
    return _cancel(deps, run_id, timed_out=True)


def close_cancelled(deps: Dependencies, run_id: str) -> RunRecord | None:
    """Close what an interrupted cancel (an operator's, or a timeout's) left open in a CANCELLED run, and cancel
    those jobs in BigQuery: the reconciler's heal. Unlike a second `baton cancel` it does not ask BigQuery again
    about jobs already closed, and it never cancels a run (a retry may have reopened it). None unless CANCELLED."""
    run = _cancel(deps, run_id, timed_out=False, resume=True)
    return run if run is not None and run.status == RunStatus.CANCELLED else None


def _cancel(deps: Dependencies, run_id: str, timed_out: bool, *, resume: bool = False) -> RunRecord | None:
    """Stop new submissions at once, then ask BigQuery to cancel what was released.

    The first commit makes the run CANCELLED, so no completion releases anything more;
    its open jobs are closed `jobs_per_commit` at a time. Spanner goes first because it
    stops new submissions; a BigQuery cancel that then fails is logged, and CancelIncomplete
    names those jobs. Cancelling a CANCELLED run again closes what an interrupted cancel
    left open and asks BigQuery once more to cancel every job of it that was submitted
    (a job that already ended answers 400, which is nothing to do).
    """
    jobs = deps.store.list_jobs(run_id)
    open_keys = [job.job_key for job in jobs if not job.status.terminal]
    now = deps.clock()
    size = max(1, deps.store.jobs_per_commit)
    chunks = [open_keys[start : start + size] for start in range(0, len(open_keys), size)] or [[]]
    to_cancel: list[str] = []
    pool_released: Released = []
    events: list[dict[str, Any]] = []
    run: RunRecord | None = None
    changed = False

    def cancelled(tx: RunTransaction, chunk: list[str], first: bool) -> tuple[CancelResult, list[dict[str, Any]]]:
        # A timeout's first step re-checks the deadline in the transaction; its later chunks close jobs of the CANCELLED run.
        if timed_out and first:
            result = time_out_run(tx, run_id, chunk, now)
        else:
            result = cancel_run(tx, run_id, chunk, now, only_cancelled=resume)
        if not result.changed or result.run is None:
            return result, []
        ended = [run_event("run.cancelled", result.run, now, pricing=deps.pricing)]
        if timed_out:
            ended.insert(0, run_event(TIMED_OUT_EVENT, result.run, now, reason=result.run.end_reason))
        return result, record(tx, [*ended, *end_events(tx, result.run, now)])

    for index, chunk in enumerate(chunks):
        result, recorded = deps.store.transact(lambda tx, chunk=chunk, first=index == 0: cancelled(tx, chunk, first))  # type: ignore[misc]
        if result.run is None:
            raise RunNotFound(run_id)
        if timed_out and index == 0 and not result.changed:
            return None  # ended, or retried with a new deadline, since the index was read
        run, changed = result.run, changed or result.changed
        to_cancel += result.to_cancel_in_bigquery
        pool_released += result.pool_released
        events += recorded
    assert run is not None
    if timed_out:
        structured_log.warning("run timed out; cancelled", run_id=run_id, manifest=run.manifest_name, reason=run.end_reason)
    if not changed and not resume and run.status == RunStatus.CANCELLED:  # again: all of it BigQuery may still run
        to_cancel += [str(job.bigquery_job_id) for job in jobs if job.status == JobStatus.CANCELLED and job.submitted_at]
    refused: list[str] = []
    for job_id in dict.fromkeys(to_cancel):  # first: stopping BigQuery matters more than the event
        try:
            deps.submitter.cancel(job_id)
        except Exception as exc:  # any refusal: record it and go on with the others
            structured_log.error("BigQuery did not accept a cancel", run_id=run_id, bigquery_job_id=job_id, error=str(exc))
            refused.append(f"{job_id} ({one_line(str(exc), 200)})")
    publish_recorded(deps, events)
    submit_pool_released(deps, pool_released)  # the slots this run gave up, to other runs' queued jobs
    start_dequeued(deps, events)
    if refused:
        raise CancelIncomplete(run_id, refused)
    return run


def retry(deps: Dependencies, run_id: str, *, reopens_backfill: bool = True) -> RunRecord:
    """Re-run the FAILED, SKIPPED and CANCELLED jobs of a finished run, as a continuation of that run.

    Each becomes its next attempt (a new BigQuery job ID), READY if its upstreams all
    succeeded, else PENDING on those that did not; the run is RUNNING again, and so is its
    backfill if it had ended (`reopens_backfill`: False when the backfill's own retry reopens it
    once, after all its runs). An operator action: it reads every job of the run, which the
    completion path never does.
    """
    run = deps.store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    if run.status not in RETRYABLE_RUN_STATUSES:
        raise RunNotRetryable(run_id, f"it is {run.status}; only FAILED or CANCELLED runs can be retried")
    jobs = deps.store.list_jobs(run_id)
    if len(jobs) != run.total_jobs:
        raise RunNotRetryable(run_id, "it was abandoned before all its jobs were written; start a new run")
    now = deps.clock()
    planned = plan_retry(run.environment, jobs, now)
    # Jobs a crashed earlier retry already reset are kept as they are; READY ones are submitted below too.
    leftover = [job for job in jobs if not job.status.terminal]
    if not planned and not leftover:
        raise RunNotRetryable(run_id, "no job is FAILED, SKIPPED or CANCELLED")
    size = max(1, deps.store.jobs_per_commit)
    chunks = [planned[start : start + size] for start in range(0, len(planned), size)] or [[]]
    for chunk in chunks[:-1]:
        if deps.store.transact(lambda tx, chunk=chunk: apply_retry(tx, run_id, chunk, reopen=False)) is None:  # type: ignore[misc]
            raise RunNotRetryable(run_id, "it changed while being retried")

    def reopen(tx: RunTransaction) -> tuple[RunRecord | None, list[dict[str, Any]]]:
        run = apply_retry(tx, run_id, chunks[-1], reopen=True)
        if run is None:
            return None, []
        tx.put_run(rearmed(run, now))  # a full run_timeout from now, not held
        if reopens_backfill and run.backfill_id is not None:
            reopen_backfill(tx, run.backfill_id)
        admitted = admit(tx, run_id, now)  # RUNNING again, or QUEUED behind its queue
        run = admitted.run if admitted is not None else run
        return run, record(tx, [run_event("run.retried", run, now)])

    reopened, events = deps.store.transact(reopen)
    if reopened is None:
        raise RunNotRetryable(run_id, "it changed while being retried")
    structured_log.info(
        "run retried", run_id=run_id, manifest=run.manifest_name, jobs=[job.job_key for job in planned], previous=str(run.status)
    )
    publish_recorded(deps, events)
    if reopened.status == RunStatus.RUNNING:
        submit_released(deps, reopened, [job for job in (*planned, *leftover) if job.status == JobStatus.READY])
        admit_planned(deps, reopened, [*planned, *leftover])
    return reopened
