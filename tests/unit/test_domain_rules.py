"""Each rule that once had two copies now has one; these pin the one copy, so both callers keep agreeing."""

from __future__ import annotations

import ast
import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from baton.domain.naming import bigquery_job_id
from baton.domain.outcomes import UNKNOWN_RESULT, completion_of
from baton.domain.records import CheckCompletion, Completion, JobError, JobRecord, JobStats, JobStatus, RunRecord, RunStatus
from baton.domain.specs import JobSpec
from baton.domain.timing import RESUBMIT_AFTER, awaiting_submission, lease_expired
from baton.domain.transitions.failure import skip_downstream, skipped
from baton.domain.transitions.finish import finish_if_done, recount
from baton.domain.transitions.repair import repair_run
from baton.entrypoints.json_body import strict_json
from baton.entrypoints.pubsub_message import MalformedMessage
from baton.errors import InvalidRequest, one_line
from tests.fakes import InMemoryRunStore

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
DOMAIN = Path(__file__).resolve().parents[2] / "handlers" / "baton" / "domain"


def run_record(**changes: object) -> RunRecord:
    base = RunRecord("r" * 32, "m", "v", "dev", {}, RunStatus.RUNNING, total_jobs=3, open_jobs=0, succeeded_jobs=3)
    return replace(base, **changes)  # type: ignore[arg-type]


def job(key: str, status: JobStatus, needs: tuple[str, ...] = (), **changes: object) -> JobRecord:
    spec = JobSpec(key, "SELECT 1", needs)
    record = JobRecord("r" * 32, key, status, 1, len(needs), spec, bigquery_job_id("dev", "r" * 32, key, 1))
    return replace(record, **changes)  # type: ignore[arg-type]


# --- the run-finishing rule -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counters", "expected"),
    [
        ({}, RunStatus.SUCCEEDED),
        ({"succeeded_jobs": 2, "failed_jobs": 1}, RunStatus.FAILED),
        ({"succeeded_jobs": 2, "skipped_jobs": 1}, RunStatus.FAILED),
        ({"succeeded_jobs": 2, "cancelled_jobs": 1}, RunStatus.FAILED),
        ({"open_jobs": 1, "succeeded_jobs": 2}, RunStatus.RUNNING),
    ],
)
def test_a_run_ends_when_nothing_is_open_and_succeeds_only_if_every_job_did(
    counters: dict[str, int], expected: RunStatus
) -> None:
    finished = finish_if_done(run_record(**counters), NOW)
    assert finished.status == expected
    assert (finished.finished_at == NOW) == (expected != RunStatus.RUNNING)


def test_recounting_from_jobs_finishes_by_the_same_rule() -> None:
    jobs = [job("a", JobStatus.SUCCEEDED), job("b", JobStatus.FAILED), job("c", JobStatus.SKIPPED)]
    counted = recount(run_record(open_jobs=2, succeeded_jobs=1), jobs, NOW)
    by_counters = finish_if_done(run_record(succeeded_jobs=1, failed_jobs=1, skipped_jobs=1), NOW)
    assert (counted.status, counted.open_jobs, counted.failed_jobs) == (by_counters.status, 0, 1)
    assert finish_if_done(run_record(status=RunStatus.CANCELLED), NOW).status == RunStatus.CANCELLED, "a finished run stays"


# --- the resubmit lease -----------------------------------------------------------------------


def test_a_released_job_is_left_to_its_releaser_for_the_lease_then_handed_out() -> None:
    released = job("a", JobStatus.READY, ready_at=NOW)
    assert not awaiting_submission(released, NOW + RESUBMIT_AFTER - dt.timedelta(seconds=1))
    assert awaiting_submission(released, NOW + RESUBMIT_AFTER)
    assert awaiting_submission(released, NOW + dt.timedelta(seconds=3), lease=dt.timedelta(seconds=2)), "the reconciler's lease"
    assert not awaiting_submission(replace(released, status=JobStatus.SUBMITTED), NOW + RESUBMIT_AFTER)


def test_a_retry_whose_backoff_ended_is_nobodys_and_is_handed_out_at_once() -> None:
    backing_off = job("a", JobStatus.READY, ready_at=NOW, not_before=NOW + dt.timedelta(seconds=5))
    assert not awaiting_submission(backing_off, NOW + dt.timedelta(seconds=4))
    assert awaiting_submission(backing_off, NOW + dt.timedelta(seconds=5))
    assert lease_expired(None, NOW), "an unknown start is taken as long ago"


# --- skip propagation -------------------------------------------------------------------------


def test_events_and_repairs_skip_a_failures_downstream_alike() -> None:
    store = InMemoryRunStore()
    run = run_record(total_jobs=3, open_jobs=2, succeeded_jobs=0, failed_jobs=1)
    store.runs[run.run_id] = run
    store.jobs[(run.run_id, "a")] = job("a", JobStatus.FAILED)
    store.jobs[(run.run_id, "b")] = job("b", JobStatus.PENDING, ("a",))
    store.jobs[(run.run_id, "c")] = job("c", JobStatus.PENDING, ("b",))
    store.dependents[(run.run_id, "a")] = ["b"]
    store.dependents[(run.run_id, "b")] = ["c"]

    step = store.transact(lambda tx: skip_downstream(tx, run, "a", NOW, limit=10))
    keys = step.skipped
    assert keys == ["b", "c"] and step.run.skipped_jobs == 2 and step.run.open_jobs == 0 and step.continuation is None
    event_errors = {key: store.jobs[(run.run_id, key)].error for key in keys}

    for key in keys:  # undo, and let the reconciler's repair find the same failure
        store.jobs[(run.run_id, key)] = replace(store.jobs[(run.run_id, key)], status=JobStatus.PENDING, error=None)
    repair = store.transact(lambda tx: repair_run(tx, run.run_id, ["a", "b", "c"], NOW, limit=10))
    assert sorted(repair.skipped) == keys
    assert event_errors["b"] == store.jobs[(run.run_id, "b")].error == skipped(job("b", JobStatus.PENDING), "a", NOW).error
    assert repair.run is not None and repair.run.status == RunStatus.FAILED


# --- BigQuery's report of a finished job -> a completion -------------------------------------


def test_a_finished_job_and_a_finished_check_become_their_completions() -> None:
    stats = JobStats(total_bytes_processed=10)
    plain = completion_of("r", "a", 1, "id", check_name=None, error=None, stats=stats)
    assert isinstance(plain, Completion) and plain.stats == stats
    passed = completion_of("r", "a", 1, "id-check-c", check_name="c", error=None, stats=stats, output_rows=0)
    assert isinstance(passed, CheckCompletion) and passed.passed
    offending = completion_of("r", "a", 1, "id-check-c", check_name="c", error=None, stats=stats, output_rows=2)
    assert isinstance(offending, CheckCompletion) and not offending.passed


def test_a_check_without_a_row_count_never_passes() -> None:
    unknown = completion_of("r", "a", 1, "id-check-c", check_name="c", error=None, stats=JobStats(), output_rows=None)
    assert isinstance(unknown, CheckCompletion) and not unknown.passed
    assert unknown.error is not None and unknown.error.reason == UNKNOWN_RESULT
    failed = completion_of("r", "a", 1, "i", check_name="c", error=JobError("invalidQuery", "bad"), stats=JobStats())
    assert failed.error == JobError("invalidQuery", "bad"), "the query's own error wins"


# --- one strict JSON decoder, one one-line error ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": NaN}', "is not plain JSON: NaN is not JSON"),
        (b"[1e400]", "is not plain JSON: the number 1e400 is out of range"),
        (b'{"a": 1, "a": 2}', "is not plain JSON: duplicate key 'a'"),
        (b"{", "is not JSON: "),
        (b"[" * 100_000, "is not JSON"),
    ],
)
def test_every_decoder_refuses_the_same_json(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequest, match="^body " + problem.split(":")[0]):
        strict_json(raw, "body")
    with pytest.raises(MalformedMessage) as caught:
        strict_json(raw, "message data", MalformedMessage)
    assert str(caught.value).startswith("message data " + problem)


def test_an_error_is_shown_on_one_line() -> None:
    assert one_line("first  line\n\n  second\tline ") == "first line; second line"
    assert one_line("x" * 50, limit=10) == "xxxxxxx..."
    assert len(one_line("word " * 100, limit=40)) == 40


# --- the domain stays pure --------------------------------------------------------------------


def test_the_domain_imports_only_the_standard_library_and_itself() -> None:
    outside = set()
    for path in DOMAIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and not name.startswith("baton.domain") and name != "__future__":
                    outside.add(f"{path.relative_to(DOMAIN)}: {name}")
    assert len(list(DOMAIN.rglob("*.py"))) > 10
    assert not outside, sorted(outside)
