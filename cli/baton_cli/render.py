"""Rich renderables for the operator CLI: run header, job and run tables, catalog and dead letters.

Pure functions of records, `now` and the terminal's width, so `status --watch` can redraw
them and tests can read them. At 80 columns as at 200, a run ID, a status or a table name
is never cut: it is what an operator copies into the next command. Columns worth less are
left out first (`fitted_table`), and errors, which are long, go below the table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from baton.domain.records import (
    CatalogEntry,
    CheckRecord,
    CheckStatus,
    JobRecord,
    JobStatus,
    PoolUsage,
    RunRecord,
    RunStatus,
)
from baton.domain.specs import Severity
from baton.domain.transitions.hold import is_held
from baton.domain.transitions.run_timeout import duration_text
from baton_cli.deadletters import DeadLetter

STATUS_STYLE: dict[str, str] = {
    JobStatus.PENDING: "dim",
    JobStatus.QUEUED: "blue dim",
    JobStatus.READY: "blue",
    JobStatus.SUBMITTED: "cyan",
    JobStatus.CHECKING: "cyan",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.SKIPPED: "yellow",
    JobStatus.CANCELLED: "magenta",
    RunStatus.CREATING: "dim",
    RunStatus.QUEUED: "blue",
    RunStatus.RUNNING: "cyan",
}
NONE = "-"
WIDE = 200  # the width a table is laid out for when the caller does not say
_GAP = 3  # between two columns: their padding and a blank divider (the box draws no vertical lines)
_SQUEEZED = 10  # narrower than this, a foldable column is left out rather than folded into slivers


@dataclass(frozen=True)
class Column:
    """A table column: `whole` cells are never cut or folded (IDs, statuses, table names); `rank` orders
    what is kept when the width runs out (0 first; None is always kept)."""

    header: str
    rank: int | None
    whole: bool = False
    justify: Literal["left", "right"] = "left"


Cell = str | Text


def _widths(cell: Cell) -> tuple[int, int]:
    """(longest word, longest line) of a cell: what it needs folded at spaces, and unfolded."""
    lines = str(cell).splitlines() or [""]
    return max((len(word) for line in lines for word in line.split()), default=1), max(len(line) for line in lines)


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], width: int, title: str | None = None) -> Table:
    """The columns that fit `width`, by rank, each at a width of its own.

    Columns are taken in rank order; one that does not fit beside those already taken is left
    out. A `whole` column gets its longest cell; any other takes what it would like (its longest
    line) or what is left, but at least its longest word (at most `_SQUEEZED`) or it is left out.
    If even the columns of rank None do not fit, they fold rather than being cut.
    """
    minimum: list[int] = []
    wanted: list[int] = []
    for i, column in enumerate(columns):
        word, line = (max(sizes) for sizes in zip(_widths(column.header), *(_widths(row[i]) for row in rows), strict=False))
        wanted.append(line)
        minimum.append(line if column.whole else min(_SQUEEZED, line, max(word, len(column.header))))
    order = sorted(range(len(columns)), key=lambda i: (-1 if columns[i].rank is None else columns[i].rank, i))
    given: dict[int, int] = {}
    left = width + _GAP  # no gap before the first column
    for i in order:
        if columns[i].rank is None:
            given[i] = wanted[i]
        elif left - _GAP >= minimum[i]:
            given[i] = min(wanted[i], left - _GAP)
        else:
            continue
        left -= _GAP + given[i]
    fits = left >= 0
    kept = sorted(given)
    dropped = [column.header for i, column in enumerate(columns) if i not in given]
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=title,
        title_justify="left",
        caption=f"({', '.join(dropped)}: left out at this width; --json has every field)" if dropped else None,
        caption_justify="left",
        expand=False,
    )
    for i in kept:
        column = columns[i]
        table.add_column(
            column.header,
            no_wrap=column.whole and fits,
            overflow="fold",
            justify=column.justify,
            width=given[i] if fits else None,
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def status_text(status: str) -> Text:
    return Text(str(status), style=STATUS_STYLE.get(status, ""))


def run_status_text(run: RunRecord) -> Text:
    """The run's status; a held run reads `RUNNING (held)`."""
    text = status_text(run.status)
    if is_held(run):
        text.append(" (held)", style="yellow")
    return text


def timestamp(value: dt.datetime | None) -> str:
    return NONE if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def clock_time(value: dt.datetime | None, day: dt.date | None) -> str:
    """HH:MM:SS on the run's own day (the header gives the date), with the date otherwise."""
    if value is None:
        return NONE
    value = value.astimezone(dt.UTC)
    return value.strftime("%H:%M:%S") if value.date() == day else value.strftime("%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return NONE
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def job_duration(job: JobRecord, now: dt.datetime) -> str:
    """BigQuery's own start/end when reported; else Baton's submit/finish; a running job counts up to now."""
    stats = job.stats
    if stats is not None and stats.start_time is not None and stats.end_time is not None and job.status.terminal:
        return duration((stats.end_time - stats.start_time).total_seconds())
    if job.submitted_at is None:
        return NONE
    if job.finished_at is not None:
        return duration((job.finished_at - job.submitted_at).total_seconds())
    if job.status == JobStatus.SUBMITTED:
        return duration((now - job.submitted_at).total_seconds()) + "…"
    return NONE


def run_duration(run: RunRecord, now: dt.datetime) -> str:
    if run.created_at is None:
        return NONE
    end = run.finished_at or (None if run.status.terminal else now)
    return NONE if end is None else duration((end - run.created_at).total_seconds())


def param_text(value: object) -> str:
    """As it would be typed after --param: booleans as true/false."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# A job's BigQuery ID exists from the start (it is deterministic), but BigQuery knows it only once submitted.
_SUBMITTED = {JobStatus.SUBMITTED, JobStatus.CHECKING, JobStatus.SUCCEEDED, JobStatus.FAILED}


def known_job_id(job: JobRecord) -> str:
    known = job.submitted_at is not None or job.status in _SUBMITTED
    return job.bigquery_job_id if known and job.bigquery_job_id else NONE


def run_header(run: RunRecord, now: dt.datetime, cost: str | None = None) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", run.run_id)
    grid.add_row("manifest", f"{run.manifest_name} @ {run.manifest_version}  ({run.environment})")
    grid.add_row("status", run_status_text(run))
    if run.end_reason:
        grid.add_row("why", run.end_reason)
    if is_held(run):
        grid.add_row("held", f"since {timestamp(run.held_at)}: {run.hold_reason}  (`baton release {run.run_id}` goes on)")
    if run.deadline is not None and not run.status.terminal:
        grid.add_row("deadline", f"{timestamp(run.deadline)}  (run_timeout {duration_text(run.timeout_seconds or 0)})")
    counts = (
        f"{run.total_jobs} total · {run.succeeded_jobs} succeeded · {run.failed_jobs} failed · "
        f"{run.skipped_jobs} skipped · {run.cancelled_jobs} cancelled · {run.open_jobs} open"
    )
    grid.add_row("jobs", counts)
    grid.add_row("created", timestamp(run.created_at))
    took = run_duration(run, now)
    grid.add_row("finished", f"{timestamp(run.finished_at)}  (took {took})" if run.finished_at else f"-  (running for {took})")
    if run.params:
        grid.add_row("params", "  ".join(f"{name}={param_text(bound.value)}" for name, bound in sorted(run.params.items())))
    if cost is not None:
        grid.add_row("cost", cost)
    return grid


CHECK_STYLE = {CheckStatus.PASSED: "green", CheckStatus.FAILED: "red", CheckStatus.PENDING: "dim"}


def checks_text(checks: Sequence[CheckRecord]) -> Text:
    """`name passed`, `name FAILED (3 rows)`; a failed warn-level check says so, since it does not fail the job."""
    text = Text()
    for index, check in enumerate(checks):
        if index:
            text.append(", ")
        if check.status == CheckStatus.FAILED:
            detail = "could not run" if check.error else f"{check.rows or 0} rows"
            warn = ", warn" if check.severity == Severity.WARN else ""
            text.append(f"{check.name} FAILED ({detail}{warn})", style="yellow" if warn else "bold red")
        else:
            text.append(f"{check.name} {check.status.lower()}", style=CHECK_STYLE.get(check.status, ""))
    return text or Text(NONE)


JOB_COLUMNS = (
    Column("job", None, whole=True),
    Column("status", None, whole=True),
    Column("try", 2),
    Column("submitted", 5),
    Column("finished", 3),
    Column("took", 1),
    Column("BigQuery job id", 4, whole=True),  # long, and derived from the run, job and try: --json has it
    Column("checks", 0),
    Column("cost", 6, justify="right"),
)


def jobs_table(
    jobs: Sequence[JobRecord],
    run: RunRecord,
    now: dt.datetime,
    checks: Mapping[str, Sequence[CheckRecord]] | None = None,
    width: int = WIDE,
    costs: Mapping[str, str] | None = None,
) -> Table:
    """`costs`: each job's priced usage, for a cost column (cost_view.py writes them)."""
    day = run.created_at.astimezone(dt.UTC).date() if run.created_at else None
    columns = [
        column
        for column in JOB_COLUMNS
        if (checks is not None or column.header != "checks") and (costs is not None or column.header != "cost")
    ]
    rows: list[list[Cell]] = []
    for job in jobs:
        cells: dict[str, Cell] = {
            "job": job.job_key,
            "status": _job_status(job),
            "try": str(job.attempt),
            "submitted": clock_time(job.submitted_at, day),
            "finished": clock_time(job.finished_at, day),
            "took": job_duration(job, now),
            "BigQuery job id": known_job_id(job),
            "checks": checks_text((checks or {}).get(job.job_key, ())),
            "cost": (costs or {}).get(job.job_key, NONE),
        }
        rows.append([cells[column.header] for column in columns])
    return fitted_table(columns, rows, width, title=f"{len(jobs)} jobs")


def _job_status(job: JobRecord) -> Text:
    """A QUEUED job says which pool it waits for."""
    text = status_text(job.status)
    if job.status == JobStatus.QUEUED and job.spec.pool:
        text.append(f" {job.spec.pool}", style="dim")
    return text


def errors_below(jobs: Sequence[JobRecord]) -> RenderableType | None:
    """Each job's error on its own line under the table: errors are long, and a narrow column makes them unreadable."""
    lines = []
    for job in jobs:
        if job.error:
            line = Text(job.job_key, style="bold")
            line.append(": ")
            line.append(job.error, style="red" if job.status == JobStatus.FAILED else "")
            line.append(f" (try {job.attempt})" if job.attempt > 1 else "", style="dim")
            lines.append(line)
    return Group(Text("errors", style="bold"), *lines) if lines else None


def status_view(
    run: RunRecord,
    jobs: Sequence[JobRecord],
    now: dt.datetime,
    checks: Mapping[str, Sequence[CheckRecord]] | None = None,
    width: int = WIDE,
    cost: str | None = None,
    costs: Mapping[str, str] | None = None,
) -> RenderableType:
    """`cost` is the run's priced usage for the header, `costs` each job's for a column (cost_view.py writes them)."""
    parts: list[RenderableType] = [run_header(run, now, cost), Text(""), jobs_table(jobs, run, now, checks, width, costs)]
    errors = errors_below(jobs)
    if errors is not None:
        parts += [Text(""), errors]
    return Group(*parts)


def params_text(run: RunRecord) -> str:
    """`name=value` per line, as typed after --param."""
    return "\n".join(f"{name}={param_text(bound.value)}" for name, bound in sorted(run.params.items())) or NONE


RUN_COLUMNS = (
    Column("run", None, whole=True),
    Column("status", None, whole=True),
    Column("manifest", 0, whole=True),
    Column("params", 1),
    Column("done", 2, justify="right"),
    Column("created", 3),
    Column("took", 4),
    Column("failed", 5, justify="right"),
    Column("skipped", 6, justify="right"),
    Column("cost", 7, justify="right"),
    Column("version", 8, whole=True),
)


def runs_table(runs: Iterable[RunRecord], now: dt.datetime, width: int = WIDE, costs: Mapping[str, str] | None = None) -> Table:
    """`costs`: each run's priced usage, for a cost column (cost_view.py writes them)."""
    columns = [column for column in RUN_COLUMNS if costs is not None or column.header != "cost"]
    rows: list[list[Cell]] = []
    for run in runs:
        cells: dict[str, Cell] = {
            "run": run.run_id,
            "status": run_status_text(run),
            "manifest": run.manifest_name,
            "params": params_text(run),
            "done": f"{run.succeeded_jobs}/{run.total_jobs}",
            "created": timestamp(run.created_at),
            "took": run_duration(run, now),
            "failed": str(run.failed_jobs),
            "skipped": str(run.skipped_jobs),
            "cost": (costs or {}).get(run.run_id, NONE),
            "version": run.manifest_version,
        }
        rows.append([cells[column.header] for column in columns])
    return fitted_table(columns, rows, width)


def _count(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


POOL_COLUMNS = (
    Column("pool", None, whole=True),
    Column("size", 0, justify="right"),
    Column("in use", 1, justify="right"),
    Column("queued", 2, justify="right"),
)


def pools_table(pools: Iterable[tuple[PoolUsage, int]], width: int = WIDE) -> Table:
    rows: list[list[Cell]] = [[pool.name, str(pool.size), str(pool.in_use), str(queued)] for pool, queued in pools]
    return fitted_table(POOL_COLUMNS, rows, width)


CATALOG_COLUMNS = (
    Column("table", None, whole=True),
    Column("run", 0, whole=True),
    Column("job", 1, whole=True),
    Column("written", 2),
    Column("rows", 3, justify="right"),
    Column("bytes", 4, justify="right"),
)


def catalog_table(entries: Iterable[CatalogEntry], width: int = WIDE) -> Table:
    rows: list[list[Cell]] = [
        [
            entry.table_ref,
            entry.run_id,
            entry.job_key,
            timestamp(entry.written_at),
            _count(entry.table_rows if entry.table_rows is not None else entry.rows_affected),
            _count(entry.table_bytes),
        ]
        for entry in entries
    ]
    return fitted_table(CATALOG_COLUMNS, rows, width)


DEAD_LETTER_COLUMNS = (
    Column("message id", None, whole=True),
    Column("published", 2),
    Column("deliveries", 3, justify="right"),
    Column("reason", 1),
    Column("kind", 4, whole=True),
    Column("payload", 0),
)


def dead_letters_table(letters: Iterable[DeadLetter], width: int = WIDE) -> Table:
    rows: list[list[Cell]] = []
    for letter in letters:
        count = letter.delivery_count
        published, deliveries = timestamp(letter.publish_time), NONE if count is None else str(count)
        rows.append([letter.message_id, published, deliveries, letter.reason, letter.payload_kind, letter.summary])
    return fitted_table(DEAD_LETTER_COLUMNS, rows, width)
