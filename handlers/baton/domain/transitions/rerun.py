"""Re-running from a job with the current manifest: the job and what follows it run, the rest is reused.

A rerun is a new run of today's manifest with the earlier run's params. The job named,
everything downstream of it, and anything the earlier run did not finish successfully
(or that is new in the manifest) run again, with their descendants; every other job is
recorded SUCCEEDED, taken from the earlier run (`reused_from`), so its BigQuery job and
stats stay findable and nothing it wrote is recomputed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from baton.domain.records import JobRecord, JobStatus, NewRun, RunRecord
from baton.domain.specs import JobSpec
from baton.domain.transitions.pools import waiting_status
from baton.domain.transitions.start import ManifestSnapshot, plan_run


@dataclass(frozen=True)
class VersionChange:
    """How the manifest changed since the earlier run: job keys added, removed, and whose spec changed."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def lines(self) -> list[str]:
        out = [f"{what}: {', '.join(keys)}" for what, keys in (("added", self.added), ("removed", self.removed)) if keys]
        if self.changed:
            out.append(f"changed: {', '.join(self.changed)}")
        return out or ["no job changed"]


def version_change(before: Sequence[JobSpec], after: Sequence[JobSpec]) -> VersionChange:
    old = {spec.key: spec.to_json() for spec in before}
    new = {spec.key: spec.to_json() for spec in after}
    return VersionChange(
        added=tuple(key for key in new if key not in old),
        removed=tuple(key for key in old if key not in new),
        changed=tuple(key for key in new if key in old and new[key] != old[key]),
    )


def to_rerun(manifest: ManifestSnapshot, earlier: Mapping[str, JobRecord], from_key: str) -> set[str]:
    """`from_key`, what the earlier run did not succeed in (or did not have), and everything downstream of those."""
    dependents: dict[str, list[str]] = {spec.key: [] for spec in manifest.jobs}
    for spec in manifest.jobs:
        for upstream in spec.needs:
            dependents[upstream].append(spec.key)
    seeds = [from_key] + [
        spec.key for spec in manifest.jobs if spec.key not in earlier or earlier[spec.key].status != JobStatus.SUCCEEDED
    ]
    chosen: set[str] = set()
    frontier = list(seeds)
    while frontier:
        key = frontier.pop()
        if key not in chosen:
            chosen.add(key)
            frontier.extend(dependents[key])
    return chosen


def plan_rerun(
    manifest: ManifestSnapshot,
    earlier_run: RunRecord,
    earlier: Mapping[str, JobRecord],
    from_key: str,
    environment: str,
    run_id: str,
    now: dt.datetime,
) -> NewRun:
    """All rows of the rerun: jobs to run as a new run would have them, the others SUCCEEDED and reused."""
    rerun = to_rerun(manifest, earlier, from_key)
    plan = plan_run(manifest, earlier_run.params, environment, run_id, now)
    jobs: list[JobRecord] = []
    for job in plan.jobs:
        if job.job_key in rerun:
            waiting = sum(1 for upstream in job.spec.needs if upstream in rerun)
            job = replace(
                job,
                pending_upstreams=waiting,
                status=JobStatus.PENDING if waiting else waiting_status(job.spec),
                ready_at=None if waiting else now,
            )
        else:
            before = earlier[job.job_key]
            job = replace(
                job,
                status=JobStatus.SUCCEEDED,
                pending_upstreams=0,
                attempt=before.attempt,
                bigquery_job_id=before.bigquery_job_id,
                stats=before.stats,
                submitted_at=before.submitted_at,
                finished_at=before.finished_at,
                reused_from=earlier_run.run_id,
            )
        jobs.append(job)
    reused = len(jobs) - len(rerun)
    run = replace(plan.run, open_jobs=len(rerun), succeeded_jobs=reused)
    return NewRun(run=run, jobs=jobs, edges=plan.edges)
