"""The run page: one self-contained HTML document from a run's records.

Pure: records and `now` in, text out. No network is needed to view the page (inline CSS
and SVG, no scripts, no fonts or images from elsewhere); the only links leave for the
BigQuery console. Jinja2 autoescapes everything the records carry.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from baton.domain.cost import Pricing
from baton.domain.naming import bigquery_job_id
from baton.domain.records import CheckRecord, CheckStatus, JobRecord, JobStats, JobStatus, RunRecord, RunStatus
from baton_cli.cost_view import byte_size, slot_time, usage_line
from baton_cli.graph import STATUS_FILL
from baton_cli.render import duration
from baton_cli.report.critical_path import CriticalPath, critical_path
from baton_cli.report.dag_layout import DagLayout, layered_layout, layers
from baton_cli.report.timeline import PHASE_DESCRIPTION, Phase, Segment, check_segments, job_seconds, job_segments

LABEL_WIDTH = 250  # the timeline's column of job and check names, in px
CHART_WIDTH = 840
JOB_ROW = 24
CHECK_ROW = 18
AXIS_HEIGHT = 26
MAX_TICKS = 10
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
NONE = "-"

PHASE_FILL = {
    Phase.QUEUED: "#c5cbd3",
    Phase.SUBMITTED: "#8fb4e8",
    Phase.RUNNING: "#2f6fd1",
    Phase.CHECKING: "#17a2b8",
}
CHECK_FILL = {CheckStatus.PENDING: "#9eeaf9", CheckStatus.PASSED: "#5cb85c", CheckStatus.FAILED: "#d9534f"}
WARN_FILL = "#f0ad4e"
# Darker than the fills, for text and the end-of-job tick on the timeline.
STATUS_INK: dict[str, str] = {
    JobStatus.PENDING: "#6c757d",
    JobStatus.QUEUED: "#6c757d",
    JobStatus.READY: "#0b5ed7",
    JobStatus.SUBMITTED: "#0b5ed7",
    JobStatus.CHECKING: "#0f8596",
    JobStatus.SUCCEEDED: "#198754",
    JobStatus.FAILED: "#c82333",
    JobStatus.SKIPPED: "#a07800",
    JobStatus.CANCELLED: "#6c757d",
    RunStatus.CREATING: "#6c757d",
    RunStatus.RUNNING: "#0b5ed7",
}


def console_url(project: str, location: str, job_id: str) -> str:
    """The BigQuery console's page of one job."""
    query = urllib.parse.urlencode({"project": project, "j": f"bq:{location}:{job_id}", "page": "queryresults"})
    return f"https://console.cloud.google.com/bigquery?{query}"


def utc(value: dt.datetime | None) -> str:
    return NONE if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: dt.datetime | None) -> str:
    return NONE if value is None else value.astimezone(dt.UTC).strftime("%H:%M:%S.%f")[:-4]


def between(start: dt.datetime | None, end: dt.datetime | None) -> str:
    return NONE if start is None or end is None else duration((end - start).total_seconds())


def sample_rows(check: CheckRecord) -> list[Mapping[str, Any]]:
    """Offending rows a failed check kept (domain/samples.py bounds them); none for a check that passed."""
    return list(check.sample_rows or ())


# --- view models: everything the template draws, already measured and formatted ----------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    fill: str
    title: str
    ongoing: bool


@dataclass(frozen=True)
class TimelineRow:
    label: str
    anchor: str
    is_check: bool
    y: float
    height: float
    bars: tuple[Bar, ...]
    end_x: float | None  # the tick where it finished
    end_ink: str
    note: str  # what stands in for a bar when there is none (e.g. "skipped")
    critical: bool
    suffix: str = ""  # shown after the label, muted


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    rows: tuple[TimelineRow, ...]
    ticks: tuple[Tick, ...]
    width: float
    height: float
    now_x: float | None  # a live run's "now" line
    chart_x: float = LABEL_WIDTH  # where time 0 is


@dataclass(frozen=True)
class Link:
    text: str
    url: str | None


@dataclass(frozen=True)
class AttemptView:
    number: int
    job: Link
    note: str  # why this attempt's BigQuery job may not exist


@dataclass(frozen=True)
class CheckView:
    name: str
    attempt: int
    severity: str
    status: str
    ink: str
    verdict: str
    error: str | None
    job: Link
    took: str
    stats: str
    sample_columns: tuple[str, ...]
    sample_rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class JobView:
    key: str
    anchor: str
    status: str
    ink: str
    fill: str
    attempt: int
    max_attempts: int
    needs: tuple[str, ...]
    layer: str | None
    destination: str | None
    critical: bool
    error: str | None
    error_reason: str | None
    error_context: str  # e.g. that the error is the previous attempt's, while a retry is under way
    times: tuple[tuple[str, str], ...]
    stats: tuple[tuple[str, str], ...]
    attempts: tuple[AttemptView, ...]  # newest first
    checks: tuple[CheckView, ...]
    sql: str


@dataclass(frozen=True)
class DagNodeView:
    key: str
    label: str
    anchor: str
    x: float
    y: float
    width: float
    height: float
    fill: str
    ink: str
    status: str
    critical: bool


@dataclass(frozen=True)
class DagEdgeView:
    path: str
    critical: bool


def _anchor(key: str) -> str:
    return f"job-{key}"


def _ink(status: str) -> str:
    return STATUS_INK.get(status, "#333333")


def _ordered(jobs: Iterable[JobRecord]) -> list[JobRecord]:
    """Upstreams before dependents, the way the DAG reads: by layer, then by key."""
    jobs = list(jobs)
    layer = layers({job.job_key: job.spec.needs for job in jobs})
    return sorted(jobs, key=lambda job: (layer[job.job_key], job.job_key))


def _span(
    run: RunRecord, jobs: Sequence[JobRecord], checks: Sequence[CheckRecord], now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    times = [run.created_at, run.finished_at]
    for job in jobs:
        times += [job.ready_at, job.submitted_at, job.checks_started_at, job.finished_at]
    times += [time for check in checks for time in (check.created_at, check.finished_at)]
    known = [time for time in times if time is not None]
    start = run.created_at or min(known, default=now)
    end = max([*known, now] if not run.status.terminal else known, default=start)
    return start, max(end, start + dt.timedelta(seconds=1))


def _ticks(start: dt.datetime, end: dt.datetime, x_of: Any) -> tuple[Tick, ...]:
    seconds = (end - start).total_seconds()
    step = next((s for s in TICK_STEPS_S if seconds / s <= MAX_TICKS), TICK_STEPS_S[-1] * (1 + int(seconds // 864000)))
    return tuple(
        Tick(x_of(start + dt.timedelta(seconds=offset)), "0" if offset == 0 else "+" + duration(offset))
        for offset in range(0, int(seconds) + 1, step)
    )


def _bars(segments: Sequence[Segment], x_of: Any, fill_of: Any, what: str) -> tuple[Bar, ...]:
    bars = []
    for segment in segments:
        took = duration((segment.end - segment.start).total_seconds())
        title = f"{what}: {segment.phase} {clock(segment.start)} → {'now' if segment.ongoing else clock(segment.end)} ({took})"
        x = x_of(segment.start)
        bars.append(Bar(x, max(x_of(segment.end) - x, 1.5), fill_of(segment), title, segment.ongoing))
    return tuple(bars)


def _timeline(
    run: RunRecord, jobs: Sequence[JobRecord], checks: Mapping[str, Sequence[CheckRecord]], path: CriticalPath, now: dt.datetime
) -> Timeline:
    every_check = [check for found in checks.values() for check in found]
    start, end = _span(run, jobs, every_check, now)
    scale = CHART_WIDTH / (end - start).total_seconds()

    def x_of(at: dt.datetime) -> float:
        return LABEL_WIDTH + (at - start).total_seconds() * scale

    rows: list[TimelineRow] = []
    y = float(AXIS_HEIGHT)
    for job in jobs:
        segments = job_segments(job, now)
        note = "" if segments else str(job.status).lower()
        if job.status in (JobStatus.SKIPPED, JobStatus.CANCELLED) and job.error:
            note = f"{str(job.status).lower()}: {job.error}"
        rows.append(
            TimelineRow(
                label=job.job_key,
                anchor=_anchor(job.job_key),
                is_check=False,
                y=y,
                height=JOB_ROW,
                bars=_bars(segments, x_of, lambda s: PHASE_FILL[s.phase], job.job_key),
                end_x=x_of(job.finished_at) if job.finished_at and segments else None,
                end_ink=_ink(job.status),
                note=note,
                critical=job.job_key in path,
                suffix=f" · attempt {job.attempt}" if job.attempt > 1 else "",
            )
        )
        y += JOB_ROW
        for check in checks.get(job.job_key, ()):
            fill = _check_fill(check)
            rows.append(
                TimelineRow(
                    label=f"✓ {check.name}" + (f" (attempt {check.attempt})" if check.attempt != job.attempt else ""),
                    anchor=_anchor(job.job_key),
                    is_check=True,
                    y=y,
                    height=CHECK_ROW,
                    bars=_bars(check_segments(check, now), x_of, lambda s, fill=fill: fill, f"check {check.name}"),
                    end_x=None,
                    end_ink=fill,
                    note="" if check.created_at else str(check.status).lower(),
                    critical=False,
                )
            )
            y += CHECK_ROW
    ticks = _ticks(start, end, x_of)
    now_x = x_of(now) if not run.status.terminal and start <= now <= end else None
    return Timeline(tuple(rows), ticks, LABEL_WIDTH + CHART_WIDTH + 28, y + 6, now_x)


def _check_fill(check: CheckRecord) -> str:
    if check.status == CheckStatus.FAILED and str(check.severity) == "warn":
        return WARN_FILL
    return CHECK_FILL.get(check.status, "#cccccc")


def _dag(layout: DagLayout, jobs: Mapping[str, JobRecord], path: CriticalPath) -> tuple[list[DagNodeView], list[DagEdgeView]]:
    on_path = path.edges()
    nodes = [
        DagNodeView(
            key=node.key,
            label=node.label,
            anchor=_anchor(node.key),
            x=node.x,
            y=node.y,
            width=node.width,
            height=node.height,
            fill=STATUS_FILL.get(jobs[node.key].status, "#ffffff"),
            ink=_ink(jobs[node.key].status),
            status=str(jobs[node.key].status),
            critical=node.key in path,
        )
        for node in layout.nodes
    ]
    edges = [DagEdgeView(edge.path, (edge.upstream, edge.dependent) in on_path) for edge in layout.edges]
    return nodes, edges


def _stats_rows(stats: JobStats | None) -> tuple[tuple[str, str], ...]:
    if stats is None:
        return ()
    rows = [
        ("bytes processed", byte_size(stats.total_bytes_processed)),
        ("bytes billed", byte_size(stats.total_bytes_billed)),
        ("slot time", slot_time(stats.total_slot_ms)),
        ("rows affected", NONE if stats.rows_affected is None else f"{stats.rows_affected:,}"),
        ("destination", stats.destination_table or NONE),
    ]
    return tuple((name, value) for name, value in rows if value != NONE)


def _job_link(job_id: str | None, project: str | None, location: str) -> Link:
    if not job_id:
        return Link(NONE, None)
    return Link(job_id, console_url(project, location, job_id) if project else None)


# A job's BigQuery ID exists from the start (it is deterministic), but BigQuery knows it only once submitted.
_SUBMITTED = {JobStatus.SUBMITTED, JobStatus.CHECKING, JobStatus.SUCCEEDED, JobStatus.FAILED}


def _attempts(
    run: RunRecord, job: JobRecord, checks: Sequence[CheckRecord], project: str | None, location: str
) -> tuple[AttemptView, ...]:
    """Every attempt's BigQuery job, newest first. Earlier attempts keep no row of their own: their IDs
    follow from (run, job, attempt), but an attempt that was skipped or cancelled never reached BigQuery.
    Only an attempt whose checks ran is known to have succeeded there."""
    attempts = []
    if job.submitted_at is not None or job.status in _SUBMITTED:
        attempts.append(AttemptView(job.attempt, _job_link(job.bigquery_job_id, project, location), ""))
    checked = {check.attempt for check in checks}
    for attempt in range(job.attempt - 1, 0, -1):
        earlier = bigquery_job_id(run.environment, run.run_id, job.job_key, attempt)
        note = "" if attempt in checked else "if it was submitted: a skipped or cancelled attempt never was"
        attempts.append(AttemptView(attempt, _job_link(earlier, project, location), note))
    return tuple(attempts)


def _check_view(check: CheckRecord, project: str | None, location: str) -> CheckView:
    if check.status == CheckStatus.PENDING:
        verdict = "running"
    elif check.error:
        verdict = "could not run"
    elif check.status == CheckStatus.FAILED:
        verdict = f"{check.rows or 0:,} offending row(s)"
    else:
        verdict = "no offending rows"
    samples = sample_rows(check)
    columns = tuple(dict.fromkeys(str(name) for row in samples for name in row))
    stats = check.stats
    return CheckView(
        name=check.name,
        attempt=check.attempt,
        severity=str(check.severity),
        status=str(check.status),
        ink=_check_fill(check) if check.status != CheckStatus.PENDING else "#0f8596",
        verdict=verdict,
        error=check.error,
        job=_job_link(check.bigquery_job_id, project, location),
        took=between(check.created_at, check.finished_at),
        stats=_check_stats(stats),
        sample_columns=columns,
        sample_rows=tuple(tuple(_cell(row.get(name)) for name in columns) for row in samples),
    )


def _check_stats(stats: JobStats | None) -> str:
    """One short line: what a check costs is its bytes billed and slot time."""
    if stats is None:
        return ""
    parts = [f"{byte_size(stats.total_bytes_billed)} billed" if stats.total_bytes_billed is not None else ""]
    parts.append(f"{slot_time(stats.total_slot_ms)} slot time" if stats.total_slot_ms is not None else "")
    return " · ".join(part for part in parts if part)


def _cell(value: object) -> str:
    return "NULL" if value is None else str(value)


def _job_view(
    run: RunRecord,
    job: JobRecord,
    checks: Sequence[CheckRecord],
    path: CriticalPath,
    project: str | None,
    location: str,
    now: dt.datetime,
) -> JobView:
    stats = job.stats
    bq_start = stats.start_time if stats else None
    bq_end = stats.end_time if stats else None
    times = [
        ("released", utc(job.ready_at)),
        ("submitted", utc(job.submitted_at)),
        ("BigQuery ran", f"{clock(bq_start)} → {clock(bq_end)} ({between(bq_start, bq_end)})" if bq_start and bq_end else NONE),
        ("checks started", utc(job.checks_started_at)),
        ("finished", utc(job.finished_at)),
        ("took", _took(job, now)),
    ]
    if job.not_before is not None and job.not_before > now and not job.status.terminal:
        times.append(("retry not before", utc(job.not_before)))
    return JobView(
        key=job.job_key,
        anchor=_anchor(job.job_key),
        status=str(job.status),
        ink=_ink(job.status),
        fill=STATUS_FILL.get(job.status, "#ffffff"),
        attempt=job.attempt,
        max_attempts=job.spec.retry.max_attempts,
        needs=tuple(job.spec.needs),
        layer=job.spec.labels.get("layer"),
        destination=job.spec.destination,
        critical=job.job_key in path,
        error=job.error,
        error_reason=job.error_reason,
        error_context=f"attempt {job.attempt - 1} failed, retrying: " if job.error and not job.status.terminal else "",
        times=tuple((name, value) for name, value in times if value != NONE),
        stats=_stats_rows(stats),
        attempts=_attempts(run, job, checks, project, location),
        checks=tuple(_check_view(check, project, location) for check in sorted(checks, key=lambda c: (-c.attempt, c.name))),
        sql=job.spec.sql,
    )


def _took(job: JobRecord, now: dt.datetime) -> str:
    """From release to finish, the span the critical path adds up; a live job counts up to now."""
    if job.ready_at is None and job.submitted_at is None:
        return NONE
    took = duration(job_seconds(job, now))
    return took if job.status.terminal else f"{took} so far"


@dataclass(frozen=True)
class Totals:
    bytes_processed: str
    bytes_billed: str
    slot_time: str


def _totals(jobs: Iterable[JobRecord], checks: Iterable[CheckRecord]) -> Totals:
    """Sums over what the records hold: each job's last attempt and every check."""
    stats = [job.stats for job in jobs if job.stats] + [check.stats for check in checks if check.stats]

    def total(values: list[int | None]) -> int | None:
        known = [value for value in values if value is not None]
        return sum(known) if known else None

    return Totals(
        byte_size(total([s.total_bytes_processed for s in stats])),
        byte_size(total([s.total_bytes_billed for s in stats])),
        slot_time(total([s.total_slot_ms for s in stats])),
    )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("baton_cli.report", "templates"),
        autoescape=True,  # every string from a record is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


TEMPLATES = _environment()


def legend() -> dict[str, Any]:
    return {
        "phases": [(str(phase), PHASE_FILL[phase], PHASE_DESCRIPTION[phase]) for phase in Phase],
        "statuses": [(str(status), STATUS_FILL[status], _ink(status)) for status in JobStatus],
        "checks": [
            ("passed", CHECK_FILL[CheckStatus.PASSED]),
            ("failed", CHECK_FILL[CheckStatus.FAILED]),
            ("warning", WARN_FILL),
        ],
    }


def render_run_page(
    run: RunRecord,
    jobs: Sequence[JobRecord],
    checks: Sequence[CheckRecord],
    now: dt.datetime,
    *,
    project: str | None,
    location: str,
    refresh_seconds: int | None = None,
    runs_link: str | None = None,
    pricing: Pricing | None = None,
) -> str:
    """The page of one run. `project` None leaves BigQuery job IDs unlinked; `refresh_seconds` makes a
    live page reload itself (the web UI sets it; a file written once has nothing to reload from)."""
    ordered = _ordered(jobs)
    by_key = {job.job_key: job for job in ordered}
    checks_by_job: dict[str, list[CheckRecord]] = {}
    for check in sorted(checks, key=lambda c: (c.job_key, c.attempt, c.name)):
        checks_by_job.setdefault(check.job_key, []).append(check)
    path = critical_path(
        {job.job_key: job_seconds(job, now) for job in ordered}, {job.job_key: job.spec.needs for job in ordered}
    )
    layout = layered_layout({job.job_key: job.spec.needs for job in ordered})
    dag_nodes, dag_edges = _dag(layout, by_key, path)
    counts = [
        ("succeeded", run.succeeded_jobs),
        ("failed", run.failed_jobs),
        ("skipped", run.skipped_jobs),
        ("cancelled", run.cancelled_jobs),
        ("open", run.open_jobs),
    ]
    end = run.finished_at or (None if run.status.terminal else now)
    return TEMPLATES.get_template("run.html").render(
        run=run,
        status=str(run.status),
        status_ink=_ink(run.status),
        live=not run.status.terminal,
        refresh_seconds=refresh_seconds if not run.status.terminal else None,
        runs_link=runs_link,
        created=utc(run.created_at),
        finished=utc(run.finished_at),
        took=between(run.created_at, end),
        generated=utc(now),
        counts=counts,
        params=[(name, _param_text(bound.value)) for name, bound in sorted(run.params.items())],
        totals=_totals(ordered, checks),
        cost=usage_line(pricing or Pricing(), run.usage),
        path=path,
        path_took=duration(path.seconds),
        timeline=_timeline(run, ordered, checks_by_job, path, now),
        dag=layout,
        dag_nodes=dag_nodes,
        dag_edges=dag_edges,
        jobs=[_job_view(run, job, checks_by_job.get(job.job_key, ()), path, project, location, now) for job in ordered],
        legend=legend(),
        location=location,
        project=project,
    )


def _param_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
