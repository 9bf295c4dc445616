"""How the CLI and the run page write usage and its price: sizes, slot time, money.

The price itself is domain/cost.py's (one rule); this module only formats it.
"""

from __future__ import annotations

from collections.abc import Iterable

from baton.domain.cost import Pricing, money
from baton.domain.records import CheckRecord, JobRecord, JobStats, Usage
from baton_cli.render import duration

NONE = "-"


def byte_size(value: int | None) -> str:
    if value is None:
        return NONE
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{value:,} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def slot_time(slot_ms: int | None) -> str:
    return NONE if slot_ms is None else duration(slot_ms / 1000)


def job_usage(job: JobRecord, checks: Iterable[CheckRecord] = ()) -> Usage | None:
    """A job's last attempt plus the given checks; None when BigQuery reported nothing for any of them."""
    stats: list[JobStats | None] = [job.stats, *(check.stats for check in checks)]
    if all(one is None for one in stats):
        return None
    return Usage().plus(*stats)


def cost_cell(pricing: Pricing, usage: Usage | None) -> str:
    return NONE if usage is None else money(pricing.cost(usage), pricing.currency)


def usage_line(pricing: Pricing, usage: Usage) -> str:
    """`0.000012 USD  (2.0 MiB billed · 1.2 GiB processed · 3.4s slot time; on-demand at 6.25 USD per TiB billed)`."""
    detail = (
        f"{byte_size(usage.bytes_billed)} billed · {byte_size(usage.bytes_processed)} processed · "
        f"{slot_time(usage.slot_ms)} slot time; {pricing.describe()}"
    )
    return f"{money(pricing.cost(usage), pricing.currency)}  ({detail})"
