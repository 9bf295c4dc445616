"""Backfills: one run per date of a range, started `max_active_runs` at a time by their own ends.

`start_backfill` is what the CLI (`baton backfill`) and the start_manifest entry point (a body with a
`backfill` object) both call. Every input is checked before anything is written. The runs wait in the
backfill's queue (domain/transitions/run_queue.py), so each run's end starts the next date in the
transaction that records that end; nothing polls. A start that stops before its last date is finished by
the reconciler (`resume_start`), from the backfill's row.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from baton import structured_log
from baton.domain.backfill import MAX_ACTIVE_RUNS, BackfillRecord, BackfillStatus, backfill_dates
from baton.domain.naming import backfill_run_id
from baton.domain.records import RunRecord, RunStatus
from baton.domain.run_events import backfill_event
from baton.domain.specs import BoundParam
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.run_queue import finish_backfill_if_done, reopen_backfill
from baton.domain.transitions.start import plan_run
from baton.errors import BackfillNotFound, InvalidBackfill, RunExists, RunNotRetryable
from baton.manifests import selection
from baton.manifests.model import Manifest
from baton.service import run_queue, runs
from baton.service.dependencies import Dependencies
from baton.service.events import publish_recorded, record

# (the backfill, dates written so far by this call, dates it writes): after each date's run is written.
DateWritten = Callable[[BackfillRecord, int, int], None]


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
    *,
    on_date: DateWritten | None = None,
) -> BackfillProgress:
    """A backfill of `manifest_name` over [first, last]: one run per date (bound to `param`, default the
    manifest's only DATE param; `params` are the other params, the same for every date), at most `max_active`
    of them RUNNING at once. Bad input raises InvalidBackfill (or the start's own errors) before any write.
    `on_date` hears of each date written (a long start's progress, and what an interrupted one had done)."""
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
    bound = [_date_params(manifest, given, param, day, now.date()) for day in dates]  # all checked before any write
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
        params=given,
        starting=True,
    )
    deps.store.create_backfill(backfill)
    structured_log.info(
        "backfill started", backfill_id=backfill.backfill_id, manifest=manifest.name, dates=len(dates), max_active=max_active
    )
    created = _write_dates(deps, backfill, chosen, list(enumerate(bound)), on_date)
    _started(deps, backfill.backfill_id)
    return BackfillProgress(replace(backfill, starting=False), created)


def resume_start(deps: Dependencies, backfill: BackfillRecord, limit: int) -> int:
    """Write the dates' runs a start that stopped (a crash, a Ctrl-C of the CLI) left unwritten, at most `limit` of
    them (the rest next time), from the backfill's own row; then the start has ended. How many runs it wrote."""
    manifest = deps.manifests.load(backfill.manifest_name)
    chosen = selection.select(manifest, backfill.select, backfill.exclude)
    written = {run.run_id for run in deps.store.backfill_runs(backfill.backfill_id)}
    dates = backfill_dates(backfill.first_date, backfill.last_date)
    missing = [(i, day) for i, day in enumerate(dates) if backfill_run_id(backfill.backfill_id, day.isoformat()) not in written]
    today = backfill.created_at.date()  # as the start bound them
    dated = [(i, _date_params(manifest, backfill.params, backfill.param, day, today)) for i, day in missing[:limit]]
    created = _write_dates(deps, backfill, chosen, dated)
    if len(missing) <= limit:
        _started(deps, backfill.backfill_id)
    structured_log.warning(
        "backfill start finished by the reconciler" if len(missing) <= limit else "backfill start resumed",
        backfill_id=backfill.backfill_id,
        written=len(created),
        left=max(0, len(missing) - limit),
    )
    return len(created)


def _date_params(
    manifest: Manifest, given: Mapping[str, Any], param: str, day: dt.date, today: dt.date
) -> Mapping[str, BoundParam]:
    """One date's params: the start's others as given, the date bound to `param`. The start and its resume both
    bind this way, so a resumed date's run is the run the start would have written."""
    return manifest.bind_params({**given, param: day.isoformat()}, today=today)


def _write_dates(
    deps: Dependencies,
    backfill: BackfillRecord,
    chosen: selection.Selection,
    dated: Sequence[tuple[int, Mapping[str, BoundParam]]],
    on_date: DateWritten | None = None,
) -> list[RunRecord]:
    """Each (date's index, params)'s run, in date order, skipping a date written meanwhile; the first date's run
    records backfill.started (at the backfill's creation, so that a resumed start records the same event)."""
    created = []
    for done, (index, params) in enumerate(dated, start=1):
        # Creation times a microsecond apart keep the queue in date order, whatever the clock's resolution.
        run = _start_date(deps, backfill, chosen, params, backfill.created_at + dt.timedelta(microseconds=index))
        if run is None:
            continue
        if index == 0:
            started = backfill_event("backfill.started", backfill, run, backfill.created_at)
            publish_recorded(deps, deps.store.transact(lambda tx, started=started: record(tx, [started])))  # type: ignore[misc]
        created.append(run)
        if on_date is not None:
            on_date(backfill, done, len(dated))
    return created


def _started(deps: Dependencies, backfill_id: str) -> None:
    """Every date's run is written: the reconciler leaves the start be. Ending the backfill is not this call's
    part even if its runs have all ended: the last run to end did so after the last date was written, and its
    end ended the backfill (run_queue.finish_backfill_if_done)."""

    def started(tx: RunTransaction) -> None:
        backfill = tx.get_backfill(backfill_id)
        if backfill is not None and backfill.starting:
            tx.put_backfill(replace(backfill, starting=False))

    deps.store.transact(started)


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
) -> RunRecord | None:
    """One date's run: written, then RUNNING or QUEUED in the backfill's queue (never governed by `concurrency:`).
    None if that date's run is written already (its ID is the date's own: see `backfill_run_id`)."""
    run_id = backfill_run_id(backfill.backfill_id, str(params[backfill.param].value))
    plan = plan_run(chosen, params, deps.environment, run_id, created)
    run = replace(plan.run, queue=backfill.queue, queue_limit=backfill.max_active_runs, backfill_id=backfill.backfill_id)
    plan = replace(plan, run=run)
    try:
        deps.store.create_run(plan)
    except RunExists:
        return None
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
