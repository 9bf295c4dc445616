"""`baton deadletters list|replay`: completion events Pub/Sub gave up on."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from baton_cli import root
from baton_cli.deadletters import DeadLetterQueue, DeadLetterSettings
from baton_cli.documents import dead_letters_document
from baton_cli.render import dead_letters_table


def _dead_letter_queue() -> DeadLetterQueue:
    return root.build_dead_letter_queue(DeadLetterSettings.from_env(root.settings(), os.environ))


@root.deadletters_app.command("list")
def deadletters_list(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50, as_json: root.JsonOutput = False
) -> None:
    """Dead letters waiting on the hold subscription; reading them acknowledges nothing."""
    queue = _dead_letter_queue()
    letters = queue.peek(limit)
    if as_json:
        root.print_json(dead_letters_document(queue.settings.subscription, letters))
    elif not letters:
        typer.echo(f"no dead letters on {queue.settings.subscription}", err=True)
    else:
        console = root.console()
        console.print(dead_letters_table(letters, console.width))


@root.deadletters_app.command("replay")
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
        root.fail(f"not on {queue.settings.subscription}: {', '.join(report.missing)}")
