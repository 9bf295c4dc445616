"""Data checks: manifest validation and compilation, the CHECKING state, retrying a finished run."""

from __future__ import annotations

import datetime as dt
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import CheckCompletion, CheckStatus, JobError, JobStatus, RunStatus
from baton.domain.specs import Severity
from baton.domain.timing import ReconcilePolicy
from baton.domain.transitions.checks import CHECK_FAILED_REASON
from baton.domain.transitions.completion import Verdict
from baton.entrypoints.audit_log import Ignored, IgnoreReason, ParsedCompletion, parse_log_entry
from baton.errors import ManifestInvalid, RunNotFound, RunNotRetryable
from baton.manifests.loading import parse_manifest
from baton.service.ports import RemoteJob, RemoteState
from tests.fixtures import load_fixture
from tests.unit.test_engine import World

POLICY = ReconcilePolicy(interval=dt.timedelta(minutes=5), lost_after=dt.timedelta(minutes=5))


def manifest_with_checks(checks: list[dict[str, Any]], **job: Any) -> dict[str, Any]:
    """load -> report (checked) -> publish."""
    return {
        "name": "m",
        "params": {"run_date": {"type": "DATE", "default": "2026-11-27"}},
        "jobs": [
            {"key": "load", "sql": "SELECT 1 AS id", "destination": "sales.orders", "checks": checks, **job},
            {"key": "publish", "sql": "SELECT 2", "needs": ["load"]},
        ],
    }


def problems_of(manifest: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(manifest, "m.yaml", tmp_path)
    return caught.value.problems


def check(world: World, run_id: str, name: str, rows: int | None = 0, error: str | None = None, **kw: Any) -> Any:
    attempt = kw.pop("attempt", None) or world.job(run_id, kw.pop("key", "load")).attempt
    key = kw.pop("job_key", "load")
    job_id = kw.pop("job_id", None) or check_job_id("test", run_id, key, attempt, name)
    event = CheckCompletion(run_id, key, attempt, name, job_id, rows, JobError(error, "boom") if error else None)
    return world.orchestrator.complete(event)


# --- manifest ---------------------------------------------------------------------------------


def test_each_kind_of_check_compiles_to_a_query_that_returns_offending_rows(tmp_path: Path) -> None:
    checks = [
        {"name": "ids_present", "not_null": "id"},
        {"name": "one_row_per_order", "unique": ["id", "line"], "severity": "warn"},
        {"name": "known_status", "accepted_values": {"column": "status", "values": ["open", "paid"]}},
        {"name": "not_empty", "row_count_above": 0, "table": "proj-123.sales.other"},
        {"name": "no_negative", "sql_returns_no_rows": "SELECT * FROM sales.orders WHERE amount < 0;"},
        {"name": "sums_match", "sql_is_true": "(SELECT SUM(amount) FROM sales.orders) > @threshold"},
    ]
    manifest = parse_manifest(manifest_with_checks(checks), "m.yaml", tmp_path)
    compiled = {c.name: c for c in manifest.job("load").checks}
    assert list(compiled) == [c["name"] for c in checks]
    assert compiled["ids_present"].sql == "SELECT `id` FROM `sales.orders` WHERE `id` IS NULL LIMIT 100"
    assert compiled["one_row_per_order"].severity == Severity.WARN
    assert "GROUP BY `id`, `line` HAVING COUNT(*) > 1" in compiled["one_row_per_order"].sql
    assert compiled["ids_present"].severity == Severity.ERROR, "error is the default"
    known = compiled["known_status"]
    assert "NOT IN (@baton_accepted_0, @baton_accepted_1)" in known.sql and "'open'" not in known.sql
    assert dict(known.params) == {"baton_accepted_0": "open", "baton_accepted_1": "paid"}
    assert "FROM `proj-123.sales.other`" in compiled["not_empty"].sql and "row_count <= 0" in compiled["not_empty"].sql
    assert compiled["no_negative"].sql.startswith("SELECT * FROM (\nSELECT * FROM sales.orders WHERE amount < 0\n)")
    assert "NOT COALESCE(ok, FALSE)" in compiled["sums_match"].sql and "@threshold" in compiled["sums_match"].sql
    # The snapshot round-trips and changes the version; a job without checks keeps its JSON as before.
    assert manifest.job("load").from_json(manifest.job("load").to_json()) == manifest.job("load")
    assert "checks" not in manifest.job("publish").to_json()


def test_check_problems_are_all_reported_at_once(tmp_path: Path) -> None:
    checks = [
        {"name": "Bad-Name", "not_null": "id"},
        {"name": "two_kinds", "not_null": "id", "unique": "id"},
        {"name": "two_kinds", "not_null": "id"},
        {"name": "raw_with_table", "sql_returns_no_rows": "SELECT 1", "table": "a.b"},
        {"name": "bad_column", "not_null": "id; DROP TABLE x"},
        {"name": "mixed", "accepted_values": {"column": "c", "values": [1, "1"]}},
        {"name": "empty_sql", "sql_is_true": " ; "},
    ]
    problems = problems_of(manifest_with_checks(checks), tmp_path)
    text = "\n".join(problems)
    assert "check 'Bad-Name': name must match" in text
    assert "check 'two_kinds': give exactly one of the check kinds not_null, unique," in text
    assert "(found: not_null, unique)" in text
    assert "check 'two_kinds': duplicate check name" in text
    assert "check 'raw_with_table': 'table' applies to named checks" in text
    assert "check 'bad_column': 'id; DROP TABLE x' is not a column name" in text
    assert "check 'mixed': accepted_values: values must all have one type" in text
    assert "check 'empty_sql': sql_is_true is empty" in text
    assert all(p.startswith("job 'load': ") for p in problems)


def test_named_checks_need_a_table_and_reserved_params_are_refused(tmp_path: Path) -> None:
    manifest = manifest_with_checks([{"name": "ids", "not_null": "id"}])
    manifest["jobs"][0].pop("destination")
    manifest["params"]["baton_x"] = {"type": "STRING", "default": "x"}
    manifest["jobs"][1]["params"] = {"baton_y": 1}
    problems = problems_of(manifest, tmp_path)
    assert "job 'load': check 'ids': not_null needs the job's destination or an explicit 'table'" in problems
    assert any("params: 'baton_x' starts with 'baton_'" in p for p in problems)
    assert any("job 'publish': param 'baton_y' starts with 'baton_'" in p for p in problems)
    strict = manifest_with_checks([{"name": "n", "row_count_above": True}])
    assert any("row_count_above" in p for p in problems_of(strict, tmp_path))


# --- running checks ---------------------------------------------------------------------------


CHECKS = [
    {"name": "ids_present", "not_null": "id"},
    {"name": "enough_rows", "row_count_above": 10, "severity": "warn"},
]


def test_checks_run_as_their_own_jobs_after_the_job_and_gate_its_dependents(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS, params={"limit": 5}, labels={"team": "t"}))
    run_id = world.start()
    result = world.finish(run_id, "load")
    job = world.job(run_id, "load")
    assert (job.status, job.pending_checks) == (JobStatus.CHECKING, 2)
    assert [c.name for c in result.checks] == ["ids_present", "enough_rows"]
    requests = {r.job_id: r for r in world.submitter.requests}
    ids = check_job_id("test", run_id, "load", 1, "ids_present")
    assert ids == f"baton_test_{run_id}_load_1-check-ids_present"
    assert requests[ids].labels == {
        "team": "t",
        "baton_env": "test",
        "baton_run": run_id,
        "baton_job": "load",
        "baton_attempt": "1",
        "baton_check": "ids_present",
    }
    assert {(p.name, p.value) for p in requests[ids].parameters} == {("run_date", "2026-11-27"), ("limit", 5)}
    assert requests[ids].destination is None
    assert "publish" not in world.submitter.submitted_keys(), "dependents wait for the checks"

    assert check(world, run_id, "ids_present").verdict == Verdict.RECORDED
    assert world.job(run_id, "load").pending_checks == 1
    assert check(world, run_id, "ids_present").verdict == Verdict.DUPLICATE
    assert world.job(run_id, "load").pending_checks == 1, "a duplicate check event counts once"
    check(world, run_id, "enough_rows")
    assert world.job(run_id, "load").status == JobStatus.SUCCEEDED
    assert world.submitter.submitted_keys()[-1] == "publish"
    outcomes = world.store.list_checks(run_id)
    assert [(c.name, c.status, c.rows, c.bigquery_job_id) for c in outcomes] == [
        ("enough_rows", CheckStatus.PASSED, 0, check_job_id("test", run_id, "load", 1, "enough_rows")),
        ("ids_present", CheckStatus.PASSED, 0, ids),
    ]
    world.finish(run_id, "publish")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED
    assert world.events.types() == ["run.started", "run.succeeded"]


def test_a_failing_error_check_fails_the_job_and_skips_downstream(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.finish(run_id, "load")
    check(world, run_id, "ids_present", rows=3)
    assert world.job(run_id, "load").status == JobStatus.CHECKING, "the other check is still running"
    result = check(world, run_id, "enough_rows", rows=None)  # proto3 JSON omits a zero outputRowCount
    job = world.job(run_id, "load")
    assert (job.status, job.error_reason) == (JobStatus.FAILED, CHECK_FAILED_REASON)
    assert job.error == "check 'ids_present' failed: 3 offending row(s)"
    assert result.skipped == ["publish"] and world.job(run_id, "publish").status == JobStatus.SKIPPED
    run = world.store.runs[run_id]
    assert (run.status, run.failed_jobs, run.skipped_jobs, run.open_jobs) == (RunStatus.FAILED, 1, 1, 0)
    assert world.events.types() == ["run.started", "job.failed", "run.failed"]
    failed = world.events.events[1]
    assert failed["job"]["error_reason"] == CHECK_FAILED_REASON
    assert failed["checks"] == [
        {
            "name": "ids_present",
            "severity": "error",
            "rows": 3,
            "error": None,
            "bigquery_job_id": check_job_id("test", run_id, "load", 1, "ids_present"),
        }
    ]
    assert world.store.catalog == {}, "a table that failed its checks is not catalogued"


def test_a_failing_warn_check_is_a_warning_and_the_job_succeeds(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.finish(run_id, "load")
    check(world, run_id, "enough_rows", rows=1)
    check(world, run_id, "ids_present", rows=0)
    assert world.job(run_id, "load").status == JobStatus.SUCCEEDED
    assert world.submitter.submitted_keys()[-1] == "publish"
    assert world.events.types() == ["run.started", "job.warning"]
    warning = world.events.events[1]
    assert (warning["job"]["key"], warning["status"]) == ("load", "RUNNING")
    assert [(c["name"], c["severity"], c["rows"]) for c in warning["checks"]] == [("enough_rows", "warn", 1)]
    statuses = {c.name: c.status for c in world.store.list_checks(run_id, "load")}
    assert statuses == {"enough_rows": CheckStatus.FAILED, "ids_present": CheckStatus.PASSED}


def test_many_checks_reporting_at_once_and_twice_decide_the_job_exactly_once(tmp_path: Path) -> None:
    names = [f"c{i:02d}" for i in range(40)]
    checks = [{"name": n, "not_null": "id", "severity": "warn" if n != "c07" else "error"} for n in names]
    world = World(tmp_path, manifest_with_checks(checks))
    run_id = world.start()
    world.finish(run_id, "load")
    deliveries = names * 2
    random.Random(3).shuffle(deliveries)
    rows = {n: 1 if n in ("c07", "c13") else 0 for n in names}
    chunks = [deliveries[i::6] for i in range(6)]
    threads = [threading.Thread(target=lambda c=c: [check(world, run_id, n, rows=rows[n]) for n in c]) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job = world.job(run_id, "load")
    assert (job.status, job.pending_checks, job.error) == (JobStatus.FAILED, 0, "check 'c07' failed: 1 offending row(s)")
    assert world.events.types() == ["run.started", "job.failed", "run.failed"]
    assert [c["name"] for c in world.events.events[1]["checks"]] == ["c07", "c13"]
    assert world.store.runs[run_id].failed_jobs == 1


def test_a_check_whose_query_fails_counts_as_failed(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id = world.start()
    world.finish(run_id, "load")
    check(world, run_id, "ids_present", rows=None, error="invalidQuery")
    job = world.job(run_id, "load")
    assert job.status == JobStatus.FAILED
    assert job.error == "check 'ids_present' could not run: invalidQuery: boom"


def test_stale_and_foreign_check_events_change_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    assert check(world, run_id, "ids_present", attempt=1).verdict == Verdict.STALE, "the job has not run yet"
    world.finish(run_id, "load")
    before = (dict(world.store.jobs), dict(world.store.checks))
    assert check(world, run_id, "ids_present", attempt=2).verdict == Verdict.STALE
    assert check(world, run_id, "not_declared").verdict == Verdict.STALE
    assert check(world, run_id, "ids_present", job_id="someone_elses").verdict == Verdict.STALE
    assert check(world, "f" * 32, "ids_present", attempt=1).verdict == Verdict.UNKNOWN_RUN
    assert (world.store.jobs, world.store.checks) == before
    assert world.finish(run_id, "load", attempt=1).verdict == Verdict.DUPLICATE, "a redelivered job event"
    assert (world.store.jobs, world.store.checks) == before


def test_a_crash_before_the_checks_were_submitted_is_healed_by_redelivery(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.submitter.fail_next = RuntimeError("crash between commit and the checks' jobs.insert")
    with pytest.raises(RuntimeError):
        world.finish(run_id, "load")
    assert world.job(run_id, "load").status == JobStatus.CHECKING
    assert world.finish(run_id, "load").checks == [], "too soon: the first delivery may still be submitting"
    world.clock.now += dt.timedelta(seconds=31)
    assert [c.name for c in world.finish(run_id, "load").checks] == ["enough_rows", "ids_present"]
    submitted = {r.job_id for r in world.submitter.requests}
    assert {check_job_id("test", run_id, "load", 1, n) for n in ("ids_present", "enough_rows")} <= submitted


def test_the_reconciler_heals_lost_check_events_and_unsubmitted_checks(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.finish(run_id, "load")
    ids, rows = (check_job_id("test", run_id, "load", 1, n) for n in ("ids_present", "enough_rows"))
    world.submitter.job_ids.discard(rows)  # as if jobs.insert of this check never happened
    world.submitter.remote[ids] = RemoteJob(ids, RemoteState.DONE, output_rows=2)
    assert world.orchestrator.reconcile(POLICY).healed == 0, "too fresh to look up"
    world.clock.now += dt.timedelta(minutes=6)
    report = world.orchestrator.reconcile(POLICY)
    assert (report.healed, report.resubmitted_lost) == (1, 1)
    outcome = {c.name: c for c in world.store.list_checks(run_id)}
    assert (outcome["ids_present"].status, outcome["ids_present"].rows) == (CheckStatus.FAILED, 2)
    assert world.submitter.requests[-1].job_id == rows
    # A DONE check whose row count BigQuery cannot tell must not pass.
    world.submitter.remote[rows] = RemoteJob(rows, RemoteState.DONE)
    world.clock.now += dt.timedelta(minutes=5)  # the next lookup of a job checked at 6 minutes is at 10
    assert world.orchestrator.reconcile(POLICY).healed == 1
    outcome = {c.name: c for c in world.store.list_checks(run_id)}
    assert outcome["enough_rows"].status == CheckStatus.FAILED and "unknownResult" in (outcome["enough_rows"].error or "")
    assert world.job(run_id, "load").status == JobStatus.FAILED


def test_the_audit_log_parser_reads_check_completions() -> None:
    run = "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"
    entry = load_fixture("audit_log/job_done_success")
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    labels = job["jobConfig"]["labels"]
    env, key, attempt = labels["baton_env"], labels["baton_job"], int(labels["baton_attempt"])
    assert labels["baton_run"] == run
    labels["baton_check"] = "ids_present"
    job["jobStats"]["queryStats"]["outputRowCount"] = "7"
    job_id = check_job_id(env, run, key, attempt, "ids_present")
    job["jobName"] = f"projects/p/jobs/{job_id}"
    parsed = parse_log_entry(entry, environment=env)
    assert isinstance(parsed, ParsedCompletion) and isinstance(parsed.completion, CheckCompletion)
    assert (parsed.completion.check_name, parsed.completion.rows, parsed.completion.passed) == ("ids_present", 7, False)
    assert parsed.completion.bigquery_job_id == job_id

    job["jobName"] = f"projects/p/jobs/{bigquery_job_id(env, run, key, attempt)}"
    foreign = parse_log_entry(entry, environment=env)
    assert isinstance(foreign, Ignored) and foreign.reason == IgnoreReason.FOREIGN_JOB_ID, "a check label on the job's own ID"
    labels["baton_check"] = "Not A Name"
    malformed = parse_log_entry(entry, environment=env)
    assert isinstance(malformed, Ignored) and malformed.reason == IgnoreReason.MALFORMED_LABELS


# --- retrying a finished run ------------------------------------------------------------------


def test_retry_reruns_failed_and_skipped_jobs_as_a_continuation_of_the_run(tmp_path: Path) -> None:
    manifest = {
        "name": "m",
        "jobs": [
            {"key": "a", "sql": "SELECT 1"},
            {"key": "b", "sql": "SELECT 1", "needs": ["a"]},
            {"key": "c", "sql": "SELECT 1", "needs": ["b"]},
            {"key": "d", "sql": "SELECT 1", "needs": ["a"]},
        ],
    }
    world = World(tmp_path, manifest)
    run_id = world.start()
    world.finish(run_id, "a")
    world.finish(run_id, "d")
    world.finish(run_id, "b", error="invalidQuery")
    assert world.store.runs[run_id].status == RunStatus.FAILED
    world.clock.now += dt.timedelta(minutes=1)

    run = world.orchestrator.retry(run_id)
    assert (run.status, run.open_jobs, run.succeeded_jobs, run.failed_jobs, run.skipped_jobs) == (RunStatus.RUNNING, 2, 2, 0, 0)
    assert run.finished_at is None
    b, c = world.job(run_id, "b"), world.job(run_id, "c")
    assert (b.status, b.attempt, b.bigquery_job_id, b.error) == (
        JobStatus.SUBMITTED,
        2,
        bigquery_job_id("test", run_id, "b", 2),
        None,
    )
    assert (c.status, c.attempt, c.pending_upstreams) == (JobStatus.PENDING, 2, 1)
    assert world.job(run_id, "a").attempt == 1, "succeeded jobs are kept"
    assert world.submitter.requests[-1].job_id == bigquery_job_id("test", run_id, "b", 2)
    assert world.finish(run_id, "b", attempt=1).verdict == Verdict.STALE, "a late event of the failed attempt"

    world.finish(run_id, "b")
    world.finish(run_id, "c")
    final = world.store.runs[run_id]
    assert (final.status, final.succeeded_jobs, final.open_jobs) == (RunStatus.SUCCEEDED, 4, 0)
    assert world.events.types() == ["run.started", "job.failed", "run.failed", "run.retried", "run.succeeded"]
    with pytest.raises(RunNotRetryable, match="SUCCEEDED"):
        world.orchestrator.retry(run_id)


def test_retry_refuses_running_and_unknown_runs(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([]))
    run_id = world.start()
    with pytest.raises(RunNotRetryable, match="RUNNING"):
        world.orchestrator.retry(run_id)
    with pytest.raises(RunNotFound):
        world.orchestrator.retry("f" * 32)


def test_a_cancelled_run_retried_in_several_commits_comes_back_whole(tmp_path: Path) -> None:
    edges = {f"j{i}": [] for i in range(5)} | {"last": [f"j{i}" for i in range(5)]}
    manifest = {"name": "m", "jobs": [{"key": k, "sql": "SELECT 1", "needs": v} for k, v in edges.items()]}
    world = World(tmp_path, manifest)
    run_id = world.start()
    world.finish(run_id, "j0")
    world.orchestrator.cancel(run_id)
    world.store.jobs_per_commit = 2
    commits = world.store.commits
    run = world.orchestrator.retry(run_id)
    assert world.store.commits - commits == 3 + 1, "5 jobs in commits of 2, then marking the submitted ones"
    assert (run.status, run.open_jobs, run.cancelled_jobs) == (RunStatus.RUNNING, 5, 0)
    assert world.job(run_id, "last").pending_upstreams == 4
    assert sorted(world.submitter.submitted_keys()[-4:]) == ["j1", "j2", "j3", "j4"]
    for key in ("j1", "j2", "j3", "j4", "last"):
        world.finish(run_id, key)
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED


def test_a_job_failed_by_its_checks_is_retried_with_fresh_checks(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id = world.start()
    world.finish(run_id, "load")
    check(world, run_id, "ids_present", rows=1)
    world.orchestrator.retry(run_id)
    world.finish(run_id, "load")
    assert world.job(run_id, "load").status == JobStatus.CHECKING
    assert check(world, run_id, "ids_present", rows=1, attempt=1).verdict == Verdict.STALE
    check(world, run_id, "ids_present", rows=0)
    world.finish(run_id, "publish")
    assert world.store.runs[run_id].status == RunStatus.SUCCEEDED
    history = [(c.attempt, c.status) for c in world.store.list_checks(run_id, "load")]
    assert history == [(1, CheckStatus.FAILED), (2, CheckStatus.PASSED)]


def _check_entry(run_id: str, name: str, *, query_stats: dict[str, Any] | None) -> dict[str, Any]:
    """The audit entry of a check's job: `query_stats` None is a truncated entry without queryStats."""
    entry = load_fixture("audit_log/job_done_success")
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    job["jobConfig"]["labels"].update(baton_env="test", baton_run=run_id, baton_job="load", baton_attempt="1", baton_check=name)
    job["jobName"] = f"projects/p/jobs/{check_job_id('test', run_id, 'load', 1, name)}"
    job["jobConfig"]["queryConfig"].pop("destinationTable", None)
    if query_stats is None:
        job["jobStats"].pop("queryStats", None)
    else:
        job["jobStats"]["queryStats"] = query_stats
    return entry


def test_a_check_entry_without_query_stats_is_healed_from_jobs_get_never_read_as_a_pass(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.finish(run_id, "load")
    truncated = parse_log_entry(_check_entry(run_id, "ids_present", query_stats=None), environment="test")
    assert isinstance(truncated, ParsedCompletion) and isinstance(truncated.completion, CheckCompletion)
    assert truncated.completion.rows is None and not truncated.completion.passed
    ids = check_job_id("test", run_id, "load", 1, "ids_present")
    world.submitter.remote[ids] = RemoteJob(ids, RemoteState.DONE, output_rows=4)

    world.orchestrator.complete(truncated.completion)

    assert world.submitter.lookups == [ids]
    outcome = {c.name: c for c in world.store.list_checks(run_id)}["ids_present"]
    assert (outcome.status, outcome.rows, outcome.error) == (CheckStatus.FAILED, 4, None)


def test_a_check_entry_with_query_stats_but_no_row_count_is_zero_rows() -> None:
    run_id = "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"
    parsed = parse_log_entry(_check_entry(run_id, "ids_present", query_stats={"totalProcessedBytes": "10"}), environment="test")
    assert isinstance(parsed, ParsedCompletion) and isinstance(parsed.completion, CheckCompletion)
    assert (parsed.completion.rows, parsed.completion.passed) == (0, True), "proto3 JSON omits a zero outputRowCount"


def test_a_truncated_check_entry_bigquery_cannot_answer_for_fails_closed(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    run_id = world.start()
    world.finish(run_id, "load")
    truncated = parse_log_entry(_check_entry(run_id, "ids_present", query_stats=None), environment="test")
    assert isinstance(truncated, ParsedCompletion)
    world.orchestrator.complete(truncated.completion)  # jobs.get does not know the job (None)
    outcome = {c.name: c for c in world.store.list_checks(run_id)}["ids_present"]
    assert outcome.status == CheckStatus.FAILED and "unknownResult" in (outcome.error or "")


def test_with_a_scratch_dataset_check_results_go_to_a_table_every_function_can_read(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks(CHECKS))
    world.orchestrator.scratch_dataset = "baton_test_scratch"
    run_id = world.start()
    world.finish(run_id, "load")
    ids = check_job_id("test", run_id, "load", 1, "ids_present")
    request = {r.job_id: r for r in world.submitter.requests}[ids]
    assert (request.destination, request.write_disposition) == (f"baton_test_scratch.{ids}", "WRITE_TRUNCATE")
