"""The backfill benchmark in the results: its summary row, details and chart panel (report.py calls these)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = tuple[str, str, str, str, str, str, str]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f} h"


def summary_rows(r: Mapping[str, Any]) -> list[Row]:
    return [
        (
            "9",
            f"Backfill, {r['dates']} dates of {r['manifest']} ({r['jobs']} jobs), pool of {r['pool_size']}, "
            f"at most {r['max_active_runs']} runs: makespan (simulated time)",
            f"{_hours(r['makespan_s'])}; at most {r['most_jobs_at_once']} jobs of the pool running at once",
            f"ideal for a pool of {r['pool_size']}: max(job time / {r['pool_size']}, longest chain of a date) = "
            f"{_hours(r['ideal_makespan_s'])}",
            f"{r['ratio']:.2f}x",
            f"<= {r['target_ratio']}x ideal; pool never exceeded",
            "yes" if r["met"] else "**no**",
        )
    ]


def details(r: Mapping[str, Any], table: Any) -> list[str]:
    lines = ["", f"### Backfill ({r['dates']} dates, pool of {r['pool_size']})", ""]
    lines += table(
        ("jobs", "job time", "makespan", "ideal", "ratio", "most jobs at once", "most runs with jobs at once", "wall"),
        [
            (
                f"{r['jobs']:,}",
                _hours(r["job_seconds_total"]),
                _hours(r["makespan_s"]),
                _hours(r["ideal_makespan_s"]),
                f"{r['ratio']:.3f}x",
                f"{r['most_jobs_at_once']} of {r['pool_size']}",
                f"{r['most_runs_with_jobs_at_once']} of {r['max_active_runs']}",
                f"{r['wall_s']:,.1f} s",
            )
        ],
    )
    lines += [
        "",
        "Driven in simulated time: each completion is delivered when its job's seeded duration is over, and what "
        "Baton submits in answer starts at that instant. Runs start and queued jobs are released only by completions.",
    ]
    return lines


def panel(ax: Any, r: Mapping[str, Any]) -> None:
    names = ["makespan", "ideal"]
    ax.bar(names, [r["makespan_s"] / 3600, r["ideal_makespan_s"] / 3600], color=["tab:blue", "tab:gray"])
    ax.set_ylabel("simulated hours")
    ax.set_title(f"9. Backfill of {r['dates']} dates, pool of {r['pool_size']}: {r['ratio']:.2f}x ideal")
