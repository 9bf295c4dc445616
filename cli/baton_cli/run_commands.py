"""`baton start|status|runs|retry|hold|release|cancel|catalog|pools`: start and watch runs, act on them, list what
they wrote."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live

from baton.config import default_manifests_dir
from baton.domain.cost import Pricing
from baton.domain.records import CheckRecord, JobRecord, RunRecord, RunStatus
from baton.errors import BatonError, ManifestInvalid, ManifestNotFound, one_line
from baton.manifests.loading import ManifestRepository
from baton.manifests.model import Manifest
from baton.service.backfills import is_backfill_id
from baton.service.ports import ManifestSource, RunStore
from baton_cli import backfill_commands, root
from baton_cli.cost_view import cost_cell, job_usage, usage_line
from baton_cli.documents import catalog_document, pools_document, runs_document, status_document
from baton_cli.inspect_view import failed_checks_view
from baton_cli.render import NONE, catalog_table, known_job_id, param_text, pools_table, runs_table, status_view


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


def start_remote(
    url: str, manifest: str, params: Mapping[str, Any], select: str | None = None, exclude: str | None = None
) -> dict[str, Any]:
    """POST to the deployed start_manifest with an identity token for `url` (the function's audience)."""
    import requests

    token = os.environ.get(root.ID_TOKEN_VAR) or _fetch_id_token(url)
    response = requests.post(
        url,
        json={
            "manifest": manifest,
            "params": dict(params),
            **({"select": select} if select else {}),
            **({"exclude": exclude} if exclude else {}),
        },
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
    select_spec: Annotated[
        str | None, typer.Option("--select", help="Run only these jobs: keys and label:k=v with dbt's +x, x+, 2+x, a,b, 'a b'.")
    ] = None,
    exclude_spec: Annotated[str | None, typer.Option("--exclude", help="Leave these jobs out (same syntax).")] = None,
    manifests_dir: root.ManifestsDir = None,
) -> None:
    """Start a run and print its id on stdout (details go to stderr)."""
    params = parse_params(param or [])
    if url is not None:
        try:
            local: Manifest | None = ManifestRepository(manifests_dir or default_manifests_dir()).load(manifest)
        except BatonError:
            local = None  # the function knows its own manifests; it will say what is wrong
        body = start_remote(url, manifest, typed_params(params, local), select_spec, exclude_spec)
        typer.echo(body["run_id"])
        typer.echo(
            f"started {body.get('manifest', manifest)} @ {body.get('version', '?')} with {body.get('jobs', '?')} jobs", err=True
        )
        return
    orchestrator = root.build_orchestrator(root.settings())
    typed = typed_params(params, orchestrator.manifests.load(manifest))
    with root.core_logs():
        run = orchestrator.start(manifest, typed, select_spec, exclude_spec)
    typer.echo(run.run_id)
    verb = "queued (it starts when the run in progress ends)" if run.status == RunStatus.QUEUED else "started"
    typer.echo(
        f"{verb} {run.manifest_name} @ {run.manifest_version} with {run.total_jobs} jobs; "
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


def _status_view(store: RunStore, run_id: str, pricing: Pricing, width: int | None) -> tuple[RunRecord, Any]:
    """The run, and its view: the table at `width`, or the JSON document when `width` is None."""
    run = root.existing_run(store, run_id)
    jobs = store.list_jobs(run_id)
    # Upstreams before dependents, the way the manifest reads: by depth, then by key.
    depth = _depths(jobs)
    jobs = sorted(jobs, key=lambda job: (depth[job.job_key], job.job_key))
    checks = _checks(store, run_id, jobs)
    if width is None:
        ids = {job.job_key: None if known_job_id(job) == NONE else job.bigquery_job_id for job in jobs}
        return run, status_document(run, jobs, ids, checks, root.now(), pricing)
    costs = {job.job_key: cost_cell(pricing, job_usage(job, (checks or {}).get(job.job_key, ()))) for job in jobs}
    view = status_view(run, jobs, root.now(), checks, width, usage_line(pricing, run.usage), costs)
    failed = failed_checks_view(checks)
    return run, view if failed is None else Group(view, failed)


def _depths(jobs: Sequence[JobRecord]) -> dict[str, int]:
    """Each job's depth in the DAG (roots 0): iteratively, so a chain thousands of jobs deep renders too."""
    needs = {job.job_key: list(job.spec.needs) for job in jobs}
    depth: dict[str, int] = {}
    for start in needs:
        stack, on_stack = [start], {start}
        while stack:
            key = stack[-1]
            waiting = [up for up in needs[key] if up in needs and up not in depth and up not in on_stack]
            if waiting:
                stack.extend(waiting)
                on_stack.update(waiting)
                continue
            depth[key] = 1 + max((depth.get(up, -1) for up in needs[key] if up in needs), default=-1)
            on_stack.discard(stack.pop())
    return depth


@root.app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="Run id, or a backfill's id (bf-...).")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Redraw until the run ends; exit 3 unless it succeeded.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch.")] = 2.0,
    as_json: root.JsonOutput = False,
) -> None:
    """A run's header (with its cost) and its jobs: status, attempt, times, BigQuery job id, checks, cost;
    errors below the table, then the offending rows of failed checks. A backfill's id shows each date's run.

    With --json and --watch, the document is printed once, when the run has ended.
    """
    if is_backfill_id(run_id):
        backfill_commands.show(run_id, watch, interval, as_json)
        return
    settings = root.settings()
    store = root.build_store(settings)
    console = root.console()
    width = None if as_json else console.width
    run, view = _status_view(store, run_id, settings.pricing, width)
    if as_json:
        while watch and not run.status.terminal:
            root.sleep(interval)
            run, view = _status_view(store, run_id, settings.pricing, width)
        root.print_json(view)
    elif not watch:
        console.print(view)
    else:
        with Live(view, console=console, auto_refresh=False) as live:
            while not run.status.terminal:
                root.sleep(interval)
                run, view = _status_view(store, run_id, settings.pricing, console.width)
                live.update(view, refresh=True)
    if watch and run.status != RunStatus.SUCCEEDED:
        raise typer.Exit(root.EXIT_RUN_NOT_SUCCEEDED)


@root.app.command()
def runs(
    manifest: Annotated[str | None, typer.Option("--manifest", "-m", help="Only runs of this manifest.")] = None,
    run_status: Annotated[
        RunStatus | None, typer.Option("--status", "-s", case_sensitive=False, help="Only runs in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: root.JsonOutput = False,
) -> None:
    """Recent runs, newest first, with their params and cost."""
    settings = root.settings()
    store = root.build_store(settings)
    found = store.list_runs(limit=limit, manifest=manifest, status=run_status)
    if as_json:
        root.print_json(runs_document(found, root.now(), settings.pricing))
    elif not found:
        typer.echo("no runs", err=True)
    else:
        console = root.console()
        costs = {run.run_id: cost_cell(settings.pricing, run.usage) for run in found}
        console.print(runs_table(found, root.now(), console.width, costs))


def start_command(run: RunRecord) -> str:
    """The command that starts the manifest as it is now with this run's params, ready to paste."""
    params = " ".join(f"-p {shlex.quote(f'{name}={param_text(bound.value)}')}" for name, bound in sorted(run.params.items()))
    return f"baton start {run.manifest_name}" + (f" {params}" if params else "")


def snapshot_note(run: RunRecord, manifests: ManifestSource) -> str | None:
    """One line when the manifest in the folder is no longer the run's snapshot: retry runs the snapshot, not the edit."""
    try:
        current = manifests.load(run.manifest_name).version
    except ManifestNotFound:
        return f"note: manifest '{run.manifest_name}' is not found any more; retry re-runs the run's own snapshot"
    except ManifestInvalid as exc:
        current = None
        state = f"is now invalid ({len(exc.problems)} problem(s): baton manifest validate {run.manifest_name})"
    else:
        if current == run.manifest_version:
            return None
        state = f"changed since this run started ({run.manifest_version} -> {current})"
    fresh = f"; to run the current manifest: {start_command(run)}" if current is not None else ""
    return f"note: manifest '{run.manifest_name}' {state}; retry re-runs the run's own snapshot{fresh}"


@root.app.command()
def retry(run_id: Annotated[str, typer.Argument(help="Run id, or a backfill's id (bf-...).")]) -> None:
    """Re-run a FAILED or CANCELLED run's failed, skipped and cancelled jobs, each as its next attempt.

    The run keeps its snapshot of the manifest; when the manifest changed since, a note on stderr says so.
    A backfill's id retries each of its FAILED or CANCELLED runs, at most its max active runs at once.
    """
    if is_backfill_id(run_id):
        backfill_commands.retry(run_id)
        return
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        run = orchestrator.retry(run_id)
    waiting = "; it waits for the run in progress of its manifest" if run.status == RunStatus.QUEUED else ""
    typer.echo(f"run {run.run_id} is {run.status} again: {run.open_jobs} of {run.total_jobs} jobs to run{waiting}")
    note = snapshot_note(run, orchestrator.manifests)
    if note is not None:
        typer.echo(note, err=True)


@root.app.command()
def pause(
    manifest: Annotated[str, typer.Argument(help="Manifest name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown to whoever tries to start it.")] = "paused by an operator",
) -> None:
    """Hold every start of MANIFEST, scheduled or manual, until `baton resume`: refused, or queued when the manifest
    says `when_paused: queue`; runs in flight go on, and queued runs (its backfills' too) wait."""
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        orchestrator.pause(manifest, reason)
    held = "queued" if orchestrator.manifests.load(manifest).when_paused == "queue" else "refused"
    typer.echo(f"manifest {manifest} is paused: starts are {held} until `baton resume {manifest}`")


@root.app.command()
def resume(manifest: Annotated[str, typer.Argument(help="Manifest name.")]) -> None:
    """Let MANIFEST start runs again; runs queued meanwhile start, as its concurrency allows."""
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        started = orchestrator.resume(manifest)
    queued = f"; {len(started)} queued run(s) started" if started else ""
    typer.echo(f"manifest {manifest} starts runs again{queued}")


@root.app.command()
def hold(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why: shown by `baton status`, in run.held.")] = "held by an operator",
) -> None:
    """Submit nothing more of a RUNNING run until `baton release`: jobs in flight finish, what they release waits."""
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        run, changed = orchestrator.hold(run_id, reason)
    if not changed:
        typer.echo(f"run {run_id} was already held ({run.hold_reason}); `baton release {run_id}` lets it go on")
        return
    typer.echo(f"run {run_id} is held: nothing more is submitted, jobs in flight finish; `baton release {run_id}` goes on")


@root.app.command()
def release(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Let a held run go on: its READY jobs are submitted now."""
    orchestrator = root.build_orchestrator(root.settings())
    before = root.existing_run(orchestrator.store, run_id)
    with root.core_logs():
        run, submitted = orchestrator.release(run_id)
    if before.held_at is None:
        typer.echo(f"run {run_id} is not held; nothing to release")
        return
    typer.echo(f"run {run.run_id} goes on: {submitted} READY job(s) handed to BigQuery")


@root.app.command()
def rerun(
    run_id: Annotated[str, typer.Argument(help="The finished run to rerun.")],
    from_key: Annotated[str, typer.Option("--from", help="Run this job and everything downstream of it again.")],
) -> None:
    """A new run of the manifest as it is now, with RUN's params: JOB and what follows it run, the rest is reused."""
    orchestrator = root.build_orchestrator(root.settings())
    with root.core_logs():
        run, change = orchestrator.rerun(run_id, from_key)
    typer.echo(run.run_id)
    typer.echo(f"manifest {run.manifest_name} since run {run_id}: {'; '.join(change.lines())}", err=True)
    typer.echo(
        f"started {run.manifest_name} @ {run.manifest_version}: {run.open_jobs} of {run.total_jobs} jobs to run, "
        f"{run.succeeded_jobs} reused from {run_id}; follow it with: baton status {run.run_id} --watch",
        err=True,
    )


@root.app.command()
def cancel(run_id: Annotated[str, typer.Argument(help="Run id, or a backfill's id (bf-...).")]) -> None:
    """Cancel a run: nothing more is submitted, released BigQuery jobs are cancelled. A backfill's id cancels
    the backfill: no date starts any more, and each of its open runs is cancelled."""
    if is_backfill_id(run_id):
        backfill_commands.cancel(run_id)
        return
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
    as_json: root.JsonOutput = False,
) -> None:
    """Tables Baton wrote: the last run, job, time, rows and bytes of each."""
    store = root.build_store(root.settings())
    entries = store.list_catalog(limit=limit, prefix=prefix)
    if as_json:
        root.print_json(catalog_document(entries))
    elif not entries:
        typer.echo("no tables in the catalog" + (f" under '{prefix}'" if prefix else ""), err=True)
    else:
        console = root.console()
        console.print(catalog_table(entries, console.width))


@root.app.command()
def pools(as_json: root.JsonOutput = False) -> None:
    """The environment's pools (BATON_POOLS): each one's size, the slots its jobs hold, and the jobs QUEUED for one."""
    store = root.build_store(root.settings())
    usage = store.pool_usage()
    if as_json:
        root.print_json(pools_document(usage))
    elif not usage:
        typer.echo("the environment configures no pools (BATON_POOLS)", err=True)
    else:
        console = root.console()
        console.print(pools_table(usage, console.width))


# --- dead letters ------------------------------------------------------------------------------------------
