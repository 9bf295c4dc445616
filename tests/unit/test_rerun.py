"""Re-running from a job with the current manifest: what runs, what is reused, what changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from baton.domain.records import JobStatus, RunStatus
from baton.errors import CannotRerun
from tests.unit.test_engine import World, manifest_of

EDGES = {"land": [], "hist": ["land"], "side": ["land"], "cons": ["hist"], "ev": ["cons"]}


def finished_run(world: World, fail: str | None = None) -> str:
    run_id = world.start()
    for key in ("land", "hist", "side", "cons", "ev"):
        if world.job(run_id, key).status in (JobStatus.SUBMITTED, JobStatus.READY):
            world.finish(run_id, key, error="invalidQuery" if key == fail else None)
    return run_id


def test_the_job_and_its_downstream_run_again_and_the_rest_is_reused(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    earlier = finished_run(world)
    before = len(world.submitter.requests)
    run, change = world.orchestrator.rerun(earlier, "hist")
    assert change.lines() == ["no job changed"]
    assert (run.total_jobs, run.open_jobs, run.succeeded_jobs) == (5, 3, 2)
    assert [request.labels["baton_job"] for request in world.submitter.requests[before:]] == ["hist"]
    land = world.job(run.run_id, "land")
    assert (land.status, land.reused_from, land.bigquery_job_id) == (
        JobStatus.SUCCEEDED,
        earlier,
        world.job(earlier, "land").bigquery_job_id,
    )
    world.finish(run.run_id, "hist")
    world.finish(run.run_id, "cons")
    world.finish(run.run_id, "ev")
    assert world.store.runs[run.run_id].status == RunStatus.SUCCEEDED
    assert world.store.runs[earlier].status == RunStatus.SUCCEEDED, "the earlier run is left as it was"


def test_what_the_earlier_run_did_not_finish_runs_too_with_the_edited_manifest(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    earlier = finished_run(world, fail="side")
    edited = manifest_of({**EDGES, "extra": ["cons"]})
    edited["jobs"][3]["sql"] = "SELECT 'cons, fixed'"
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(edited))
    run, change = world.orchestrator.rerun(earlier, "ev")
    assert change.lines() == ["added: extra", "changed: cons"]
    statuses = {key: world.job(run.run_id, key).status for key in ("land", "hist", "side", "cons", "ev", "extra")}
    # side failed before, extra is new: both run; ev was asked for; cons was not (its SQL change is reported, not rerun).
    assert statuses == {
        "land": JobStatus.SUCCEEDED,
        "hist": JobStatus.SUCCEEDED,
        "side": JobStatus.SUBMITTED,
        "cons": JobStatus.SUCCEEDED,
        "ev": JobStatus.SUBMITTED,
        "extra": JobStatus.SUBMITTED,
    }


def test_a_rerun_needs_a_finished_run_and_a_job_of_the_manifest(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(EDGES))
    running = world.start()
    with pytest.raises(CannotRerun, match="it is RUNNING"):
        world.orchestrator.rerun(running, "hist")
    finished = finished_run(world)
    with pytest.raises(CannotRerun, match="job 'nope' is not in manifest 'm'"):
        world.orchestrator.rerun(finished, "nope")


def test_a_paused_manifest_starts_nothing_until_resumed(tmp_path: Path) -> None:
    from baton.errors import ManifestPaused

    world = World(tmp_path, manifest_of(EDGES, concurrency="allow"))  # runs may overlap: this is about pause alone
    running = world.start()
    world.orchestrator.pause("m", "warehouse migration")
    with pytest.raises(ManifestPaused, match=r"manifest 'm' is paused \(warehouse migration\); `baton resume m`"):
        world.orchestrator.start("m", {})
    assert list(world.store.runs) == [running], "no run was written"
    world.finish(running, "land")
    assert world.job(running, "hist").status == JobStatus.SUBMITTED, "runs in flight go on"
    world.orchestrator.resume("m")
    assert world.orchestrator.start("m", {}).status == RunStatus.RUNNING


def test_a_cancel_bigquery_refuses_is_recorded_and_a_second_cancel_asks_again(tmp_path: Path) -> None:
    from baton.errors import CancelIncomplete, TransientError

    world = World(tmp_path, manifest_of(EDGES))
    run_id = world.start()
    world.finish(run_id, "land")
    refusing = {world.job(run_id, "hist").bigquery_job_id}
    original = world.submitter.cancel

    def cancel(job_id: str) -> None:
        if job_id in refusing:
            raise TransientError("BigQuery jobs.cancel: 503 backendError")
        original(job_id)

    world.submitter.cancel = cancel  # type: ignore[method-assign]
    with pytest.raises(CancelIncomplete, match=r"did not accept the cancel of 1 job\(s\).*hist_1 \(BigQuery jobs.cancel: 503"):
        world.orchestrator.cancel(run_id)
    assert world.store.runs[run_id].status == RunStatus.CANCELLED, "nothing more is submitted meanwhile"
    assert world.job(run_id, "side").bigquery_job_id in world.submitter.cancelled
    refusing.clear()
    assert world.orchestrator.cancel(run_id).status == RunStatus.CANCELLED
    assert world.job(run_id, "hist").bigquery_job_id in world.submitter.cancelled, "the second cancel asked again"


def test_a_job_past_its_timeout_is_cancelled_in_bigquery_and_fails_with_reason_timeout(tmp_path: Path) -> None:
    import datetime as dt

    from baton.domain.timing import ReconcilePolicy

    world = World(tmp_path, manifest_of(EDGES, timeout="10m"))
    run_id = world.start()
    land = world.job(run_id, "land")
    assert land.deadline == world.clock.now + dt.timedelta(minutes=10)
    world.clock.now += dt.timedelta(minutes=9)
    assert world.orchestrator.reconcile(ReconcilePolicy()).timed_out == 0
    world.clock.now += dt.timedelta(minutes=2)
    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert report.timed_out == 1 and land.bigquery_job_id in world.submitter.cancelled
    land = world.job(run_id, "land")
    assert (land.status, land.error_reason) == (JobStatus.FAILED, "timeout")
    assert world.store.runs[run_id].status == RunStatus.FAILED, "everything behind it is skipped"
    assert [e["type"] for e in world.events.events if e["type"] == "job.failed"] == ["job.failed"]
    world.finish(run_id, "land", error="stopped")  # BigQuery's own event of the stopped job, later
    assert world.job(run_id, "land").error_reason == "timeout"


def test_a_bad_timeout_is_a_validation_problem(tmp_path: Path) -> None:
    from baton.errors import ManifestInvalid
    from baton.manifests.loading import parse_manifest

    with pytest.raises(ManifestInvalid, match=r"timeout '2 days' must be seconds or a duration like 90s, 30m, 2h"):
        parse_manifest(manifest_of({"a": []}, timeout="2 days"), "m.yaml", tmp_path)
    manifest = parse_manifest({**manifest_of({"a": []}), "timeout": 90}, "m.yaml", tmp_path)
    assert manifest.jobs[0].timeout_seconds == 90
