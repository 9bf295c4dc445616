"""Pools in the use cases: admitting a new (or retried) run's waiting jobs, and submitting what freed slots released.

The rules are in domain/transitions/pools.py; this module runs them in transactions and submits after commit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from baton import structured_log
from baton.domain.records import JobRecord, RunRecord
from baton.domain.transitions.pools import Released, pump, recount
from baton.service.continuations import admit_planned, submit_released
from baton.service.dependencies import Dependencies


def submit_pool_released(deps: Dependencies, released: Released) -> None:
    """Submit the QUEUED jobs a freed slot went to: of any run, so grouped by run, each with its own run's params."""
    by_run: dict[str, tuple[RunRecord, list[JobRecord]]] = {}
    for run, job in released:
        by_run.setdefault(run.run_id, (run, []))[1].append(job)
    for run, jobs in by_run.values():
        structured_log.info("released from pool queue", run_id=run.run_id, jobs=[job.job_key for job in jobs])
        submit_released(deps, run, jobs)


def heal_queued(deps: Dependencies, jobs: Sequence[JobRecord], now: dt.datetime) -> int:
    """The reconciler's part: QUEUED jobs that a crash left out of their pool's queue are admitted again.
    Returns how many were."""
    stranded = deps.store.queued_without_entry(jobs)
    by_run: dict[str, list[JobRecord]] = {}
    for job in stranded:
        by_run.setdefault(job.run_id, []).append(job)
    for run_id, waiting in by_run.items():
        run = deps.store.get_run(run_id)
        if run is not None:
            admit_planned(deps, run, waiting)
    return len(stranded)


def recount_stuck_pools(deps: Dependencies) -> int:
    """The reconciler's part: a full pool with jobs waiting is recounted (a leaked slot would keep them waiting
    for good); `pump_pools` then hands what it freed to the queue. Returns how many pools were corrected."""
    stuck = [usage.name for usage, queued in deps.store.pool_usage() if queued and usage.room == 0]
    drifts = deps.store.pool_drift(stuck) if stuck else {}
    corrected = 0
    for name, drift in sorted(drifts.items()):
        fixed = deps.store.transact(lambda tx, name=name, drift=drift: recount(tx, name, drift))  # type: ignore[misc]
        if fixed is not None:
            corrected += 1
            structured_log.warning("pool recounted", pool=name, slots_leaked=drift, in_use=fixed.in_use)
    return corrected


def pump_pools(deps: Dependencies, now: dt.datetime) -> int:
    """The reconciler's part: free slots a capped release or a larger size left unused go to the queue. Returns how many."""
    released: Released = []
    for name in sorted(deps.store.pool_sizes):
        released += deps.store.transact(lambda tx, name=name: pump(tx, name, now))  # type: ignore[misc]
    submit_pool_released(deps, released)
    return len(released)
