"""`baton report RUN -o run.html` and `baton ui`: the run page as a file, and all run pages on localhost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from baton_cli import root
from baton_cli.report import render_run_page
from baton_cli.report.ui import DEFAULT_HOST, DEFAULT_PORT, serve


@root.app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("run.html"),
) -> None:
    """Write one run's page: a self-contained HTML file (timeline, critical path, DAG, checks, console links)."""
    settings = root.settings()
    store = root.build_store(settings)
    run = root.existing_run(store, run_id)
    page = render_run_page(
        run,
        store.list_jobs(run_id),
        store.list_checks(run_id),
        root.now(),
        project=settings.project,
        location=settings.bigquery_location,
        pricing=settings.pricing,
    )
    output.write_text(page, encoding="utf-8")
    typer.echo(f"wrote {output} ({len(page) // 1024} KiB): run {run_id} {run.status}")


@root.app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on; only this machine by default.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=1, max=65535)] = DEFAULT_PORT,
) -> None:
    """Serve every run's page, read-only, on localhost; a live run's page refreshes itself."""
    settings = root.settings()
    typer.echo(f"baton ui: http://{host}:{port}/ (Ctrl-C stops it)", err=True)
    serve(
        host,
        port,
        lambda: root.build_store(settings),
        project=settings.project,
        location=settings.bigquery_location,
        pricing=settings.pricing,
    )
