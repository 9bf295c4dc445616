"""A manifest's schedule: a five-field unix-cron expression, as Cloud Scheduler takes it, in an IANA time zone.

Checked here, with a cron library rather than a pattern, so that `61 25 * * *` or
`every day at 7` is refused by `baton manifest validate` and by synth, not by the
Cloud Scheduler API at deploy time.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import zoneinfo
from itertools import islice

from cronsim import CronSim, CronSimError

CRON_FIELDS = "minute hour day-of-month month day-of-week"
_EXAMPLE = "e.g. '0 7 * * *' for every day at 07:00"


@functools.cache
def _iana_names() -> frozenset[str]:
    """The zone names of the pinned tzdata package: one small file, where walking the system's
    zoneinfo folder (`zoneinfo.available_timezones`) costs a cold start over 100 ms, and would
    also accept what is no IANA name (`posix/Europe/Berlin`, `localtime`)."""
    return frozenset(importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


def time_zone_problem(time_zone: str) -> str | None:
    """Why `time_zone` is not a zone of the IANA database, or None."""
    if time_zone in _iana_names():
        return None
    return f"time_zone '{time_zone}' is not in the IANA time zone database (e.g. Etc/UTC, Europe/Berlin, America/New_York)"


def schedule_problem(schedule: str) -> str | None:
    """Why `schedule` is not a five-field cron expression, or None."""
    fields = schedule.split()
    if len(fields) != len(CRON_FIELDS.split()):
        return f"schedule '{schedule}' has {len(fields)} field(s); a cron expression has five: {CRON_FIELDS} ({_EXAMPLE})"
    try:
        CronSim(schedule, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except CronSimError as exc:
        return f"schedule '{schedule}' is not a valid cron expression ({exc}; fields: {CRON_FIELDS}, {_EXAMPLE})"
    return None


def next_starts(schedule: str, time_zone: str, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
    """The next `count` start times after `after`, in the schedule's time zone (DST as the zone has it)."""
    zone = zoneinfo.ZoneInfo(time_zone)
    return list(islice(CronSim(schedule, after.astimezone(zone)), count))
