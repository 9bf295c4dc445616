"""A run's state row (spanner_schema/0015) holds its Runs row as JSON: every field survives the round trip."""

from __future__ import annotations

import datetime as dt
import json

from baton.adapters.spanner_rows import RUN_COLUMNS, run_from_state, run_row, run_state, run_state_status
from baton.domain.records import RunRecord, RunStatus, Usage
from baton.domain.specs import BoundParam

AT = dt.datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=dt.UTC)


def every_field_set() -> RunRecord:
    return RunRecord(
        run_id="r" * 32,
        manifest_name="elt_daily",
        manifest_version="v1",
        environment="dev",
        params={"run_date": BoundParam("DATE", "2026-12-03"), "limit": BoundParam("INT64", 5)},
        status=RunStatus.RUNNING,
        total_jobs=9,
        open_jobs=4,
        succeeded_jobs=3,
        failed_jobs=1,
        skipped_jobs=1,
        cancelled_jobs=0,
        created_at=AT,
        finished_at=AT + dt.timedelta(hours=1),
        usage=Usage(10, 20, 30),
        queue="elt_daily",
        queue_limit=2,
        backfill_id="bf-1",
        started_at=AT + dt.timedelta(seconds=1),
        held_at=AT + dt.timedelta(seconds=2),
        hold_reason="migration",
        timeout_seconds=3600,
        deadline=AT + dt.timedelta(hours=2),
        end_reason="timeout",
    )


def test_every_field_of_a_run_survives_its_state_row() -> None:
    run = every_field_set()
    back = run_from_state(run_state(run))
    assert back == run
    assert run_row(back) == run_row(run), "what the store compares to write only changed columns"


def test_every_timestamp_of_a_run_is_decoded_as_one() -> None:
    from baton.adapters.spanner_rows import _RUN_TIMESTAMPS

    timestamps = [f for f in RunRecord.__dataclass_fields__.values() if "datetime" in str(f.type)]
    assert len(timestamps) == len(_RUN_TIMESTAMPS), "a new timestamp column of Runs must be listed in _RUN_TIMESTAMPS"


def test_a_column_an_older_state_lacks_reads_as_null() -> None:
    state = json.loads(run_state(every_field_set()))
    del state["EndReason"]
    assert set(RUN_COLUMNS) - set(state) == {"EndReason"}
    assert run_from_state(json.dumps(state)).end_reason is None


def test_the_state_row_is_open_while_its_run_is_and_never_looks_like_an_open_job() -> None:
    from baton.domain.records import JobStatus

    run = every_field_set()
    open_statuses = {RunStatus.CREATING, RunStatus.QUEUED, RunStatus.RUNNING}
    assert {run_state_status(RunRecord(**{**run.__dict__, "status": s})) for s in open_statuses} == {"RUN"}
    assert "RUN" not in {str(status) for status in JobStatus}
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
        ended = run_state_status(RunRecord(**{**run.__dict__, "status": status}))
        assert JobStatus(ended).terminal, "terminal, so OpenRunJobs (spanner_schema/0005) leaves the row out"
