"""`baton manifest validate|graph`: check a manifest in one pass and draw its DAG."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from baton.config import declared_datasets, declared_pools, default_manifests_dir
from baton.domain.records import JobRecord
from baton.errors import ManifestInvalid, ManifestNotFound, Problem
from baton.manifests.limits import near_limits
from baton.manifests.loading import ManifestRepository, load_manifest
from baton.manifests.model import Manifest
from baton.manifests.schedule import next_starts
from baton.manifests.selection import select
from baton_cli import documents, root
from baton_cli.graph import GraphFormat, manifest_graph, render_image, run_graph, to_text


def _looks_like_path(argument: str) -> bool:
    return os.sep in argument or argument.endswith((".yaml", ".yml"))


def _load(argument: str, manifests_dir: Path | None) -> Manifest:
    """A manifest by file path or by name; a file's `name` must match its file name, as deployment needs."""
    # The environment's datasets (from `baton dev`, or BATON_DATASETS): a manifest may touch no other.
    declared = declared_datasets(os.environ)
    pools = declared_pools(os.environ)  # likewise its pools (BATON_POOLS): a manifest may name no other
    if _looks_like_path(argument):
        path = Path(argument)
        manifest = load_manifest(path, declared=declared, pools=pools)
        if manifest.name != path.stem:
            raise ManifestInvalid(str(path), [f"name '{manifest.name}' differs from the file name '{path.stem}'"])
        return manifest
    return ManifestRepository(manifests_dir or default_manifests_dir(), declared, pools).load(argument)


# --- manifest ----------------------------------------------------------------------------------------------


def _schedule_lines(manifest: Manifest) -> list[str]:
    """The schedule and its next three starts, in the manifest's time zone and in UTC."""
    if manifest.schedule is None:
        return []
    lines = [f"    schedule '{manifest.schedule}' in {manifest.time_zone}; next starts:"]
    for start in next_starts(manifest.schedule, manifest.time_zone, root.now()):
        utc = start.astimezone(dt.UTC)
        local = start.strftime("%a %Y-%m-%d %H:%M %Z")
        lines.append(f"      {local}" + ("" if start.utcoffset() == dt.timedelta(0) else f"  ({utc:%H:%M} UTC)"))
    return lines


@root.manifest_app.command("validate")
def manifest_validate(
    manifests: Annotated[list[str] | None, typer.Argument(help="Files or names (default: every manifest).")] = None,
    manifests_dir: root.ManifestsDir = None,
    as_json: root.JsonOutput = False,
) -> None:
    """Check manifests: OK per valid one (and its next starts), every problem of the others; exit 1 if any is invalid."""
    directory = manifests_dir or default_manifests_dir()
    targets = list(manifests or ManifestRepository(directory).names())
    if not targets:
        root.fail(f"no manifests (*.yaml) in {directory}")
    results: list[documents.Document] = []
    lines: list[str] = []
    for target in targets:
        try:
            manifest = _load(target, directory)
        except ManifestInvalid as exc:
            results.append(documents.invalid_manifest(target, exc.where, exc.details))
            lines += [f"{exc.where}: {problem}" for problem in exc.problems]
        except ManifestNotFound as exc:
            where = "" if _looks_like_path(target) else f" in {directory}"
            results.append(documents.invalid_manifest(target, None, [Problem(f"not found{where}")]))
            lines.append(f"{exc.name}: not found{where}")
        else:
            warnings = near_limits(manifest.jobs)
            results.append(documents.valid_manifest(target, manifest, root.now(), warnings))
            lines.append(f"OK  {manifest.source}  ({manifest.name} @ {manifest.version}, {len(manifest.jobs)} jobs)")
            lines += [f"    near a limit: {warning}" for warning in warnings]
            lines += _schedule_lines(manifest)
    invalid = sum(1 for result in results if not result["valid"])
    if as_json:
        root.print_json(documents.validation_document(results))
    else:
        for line in lines:
            typer.echo(line)
    if invalid:
        typer.echo(f"{invalid} of {len(targets)} manifest(s) invalid", err=True)
        raise typer.Exit(root.EXIT_ERROR)


def _in_manifest_order(jobs: Sequence[JobRecord], manifest: Manifest) -> list[JobRecord]:
    order = {spec.key: index for index, spec in enumerate(manifest.jobs)}
    return sorted(jobs, key=lambda job: (order.get(job.job_key, len(order)), job.job_key))


@root.manifest_app.command("graph")
def manifest_graph_command(
    name: Annotated[str, typer.Argument(help="Manifest name or file.")],
    graph_format: Annotated[GraphFormat | None, typer.Option("--format", help="text, mermaid (default) or dot.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Render FILE.png or FILE.svg with Graphviz.")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Colour the jobs by their status in this run.")] = None,
    select_spec: Annotated[str | None, typer.Option("--select", help="Preview a selection: +x, x+, 2+x, label:k=v ...")] = None,
    exclude_spec: Annotated[str | None, typer.Option("--exclude", help="Jobs to leave out of the selection.")] = None,
    manifests_dir: root.ManifestsDir = None,
) -> None:
    """The DAG and each job's checks as plain text, Mermaid or Graphviz (edges point from a job to those that need it)."""
    manifest = _load(name, manifests_dir)
    if select_spec or exclude_spec:
        manifest = replace(manifest, jobs=select(manifest, select_spec, exclude_spec).jobs)
    graph = manifest_graph(manifest)
    if run_id is not None:
        store = root.build_store(root.settings())
        run = root.existing_run(store, run_id)
        if run.manifest_name != manifest.name:
            root.fail(f"run '{run_id}' is of manifest '{run.manifest_name}', not '{manifest.name}'")
        graph = run_graph(run.manifest_name, _in_manifest_order(store.list_jobs(run_id), manifest))
    if output is None:
        typer.echo(to_text(graph, graph_format or GraphFormat.MERMAID), nl=False)
        return
    if graph_format in (GraphFormat.MERMAID, GraphFormat.TEXT):
        root.fail(f"--output renders with Graphviz; drop --format {graph_format}, or print the text without --output")
    render_image(graph, output)
    typer.echo(f"wrote {output}", err=True)


# --- runs --------------------------------------------------------------------------------------------------
