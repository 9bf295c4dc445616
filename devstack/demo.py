"""`make demo`: the example manifest end to end on local emulators, driven only by completion events.

Synthesizes the dev stacks, starts the local stack from them, starts `elt_daily`,
shows live progress, prints a per-job report, and stops every process it
started (also on Ctrl-C or failure).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.records import JobRecord, JobStatus, RunRecord, RunStatus
from baton_cli.report import render_run_page
from devstack.stack import REPO, LocalStack, LocalStackOptions

STATUS_STYLE = {
    JobStatus.PENDING: "dim",
    JobStatus.READY: "cyan",
    JobStatus.SUBMITTED: "yellow",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "bold red",
    JobStatus.SKIPPED: "magenta",
    JobStatus.CANCELLED: "red",
}


def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def handoff_delay(job: JobRecord, jobs: Mapping[str, JobRecord]) -> float | None:
    """From the last upstream finishing to this job's submission: the orchestration overhead."""
    upstream_ends = [jobs[key].finished_at for key in job.spec.needs]
    if not upstream_ends or any(end is None for end in upstream_ends):
        return None
    return seconds(max(end for end in upstream_ends if end is not None), job.submitted_at)


def jobs_table(jobs: Sequence[JobRecord], title: str) -> Table:
    by_key = {job.job_key: job for job in jobs}
    table = Table(title=title, title_justify="left")
    for column, justify in [("job", "left"), ("needs", "left"), ("status", "left"), ("attempts", "right")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("duration", justify="right")
    table.add_column("hand-off delay", justify="right")
    for job in jobs:
        style = STATUS_STYLE.get(job.status, "")
        table.add_row(
            job.job_key,
            ", ".join(job.spec.needs) or "-",
            f"[{style}]{job.status}[/]",
            str(job.attempt),
            fmt(seconds(job.submitted_at, job.finished_at)),
            fmt(handoff_delay(job, by_key)),
        )
    return table


def topological(jobs: Sequence[JobRecord]) -> list[JobRecord]:
    """Jobs in dependency order (then by key), so the table reads top to bottom like the DAG."""
    by_key = {job.job_key: job for job in jobs}
    depth: dict[str, int] = {}

    def level(key: str) -> int:
        if key not in depth:
            depth[key] = 1 + max((level(up) for up in by_key[key].spec.needs), default=-1)
        return depth[key]

    return sorted(jobs, key=lambda job: (level(job.job_key), job.job_key))


def watch(console: Console, store: SpannerRunStore, run_id: str, timeout_s: float) -> tuple[RunRecord, list[JobRecord]]:
    """Redraw from Spanner until the run ends. Only this terminal UI polls; Baton itself waits for nothing."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = progress.add_task("jobs finished", total=None)
    deadline = time.monotonic() + timeout_s
    ended: float | None = None
    with Live(console=console, refresh_per_second=8, transient=True) as live:
        while True:
            run = store.get_run(run_id)
            jobs = topological(store.list_jobs(run_id))
            if run is None:
                raise RuntimeError(f"run {run_id} vanished")
            progress.update(task, total=run.total_jobs, completed=run.total_jobs - run.open_jobs)
            live.update(Group(progress, jobs_table(jobs, f"run {run_id} — {run.status}")))
            if run.status.terminal:
                # A handler marks its submissions just after jobs.insert; give the last mark a moment to land.
                ended = ended or time.monotonic()
                settled = all(job.submitted_at is not None for job in jobs if job.status == JobStatus.SUCCEEDED)
                if settled or time.monotonic() - ended > 2:
                    return run, jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout_s:.0f}s")
            time.sleep(0.25)


def report(console: Console, stack: LocalStack, run: RunRecord, jobs: Sequence[JobRecord], wall_s: float) -> None:
    stack.bigquery.bridge.flush()
    stats = stack.bigquery.stats()
    done_events = sum(
        1
        for entry in stack.bigquery.bridge.routed
        if entry["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["labels"].get("baton_run") == run.run_id
    )
    delays = [d for d in (handoff_delay(job, {j.job_key: j for j in jobs}) for job in jobs) if d is not None]
    summary = Table.grid(padding=(0, 2))
    summary.add_row("run", f"{run.run_id} ({run.manifest_name} @ {run.manifest_version})")
    summary.add_row("status", f"[{'green' if run.status == RunStatus.SUCCEEDED else 'bold red'}]{run.status}[/]")
    summary.add_row("jobs", f"{run.succeeded_jobs} succeeded, {run.failed_jobs} failed, {run.skipped_jobs} skipped")
    summary.add_row("completion events routed", f"{done_events} (audit log -> sink filter -> Pub/Sub -> bigquery_job_completed)")
    inserts = stats.snapshot()["calls"].get("jobs.insert", {}).get("baton-handlers", 0)
    summary.add_row("jobs.insert by handlers", str(inserts))
    summary.add_row("jobs.get by handlers", f"{stats.get_calls('baton-handlers')} (nothing polls a job)")
    if delays:
        summary.add_row("hand-off delay", f"median {sorted(delays)[len(delays) // 2]:.2f}s, max {max(delays):.2f}s")
    summary.add_row("wall time of the run", f"{wall_s:.1f}s")
    console.print(jobs_table(jobs, "Final report"))
    console.print(summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="elt_daily")
    parser.add_argument("--run-date", default=dt.date.today().isoformat())
    parser.add_argument("--min-job-seconds", type=float, default=0.5, help="simulated BigQuery run time, lower bound")
    parser.add_argument("--max-job-seconds", type=float, default=2.0, help="simulated BigQuery run time, upper bound")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--report", type=Path, help="also write the run's page (self-contained HTML) to this file")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    work_dir = REPO / ".devstack" / "demo"
    shutil.rmtree(work_dir, ignore_errors=True)  # a fresh stack every time: no clean-up between runs
    rng = random.Random(args.run_date)  # noqa: S311 - simulated durations, not secrets
    options = LocalStackOptions(
        work_dir=work_dir,
        duration_fn=lambda job_id, labels: rng.uniform(args.min_job_seconds, args.max_job_seconds),
    )
    try:
        with console.status("starting the local stack") as status:
            stack = LocalStack.start(options, progress=lambda step: status.update(step))
        with stack:
            console.print(f"[bold]local stack up[/]: {', '.join(f'{k} {v.url}' for k, v in stack.functions.items())}")
            started = time.monotonic()
            run_id = stack.start_run(args.manifest, {"run_date": args.run_date})["run_id"]
            console.print(f"started [bold]{args.manifest}[/] for run_date {args.run_date}: run {run_id}")
            store = SpannerRunStore(stack.database())
            run, jobs = watch(console, store, run_id, args.timeout)
            report(console, stack, run, jobs, time.monotonic() - started)
            if args.report is not None:
                page = render_run_page(
                    run,
                    jobs,
                    store.list_checks(run_id),
                    dt.datetime.now(dt.UTC),
                    project=stack.topology.project,
                    location=stack.settings.get("BATON_BQ_LOCATION", "US"),
                )
                args.report.write_text(page, encoding="utf-8")
                console.print(f"run page: {args.report}")
            console.print("stopping every process the demo started")
        return 0 if run.status == RunStatus.SUCCEEDED else 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: every process the demo started has been stopped[/]")
        return 130
    except Exception as exc:  # one line for the user; the logs hold the rest
        console.print(f"[bold red]demo failed:[/] {type(exc).__name__}: {exc}")
        console.print(f"logs: {work_dir / 'logs'}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
