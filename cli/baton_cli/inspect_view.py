"""Rich renderables for failure detail: a failed check's offending rows, and `baton show`'s page of one job.

Pure functions of records, like render.py, which they build on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from baton.domain.cost import Pricing
from baton.domain.naming import bigquery_job_id
from baton.domain.records import CheckRecord, CheckStatus, JobRecord, RunRecord, Usage
from baton_cli.cost_view import byte_size, cost_cell, job_usage, slot_time
from baton_cli.render import NONE, checks_text, duration, status_text, timestamp


def sample_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    columns = list(dict.fromkeys(str(name) for row in rows for name in row))
    table = Table(expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def _cell(value: object) -> str:
    return "NULL" if value is None else (json.dumps(value) if isinstance(value, dict | list) else str(value))


def failed_check_view(check: CheckRecord, *, with_job: bool = True) -> RenderableType:
    """`load: check 'x' (attempt 1, error) FAILED: 3 offending row(s) · BigQuery job ID`, then the rows it kept."""
    owner = f"{check.job_key}: " if with_job else ""
    verdict = f"could not run: {check.error}" if check.error else f"{check.rows or 0} offending row(s)"
    line = Text(f"{owner}check '{check.name}' (attempt {check.attempt}, {check.severity}) FAILED: ", style="bold")
    line.append(verdict, style="red")
    line.append(f" · BigQuery job {check.bigquery_job_id}", style="")
    parts: list[RenderableType] = [line]
    if check.sample_rows:
        shown = len(check.sample_rows)
        more = f" (the first {shown} of {check.rows})" if check.rows and check.rows > shown else ""
        parts += [Text(f"offending rows{more}:", style="dim"), sample_table(check.sample_rows)]
    elif not check.error:
        parts.append(Text("no rows kept (they are read from the check's result when it fails)", style="dim"))
    return Group(*parts)


def failed_checks_view(checks: Mapping[str, Sequence[CheckRecord]] | None) -> RenderableType | None:
    """Every failed check of the jobs' current attempts with its rows, for `baton status`; None when none failed."""
    failed = [check for key in sorted(checks or {}) for check in (checks or {})[key] if check.status == CheckStatus.FAILED]
    if not failed:
        return None
    return Group(*(part for check in failed for part in (Text(""), failed_check_view(check))))


def _attempt_rows(run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord]) -> Table:
    """Every attempt's BigQuery job ID (they follow from run, job and attempt); the current one's times and error."""
    table = Table(title="attempts", title_justify="left", expand=False)
    for column in ("try", "BigQuery job id", "submitted", "BigQuery ran", "finished", "error"):
        table.add_column(column, overflow="fold")
    checked = {check.attempt for check in checks}
    for attempt in range(job.attempt, 0, -1):
        job_id = bigquery_job_id(run.environment, run.run_id, job.job_key, attempt)
        if attempt == job.attempt:
            stats = job.stats
            ran = NONE
            if stats is not None and stats.start_time and stats.end_time:
                ran = f"{timestamp(stats.start_time)} ({duration((stats.end_time - stats.start_time).total_seconds())})"
            error = job.error or ""
            table.add_row(str(attempt), job_id or NONE, timestamp(job.submitted_at), ran, timestamp(job.finished_at), error)
        else:
            # Earlier attempts keep no row of their own: the error of the one before is on the retry.
            note = "" if attempt in checked else "(if it was submitted)"
            error = job.error if attempt == job.attempt - 1 and job.error and not job.status.terminal else ""
            table.add_row(str(attempt), f"{job_id} {note}".strip(), NONE, NONE, NONE, error or "")
    return table


def show_view(run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord], pricing: Pricing) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", f"{run.run_id}  ({run.manifest_name} @ {run.manifest_version}, {run.environment})")
    grid.add_row("job", job.job_key)
    grid.add_row("status", status_text(job.status))
    grid.add_row("attempt", f"{job.attempt} of at most {job.spec.retry.max_attempts}")
    grid.add_row("needs", ", ".join(job.spec.needs) or NONE)
    grid.add_row("destination", job.spec.destination or NONE)
    if job.error:
        reason = job.error_reason if job.error_reason and not job.error.startswith(job.error_reason) else None
        grid.add_row("error", Text(job.error + (f"  [{reason}]" if reason else ""), style="red"))
    params = {name: bound.value for name, bound in sorted(run.params.items())}
    params.update(dict(sorted(job.spec.params.items())))
    grid.add_row("params", "  ".join(f"@{name}={value}" for name, value in params.items()) or NONE)
    times = [("released", job.ready_at), ("submitted", job.submitted_at), ("checks started", job.checks_started_at)]
    times.append(("finished", job.finished_at))
    grid.add_row("times", "  ".join(f"{name} {timestamp(value)}" for name, value in times if value is not None) or NONE)
    stats = job.stats
    if stats is not None:
        grid.add_row(
            "BigQuery",
            f"{byte_size(stats.total_bytes_processed)} processed · {byte_size(stats.total_bytes_billed)} billed · "
            f"{slot_time(stats.total_slot_ms)} slot time",
        )
        if stats.referenced_tables:
            grid.add_row("read", ", ".join(stats.referenced_tables))
        if stats.destination_table:
            size = (
                f"{stats.table_rows:,} rows, {byte_size(stats.table_bytes)}" if stats.table_rows is not None else "size unknown"
            )
            grid.add_row("wrote", f"{stats.destination_table} ({size})")
    current = [check for check in checks if check.attempt == job.attempt]
    grid.add_row("cost", f"{cost_cell(pricing, job_usage(job, current))} (last attempt and its checks; {pricing.describe()})")
    parts: list[RenderableType] = [grid, Text(""), _attempt_rows(run, job, checks)]
    if checks:
        table = Table(title="checks", title_justify="left", expand=False)
        for column in ("try", "check", "severity", "result", "BigQuery job id", "cost"):
            table.add_column(column, overflow="fold")
        for check in sorted(checks, key=lambda c: (-c.attempt, c.name)):
            usage = None if check.stats is None else Usage().plus(check.stats)
            table.add_row(
                str(check.attempt),
                check.name,
                str(check.severity),
                checks_text([check]),
                check.bigquery_job_id,
                cost_cell(pricing, usage),
            )
        parts += [Text(""), table]
        for check in checks:
            if check.status == CheckStatus.FAILED:
                parts += [Text(""), failed_check_view(check, with_job=False)]
    parts += [Text(""), Text("snapshot SQL", style="bold"), Syntax(job.spec.sql, "sql", word_wrap=True, theme="ansi_dark")]
    return Group(*parts)
