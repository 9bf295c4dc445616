"""`baton`: the operator's command line. Start, watch, retry and cancel runs; validate and draw manifests;
inspect and replay dead-lettered completion events.

It drives the same core as the functions (bootstrap.build over Settings.from_env), so
it needs the handlers' environment variables, and never ships inside a function: it
lives outside handlers/. Every failure is one line on stderr and a non-zero exit
status, never a traceback (BATON_DEBUG=1 shows it).
"""

from __future__ import annotations

from baton_cli import (
    deadletter_commands,
    infra_commands,
    manifest_commands,
    report_commands,
    run_commands,
    storage_commands,
)
from baton_cli.root import EXIT_RUN_NOT_SUCCEEDED, ID_TOKEN_VAR, app, describe_error

# Importing a module registers its commands, in this order in `baton --help`.
COMMAND_MODULES = (run_commands, manifest_commands, report_commands, deadletter_commands, storage_commands, infra_commands)
__all__ = ["EXIT_RUN_NOT_SUCCEEDED", "ID_TOKEN_VAR", "app", "describe_error", "main"]


def main() -> None:
    app()
