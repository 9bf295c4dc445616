"""`baton start|status|runs|retry|cancel|catalog`: start and watch runs, act on them, list what they wrote."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live

from baton.config import default_manifests_dir
from baton.domain.cost import Pricing
from baton.domain.records import CheckRecord, JobRecord, RunRecord, RunStatus
from baton.errors import BatonError, one_line
from baton.manifests.loading import ManifestRepository
from baton.manifests.model import Manifest
from baton.service.ports import RunStore
from baton_cli import root
from baton_cli.cost_view import cost_cell, job_usage, usage_line
from baton_cli.inspect_view import failed_checks_view
from baton_cli.render import catalog_table, runs_table, status_view


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
        token: str = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise BatonError(
            f"no credentials that can mint an identity token ({one_line(str(exc))}); use a service account, "
            f"or set {root.ID_TOKEN_VAR}=$(gcloud auth print-identity-token)"
        ) from exc
    return token


def start_remote(url: str, manifest: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """POST to the deployed start_manifest with an identity token for `url` (the function's audience)."""
    import requests

    token = os.environ.get(root.ID_TOKEN_VAR) or _fetch_id_token(url)
    response = requests.post(
        url,
        json={"manifest": manifest, "params": dict(params)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=root.HTTP_TIMEOUT_S,
    )
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "run_id" not in body:
        detail = body.get("message") if isinstance(body, dict) else response.text[:200]
        raise BatonError(f"start_manifest answered {response.status_code}: {detail or response.reason}")
    return body


@root.app.command()
def start(
    manifest: Annotated[str, typer.Argument(help="Manifest name.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="POST to this deployed start_manifest function instead of using Spanner directly.")
    ] = None,
    manifests_dir: root.ManifestsDir = None,
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
    orchestrator = root.build_orchestrator(root.settings())
    typed = typed_params(params, orchestrator.manifests.load(manifest))
    with root.core_logs():
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


def _status_view(store: RunStore, run_id: str, pricing: Pricing) -> tuple[RunRecord, Any]:
    run = root.existing_run(store, run_id)
    jobs = store.list_jobs(run_id)
    # Upstreams before dependents, the way the manifest reads: by depth, then by key.
    depth = _depths(jobs)
    jobs = sorted(jobs, key=lambda job: (depth[job.job_key], job.job_key))
    checks = _checks(store, run_id, jobs)
    costs = {job.job_key: cost_cell(pricing, job_usage(job, (checks or {}).get(job.job_key, ()))) for job in jobs}
    view = status_view(run, jobs, root.now(), checks, usage_line(pricing, run.usage), costs)
    failed = failed_checks_view(checks)
    return run, view if failed is None else Group(view, failed)


def _depths(jobs: Sequence[JobRecord]) -> dict[str, int]:
    needs = {job.job_key: job.spec.needs for job in jobs}

    @functools.cache
    def depth(key: str) -> int:
        return 1 + max((depth(up) for up in needs.get(key, ()) if up in needs), default=-1)

    return {key: depth(key) for key in needs}


@root.app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw until the run ends; exit 3 unless it succeeded.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """A run's header and its jobs: status, attempt, times, BigQuery job id, error."""
    settings = root.settings()
    store = root.build_store(settings)
    console = root.console()
    if not watch:
        _, view = _status_view(store, run_id, settings.pricing)
        console.print(view)
        return
    run, view = _status_view(store, run_id, settings.pricing)
    with Live(view, console=console, auto_refresh=False) as live:
        while not run.status.terminal:
            root.sleep(interval)
            run, view = _status_view(store, run_id, settings.pricing)
            live.update(view, refresh=True)
    if run.status != RunStatus.SUCCEEDED:
        raise typer.Exit(root.EXIT_RUN_NOT_SUCCEEDED)


@root.app.command()
def runs(
    manifest: Annotated[str | None, typer.Option("--manifest", "-m", help="Only runs of this manifest.")] = None,
    run_status: Annotated[
        RunStatus | None, typer.Option("--status", "-s", case_sensitive=False, help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
) -> None:
    """Recent runs, newest first."""
    settings = root.settings()
    store = root.build_store(settings)
    found = store.list_runs(limit=limit, manifest=manifest, status=run_status)
    if not found:
        typer.echo("no runs", err=True)
        return
    costs = {run.run_id: cost_cell(settings.pricing, run.usage) for run in found}
    root.console().print(runs_table(found, root.now(), costs))


@root.app.command()
def retry(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Re-run a FAILED or CANCELLED run's failed, skipped and cancelled jobs, each as its next attempt."""
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        run = orchestrator.retry(run_id)
    typer.echo(f"run {run.run_id} is {run.status} again: {run.open_jobs} of {run.total_jobs} jobs to run")


@root.app.command()
def cancel(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Cancel a run: nothing more is submitted, released BigQuery jobs are cancelled."""
    orchestrator = root.build_orchestrator(root.settings())
    before = root.existing_run(orchestrator.store, run_id)
    if before.status.terminal:
        typer.echo(f"run {run_id} already ended {before.status}; nothing to cancel")
        return
    with root.core_logs():
        run = orchestrator.cancel(run_id)
    cancelled = run.cancelled_jobs - before.cancelled_jobs
    typer.echo(f"run {run.run_id} is {run.status}: {cancelled} open job(s) cancelled")


@root.app.command()
def catalog(
    prefix: Annotated[str | None, typer.Option("--prefix", help="Only tables whose reference starts with this.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 100,
) -> None:
    """Tables Baton wrote: the last run, job, time, rows and bytes of each."""
    store = root.build_store(root.settings())
    entries = store.list_catalog(limit=limit, prefix=prefix)
    if not entries:
        typer.echo("no tables in the catalog" + (f" under '{prefix}'" if prefix else ""), err=True)
        return
    root.console().print(catalog_table(entries))


# --- dead letters ------------------------------------------------------------------------------------------
