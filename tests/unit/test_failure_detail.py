"""Failure detail: a failed check keeps its first offending rows, bounded, read from its own result."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

from baton.domain.naming import bigquery_job_id, check_job_id
from baton.domain.records import CheckCompletion, CheckStatus, Completion, JobStatus
from baton.domain.samples import MAX_SAMPLE_BYTES, MAX_SAMPLE_ROWS, bounded_sample
from baton.errors import TransientError
from tests.unit.test_checks import manifest_with_checks
from tests.unit.test_engine import World


def test_samples_are_few_small_and_plain_json() -> None:
    rows = [{"id": n, "amount": decimal.Decimal("1.50"), "day": dt.date(2026, 11, 27), "note": None} for n in range(50)]
    sample = bounded_sample(rows)
    assert len(sample) == MAX_SAMPLE_ROWS
    assert sample[0] == {"id": 0, "amount": "1.50", "day": "2026-11-27", "note": None}
    wide = [{f"text_{c}": "x" * 5000 for c in range(10)} | {"n": n} for n in range(10)]
    kept = bounded_sample(wide)
    assert len(json.dumps(list(kept))) <= MAX_SAMPLE_BYTES and 0 < len(kept) < 10
    assert len(kept[0]["text_0"]) == 256 and kept[0]["text_0"].endswith("…")
    assert [row["n"] for row in kept] == list(range(len(kept))), "the first rows, in order"
    assert bounded_sample([]) == ()


def run_to_checks(world: World) -> tuple[str, str]:
    run_id = world.start()
    world.orchestrator.complete(Completion(run_id, "load", 1, bigquery_job_id("test", run_id, "load", 1)))
    return run_id, check_job_id("test", run_id, "load", 1, "ids_present")


def test_a_failed_check_keeps_its_offending_rows_and_a_passing_one_reads_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id, check_id = run_to_checks(world)
    world.submitter.results[check_id] = [{"id": None, "line": n} for n in range(25)]
    world.orchestrator.complete(CheckCompletion(run_id, "load", 1, "ids_present", check_id, rows=25))
    check = world.store.checks[(run_id, "load", 1, "ids_present")]
    assert check.status == CheckStatus.FAILED and check.bigquery_job_id == check_id
    assert check.sample_rows == tuple({"id": None, "line": n} for n in range(10))
    assert world.submitter.sampled == [check_id]
    assert world.job(run_id, "load").status == JobStatus.FAILED

    (tmp_path / "p").mkdir()
    passing = World(tmp_path / "p", manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id, check_id = run_to_checks(passing)
    passing.orchestrator.complete(CheckCompletion(run_id, "load", 1, "ids_present", check_id, rows=0))
    assert passing.submitter.sampled == [], "a passing check costs no extra call"
    assert passing.store.checks[(run_id, "load", 1, "ids_present")].sample_rows is None


def test_rows_that_cannot_be_read_do_not_stop_the_verdict(tmp_path: Path) -> None:
    world = World(tmp_path, manifest_with_checks([{"name": "ids_present", "not_null": "id"}]))
    run_id, check_id = run_to_checks(world)
    world.submitter.results[check_id] = TransientError("BigQuery getQueryResults: 503")
    world.orchestrator.complete(CheckCompletion(run_id, "load", 1, "ids_present", check_id, rows=3))
    check = world.store.checks[(run_id, "load", 1, "ids_present")]
    assert check.status == CheckStatus.FAILED and check.rows == 3 and check.sample_rows is None
    assert world.job(run_id, "load").status == JobStatus.FAILED
