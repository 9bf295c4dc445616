"""The `baton` root command: its options, the one-line error policy, and how commands reach the core.

Command modules (manifest_commands, run_commands, deadletter_commands) call the
builders here through the module (`root.build_store(...)`), so tests swap them in one place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from baton import bootstrap
from baton.config import ConfigError, Settings
from baton.domain.records import RunRecord
from baton.errors import BatonError, ManifestInvalid, RunNotFound, one_line
from baton.service.orchestrator import Orchestrator
from baton.service.ports import RunStore
from baton_cli.deadletters import DeadLetterQueue, DeadLetterSettings

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
    from baton.adapters.spanner_store import SpannerRunStore

    _probe_emulator("SPANNER_EMULATOR_HOST", "the Spanner emulator")
    return SpannerRunStore.connect(
        settings.project, settings.spanner_instance, settings.spanner_database, pool_sizes=settings.pools
    )


def build_orchestrator(settings: Settings) -> Orchestrator:
    _probe_emulator("SPANNER_EMULATOR_HOST", "the Spanner emulator")
    return bootstrap.build(settings)


def build_dead_letter_queue(settings: DeadLetterSettings) -> DeadLetterQueue:
    _probe_emulator("PUBSUB_EMULATOR_HOST", "the Pub/Sub emulator")
    return DeadLetterQueue.connect(settings)


def settings() -> Settings:
    return Settings.from_env()


class _Options:
    verbose = False  # set by the root callback on every invocation


@contextlib.contextmanager
def core_logs() -> Iterator[None]:
    """The core logs JSON lines to stdout for Cloud Logging; here stdout is the command's own output.

    So they go to stderr with --verbose, and nowhere otherwise.
    """
    with contextlib.redirect_stdout(sys.stderr if _Options.verbose else io.StringIO()):
        yield


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- one-line errors ---------------------------------------------------------------------------------------


def describe_error(exc: BaseException) -> str:
    """What went wrong, in one line, for any failure the CLI expects."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, ManifestInvalid):
        return one_line("; ".join(f"{exc.where}: {problem}" for problem in exc.problems))
    if isinstance(exc, BatonError):
        return one_line(str(exc))
    if isinstance(exc, gexc.RetryError):
        cause = exc.cause or exc
        return one_line(f"Google API unreachable, gave up retrying: {cause}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return one_line(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return one_line(f"no usable Google credentials ({exc}); run `gcloud auth application-default login`")
    if isinstance(exc, auth_exc.GoogleAuthError):
        return one_line(f"Google authentication failed: {exc}")
    if isinstance(exc, OSError):
        return one_line(str(exc) or type(exc).__name__)
    return one_line(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_VAR}=1 for the traceback)")


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {one_line(message)}", err=True)
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


def console() -> Console:
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
    """Settings come from the handlers' variables (BATON_ENV, BATON_PROJECT, ...); with neither them nor --env-file,
    from the `baton dev` running in this checkout."""
    _Options.verbose = verbose
    if env_file is not None:
        os.environ.update(load_env_file(env_file))
    elif not os.environ.get("BATON_PROJECT"):
        os.environ.update(running_dev_stack())


def running_dev_stack() -> dict[str, str]:
    """The variables of the `baton dev` running in the checkout around the working directory, if one runs."""
    try:
        from devstack.dev import discover
    except ImportError:  # installed without the local stack
        return {}
    return discover(Path.cwd()) or {}


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def dev(ctx: typer.Context) -> None:
    """Start the whole local stack and keep it up; other commands in this checkout use it (--help for more)."""
    from devstack.dev import main as dev_main

    raise typer.Exit(dev_main(ctx.args))


JsonOutput = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (schema_version 1, see docs/cli.md) instead of a table.")
]


def print_json(document: dict[str, Any]) -> None:
    from baton_cli.documents import dumps

    typer.echo(dumps(document))


ManifestsDir = Annotated[
    Path | None,
    typer.Option(
        "--manifests-dir", envvar="BATON_MANIFESTS_DIR", help="Where NAME.yaml lives (default: manifests/).", file_okay=False
    ),
]


def existing_run(store: RunStore, run_id: str) -> RunRecord:
    run = store.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run
