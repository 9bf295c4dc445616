"""`baton cost|show|logs|lineage`: what runs cost, what one job did, what the handlers said, what tables feed which."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from baton.domain.cost import Pricing, money
from baton.domain.records import CheckRecord, RunRecord, Usage
from baton.errors import BatonError
from baton.service.ports import RunStore
from baton_cli import root
from baton_cli.cost_view import byte_size, job_usage, slot_time
from baton_cli.handler_logs import cloud_filter, cloud_lines, gcloud_command, local_lines
from baton_cli.inspect_view import show_view
from baton_cli.lineage_view import LineageGraph, lineage_view

MAX_RUNS = 10_000  # `baton cost` reads at most this many runs; it says so when it reached it
MAX_CATALOG = 100_000  # `baton lineage` reads the whole catalog (one row per table Baton wrote)


def parse_since(text: str) -> dt.datetime:
    """A date (midnight UTC) or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a date (YYYY-MM-DD) or an ISO 8601 time", param_hint="--since") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _usage_table(first_column: str, rows: Iterable[tuple[str, int, Usage]], pricing: Pricing) -> Table:
    table = Table(expand=False, caption=f"priced {pricing.describe()}", caption_justify="left")
    table.add_column(first_column)
    for column in ("runs", "bytes processed", "bytes billed", "slot time", "cost"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, runs, usage in rows:
        table.add_row(
            name,
            str(runs) if runs else "",
            byte_size(usage.bytes_processed),
            byte_size(usage.bytes_billed),
            slot_time(usage.slot_ms),
            money(pricing.cost(usage), pricing.currency),
        )
    return table


def by_manifest(runs: Sequence[RunRecord]) -> list[tuple[str, int, Usage]]:
    sums: dict[str, tuple[int, Usage]] = {}
    for run in runs:
        count, usage = sums.get(run.manifest_name, (0, Usage()))
        sums[run.manifest_name] = (count + 1, usage + run.usage)
    rows = [(name, count, usage) for name, (count, usage) in sorted(sums.items())]
    return [*rows, ("total", len(runs), _sum(usage for _, _, usage in rows))]


def by_job(store: RunStore, runs: Sequence[RunRecord]) -> list[tuple[str, int, Usage]]:
    """Each job's last attempt and all of its checks, per run; what earlier attempts cost is the rest of the runs'
    own totals (a job record keeps only its last attempt's statistics)."""
    sums: dict[str, tuple[int, Usage]] = {}
    for run in runs:
        checks: dict[str, list[CheckRecord]] = {}
        for check in store.list_checks(run.run_id):
            checks.setdefault(check.job_key, []).append(check)
        for job in store.list_jobs(run.run_id):
            usage = job_usage(job, checks.get(job.job_key, ()))
            if usage is None:
                continue
            count, total = sums.get(job.job_key, (0, Usage()))
            sums[job.job_key] = (count + 1, total + usage)
    rows = [(key, count, usage) for key, (count, usage) in sorted(sums.items())]
    jobs_total = _sum(usage for _, _, usage in rows)
    runs_total = _sum(run.usage for run in runs)
    earlier = Usage(
        max(runs_total.bytes_processed - jobs_total.bytes_processed, 0),
        max(runs_total.bytes_billed - jobs_total.bytes_billed, 0),
        max(runs_total.slot_ms - jobs_total.slot_ms, 0),
    )
    if earlier != Usage():
        rows.append(("(earlier attempts)", 0, earlier))
    return [*rows, ("total", len(runs), runs_total if runs_total != Usage() else jobs_total)]


def _sum(usages: Iterable[Usage]) -> Usage:
    return sum(usages, Usage())


@root.app.command()
def cost(
    manifest: Annotated[str | None, typer.Option("--manifest", "-m", help="Only this manifest's runs, summed by job.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Runs created at or after this date (YYYY-MM-DD, UTC) or ISO time.")
    ] = None,
) -> None:
    """What BigQuery metered for runs and its price: by manifest, or by job with --manifest."""
    settings = root.settings()
    store = root.build_store(settings)
    start = parse_since(since) if since else None
    runs = store.list_runs(limit=MAX_RUNS, manifest=manifest, since=start)
    if not runs:
        typer.echo("no runs" + (f" of {manifest}" if manifest else "") + (f" since {since}" if since else ""), err=True)
        return
    if len(runs) == MAX_RUNS:
        typer.echo(f"note: summed the newest {MAX_RUNS} runs only; narrow with --since", err=True)
    if manifest is None:
        root.console().print(_usage_table("manifest", by_manifest(runs), settings.pricing))
    else:
        root.console().print(_usage_table(f"{manifest}: job", by_job(store, runs), settings.pricing))


@root.app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    job_key: Annotated[str, typer.Argument(help="Job key.")],
) -> None:
    """One job of a run: its snapshot SQL and params, every attempt's BigQuery job ID, times, error, checks and cost."""
    settings = root.settings()
    store = root.build_store(settings)
    run = root.existing_run(store, run_id)
    found = store.get_jobs(run_id, [job_key])
    if not found:
        known = ", ".join(sorted(job.job_key for job in store.list_jobs(run_id)))
        raise BatonError(f"run '{run_id}' has no job '{job_key}' (its jobs: {known})")
    checks = store.list_checks(run_id, job_key)
    root.console().print(show_view(run, found[0], checks, settings.pricing))


def _local_logs_dir() -> Path | None:
    """The log folder of the `baton dev` of this checkout (running, or the last one that ran)."""
    try:
        from devstack.dev_state import checkout_root, dev_dir, read_state
    except ImportError:  # installed without the local stack
        return None
    checkout = checkout_root(Path.cwd())
    if checkout is None:
        return None
    state = read_state(checkout)
    logs = Path(state.logs) if state is not None else dev_dir(checkout) / "stack" / "logs"
    return logs if logs.is_dir() else None


@root.app.command()
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    job_key: Annotated[str | None, typer.Argument(help="Only this job's lines.")] = None,
    logs_dir: Annotated[
        Path | None,
        typer.Option("--logs-dir", help="A local stack's log folder (default: this checkout's baton dev).", file_okay=False),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Cloud Logging: at most this many lines.")] = 1000,
) -> None:
    """The handlers' log lines of a run (or one job): the local stack's function logs, or Cloud Logging's."""
    settings = root.settings()
    local = logs_dir
    if local is None and os.environ.get("SPANNER_EMULATOR_HOST"):  # a local stack: its functions log to files
        local = _local_logs_dir()
        if local is None:
            raise BatonError("no local stack logs found here; give the stack's log folder with --logs-dir")
    if local is not None:
        lines = local_lines(local, run_id, job_key)
        where = str(local)
    else:
        query = cloud_filter(settings.environment, run_id, job_key)
        if importlib.util.find_spec("google.cloud.logging") is None:
            typer.echo("google-cloud-logging is not installed; read the lines with:", err=True)
            typer.echo(gcloud_command(settings.project, query))
            return
        lines = cloud_lines(settings.project, query, limit)
        where = f"Cloud Logging ({query})"
    if not lines:
        typer.echo(f"no log lines of run {run_id}" + (f" job {job_key}" if job_key else "") + f" in {where}", err=True)
        return
    for line in lines:
        typer.echo(line.text())


@root.app.command()
def lineage(
    table: Annotated[str, typer.Argument(help="Table reference: project.dataset.table (or dataset.table).")],
    depth: Annotated[int, typer.Option("--depth", "-d", min=1, max=20, help="How many hops up and down.")] = 3,
) -> None:
    """The tables upstream and downstream of a table and the jobs between them, from the catalog's last writes."""
    settings = root.settings()
    store = root.build_store(settings)
    graph = LineageGraph(store.list_catalog(limit=MAX_CATALOG))
    name = graph.resolve(table, settings.project)
    if name is None:
        raise BatonError(f"'{table}' is neither in the catalog nor read by a job in it")
    root.console().print(lineage_view(graph, name, depth))
