"""`baton`: the operator's command line. Start, watch, retry and cancel runs; validate and draw manifests;
inspect and replay dead-lettered completion events.

It drives the same core as the functions (bootstrap.build over Settings.from_env), so
it needs the handlers' environment variables, and never ships inside a function:
main.py does not import it. Every failure is one line on stderr and a non-zero exit
status, never a traceback (BATON_DEBUG=1 shows it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from typer.core import TyperGroup

from baton import bootstrap
from baton.cli_deadletters import DeadLetterQueue, DeadLetterSettings
from baton.cli_graph import GraphFormat, manifest_graph, render_image, run_graph, to_text
from baton.cli_render import catalog_table, dead_letters_table, runs_table, status_view
from baton.config import ConfigError, Settings, default_manifests_dir
from baton.engine import CheckRecord, JobRecord, RunRecord, RunStatus
from baton.errors import BatonError, ManifestInvalid, ManifestNotFound, RunNotFound
from baton.manifest import Manifest, ManifestRepository, load_manifest
from baton.orchestrator import Orchestrator
from baton.ports import RunStore

EXIT_ERROR = 1
EXIT_RUN_NOT_SUCCEEDED = 3  # `status --watch` on a run that ended FAILED or CANCELLED
DEBUG_VAR = "BATON_DEBUG"
ID_TOKEN_VAR = "BATON_ID_TOKEN"  # noqa: S105 - the variable's name: a token to use instead of fetching one with ADC
EMULATOR_PROBE_TIMEOUT_S = 2.0
HTTP_TIMEOUT_S = 120.0


class Unreachable(BatonError):
    """An emulator named by its environment variable does not accept connections."""


# --- composition: module-level so tests can swap in the Spanner emulator and fakes -------------------------


def _probe_emulator(variable: str, what: str) -> None:
    """The client libraries retry an unreachable emulator for half a minute; a TCP connect says so at once."""
    host = os.environ.get(variable)
    if not host:
        return
    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name or "localhost", int(port)), timeout=EMULATOR_PROBE_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise Unreachable(f"{what} at {host} ({variable}) is unreachable: {reason}") from None


def build_store(settings: Settings) -> RunStore:
    from baton.spanner_store import SpannerRunStore

    _probe_emulator("SPANNER_EMULATOR_HOST", "the Spanner emulator")
    return SpannerRunStore.connect(settings.project, settings.spanner_instance, settings.spanner_database)


def build_orchestrator(settings: Settings) -> Orchestrator:
    _probe_emulator("SPANNER_EMULATOR_HOST", "the Spanner emulator")
    return bootstrap.build(settings)


def build_dead_letter_queue(settings: DeadLetterSettings) -> DeadLetterQueue:
    _probe_emulator("PUBSUB_EMULATOR_HOST", "the Pub/Sub emulator")
    return DeadLetterQueue.connect(settings)


def _settings() -> Settings:
    return Settings.from_env()


class _Options:
    verbose = False  # set by the root callback on every invocation


@contextlib.contextmanager
def _core_logs() -> Iterator[None]:
    """The core logs JSON lines to stdout for Cloud Logging; here stdout is the command's own output.

    So they go to stderr with --verbose, and nowhere otherwise.
    """
    with contextlib.redirect_stdout(sys.stderr if _Options.verbose else io.StringIO()):
        yield


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- one-line errors ---------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe_error(exc: BaseException) -> str:
    """What went wrong, in one line, for any failure the CLI expects."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, ManifestInvalid):
        return _one_line("; ".join(f"{exc.where}: {problem}" for problem in exc.problems))
    if isinstance(exc, BatonError):
        return _one_line(str(exc))
    if isinstance(exc, gexc.RetryError):
        cause = exc.cause or exc
        return _one_line(f"Google API unreachable, gave up retrying: {cause}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return _one_line(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return _one_line(f"no usable Google credentials ({exc}); run `gcloud auth application-default login`")
    if isinstance(exc, auth_exc.GoogleAuthError):
        return _one_line(f"Google authentication failed: {exc}")
    if isinstance(exc, OSError):
        return _one_line(str(exc) or type(exc).__name__)
    return _one_line(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_VAR}=1 for the traceback)")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code)


class OneLineErrors(TyperGroup):
    """Turns every failure below the root command into one line on stderr and exit status 1."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors keep click's own report
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_VAR):
                raise
            fail(describe_error(exc))


app = typer.Typer(
    cls=OneLineErrors,
    name="baton",
    help="Operate Baton: start and watch runs, validate and draw manifests, replay dead letters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
manifest_app = typer.Typer(help="Validate manifests and draw their DAGs.", no_args_is_help=True)
deadletters_app = typer.Typer(help="Completion events Pub/Sub gave up on: list and replay them.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
app.add_typer(deadletters_app, name="deadletters")


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # piped output: do not squeeze tables into 80 columns
    return console


# --- the root: environment ---------------------------------------------------------------------------------


def load_env_file(path: Path) -> dict[str, str]:
    """`NAME=VALUE` lines (optionally `export`ed, optionally quoted); `#` starts a comment line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, separator, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name.isidentifier():
            raise ConfigError(f"{path}:{number}: expected NAME=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


@app.callback()
def root(
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read NAME=VALUE lines into the environment first; they override it.", dir_okay=False),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the core's JSON log lines on stderr.")] = False,
) -> None:
    """Settings come from the handlers' variables: BATON_ENV, BATON_PROJECT, BATON_SPANNER_INSTANCE, ..."""
    _Options.verbose = verbose
    if env_file is not None:
        os.environ.update(load_env_file(env_file))


ManifestsDir = Annotated[
    Path | None,
    typer.Option(
        "--manifests-dir", envvar="BATON_MANIFESTS_DIR", help="Where NAME.yaml lives (default: manifests/).", file_okay=False
    ),
]


def _looks_like_path(argument: str) -> bool:
    return os.sep in argument or argument.endswith((".yaml", ".yml"))


def _load(argument: str, manifests_dir: Path | None) -> Manifest:
    """A manifest by file path or by name; a file's `name` must match its file name, as deployment needs."""
    if _looks_like_path(argument):
        path = Path(argument)
        manifest = load_manifest(path)
        if manifest.name != path.stem:
            raise ManifestInvalid(str(path), [f"name '{manifest.name}' differs from the file name '{path.stem}'"])
        return manifest
    return ManifestRepository(manifests_dir or default_manifests_dir()).load(argument)


# --- manifest ----------------------------------------------------------------------------------------------


@manifest_app.command("validate")
def manifest_validate(
    manifests: Annotated[list[str] | None, typer.Argument(help="Files or names (default: every manifest).")] = None,
    manifests_dir: ManifestsDir = None,
) -> None:
    """Check manifests: OK per valid one, every problem of the others; exit 1 if any is invalid."""
    directory = manifests_dir or default_manifests_dir()
    targets = list(manifests or ManifestRepository(directory).names())
    if not targets:
        fail(f"no manifests (*.yaml) in {directory}")
    invalid = 0
    for target in targets:
        try:
            manifest = _load(target, directory)
        except ManifestInvalid as exc:
            invalid += 1
            for problem in exc.problems:
                typer.echo(f"{exc.where}: {problem}")
        except ManifestNotFound as exc:
            invalid += 1
            typer.echo(f"{exc.name}: not found" + ("" if _looks_like_path(target) else f" in {directory}"))
        else:
            typer.echo(f"OK  {manifest.source}  ({manifest.name} @ {manifest.version}, {len(manifest.jobs)} jobs)")
    if invalid:
        typer.echo(f"{invalid} of {len(targets)} manifest(s) invalid", err=True)
        raise typer.Exit(EXIT_ERROR)


def _in_manifest_order(jobs: Sequence[JobRecord], manifest: Manifest) -> list[JobRecord]:
    order = {spec.key: index for index, spec in enumerate(manifest.jobs)}
    return sorted(jobs, key=lambda job: (order.get(job.job_key, len(order)), job.job_key))


@manifest_app.command("graph")
def manifest_graph_command(
    name: Annotated[str, typer.Argument(help="Manifest name or file.")],
    graph_format: Annotated[GraphFormat | None, typer.Option("--format", help="Text format (default mermaid).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Render FILE.png or FILE.svg with Graphviz.")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Colour the jobs by their status in this run.")] = None,
    manifests_dir: ManifestsDir = None,
) -> None:
    """The DAG as Mermaid or Graphviz text (edges point from a job to those that need it)."""
    manifest = _load(name, manifests_dir)
    graph = manifest_graph(manifest)
    if run_id is not None:
        store = build_store(_settings())
        run = _run(store, run_id)
        if run.manifest_name != manifest.name:
            fail(f"run '{run_id}' is of manifest '{run.manifest_name}', not '{manifest.name}'")
        graph = run_graph(run.manifest_name, _in_manifest_order(store.list_jobs(run_id), manifest))
    if output is None:
        typer.echo(to_text(graph, graph_format or GraphFormat.MERMAID), nl=False)
        return
    if graph_format == GraphFormat.MERMAID:
        fail("--output renders with Graphviz; drop --format mermaid, or print Mermaid text without --output")
    render_image(graph, output)
    typer.echo(f"wrote {output}", err=True)


# --- runs --------------------------------------------------------------------------------------------------


def _run(store: RunStore, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise typer.BadParameter(f"'{pair}' is not NAME=VALUE", param_hint="--param")
        params[name.strip()] = value
    return params


_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def typed_params(params: Mapping[str, str], manifest: Manifest | None) -> dict[str, Any]:
    """Text from the command line, as the manifest declares it: BOOL params become booleans.

    Every other type accepts its text form (the core parses dates, numbers and timestamps).
    """
    typed: dict[str, Any] = dict(params)
    for name, value in params.items():
        spec = manifest.params.get(name) if manifest else None
        if spec is not None and spec.type == "BOOL" and value.lower() in _TRUE | _FALSE:
            typed[name] = value.lower() in _TRUE
    return typed


def _fetch_id_token(audience: str) -> str:
    """An identity token from Application Default Credentials. Google's libraries mint one only for a
    service account (key file, impersonation or the metadata server), not for a user's login."""
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.id_token

    try:
        token: str = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)  # type: ignore[no-untyped-call]
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise BatonError(
            f"no credentials that can mint an identity token ({_one_line(str(exc))}); use a service account, "
            f"or set {ID_TOKEN_VAR}=$(gcloud auth print-identity-token)"
        ) from exc
    return token


def start_remote(url: str, manifest: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """POST to the deployed start_manifest with an identity token for `url` (the function's audience)."""
    import requests

    token = os.environ.get(ID_TOKEN_VAR) or _fetch_id_token(url)
    response = requests.post(
        url,
        json={"manifest": manifest, "params": dict(params)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=HTTP_TIMEOUT_S,
    )
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "run_id" not in body:
        detail = body.get("message") if isinstance(body, dict) else response.text[:200]
        raise BatonError(f"start_manifest answered {response.status_code}: {detail or response.reason}")
    return body


@app.command()
def start(
    manifest: Annotated[str, typer.Argument(help="Manifest name.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="POST to this deployed start_manifest function instead of using Spanner directly.")
    ] = None,
    manifests_dir: ManifestsDir = None,
) -> None:
    """Start a run and print its id on stdout (details go to stderr)."""
    params = parse_params(param or [])
    if url is not None:
        try:
            local: Manifest | None = ManifestRepository(manifests_dir or default_manifests_dir()).load(manifest)
        except BatonError:
            local = None  # the function knows its own manifests; it will say what is wrong
        body = start_remote(url, manifest, typed_params(params, local))
        typer.echo(body["run_id"])
        typer.echo(
            f"started {body.get('manifest', manifest)} @ {body.get('version', '?')} with {body.get('jobs', '?')} jobs", err=True
        )
        return
    orchestrator = build_orchestrator(_settings())
    typed = typed_params(params, orchestrator.manifests.load(manifest))
    with _core_logs():
        run = orchestrator.start(manifest, typed)
    typer.echo(run.run_id)
    typer.echo(
        f"started {run.manifest_name} @ {run.manifest_version} with {run.total_jobs} jobs; "
        f"follow it with: baton status {run.run_id} --watch",
        err=True,
    )


def _checks(store: RunStore, run_id: str, jobs: Sequence[JobRecord]) -> dict[str, list[CheckRecord]] | None:
    """Check outcomes of each job's current attempt; None when no job of the run declares checks."""
    if not any(job.spec.checks for job in jobs):
        return None
    attempts = {job.job_key: job.attempt for job in jobs}
    by_job: dict[str, list[CheckRecord]] = {}
    for check in store.list_checks(run_id):
        if attempts.get(check.job_key) == check.attempt:
            by_job.setdefault(check.job_key, []).append(check)
    return by_job


def _status_view(store: RunStore, run_id: str) -> tuple[RunRecord, Any]:
    run = _run(store, run_id)
    jobs = store.list_jobs(run_id)
    # Upstreams before dependents, the way the manifest reads: by depth, then by key.
    depth = _depths(jobs)
    jobs = sorted(jobs, key=lambda job: (depth[job.job_key], job.job_key))
    return run, status_view(run, jobs, _now(), _checks(store, run_id, jobs))


def _depths(jobs: Sequence[JobRecord]) -> dict[str, int]:
    needs = {job.job_key: job.spec.needs for job in jobs}

    @functools.cache
    def depth(key: str) -> int:
        return 1 + max((depth(up) for up in needs.get(key, ()) if up in needs), default=-1)

    return {key: depth(key) for key in needs}


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw until the run ends; exit 3 unless it succeeded.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """A run's header and its jobs: status, attempt, times, BigQuery job id, error."""
    store = build_store(_settings())
    console = _console()
    if not watch:
        _, view = _status_view(store, run_id)
        console.print(view)
        return
    run, view = _status_view(store, run_id)
    with Live(view, console=console, auto_refresh=False) as live:
        while not run.status.terminal:
            _sleep(interval)
            run, view = _status_view(store, run_id)
            live.update(view, refresh=True)
    if run.status != RunStatus.SUCCEEDED:
        raise typer.Exit(EXIT_RUN_NOT_SUCCEEDED)


@app.command()
def runs(
    manifest: Annotated[str | None, typer.Option("--manifest", "-m", help="Only runs of this manifest.")] = None,
    run_status: Annotated[
        RunStatus | None, typer.Option("--status", "-s", case_sensitive=False, help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
) -> None:
    """Recent runs, newest first."""
    store = build_store(_settings())
    found = store.list_runs(limit=limit, manifest=manifest, status=run_status)
    if not found:
        typer.echo("no runs", err=True)
        return
    _console().print(runs_table(found, _now()))


@app.command()
def retry(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Re-run a FAILED or CANCELLED run's failed, skipped and cancelled jobs, each as its next attempt."""
    orchestrator = build_orchestrator(_settings())
    with _core_logs():
        run = orchestrator.retry(run_id)
    typer.echo(f"run {run.run_id} is {run.status} again: {run.open_jobs} of {run.total_jobs} jobs to run")


@app.command()
def cancel(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Cancel a run: nothing more is submitted, released BigQuery jobs are cancelled."""
    orchestrator = build_orchestrator(_settings())
    before = _run(orchestrator.store, run_id)
    if before.status.terminal:
        typer.echo(f"run {run_id} already ended {before.status}; nothing to cancel")
        return
    with _core_logs():
        run = orchestrator.cancel(run_id)
    cancelled = run.cancelled_jobs - before.cancelled_jobs
    typer.echo(f"run {run.run_id} is {run.status}: {cancelled} open job(s) cancelled")


@app.command()
def catalog(
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only tables whose reference starts with this.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 100,
) -> None:
    """Tables Baton wrote: the last run, job, time, rows and bytes of each."""
    store = build_store(_settings())
    entries = store.list_catalog(limit=limit, prefix=prefix)
    if not entries:
        typer.echo("no tables in the catalog" + (f" under '{prefix}'" if prefix else ""), err=True)
        return
    _console().print(catalog_table(entries))


# --- dead letters ------------------------------------------------------------------------------------------


def _dead_letter_queue() -> DeadLetterQueue:
    return build_dead_letter_queue(DeadLetterSettings.from_env(_settings(), os.environ))


@deadletters_app.command("list")
def deadletters_list(limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50) -> None:
    """Dead letters waiting on the hold subscription; reading them acknowledges nothing."""
    queue = _dead_letter_queue()
    letters = queue.peek(limit)
    if not letters:
        typer.echo(f"no dead letters on {queue.settings.subscription}", err=True)
        return
    _console().print(dead_letters_table(letters))


@deadletters_app.command("replay")
def deadletters_replay(
    message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids to replay.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
) -> None:
    """Republish dead letters to the completion topic, acknowledging each only after its publish succeeded."""
    if replay_all == bool(message_ids):
        raise typer.BadParameter("give message ids or --all (not both)", param_hint="MESSAGE_IDS")
    queue = _dead_letter_queue()
    report = queue.replay(None if replay_all else list(message_ids or []))
    for old, new in zip(report.replayed, report.new_message_ids, strict=False):
        typer.echo(f"replayed {old} as {new}")
    if report.replayed:
        typer.echo(f"{len(report.replayed)} dead letter(s) replayed to {queue.settings.completion_topic}", err=True)
    if report.missing:
        fail(f"not on {queue.settings.subscription}: {', '.join(report.missing)}")


def main() -> None:
    app()
