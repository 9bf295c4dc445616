"""Backfills: one run of a manifest per date of a range, at most `max_active_runs` of them RUNNING at once.

The backfill is a row of its own (spanner_schema/0013_run_queue.sql); its runs wait in the queue
`backfill:<id>` (domain/transitions/run_queue.py), so each run's end starts the next date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# A backfill's runs are created one after another by the call that starts it: this many fit in one invocation.
# A start that stops before its last date (a crash, a Ctrl-C) is finished by the reconciler (`starting`).
MAX_BACKFILL_DATES = 366
MAX_ACTIVE_RUNS = 100


class BackfillStatus(StrEnum):
    RUNNING = "RUNNING"  # some date's run has not ended
    SUCCEEDED = "SUCCEEDED"  # every date's run succeeded
    FAILED = "FAILED"  # every run ended, and at least one did not succeed (`baton retry BACKFILL_ID`)
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self != BackfillStatus.RUNNING


@dataclass(frozen=True)
class BackfillRecord:
    backfill_id: str
    manifest_name: str
    param: str  # the DATE param each run binds to its date
    first_date: dt.date
    last_date: dt.date
    max_active_runs: int
    total_runs: int
    status: BackfillStatus
    created_at: dt.datetime
    select: str | None = None
    exclude: str | None = None
    finished_at: dt.datetime | None = None
    # The start's params other than the date, as given: with the above, what every date's run is made from.
    params: dict[str, Any] = field(default_factory=dict)
    # Until the start has written every date's run; the reconciler writes the rest of a start that stopped.
    starting: bool = False

    @property
    def queue(self) -> str:
        return backfill_queue(self.backfill_id)


def backfill_queue(backfill_id: str) -> str:
    return f"backfill:{backfill_id}"


def backfill_dates(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every date from `first` to `last`, both included; ValueError says why a range cannot be backfilled."""
    if last < first:
        raise ValueError(f"the range ends ({last.isoformat()}) before it begins ({first.isoformat()})")
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DATES:
        raise ValueError(f"{days} dates; a backfill covers at most {MAX_BACKFILL_DATES} (split the range)")
    return [first + dt.timedelta(days=offset) for offset in range(days)]


def backfill_status(run_statuses: list[str]) -> BackfillStatus:
    """How a backfill ended, from its runs' final statuses."""
    return BackfillStatus.SUCCEEDED if all(status == "SUCCEEDED" for status in run_statuses) else BackfillStatus.FAILED
