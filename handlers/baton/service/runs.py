"""Run use cases an operator or a scheduler asks for: start, cancel, retry.

Order matters on every path: commit the state change first, then talk to
BigQuery. A crash in between leaves READY jobs that a redelivered event or the
reconciler submits again under the same job ID, which BigQuery answers with 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baton import structured_log
from baton.domain.naming import new_run_id
from baton.domain.records import JobStatus, RunRecord
from baton.domain.run_events import run_event
from baton.domain.transitions.cancel import cancel_run
from baton.domain.transitions.retry import RETRYABLE_RUN_STATUSES, apply_retry, plan_retry
from baton.domain.transitions.start import activate_run, plan_run
from baton.errors import RunNotFound, RunNotRetryable
from baton.service.continuations import submit_released
from baton.service.dependencies import Dependencies


def start(deps: Dependencies, manifest_name: str, params: Mapping[str, Any]) -> RunRecord:
    """Snapshot the manifest into a new run and submit its roots. Bad input raises before any write."""
    manifest = deps.manifests.load(manifest_name)
    now = deps.clock()
    bound = manifest.bind_params(params, today=now.date())
    plan = plan_run(manifest, bound, deps.environment, new_run_id(), now)
    deps.store.create_run(plan)
    run = deps.store.transact(lambda tx: activate_run(tx, plan.run.run_id))
    assert run is not None, "a run just created must activate"
    structured_log.info(
        "run started", run_id=run.run_id, manifest=run.manifest_name, jobs=run.total_jobs, version=run.manifest_version
    )
    deps.events.publish(run_event("run.started", run, now))
    submit_released(deps, run, [job for job in plan.jobs if job.status == JobStatus.READY])
    return run


def cancel(deps: Dependencies, run_id: str) -> RunRecord:
    """Stop new submissions at once, then ask BigQuery to cancel what was released.

    The first commit makes the run CANCELLED, so no completion releases anything more;
    its open jobs are closed `jobs_per_commit` at a time. Cancelling a CANCELLED run
    again closes what an interrupted cancel left open.
    """
    open_keys = [job.job_key for job in deps.store.list_jobs(run_id) if not job.status.terminal]
    now = deps.clock()
    size = max(1, deps.store.jobs_per_commit)
    chunks = [open_keys[start : start + size] for start in range(0, len(open_keys), size)] or [[]]
    to_cancel: list[str] = []
    run: RunRecord | None = None
    changed = False
    for chunk in chunks:
        result = deps.store.transact(lambda tx, chunk=chunk: cancel_run(tx, run_id, chunk, now))  # type: ignore[misc]
        if result.run is None:
            raise RunNotFound(run_id)
        run, changed = result.run, changed or result.changed
        to_cancel += result.to_cancel_in_bigquery
    assert run is not None
    if changed:
        deps.events.publish(run_event("run.cancelled", run, now, pricing=deps.pricing))
    for job_id in to_cancel:
        deps.submitter.cancel(job_id)
    return run


def retry(deps: Dependencies, run_id: str) -> RunRecord:
    """Re-run the FAILED, SKIPPED and CANCELLED jobs of a finished run, as a continuation of that run.

    Each becomes its next attempt (a new BigQuery job ID), READY if its upstreams all
    succeeded, else PENDING on those that did not; the run is RUNNING again. An operator
    action: it reads every job of the run, which the completion path never does.
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
    reopened = deps.store.transact(lambda tx: apply_retry(tx, run_id, chunks[-1], reopen=True))
    if reopened is None:
        raise RunNotRetryable(run_id, "it changed while being retried")
    structured_log.info(
        "run retried", run_id=run_id, manifest=run.manifest_name, jobs=[job.job_key for job in planned], previous=str(run.status)
    )
    deps.events.publish(run_event("run.retried", reopened, now))
    submit_released(deps, reopened, [job for job in (*planned, *leftover) if job.status == JobStatus.READY])
    return reopened
