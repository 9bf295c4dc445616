"""Continuations: the rest of a transition that did not fit in one commit, handed on and carried out.

A completion that releases 10,000 jobs releases `jobs_per_commit` of them, submits a
few itself, and hands the rest on: release steps and submit batches, each a message
that invokes the function again and finishes in bounded time. Nothing polls and
nothing waits; a lost message is healed like a lost event (the reconciler submits
READY jobs nobody submitted, and repairs a run whose release stopped).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from baton import structured_log
from baton.domain.limits import SUBMIT_BATCH, SUBMIT_INLINE
from baton.domain.records import Continuation, JobRecord, JobStatus, RunRecord
from baton.domain.run_events import finished_event_type, run_event
from baton.domain.timing import due
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.failure import SkipStep, continue_skip
from baton.domain.transitions.hold import accepts_submissions
from baton.domain.transitions.pools import admit_waiting
from baton.domain.transitions.release import continue_release
from baton.domain.transitions.run_queue import end_events
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record
from baton.service.submission import submit


def submit_released(deps: Dependencies, run: RunRecord, jobs: Sequence[JobRecord]) -> None:
    """Submit up to SUBMIT_INLINE jobs here; hand the rest on in batches, first, so a failure here loses none."""
    rest = [job.job_key for job in jobs[SUBMIT_INLINE:]]
    batches = [
        Continuation("submit", run.run_id, job_keys=tuple(rest[start : start + SUBMIT_BATCH]))
        for start in range(0, len(rest), SUBMIT_BATCH)
    ]
    hand_on(deps, batches)
    submit(deps, run, jobs[:SUBMIT_INLINE])


def admit_planned(deps: Dependencies, run: RunRecord, jobs: Sequence[JobRecord]) -> None:
    """After a start, retry or rerun activated `run`: admit its QUEUED jobs, `jobs_per_commit` per transaction,
    and submit those given a slot. A crash part-way leaves QUEUED jobs without a queue entry: `heal_queued`."""
    keys = [job.job_key for job in jobs if job.status == JobStatus.QUEUED]
    size = max(1, deps.store.jobs_per_commit)
    for start in range(0, len(keys), size):
        chunk = keys[start : start + size]
        now = deps.clock()
        ready = deps.store.transact(lambda tx, chunk=chunk, now=now: admit_waiting(tx, run.run_id, chunk, now))  # type: ignore[misc]
        if ready:
            submit_released(deps, run, ready)


def start_dequeued(deps: Dependencies, events: Sequence[Mapping[str, Any]]) -> None:
    """After a commit: submit the READY jobs, and admit the QUEUED ones to their pools, of each run the
    transaction started from its queue (its run.started event with `from_queue`, domain/transitions/run_queue.py).
    A crash before this leaves READY jobs of a RUNNING run, which the reconciler submits, and QUEUED jobs without
    a queue entry, which it admits, as after any crash between a release and its submission."""
    now = deps.clock()
    for event in events:
        if event.get("type") != "run.started" or not event.get("from_queue"):
            continue
        run = deps.store.get_run(str(event["run_id"]))
        if run is None or not accepts_submissions(run):
            continue
        structured_log.info("queued run started", run_id=run.run_id, manifest=run.manifest_name, queue=run.queue)
        waiting = deps.store.waiting_jobs(run.run_id)
        submit_released(deps, run, [job for job in waiting if job.status == JobStatus.READY and due(job, now)])
        admit_planned(deps, run, waiting)  # its pooled roots: a slot, or a place in their pool's queue


def hand_on(deps: Dependencies, items: Sequence[Continuation]) -> None:
    """Publish continuations; with no work queue configured, carry them out here, one after another."""
    if not items:
        return
    if deps.work is not None:
        deps.work.publish(items)
        return
    pending = deque(items)
    while pending:
        pending.extend(_carry_out(deps, pending.popleft()))


def carry_out(deps: Dependencies, item: Continuation) -> None:
    """One continuation delivered by message: do its bounded step and hand on what follows."""
    hand_on(deps, _carry_out(deps, item))


def _carry_out(deps: Dependencies, item: Continuation) -> list[Continuation]:
    """Do one bounded step; return the continuations that follow (not yet handed on)."""
    now = deps.clock()
    limit = deps.store.jobs_per_commit
    if item.kind == "submit":
        _submit_batch(deps, item)
        return []
    if item.kind == "release":

        def release(tx: RunTransaction) -> tuple[RunRecord | None, list[JobRecord], Continuation | None]:
            released, following = continue_release(tx, item, now, limit)
            return (tx.get_run(item.run_id) if released else None), released, following

        run, released, following = deps.store.transact(release)
        structured_log.info("release continued", run_id=item.run_id, job_key=item.job_key, released=len(released))
        if run is not None and released:
            submit_released(deps, run, released)
        return [following] if following else []
    if item.kind == "skip":

        def skip(tx: RunTransaction) -> tuple[SkipStep | None, list[dict[str, Any]]]:
            step = continue_skip(tx, item, now, limit)
            if step is None or not step.run.status.terminal:
                return step, []
            finished = run_event(finished_event_type(step.run.status), step.run, now, pricing=deps.pricing)
            return step, record(tx, [finished, *end_events(tx, step.run, now)])

        step, events = deps.store.transact(skip)
        if step is None:
            return []
        structured_log.info("skip continued", run_id=item.run_id, cause=item.cause, skipped=len(step.skipped))
        if step.run.status.terminal:
            structured_log.info("run finished", run_id=step.run.run_id, status=str(step.run.status))
        publish_recorded(deps, events)
        start_dequeued(deps, events)
        return [step.continuation] if step.continuation else []
    raise ValueError(f"unknown continuation kind '{item.kind}'")


def _submit_batch(deps: Dependencies, item: Continuation) -> None:
    """Submit the batch's jobs that are still READY and due; a redelivered batch is a 409 per job at worst."""
    read_at = deps.clock()
    run = deps.store.get_run(item.run_id)
    if run is None or not accepts_submissions(run):
        return  # cancelled or held: what stays READY is closed by the cancel, or submitted by the release
    now = deps.clock()
    jobs = [job for job in deps.store.get_jobs(item.run_id, item.job_keys) if job.status == JobStatus.READY and due(job, now)]
    submit(deps, run, jobs, run_read_at=read_at)
