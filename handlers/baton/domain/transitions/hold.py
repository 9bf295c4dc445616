"""Holding a run: nothing of it goes to BigQuery until it is released; what is in flight finishes.

A held run stays RUNNING: completions of its in-flight jobs are recorded as usual and
release their dependents (READY), but no job of it is submitted, by the completion, a
continuation or the reconciler, until `baton release`. The one rule that says whether a
run's jobs may be submitted now is `accepts_submissions`, which submission checks right
before each batch of jobs.insert (service/submission_gate.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from baton.domain.records import RunRecord, RunStatus
from baton.domain.transaction import RunTransaction


def accepts_submissions(run: RunRecord | None) -> bool:
    """Jobs of the run may go to BigQuery: it is RUNNING and not held (not cancelled, finished or timed out)."""
    return run is not None and run.status == RunStatus.RUNNING and run.held_at is None


def is_held(run: RunRecord) -> bool:
    """Held and still running: a run that ended while held is simply ended."""
    return run.status == RunStatus.RUNNING and run.held_at is not None


@dataclass(frozen=True)
class HoldChange:
    run: RunRecord | None  # None: no such run
    changed: bool  # False: already so, or the run is not RUNNING (see run.status)


def hold_run(tx: RunTransaction, run_id: str, now: dt.datetime, reason: str) -> HoldChange:
    """RUNNING -> held. Holding a held run again changes nothing (its first reason stays)."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.RUNNING or run.held_at is not None:
        return HoldChange(run, changed=False)
    run = replace(run, held_at=now, hold_reason=reason)
    tx.put_run(run)
    return HoldChange(run, changed=True)


def release_run(tx: RunTransaction, run_id: str) -> HoldChange:
    """Held -> submitting again. The caller then submits the run's READY jobs."""
    run = tx.get_run(run_id)
    if run is None or not is_held(run):
        return HoldChange(run, changed=False)
    run = replace(run, held_at=None, hold_reason=None)
    tx.put_run(run)
    return HoldChange(run, changed=True)
