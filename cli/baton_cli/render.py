"""Rich renderables for the operator CLI: run header, job and run tables, catalog and dead letters.

Pure functions of records and `now`, so `status --watch` can redraw them and tests can read them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from baton.domain.records import CatalogEntry, CheckRecord, CheckStatus, JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.specs import Severity
from baton_cli.deadletters import DeadLetter

STATUS_STYLE: dict[str, str] = {
    JobStatus.PENDING: "dim",
    JobStatus.READY: "blue",
    JobStatus.SUBMITTED: "cyan",
    JobStatus.CHECKING: "cyan",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.SKIPPED: "yellow",
    JobStatus.CANCELLED: "magenta",
    RunStatus.CREATING: "dim",
    RunStatus.RUNNING: "cyan",
}
NONE = "-"


def status_text(status: str) -> Text:
    return Text(str(status), style=STATUS_STYLE.get(status, ""))


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


def _param_text(value: object) -> str:
    """As it would be typed after --param: booleans as true/false."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# A job's BigQuery ID exists from the start (it is deterministic), but BigQuery knows it only once submitted.
_SUBMITTED = {JobStatus.SUBMITTED, JobStatus.CHECKING, JobStatus.SUCCEEDED, JobStatus.FAILED}


def _known_job_id(job: JobRecord) -> str:
    known = job.submitted_at is not None or job.status in _SUBMITTED
    return job.bigquery_job_id if known and job.bigquery_job_id else NONE


def run_header(run: RunRecord, now: dt.datetime, cost: str | None = None) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", run.run_id)
    grid.add_row("manifest", f"{run.manifest_name} @ {run.manifest_version}  ({run.environment})")
    grid.add_row("status", status_text(run.status))
    counts = (
        f"{run.total_jobs} total · {run.succeeded_jobs} succeeded · {run.failed_jobs} failed · "
        f"{run.skipped_jobs} skipped · {run.cancelled_jobs} cancelled · {run.open_jobs} open"
    )
    grid.add_row("jobs", counts)
    grid.add_row("created", timestamp(run.created_at))
    took = run_duration(run, now)
    grid.add_row("finished", f"{timestamp(run.finished_at)}  (took {took})" if run.finished_at else f"-  (running for {took})")
    if run.params:
        grid.add_row("params", "  ".join(f"{name}={_param_text(bound.value)}" for name, bound in sorted(run.params.items())))
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


def jobs_table(
    jobs: Sequence[JobRecord],
    run: RunRecord,
    now: dt.datetime,
    checks: Mapping[str, Sequence[CheckRecord]] | None = None,
    costs: Mapping[str, str] | None = None,
) -> Table:
    day = run.created_at.astimezone(dt.UTC).date() if run.created_at else None
    table = Table(title=f"{len(jobs)} jobs", title_justify="left", expand=False)
    for column in ("job", "status", "try", "submitted", "finished", "took"):
        table.add_column(column, no_wrap=True)
    table.add_column("BigQuery job id", overflow="fold")
    if checks is not None:
        table.add_column("checks", overflow="fold")
    if costs is not None:
        table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for job in jobs:
        row: list[RenderableType] = [
            job.job_key,
            status_text(job.status),
            str(job.attempt),
            clock_time(job.submitted_at, day),
            clock_time(job.finished_at, day),
            job_duration(job, now),
            _known_job_id(job),
        ]
        if checks is not None:
            row.append(checks_text(checks.get(job.job_key, ())))
        if costs is not None:
            row.append(costs.get(job.job_key, NONE))
        row.append(Text(job.error or "", style="red" if job.status == JobStatus.FAILED else ""))
        table.add_row(*row)
    return table


def status_view(
    run: RunRecord,
    jobs: Sequence[JobRecord],
    now: dt.datetime,
    checks: Mapping[str, Sequence[CheckRecord]] | None = None,
    cost: str | None = None,
    costs: Mapping[str, str] | None = None,
) -> RenderableType:
    """`cost` is the run's priced usage for the header, `costs` each job's for a column (cost_view.py writes them)."""
    return Group(run_header(run, now, cost), Text(""), jobs_table(jobs, run, now, checks, costs))


def runs_table(runs: Iterable[RunRecord], now: dt.datetime, costs: Mapping[str, str] | None = None) -> Table:
    table = Table(expand=False)
    columns = ("run", "manifest", "version", "status", "done", "failed", "skipped", "created", "took")
    for column in (*columns, "cost") if costs is not None else columns:
        table.add_column(
            column, no_wrap=column != "manifest", justify="right" if column in ("done", "failed", "skipped", "cost") else "left"
        )
    for run in runs:
        cells = [] if costs is None else [costs.get(run.run_id, NONE)]
        table.add_row(
            run.run_id,
            run.manifest_name,
            run.manifest_version,
            status_text(run.status),
            f"{run.succeeded_jobs}/{run.total_jobs}",
            str(run.failed_jobs),
            str(run.skipped_jobs),
            timestamp(run.created_at),
            run_duration(run, now),
            *cells,
        )
    return table


def _count(value: int | None) -> str:
    return NONE if value is None else f"{value:,}"


def catalog_table(entries: Iterable[CatalogEntry]) -> Table:
    table = Table(expand=False)
    for column in ("table", "run", "job", "written", "rows", "bytes"):
        table.add_column(column, no_wrap=column != "table", justify="right" if column in ("rows", "bytes") else "left")
    for entry in entries:
        table.add_row(
            entry.table_ref,
            entry.run_id,
            entry.job_key,
            timestamp(entry.written_at),
            _count(entry.table_rows if entry.table_rows is not None else entry.rows_affected),
            _count(entry.table_bytes),
        )
    return table


def dead_letters_table(letters: Iterable[DeadLetter]) -> Table:
    table = Table(expand=False)
    table.add_column("message id", no_wrap=True)
    table.add_column("published", no_wrap=True)
    table.add_column("deliveries", justify="right")
    table.add_column("reason", overflow="fold")
    table.add_column("kind", no_wrap=True)
    table.add_column("payload", overflow="fold")
    for letter in letters:
        count = letter.delivery_count
        table.add_row(
            letter.message_id,
            timestamp(letter.publish_time),
            NONE if count is None else str(count),
            letter.reason,
            letter.payload_kind,
            letter.summary,
        )
    return table
