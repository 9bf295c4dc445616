"""The run state machine through the orchestrator, with in-memory fakes of the ports."""

import datetime as dt
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.domain.naming import bigquery_job_id
from baton.domain.records import Completion, JobError, JobStatus, RunStatus
from baton.domain.transitions.completion import Verdict
from baton.errors import InvalidParams, ManifestNotFound
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from tests.fakes import InMemoryRunStore, RecordingPublisher, RecordingSubmitter

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


class World:
    def __init__(self, tmp_path: Path, manifest: dict[str, Any]) -> None:
        (tmp_path / f"{manifest['name']}.yaml").write_text(yaml.safe_dump(manifest))
        self.store = InMemoryRunStore()
        self.submitter = RecordingSubmitter()
        self.events = RecordingPublisher()
        self.clock = Clock()
        self.orchestrator = Orchestrator(
            self.store, self.submitter, ManifestRepository(tmp_path), "test", events=self.events, clock=self.clock
        )

    def start(self, params: dict[str, Any] | None = None) -> str:
        name = next(iter(self.orchestrator.manifests.names()))
        return self.orchestrator.start(name, params or {}).run_id

    def job(self, run_id: str, key: str) -> Any:
        return self.store.jobs[(run_id, key)]

    def finish(self, run_id: str, key: str, error: str | None = None, attempt: int | None = None) -> Any:
        attempt = attempt or self.job(run_id, key).attempt
        return self.orchestrator.complete(
            Completion(
                run_id=run_id,
                job_key=key,
                attempt=attempt,
                bigquery_job_id=bigquery_job_id("test", run_id, key, attempt),
                error=JobError(error, "boom") if error else None,
            )
        )


def manifest_of(edges: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    return {"name": "m", "jobs": [{"key": k, "sql": f"SELECT '{k}'", "needs": v} for k, v in edges.items()], **extra}


DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def test_diamond_runs_in_dependency_order_and_succeeds(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(DIAMOND))
    run_id = world.start()
    assert world.submitter.submitted_keys() == ["a"]
    assert world.job(run_id, "a").status == JobStatus.SUBMITTED
    world.finish(run_id, "a")
    assert world.submitter.submitted_keys() == ["a", "b", "c"]
    world.finish(run_id, "b")
    assert world.submitter.submitted_keys() == ["a", "b", "c"], "d must wait for c"
    assert world.job(run_id, "d").pending_upstreams == 1
    world.finish(run_id, "c")
    assert world.submitter.submitted_keys() == ["a", "b", "c", "d"]
    result = world.finish(run_id, "d")
    assert result.run_finished
    run = world.store.runs[run_id]
    assert (run.status, run.open_jobs, run.succeeded_jobs) == (RunStatus.SUCCEEDED, 0, 4)
    assert world.events.types() == ["run.started", "run.succeeded"]


def test_submissions_carry_labels_params_and_deterministic_ids(tmp_path: Path) -> None:
    manifest = manifest_of({"a": []}, params={"run_date": {"type": "DATE"}}, labels={"team": "x"})
    world = World(tmp_path, manifest)
    run_id = world.start({"run_date": "2026-01-02"})
    (request,) = world.submitter.requests
    assert request.job_id == f"baton_test_{run_id}_a_1"
    assert request.labels == {"team": "x", "baton_env": "test", "baton_run": run_id, "baton_job": "a", "baton_attempt": "1"}
    assert [(p.name, p.type, p.value) for p in request.parameters] == [("run_date", "DATE", "2026-01-02")]
    assert "2026-01-02" not in request.sql


def test_bad_params_or_unknown_manifest_write_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, params={"n": {"type": "INT64"}}))
    with pytest.raises(InvalidParams):
        world.orchestrator.start("m", {"n": "many"})
    with pytest.raises(ManifestNotFound):
        world.orchestrator.start("nope", {})
    assert world.store.runs == {} and world.submitter.requests == []


def test_duplicate_late_and_out_of_order_events_change_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of(DIAMOND))
    run_id = world.start()
    assert world.finish(run_id, "b").verdict == Verdict.STALE, "b was never released"
    assert world.job(run_id, "b").status == JobStatus.PENDING
    world.finish(run_id, "a")
    before = dict(world.store.jobs)
    assert world.finish(run_id, "a").verdict == Verdict.DUPLICATE
    assert world.store.jobs == before
    assert world.store.runs[run_id].succeeded_jobs == 1


def test_failure_skips_downstream_and_fails_the_run_once_nothing_is_in_flight(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["c", "d"]}))
    run_id = world.start()
    world.finish(run_id, "a")
    result = world.finish(run_id, "b", error="invalidQuery")
    assert sorted(result.skipped) == ["d", "e"]
    assert world.store.runs[run_id].status == RunStatus.RUNNING, "c is still in flight"
    world.finish(run_id, "c")
    assert "e" not in world.submitter.submitted_keys()
    run = world.store.runs[run_id]
    assert (run.status, run.failed_jobs, run.skipped_jobs, run.succeeded_jobs) == (RunStatus.FAILED, 1, 2, 2)
    assert world.events.types() == ["run.started", "job.failed", "run.failed"]
    assert world.events.events[1]["job"]["error_reason"] == "invalidQuery"


def test_retryable_error_resubmits_under_a_new_job_id_until_attempts_run_out(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 2}))
    run_id = world.start()
    assert world.finish(run_id, "a", error="backendError").verdict == Verdict.RETRYING
    assert [r.job_id for r in world.submitter.requests] == [bigquery_job_id("test", run_id, "a", n) for n in (1, 2)]
    assert world.job(run_id, "a").attempt == 2
    assert world.finish(run_id, "a", error="backendError", attempt=1).verdict == Verdict.STALE
    world.finish(run_id, "a", error="backendError")
    assert world.store.runs[run_id].status == RunStatus.FAILED


def test_non_retryable_reason_fails_at_once(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 5}))
    run_id = world.start()
    world.finish(run_id, "a", error="invalidQuery")
    assert world.job(run_id, "a").status == JobStatus.FAILED
    assert len(world.submitter.requests) == 1


def test_backoff_sets_not_before_instead_of_waiting(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 3, "backoff_seconds": 60}))
    run_id = world.start()
    world.finish(run_id, "a", error="rateLimitExceeded")
    job = world.job(run_id, "a")
    assert (job.status, job.attempt, job.not_before) == (JobStatus.READY, 2, NOW + dt.timedelta(seconds=60))
    assert len(world.submitter.requests) == 1, "the retry waits for the reconciler"


def test_redelivery_resubmits_what_a_crash_left_unsubmitted(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    world.submitter.fail_next = RuntimeError("crash between commit and jobs.insert")
    with pytest.raises(RuntimeError):
        world.finish(run_id, "a")
    assert world.job(run_id, "b").status == JobStatus.READY
    assert world.finish(run_id, "a").verdict == Verdict.DUPLICATE
    assert world.job(run_id, "b").status == JobStatus.READY, "too soon: the first delivery may still be submitting"
    world.clock.now += dt.timedelta(seconds=31)
    assert world.finish(run_id, "a").verdict == Verdict.DUPLICATE
    assert world.job(run_id, "b").status == JobStatus.SUBMITTED
    assert world.submitter.submitted_keys() == ["a", "b"]


def test_unknown_run_and_unknown_job_are_acknowledged(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    before = (dict(world.store.runs), dict(world.store.jobs))
    assert world.finish("f" * 32, "a", attempt=1).verdict == Verdict.UNKNOWN_RUN
    assert world.finish(run_id, "zz", attempt=1).verdict == Verdict.UNKNOWN_JOB
    assert (world.store.runs, world.store.jobs) == before


def test_cancel_stops_submissions_and_ignores_late_completions(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"], "c": []}))
    run_id = world.start()
    run = world.orchestrator.cancel(run_id)
    assert (run.status, run.cancelled_jobs, run.open_jobs) == (RunStatus.CANCELLED, 3, 0)
    assert sorted(world.submitter.cancelled) == sorted(bigquery_job_id("test", run_id, k, 1) for k in ("a", "c"))
    assert world.finish(run_id, "a", attempt=1).verdict == Verdict.DUPLICATE
    assert world.submitter.submitted_keys() == ["a", "c"]
    assert world.orchestrator.cancel(run_id).status == RunStatus.CANCELLED
    assert world.events.types() == ["run.started", "run.cancelled"]


def test_wide_fan_in_from_many_threads_releases_exactly_once(tmp_path: Path) -> None:
    edges: dict[str, list[str]] = {f"s{i:03d}": [] for i in range(200)}
    edges["fan_in"] = list(edges)
    world = World(tmp_path, manifest_of(edges))
    run_id = world.start()
    deliveries = [k for k in edges if k != "fan_in"] * 2
    random.Random(7).shuffle(deliveries)
    chunks = [deliveries[i::8] for i in range(8)]
    threads = [threading.Thread(target=lambda c=c: [world.finish(run_id, k, attempt=1) for k in c]) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert world.submitter.submitted_keys().count("fan_in") == 1
    world.finish(run_id, "fan_in")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED


def test_completion_reads_follow_out_degree_not_manifest_size(tmp_path: Path) -> None:
    reads = []
    for width in (10, 1000):
        edges: dict[str, list[str]] = {"root": [], **{f"j{i}": [] for i in range(width)}, "child": ["root"]}
        (tmp_path / str(width)).mkdir()
        world = World(tmp_path / str(width), manifest_of(edges))
        run_id = world.start()
        counted: list[int] = []
        real_transact = world.store.transact

        def counting(fn: Any, real: Any = real_transact, counted: list[int] = counted) -> Any:
            def wrapped(tx: Any) -> Any:
                result = fn(tx)
                counted.append(tx.reads)
                return result

            return real(wrapped)

        world.store.transact = counting  # type: ignore[method-assign]
        world.finish(run_id, "root")
        reads.append(counted[0])
    assert reads[0] == reads[1]


def test_a_completion_that_beats_the_submitted_mark_keeps_its_outcome_and_gets_a_submission_time(tmp_path: Path) -> None:
    from baton.domain.transitions.submission import mark_submitted

    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    job = world.job(run_id, "a")
    world.store.jobs[(run_id, "a")] = job.__class__(**{**job.__dict__, "status": JobStatus.READY, "submitted_at": None})
    world.finish(run_id, "a")
    assert world.job(run_id, "a").submitted_at is None
    assert world.store.transact(lambda tx: mark_submitted(tx, run_id, [("a", 1)], NOW)).moved == 0
    assert (world.job(run_id, "a").status, world.job(run_id, "a").submitted_at) == (JobStatus.SUCCEEDED, NOW)


def test_a_job_bigquery_refuses_at_insert_fails_like_a_failed_job(tmp_path: Path) -> None:
    from baton.errors import JobRefused

    world = World(tmp_path, manifest_of({"a": [], "b": ["a"], "c": ["b"], "d": ["a"]}))
    run_id = world.start()
    world.submitter.refuse = lambda request: (
        JobRefused(request.job_id, "notFound", "Not found: Dataset baton-local:sales")
        if request.labels["baton_job"] == "b"
        else None
    )
    result = world.finish(run_id, "a")

    assert result.verdict == Verdict.RECORDED
    b = world.job(run_id, "b")
    assert (b.status, b.error_reason) == (JobStatus.FAILED, "notFound")
    assert world.job(run_id, "c").status == JobStatus.SKIPPED
    assert world.job(run_id, "d").status == JobStatus.SUBMITTED, "the other released job still went out"
    world.finish(run_id, "d")
    assert world.store.runs[run_id].status == RunStatus.FAILED
    assert world.events.types() == ["run.started", "job.failed", "run.failed"]
    assert world.events.events[1]["job"]["error_reason"] == "notFound"


def test_a_refused_check_fails_closed(tmp_path: Path) -> None:
    from baton.errors import JobRefused

    manifest = manifest_of({"a": []})
    manifest["jobs"][0]["destination"] = "sales.orders"
    manifest["jobs"][0]["checks"] = [{"name": "no_nulls", "not_null": "id"}]
    world = World(tmp_path, manifest)
    run_id = world.start()
    world.submitter.refuse = lambda request: (
        JobRefused(request.job_id, "accessDenied", "Access Denied") if "baton_check" in request.labels else None
    )
    world.finish(run_id, "a")
    assert world.job(run_id, "a").status == JobStatus.FAILED
    assert world.store.runs[run_id].status == RunStatus.FAILED


def test_a_reason_inferred_from_an_rpc_code_is_replaced_by_bigquerys_own_before_the_retry_decision(tmp_path: Path) -> None:
    from baton.service.ports import RemoteJob, RemoteState

    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 3}))
    run_id = world.start()
    job_id = bigquery_job_id("test", run_id, "a", 1)
    # RESOURCE_EXHAUSTED reads as rateLimitExceeded (retryable), but it was a quota that lasts for hours.
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE, "quotaExceeded", "Quota exceeded: bytes scanned")
    inferred = JobError("rateLimitExceeded", "Quota exceeded", reason_inferred=True)

    result = world.orchestrator.complete(Completion(run_id, "a", 1, job_id, error=inferred))

    assert world.submitter.lookups == [job_id]
    assert result.verdict == Verdict.RECORDED
    job = world.job(run_id, "a")
    assert (job.status, job.error_reason, job.attempt) == (JobStatus.FAILED, "quotaExceeded", 1)


def test_a_reason_bigquery_gave_is_not_looked_up(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}, retry={"max_attempts": 3}))
    run_id = world.start()
    world.finish(run_id, "a", error="rateLimitExceeded")
    assert world.submitter.lookups == []
    assert world.job(run_id, "a").attempt == 2


def _cancelled_after_insert(calls: list[tuple[str, str]], job_id: str) -> bool:
    inserted = calls.index(("insert", job_id))
    return ("cancel", job_id) in calls[inserted:]


def test_a_cancel_between_release_and_insert_still_stops_the_job_in_bigquery(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    b_id = bigquery_job_id("test", run_id, "b", 1)

    def cancel_first(request: Any) -> None:
        if request.job_id == b_id and world.store.runs[run_id].status == RunStatus.RUNNING:
            world.orchestrator.cancel(run_id)  # lands after b's release committed, before its insert

    world.submitter.refuse = cancel_first
    world.finish(run_id, "a")

    assert world.store.runs[run_id].status == RunStatus.CANCELLED
    assert world.job(run_id, "b").status == JobStatus.CANCELLED
    assert _cancelled_after_insert(world.submitter.calls, b_id), world.submitter.calls


def test_a_cancel_while_checks_are_submitted_stops_them_in_bigquery(tmp_path: Path) -> None:
    from baton.domain.naming import check_job_id

    manifest = manifest_of({"a": []})
    manifest["jobs"][0]["destination"] = "sales.orders"
    manifest["jobs"][0]["checks"] = [{"name": "no_nulls", "not_null": "id"}]
    world = World(tmp_path, manifest)
    run_id = world.start()
    check_id = check_job_id("test", run_id, "a", 1, "no_nulls")

    def cancel_first(request: Any) -> None:
        if request.job_id == check_id and world.store.runs[run_id].status == RunStatus.RUNNING:
            world.orchestrator.cancel(run_id)

    world.submitter.refuse = cancel_first
    world.finish(run_id, "a")
    assert _cancelled_after_insert(world.submitter.calls, check_id), world.submitter.calls


def test_cancelling_a_run_whose_job_is_checking_cancels_its_checks(tmp_path: Path) -> None:
    from baton.domain.naming import check_job_id

    manifest = manifest_of({"a": []})
    manifest["jobs"][0]["destination"] = "sales.orders"
    manifest["jobs"][0]["checks"] = [{"name": "no_nulls", "not_null": "id"}]
    world = World(tmp_path, manifest)
    run_id = world.start()
    world.finish(run_id, "a")
    world.orchestrator.cancel(run_id)
    assert world.submitter.cancelled == [check_job_id("test", run_id, "a", 1, "no_nulls")]


def test_the_first_redelivery_after_a_503_submits_what_the_first_delivery_released(tmp_path: Path) -> None:
    from baton.domain.timing import PUBSUB_MINIMUM_BACKOFF_S, RESUBMIT_AFTER
    from baton.errors import TransientError
    from cdk.config import PushDelivery

    assert PushDelivery().minimum_backoff_seconds == PUBSUB_MINIMUM_BACKOFF_S
    assert RESUBMIT_AFTER.total_seconds() < PUBSUB_MINIMUM_BACKOFF_S
    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    world.submitter.fail_next = TransientError("BigQuery jobs.insert: 503")
    with pytest.raises(TransientError):  # the handler answers 503
        world.finish(run_id, "a")
    assert world.job(run_id, "b").status == JobStatus.READY
    world.clock.now += dt.timedelta(seconds=PUBSUB_MINIMUM_BACKOFF_S)  # the earliest redelivery

    result = world.finish(run_id, "a")

    assert result.verdict == Verdict.DUPLICATE
    assert world.job(run_id, "b").status == JobStatus.SUBMITTED


def test_run_events_survive_a_failed_publish_and_the_reconciler_publishes_them(tmp_path: Path) -> None:
    from baton.domain.timing import ReconcilePolicy

    world = World(tmp_path, manifest_of({"a": [], "b": ["a"]}))
    run_id = world.start()
    world.events.fail = RuntimeError("Pub/Sub: 503")

    result = world.finish(run_id, "a", error="invalidQuery")  # the transition commits; the handler answers 200

    assert result.run_finished and world.events.types() == ["run.started"]
    waiting = sorted(event["type"] for event in world.store.outbox.values())
    assert waiting == ["job.failed", "run.failed"]
    world.events.fail = None
    world.clock.now += dt.timedelta(minutes=1)
    report = world.orchestrator.reconcile(ReconcilePolicy())
    assert report.published_events == 2
    assert world.events.types() == ["run.started", "job.failed", "run.failed"]
    assert world.store.outbox == {}
    assert world.events.events[1]["event_id"] == f"{run_id}:job.failed:a:1"
    assert len({event["event_id"] for event in world.events.events}) == 3


def test_a_failed_publish_on_cancel_still_cancels_in_bigquery(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    world.events.fail = RuntimeError("Pub/Sub: 503")
    world.orchestrator.cancel(run_id)
    assert world.submitter.cancelled == [bigquery_job_id("test", run_id, "a", 1)]
    assert [event["type"] for event in world.store.outbox.values()] == ["run.cancelled"]


def test_every_published_event_leaves_the_outbox(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    world.finish(run_id, "a")
    assert world.events.types() == ["run.started", "run.succeeded"]
    assert world.store.outbox == {}


def test_a_failure_stays_a_failure_when_jobs_get_names_no_reason(tmp_path: Path) -> None:
    from baton.service.ports import RemoteJob, RemoteState

    world = World(tmp_path, manifest_of({"a": []}))
    run_id = world.start()
    job_id = bigquery_job_id("test", run_id, "a", 1)
    world.submitter.remote[job_id] = RemoteJob(job_id, RemoteState.DONE)  # no errorResult
    world.orchestrator.complete(Completion(run_id, "a", 1, job_id, error=JobError("invalidQuery", "bad", reason_inferred=True)))
    assert world.job(run_id, "a").status == JobStatus.FAILED
