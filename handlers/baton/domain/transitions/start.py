"""Starting a run: every row written while CREATING, then activated; a starter that died is abandoned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from baton.domain.naming import bigquery_job_id
from baton.domain.records import JobRecord, JobStatus, NewRun, RunRecord, RunStatus
from baton.domain.specs import BoundParam, JobSpec
from baton.domain.transaction import RunTransaction
from baton.domain.transitions.pools import waiting_status


class ManifestSnapshot(Protocol):
    """What a run snapshots of its manifest (baton.manifests.Manifest is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def jobs(self) -> Sequence[JobSpec]: ...


def plan_run(
    manifest: ManifestSnapshot, params: Mapping[str, BoundParam], environment: str, run_id: str, now: dt.datetime
) -> NewRun:
    """All rows of a new run. Roots are READY already (QUEUED in a pool, admitted once the run is active);
    the run stays CREATING until activated."""
    jobs = []
    for spec in manifest.jobs:
        root = not spec.needs
        jobs.append(
            JobRecord(
                run_id=run_id,
                job_key=spec.key,
                status=waiting_status(spec) if root else JobStatus.PENDING,
                attempt=1,
                pending_upstreams=len(spec.needs),
                spec=spec,
                bigquery_job_id=bigquery_job_id(environment, run_id, spec.key, 1),
                ready_at=now if root else None,
            )
        )
    edges = [(upstream, spec.key) for spec in manifest.jobs for upstream in spec.needs]
    run = RunRecord(
        run_id=run_id,
        manifest_name=manifest.name,
        manifest_version=manifest.version,
        environment=environment,
        params=dict(params),
        status=RunStatus.CREATING,
        total_jobs=len(jobs),
        open_jobs=len(jobs),
        created_at=now,
    )
    return NewRun(run=run, jobs=jobs, edges=edges)


def activate_run(tx: RunTransaction, run_id: str) -> RunRecord | None:
    """CREATING -> RUNNING: all rows are written, roots may now be submitted."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.CREATING:
        return None
    run = replace(run, status=RunStatus.RUNNING)
    tx.put_run(run)
    return run


def abandon_run(tx: RunTransaction, run_id: str, now: dt.datetime) -> RunRecord | None:
    """A run stuck CREATING (its starter crashed mid-write) ends FAILED; nothing of it was submitted."""
    run = tx.get_run(run_id)
    if run is None or run.status != RunStatus.CREATING:
        return None
    run = replace(run, status=RunStatus.FAILED, finished_at=now)
    tx.put_run(run)
    return run
