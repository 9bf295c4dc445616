"""`baton infra diff [REV_A] [REV_B]`: the plan a reviewer can read offline (cli/baton_cli/infra_diff.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from baton_cli import infra_diff, root

infra_app = typer.Typer(help="Review infrastructure changes offline.", no_args_is_help=True)
root.app.add_typer(infra_app, name="infra")


@infra_app.command("diff")
def diff(
    before: Annotated[str, typer.Argument(help="Git revision to compare from.")] = "HEAD",
    after: Annotated[str | None, typer.Argument(help="Git revision to compare to (default: the working tree).")] = None,
    repo: Annotated[Path, typer.Option("--repo", help="The repository (default: the current directory).")] = Path(),
    as_json: Annotated[bool, typer.Option("--json", help="The changes as one JSON document.")] = False,
) -> None:
    """Synthesize both revisions and list, per stack, what is added, removed, changed or replaced.

    Exit 1 when a stateful resource (Spanner, topics, sink, datasets, buckets) would be destroyed or replaced.
    """
    args = [before, *([after] if after else []), "--repo", str(repo.resolve()), *(["--json"] if as_json else [])]
    raise typer.Exit(infra_diff.main(args))
