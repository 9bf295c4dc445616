"""Backfills: one run per date of a range, started `max_active_runs` at a time by their own ends.

`start_backfill` is what the CLI (`baton backfill`) and the start_manifest entry point (a body with a
`backfill` object) both call. Every input is checked before anything is written. The runs wait in the
backfill's queue (domain/transitions/run_queue.py), so each run's end starts the next date in the
transaction that records that end; nothing polls.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from baton import structured_log
from baton.domain.backfill import MAX_ACTIVE_RUNS, BackfillRecord, BackfillStatus, backfill_dates
from baton.domain.naming import new_run_id
from baton.domain.records import RunRecord, RunStatus
from baton.domain.run_events import backfill_event
from baton.domain.specs import BoundParam
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.run_queue import finish_backfill_if_done, reopen_backfill
from baton.domain.transitions.start import plan_run
from baton.errors import BackfillNotFound, InvalidBackfill, RunNotRetryable
from baton.manifests import selection
from baton.manifests.model import Manifest
from baton.service import run_queue, runs
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record


@dataclass(frozen=True)
class BackfillProgress:
    backfill: BackfillRecord
    runs: list[RunRecord]  # one per date written so far, first date first

    def counts(self) -> dict[str, int]:
        """Runs per status, every status present (0 when none)."""
        found = {str(status): 0 for status in RunStatus}
        for run in self.runs:
            found[str(run.status)] += 1
        return found

    def date_of(self, run: RunRecord) -> str:
        bound = run.params.get(self.backfill.param)
        return str(bound.value) if bound is not None else "?"


def new_backfill_id() -> str:
    """`bf-` and random hex: never taken for a run ID (32 hex digits), so `baton status ID` can tell them apart."""
    return f"bf-{secrets.token_hex(12)}"


def is_backfill_id(identifier: str) -> bool:
    return identifier.startswith("bf-")


def start_backfill(
    deps: Dependencies,
    manifest_name: str,
    first: dt.date,
    last: dt.date,
    param: str | None = None,
    max_active: int = 1,
    select: str | None = None,
    exclude: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> BackfillProgress:
    """A backfill of `manifest_name` over [first, last]: one run per date (bound to `param`, default the
    manifest's only DATE param; `params` are the other params, the same for every date), at most `max_active`
    of them RUNNING at once. Bad input raises InvalidBackfill (or the start's own errors) before any write."""
    manifest = deps.manifests.load(manifest_name)
    try:
        dates = backfill_dates(first, last)
    except ValueError as exc:
        raise InvalidBackfill(manifest.name, str(exc)) from None
    if isinstance(max_active, bool) or not 1 <= max_active <= MAX_ACTIVE_RUNS:
        raise InvalidBackfill(manifest.name, f"max active runs must be 1 to {MAX_ACTIVE_RUNS}, got {max_active}")
    param = _date_param(manifest, param)
    given = dict(params or {})
    if param in given:
        raise InvalidBackfill(manifest.name, f"param '{param}' is the backfill's date; it cannot also be given")
    run_queue.refuse_early(deps, manifest.name, manifest.when_paused == "queue", refuse_when_full=False)
    chosen = selection.select(manifest, select, exclude)
    now = deps.clock()
    bound = [manifest.bind_params({**given, param: day.isoformat()}, today=now.date()) for day in dates]
    backfill = BackfillRecord(
        backfill_id=new_backfill_id(),
        manifest_name=manifest.name,
        param=param,
        first_date=first,
        last_date=last,
        max_active_runs=max_active,
        total_runs=len(dates),
        status=BackfillStatus.RUNNING,
        created_at=now,
        select=select,
        exclude=exclude,
    )
    deps.store.create_backfill(backfill)
    structured_log.info(
        "backfill started", backfill_id=backfill.backfill_id, manifest=manifest.name, dates=len(dates), max_active=max_active
    )
    # Creation times a microsecond apart keep the queue in date order, whatever the clock's resolution.
    first_run = _start_date(deps, backfill, chosen, bound[0], now)
    events = deps.store.transact(lambda tx: record(tx, [backfill_event("backfill.started", backfill, first_run, now)]))
    publish_recorded(deps, events)
    created = [first_run]
    for index, day_params in enumerate(bound[1:], start=1):
        created.append(_start_date(deps, backfill, chosen, day_params, now + dt.timedelta(microseconds=index)))
    return BackfillProgress(backfill, created)


def _date_param(manifest: Manifest, param: str | None) -> str:
    dates = manifest.date_params()
    if param is None:
        if len(dates) != 1:
            found = ", ".join(dates) or "none"
            problem = f"name the date param to bind (--param, or `param` in the body); the manifest's DATE params: {found}"
            raise InvalidBackfill(manifest.name, problem)
        return dates[0]
    if param not in manifest.params:
        raise InvalidBackfill(
            manifest.name, f"param '{param}' is not declared (declared: {', '.join(manifest.params) or 'none'})"
        )
    if param not in dates:
        raise InvalidBackfill(manifest.name, f"param '{param}' is {manifest.params[param].type}; a backfill binds a DATE param")
    return param


def _start_date(
    deps: Dependencies,
    backfill: BackfillRecord,
    chosen: selection.Selection,
    params: Mapping[str, BoundParam],
    created: dt.datetime,
) -> RunRecord:
    """One date's run: written, then RUNNING or QUEUED in the backfill's queue (never governed by `concurrency:`)."""
    plan = plan_run(chosen, params, deps.environment, new_run_id(), created)
    run = replace(plan.run, queue=backfill.queue, queue_limit=backfill.max_active_runs, backfill_id=backfill.backfill_id)
    plan = replace(plan, run=run)
    deps.store.create_run(plan)
    # Its start time is now, not its creation time: creation times only keep the queue in date order.
    return run_queue.activate(deps, plan, deps.clock(), refuse_when_full=False, queue_when_paused=True)


def progress(deps: Dependencies, backfill_id: str) -> BackfillProgress:
    backfill = deps.store.get_backfill(backfill_id)
    if backfill is None:
        raise BackfillNotFound(backfill_id)
    return BackfillProgress(backfill, deps.store.backfill_runs(backfill_id))


def cancel_backfill(deps: Dependencies, backfill_id: str) -> BackfillProgress:
    """The backfill ends CANCELLED first (so no run's end starts another date), then each open run is cancelled,
    the queued ones before the running ones."""
    before = progress(deps, backfill_id)
    now = deps.clock()
    if not before.backfill.status.terminal:

        def cancelled(tx: RunTransaction) -> list[dict[str, Any]]:
            backfill = tx.get_backfill(backfill_id)
            if backfill is None or backfill.status.terminal:
                return []
            backfill = replace(backfill, status=BackfillStatus.CANCELLED, finished_at=now)
            tx.put_backfill(backfill)
            return record(tx, [backfill_event("backfill.finished", backfill, before.runs[0], now)] if before.runs else [])

        publish_recorded(deps, deps.store.transact(cancelled))
    open_runs = [run for run in before.runs if not run.status.terminal]
    for run in sorted(open_runs, key=lambda run: run.status != RunStatus.QUEUED):
        runs.cancel(deps, run.run_id)
    structured_log.warning("backfill cancelled", backfill_id=backfill_id, cancelled_runs=len(open_runs))
    return progress(deps, backfill_id)


def retry_backfill(deps: Dependencies, backfill_id: str) -> BackfillProgress:
    """Retry every FAILED or CANCELLED run of a finished backfill (each its own `baton retry`), at most
    `max_active_runs` RUNNING at once; the backfill is RUNNING again until they have ended."""
    before = progress(deps, backfill_id)
    if not before.backfill.status.terminal:
        raise InvalidBackfill(before.backfill.manifest_name, f"{backfill_id} is RUNNING; retry it once it has ended")
    failed = [run for run in before.runs if run.status in (RunStatus.FAILED, RunStatus.CANCELLED)]
    if not failed:
        raise InvalidBackfill(before.backfill.manifest_name, f"{backfill_id} has no FAILED or CANCELLED run to retry")
    retried = 0
    for run in failed:  # reopened while the backfill is still ended, so no run's end can finish it early
        try:
            runs.retry(deps, run.run_id, reopens_backfill=False)
            retried += 1
        except RunNotRetryable as exc:
            structured_log.warning("backfill run not retried", backfill_id=backfill_id, run_id=run.run_id, reason=exc.reason)
    now = deps.clock()

    deps.store.transact(lambda tx: reopen_backfill(tx, backfill_id))
    run_queue.fill_queue(deps, before.backfill.queue)

    def finished(tx: RunTransaction) -> list[dict[str, Any]]:  # every retried run may have ended already
        backfill = finish_backfill_if_done(tx, backfill_id, now)
        return record(tx, [backfill_event("backfill.finished", backfill, before.runs[-1], now)] if backfill else [])

    publish_recorded(deps, deps.store.transact(finished))
    structured_log.info("backfill retried", backfill_id=backfill_id, retried=retried)
    return progress(deps, backfill_id)
