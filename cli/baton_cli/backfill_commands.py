"""`baton backfill|backfills`, and what `status`, `cancel` and `retry` do with a backfill's ID (`bf-...`)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from baton.domain.backfill import BackfillRecord, BackfillStatus
from baton.service.backfills import BackfillProgress
from baton_cli import root
from baton_cli.documents import backfill_status_document, backfills_document
from baton_cli.render import NONE, duration, status_text, timestamp

EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C


class DatesWritten:
    """A start's progress, one date's run at a time: a bar on a terminal's stderr, and what an interrupted start
    had written (the reconciler writes the rest)."""

    def __init__(self) -> None:
        self.backfill: BackfillRecord | None = None
        self.done = 0
        self._bar = Progress(
            TextColumn("writing each date's run"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.disable = not self._bar.console.is_terminal
        self._task = self._bar.add_task("dates", total=None)

    @contextlib.contextmanager
    def shown(self) -> Iterator[None]:
        with self._bar:
            yield

    def written(self, backfill: BackfillRecord, done: int, total: int) -> None:
        self.backfill, self.done = backfill, done
        self._bar.update(self._task, completed=done, total=total)

    def stop(self) -> None:
        self._bar.stop()

    def interrupted(self, resumed_after: dt.timedelta) -> str:
        assert self.backfill is not None
        backfill_id, total = self.backfill.backfill_id, self.backfill.total_runs
        minutes = max(1, round(resumed_after.total_seconds() / 60))
        return (
            f"interrupted after {self.done} of {total} dates of {backfill_id}: the reconciler writes the other "
            f"{total - self.done} once the start is {minutes} minutes old (baton status {backfill_id}), "
            f"or stop it all: baton cancel {backfill_id}"
        )


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date YYYY-MM-DD", param_hint=option) from None


@root.app.command()
def backfill(
    manifest: Annotated[str, typer.Argument(help="Manifest name.")],
    first: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last date, YYYY-MM-DD (included).")],
    param: Annotated[
        str | None, typer.Option("--param", help="The DATE param each run binds its date to (default: the manifest's only one).")
    ] = None,
    max_active: Annotated[int, typer.Option("--max-active-runs", help="Runs RUNNING at once, at most.")] = 1,
    other: Annotated[
        list[str] | None, typer.Option("--params", "-p", help="Other params, NAME=VALUE, the same every date.")
    ] = None,
    select_spec: Annotated[str | None, typer.Option("--select", help="Run only these jobs (as `baton start --select`).")] = None,
    exclude_spec: Annotated[str | None, typer.Option("--exclude", help="Leave these jobs out (same syntax).")] = None,
) -> None:
    """One run of MANIFEST per date from --from to --to, at most --max-active-runs RUNNING at once; each run's
    end starts the next date. Prints the backfill's ID on stdout."""
    from baton_cli.run_commands import parse_params, typed_params  # run_commands imports this module

    settings = root.settings()
    orchestrator = root.build_orchestrator(settings)
    params = typed_params(parse_params(other or []), orchestrator.manifests.load(manifest))
    dates = DatesWritten()
    with root.core_logs(), dates.shown():
        try:
            started = orchestrator.start_backfill(
                manifest,
                _date(first, "--from"),
                _date(last, "--to"),
                param,
                max_active,
                select_spec,
                exclude_spec,
                params,
                on_date=dates.written,
            )
        except KeyboardInterrupt:
            if dates.backfill is None:
                raise
            dates.stop()
            root.fail(dates.interrupted(settings.reconcile.abandon_creating_after), code=EXIT_INTERRUPTED)
    backfill_id = started.backfill.backfill_id
    typer.echo(backfill_id)
    counts = started.counts()
    typer.echo(
        f"backfill of {manifest} over {len(started.runs)} dates ({started.backfill.param}): {counts['RUNNING']} running, "
        f"{counts['QUEUED']} queued; follow it with: baton status {backfill_id}",
        err=True,
    )


@root.app.command()
def backfills(
    manifest: Annotated[str | None, typer.Option("--manifest", "-m", help="Only backfills of this manifest.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: root.JsonOutput = False,
) -> None:
    """Recent backfills, newest first, with their progress: runs succeeded, failed, running and queued."""
    orchestrator = root.build_orchestrator(root.settings())
    found = [orchestrator.backfill(b.backfill_id) for b in orchestrator.store.list_backfills(limit=limit, manifest=manifest)]
    if as_json:
        root.print_json(backfills_document(found))
    elif not found:
        typer.echo("no backfills", err=True)
    else:
        root.console().print(_backfills_table(found))


def _progress_text(progress: BackfillProgress) -> str:
    counts = progress.counts()
    return (
        f"{counts['SUCCEEDED']}/{progress.backfill.total_runs} succeeded, {counts['FAILED']} failed, "
        f"{counts['RUNNING']} running, {counts['QUEUED']} queued"
    )


def _backfills_table(found: list[BackfillProgress]) -> Table:
    table = Table(box=None, pad_edge=False)
    for header in ("backfill", "status", "manifest", "dates", "max active", "progress", "created"):
        table.add_column(header, no_wrap=header in ("backfill", "status"))
    for progress in found:
        backfill = progress.backfill
        table.add_row(
            backfill.backfill_id,
            status_text(str(backfill.status)),
            backfill.manifest_name,
            f"{backfill.param} {backfill.first_date.isoformat()}..{backfill.last_date.isoformat()}",
            str(backfill.max_active_runs),
            _progress_text(progress),
            timestamp(backfill.created_at),
        )
    return table


def show(backfill_id: str, watch: bool, interval: float, as_json: bool) -> None:
    """`baton status BACKFILL_ID`: the backfill and each date's run."""
    orchestrator = root.build_orchestrator(root.settings())
    progress = orchestrator.backfill(backfill_id)
    while watch and not progress.backfill.status.terminal:
        root.sleep(interval)
        progress = orchestrator.backfill(backfill_id)
    if as_json:
        root.print_json(backfill_status_document(progress))
    else:
        root.console().print(_status_view(progress))
    if watch and progress.backfill.status != BackfillStatus.SUCCEEDED:
        raise typer.Exit(root.EXIT_RUN_NOT_SUCCEEDED)


def _status_view(progress: BackfillProgress) -> Group:
    backfill = progress.backfill
    header = Text.assemble(
        (backfill.backfill_id, "bold"),
        "  ",
        status_text(str(backfill.status)),
        f"  {backfill.manifest_name}  {backfill.param} {backfill.first_date}..{backfill.last_date}",
        f"  max {backfill.max_active_runs} active  {_progress_text(progress)}",
        f"  (starting: {len(progress.runs)} of {backfill.total_runs} dates written)" if backfill.starting else "",
    )
    table = Table(box=None, pad_edge=False)
    for column in ("date", "run", "status", "started", "finished", "took", "jobs"):
        table.add_column(column, no_wrap=True)
    for run in progress.runs:
        took = (run.finished_at - run.started_at).total_seconds() if run.started_at and run.finished_at else None
        table.add_row(
            progress.date_of(run),
            run.run_id,
            status_text(str(run.status)),
            timestamp(run.started_at),
            timestamp(run.finished_at),
            duration(took) if took is not None else NONE,
            f"{run.succeeded_jobs}/{run.total_jobs}",
        )
    return Group(header, table)


def cancel(backfill_id: str) -> None:
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        progress = orchestrator.cancel_backfill(backfill_id)
    typer.echo(f"backfill {backfill_id} is {progress.backfill.status}: {_progress_text(progress)}")


def retry(backfill_id: str) -> None:
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        progress = orchestrator.retry_backfill(backfill_id)
    typer.echo(f"backfill {backfill_id} is {progress.backfill.status} again: {_progress_text(progress)}")
