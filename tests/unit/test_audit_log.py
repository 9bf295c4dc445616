"""The audit-log parser against full LogEntry fixtures, malformed variants of them, and a type-confusion sweep."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from baton.domain.bigquery_reasons import reason_for_code
from baton.domain.naming import bigquery_job_id
from baton.domain.records import JobError, JobStats
from baton.entrypoints.audit_log import Ignored, IgnoreReason, ParsedCompletion, parse_log_entry
from tests.fixtures import load_fixture

UTC = dt.UTC
RUN = "5f0c1e7a9b2d4c6e8f1a3b5c7d9e0f21"
DELETE = object()  # sentinel: remove the key instead of setting it

JOB = ("protoPayload", "metadata", "jobChange", "job")
LABELS = (*JOB, "jobConfig", "labels")
QUERY_CONFIG = (*JOB, "jobConfig", "queryConfig")
STATS = (*JOB, "jobStats")
QUERY_STATS = (*STATS, "queryStats")
ERROR = (*JOB, "jobStatus", "errorResult")

FIXTURES = [
    "job_done_success",
    "job_done_invalid_query",
    "job_done_backend_error",
    "script_parent_done",
    "script_child_done",
    "job_insertion",
    "job_change_running",
    "legacy_job_completed",
    "other_environment",
    "no_baton_labels",
    "non_bigquery",
]


def entry(name: str) -> dict[str, Any]:
    return load_fixture(f"audit_log/{name}")


def mutated(name: str, path: tuple[str, ...], value: object) -> dict[str, Any]:
    data = entry(name)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def parsed(result: ParsedCompletion | Ignored) -> ParsedCompletion:
    assert isinstance(result, ParsedCompletion), result
    return result


def ignored(result: ParsedCompletion | Ignored) -> Ignored:
    assert isinstance(result, Ignored), result
    return result


# --- fixtures that are completions -----------------------------------------------------------


def test_success_with_destination_table() -> None:
    result = parsed(parse_log_entry(entry("job_done_success"), environment="dev"))
    job_id = bigquery_job_id("dev", RUN, "load_orders", 1)
    assert (result.environment, result.project, result.location) == ("dev", "acme-analytics-dev", "US")
    completion = result.completion
    assert (completion.run_id, completion.job_key, completion.attempt) == (RUN, "load_orders", 1)
    assert completion.bigquery_job_id == job_id
    assert completion.error is None
    assert completion.stats == JobStats(
        total_bytes_processed=734003200,
        total_bytes_billed=734003200,
        total_slot_ms=95211,
        rows_affected=182340,
        destination_table="acme-analytics-dev.staging.orders",
        start_time=dt.datetime(2025, 3, 14, 2, 4, 51, 412000, tzinfo=UTC),
        end_time=dt.datetime(2025, 3, 14, 2, 5, 17, 306000, tzinfo=UTC),
    )


def test_invalid_query_failure_maps_the_rpc_code() -> None:
    completion = parsed(parse_log_entry(entry("job_done_invalid_query"))).completion
    assert completion.job_key == "build_report"
    assert completion.error == JobError("invalidQuery", "Syntax error: Unexpected keyword FROM at [1:8]", reason_inferred=True)
    assert completion.stats.destination_table == "acme-analytics-dev.marts.daily_report"
    assert completion.stats.total_bytes_processed is None  # a failed query reports no queryStats


def test_backend_error_on_a_second_attempt_keeps_nanosecond_times_as_microseconds() -> None:
    completion = parsed(parse_log_entry(entry("job_done_backend_error"))).completion
    assert (completion.job_key, completion.attempt) == ("refresh_kpis", 2)
    assert completion.bigquery_job_id.endswith("_refresh_kpis_2")
    assert completion.error == JobError("backendError", "The service is currently unavailable.", reason_inferred=True)
    assert completion.stats.start_time == dt.datetime(2025, 3, 14, 2, 7, 40, 123456, tzinfo=UTC)
    assert completion.stats.end_time == dt.datetime(2025, 3, 14, 2, 9, 3, 500000, tzinfo=UTC)
    assert (completion.stats.total_bytes_processed, completion.stats.total_slot_ms) == (0, 412)


def test_script_parent_is_the_completion_and_has_no_destination() -> None:
    completion = parsed(parse_log_entry(entry("script_parent_done"))).completion
    assert completion.job_key == "rebuild_dims"
    assert completion.error is None
    assert completion.stats.destination_table is None
    assert (completion.stats.total_bytes_billed, completion.stats.total_slot_ms) == (62914560, 18803)


def test_other_environment_without_a_filter_reports_its_environment() -> None:
    result = parsed(parse_log_entry(entry("other_environment")))
    assert (result.environment, result.project) == ("prod", "acme-analytics-prod")
    assert result.completion.bigquery_job_id == bigquery_job_id("prod", "c0ffee00d15ea5e0b0a7f00dfacade42", "load_orders", 3)


def test_stats_survive_the_engine_json_round_trip() -> None:
    stats = parsed(parse_log_entry(entry("job_done_success"))).completion.stats
    assert JobStats.from_json(json.loads(json.dumps(stats.to_json()))) == stats


# --- fixtures that are ignored ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "detail"),
    [
        (
            "script_child_done",
            IgnoreReason.CHILD_JOB,
            {"parent_job_name": f"projects/acme-analytics-dev/jobs/baton_dev_{RUN}_rebuild_dims_1"},
        ),
        ("job_insertion", IgnoreReason.NOT_JOB_CHANGE, {"event": "jobInsertion"}),
        ("job_change_running", IgnoreReason.NOT_DONE, {"after": "RUNNING"}),
        ("legacy_job_completed", IgnoreReason.LEGACY_AUDIT_DATA, {"method": "jobservice.jobcompleted"}),
        ("other_environment", IgnoreReason.OTHER_ENVIRONMENT, {"environment": "prod", "expected_environment": "dev"}),
        (
            "no_baton_labels",
            IgnoreReason.NOT_BATON_JOB,
            {"job_name": "projects/acme-analytics-dev/jobs/bquxjob_3f1e2d4c_195928a1b2f"},
        ),
        ("non_bigquery", IgnoreReason.NOT_BIGQUERY, {"service": "storage.googleapis.com", "insert_id": "1b2c3d4e5f6g"}),
    ],
)
def test_ignored_fixtures(name: str, reason: IgnoreReason, detail: dict[str, object]) -> None:
    result = ignored(parse_log_entry(entry(name), environment="dev"))
    assert result.reason == reason
    assert {key: result.detail.get(key) for key in detail} == detail
    assert result.message
    json.dumps(result.detail)  # goes into a JSON log line as is


# --- malformed and edge variants -------------------------------------------------------------

MALFORMED = IgnoreReason.MALFORMED
VARIANTS: list[tuple[str, tuple[str, ...], object, IgnoreReason, str | None]] = [
    # (id, path, value, reason, path named in the message for MALFORMED)
    ("protoPayload-missing", ("protoPayload",), DELETE, IgnoreReason.NOT_A_LOG_ENTRY, None),
    ("protoPayload-array", ("protoPayload",), [], MALFORMED, "protoPayload"),
    ("serviceName-number", ("protoPayload", "serviceName"), 7, MALFORMED, "protoPayload.serviceName"),
    ("serviceName-missing", ("protoPayload", "serviceName"), DELETE, IgnoreReason.NOT_BIGQUERY, None),
    ("methodName-object", ("protoPayload", "methodName"), {}, MALFORMED, "protoPayload.methodName"),
    ("metadata-string", ("protoPayload", "metadata"), "x", MALFORMED, "protoPayload.metadata"),
    ("metadata-missing", ("protoPayload", "metadata"), DELETE, IgnoreReason.UNKNOWN_BIGQUERY_PAYLOAD, None),
    (
        "metadata-type-other",
        ("protoPayload", "metadata", "@type"),
        "type.googleapis.com/x.Y",
        IgnoreReason.UNKNOWN_BIGQUERY_PAYLOAD,
        None,
    ),
    ("metadata-type-number", ("protoPayload", "metadata", "@type"), 5, MALFORMED, "protoPayload.metadata.@type"),
    ("jobChange-array", ("protoPayload", "metadata", "jobChange"), [], MALFORMED, "protoPayload.metadata.jobChange"),
    (
        "after-enum-number",
        ("protoPayload", "metadata", "jobChange", "after"),
        3,
        MALFORMED,
        "protoPayload.metadata.jobChange.after",
    ),
    ("after-missing", ("protoPayload", "metadata", "jobChange", "after"), DELETE, IgnoreReason.NOT_DONE, None),
    ("after-pending", ("protoPayload", "metadata", "jobChange", "after"), "PENDING", IgnoreReason.NOT_DONE, None),
    ("job-missing", JOB, DELETE, MALFORMED, "protoPayload.metadata.jobChange.job"),
    ("job-string", JOB, "job", MALFORMED, "protoPayload.metadata.jobChange.job"),
    ("jobName-array", (*JOB, "jobName"), ["a"], MALFORMED, "protoPayload.metadata.jobChange.job.jobName"),
    ("jobName-missing", (*JOB, "jobName"), DELETE, MALFORMED, "protoPayload.metadata.jobChange.job.jobName"),
    ("jobName-format", (*JOB, "jobName"), "jobs/baton_dev_x", MALFORMED, "protoPayload.metadata.jobChange.job.jobName"),
    ("jobStats-array", STATS, [], MALFORMED, "protoPayload.metadata.jobChange.job.jobStats"),
    (
        "parentJobName-number",
        (*STATS, "parentJobName"),
        1,
        MALFORMED,
        "protoPayload.metadata.jobChange.job.jobStats.parentJobName",
    ),
    ("jobConfig-number", (*JOB, "jobConfig"), 1, MALFORMED, "protoPayload.metadata.jobChange.job.jobConfig"),
    ("labels-array", LABELS, [], MALFORMED, "protoPayload.metadata.jobChange.job.jobConfig.labels"),
    (
        "attempt-number",
        (*LABELS, "baton_attempt"),
        1,
        MALFORMED,
        "protoPayload.metadata.jobChange.job.jobConfig.labels.baton_attempt",
    ),
    ("attempt-zero", (*LABELS, "baton_attempt"), "0", IgnoreReason.MALFORMED_LABELS, None),
    ("attempt-word", (*LABELS, "baton_attempt"), "two", IgnoreReason.MALFORMED_LABELS, None),
    ("run-short", (*LABELS, "baton_run"), "5f0c1e7a", IgnoreReason.MALFORMED_LABELS, None),
    ("run-uppercase", (*LABELS, "baton_run"), RUN.upper(), IgnoreReason.MALFORMED_LABELS, None),
    ("job-key-pattern", (*LABELS, "baton_job"), "Load-Orders", IgnoreReason.MALFORMED_LABELS, None),
    ("job-key-missing", (*LABELS, "baton_job"), DELETE, IgnoreReason.MALFORMED_LABELS, None),
    ("env-invalid", (*LABELS, "baton_env"), "Dev!", IgnoreReason.MALFORMED_LABELS, None),
    ("labels-only-foreign", LABELS, {"team": "data"}, IgnoreReason.NOT_BATON_JOB, None),
    ("attempt-disagrees-with-id", (*LABELS, "baton_attempt"), "2", IgnoreReason.FOREIGN_JOB_ID, None),
    ("job-id-foreign", (*JOB, "jobName"), "projects/acme-analytics-dev/jobs/bquxjob_1", IgnoreReason.FOREIGN_JOB_ID, None),
    ("jobStatus-string", (*JOB, "jobStatus"), "DONE", MALFORMED, "protoPayload.metadata.jobChange.job.jobStatus"),
    ("errorResult-array", ERROR, [], MALFORMED, "protoPayload.metadata.jobChange.job.jobStatus.errorResult"),
    ("error-code-word", ERROR, {"code": "three"}, MALFORMED, "protoPayload.metadata.jobChange.job.jobStatus.errorResult.code"),
    ("error-message-object", ERROR, {"code": 3, "message": {}}, MALFORMED, f"{'.'.join(ERROR)}.message"),
    ("queryStats-array", QUERY_STATS, [], MALFORMED, "protoPayload.metadata.jobChange.job.jobStats.queryStats"),
    ("bytes-float", (*QUERY_STATS, "totalProcessedBytes"), 1.5, MALFORMED, f"{'.'.join(QUERY_STATS)}.totalProcessedBytes"),
    (
        "bytes-not-decimal",
        (*QUERY_STATS, "totalProcessedBytes"),
        "12ab",
        MALFORMED,
        f"{'.'.join(QUERY_STATS)}.totalProcessedBytes",
    ),
    ("bytes-boolean", (*QUERY_STATS, "totalBilledBytes"), True, MALFORMED, f"{'.'.join(QUERY_STATS)}.totalBilledBytes"),
    ("slot-ms-negative", (*STATS, "totalSlotMs"), "-5", MALFORMED, f"{'.'.join(STATS)}.totalSlotMs"),
    ("rows-array", (*QUERY_STATS, "outputRowCount"), ["1"], MALFORMED, f"{'.'.join(QUERY_STATS)}.outputRowCount"),
    ("start-number", (*STATS, "startTime"), 17, MALFORMED, f"{'.'.join(STATS)}.startTime"),
    ("start-word", (*STATS, "startTime"), "yesterday", MALFORMED, f"{'.'.join(STATS)}.startTime"),
    ("end-impossible-date", (*STATS, "endTime"), "2025-02-30T00:00:00Z", MALFORMED, f"{'.'.join(STATS)}.endTime"),
    ("start-naive", (*STATS, "startTime"), "2025-03-14T02:04:51", MALFORMED, f"{'.'.join(STATS)}.startTime"),
    ("queryConfig-string", QUERY_CONFIG, "x", MALFORMED, "protoPayload.metadata.jobChange.job.jobConfig.queryConfig"),
    ("destination-number", (*QUERY_CONFIG, "destinationTable"), 5, MALFORMED, f"{'.'.join(QUERY_CONFIG)}.destinationTable"),
    (
        "destination-dotted",
        (*QUERY_CONFIG, "destinationTable"),
        "staging.orders",
        MALFORMED,
        f"{'.'.join(QUERY_CONFIG)}.destinationTable",
    ),
    ("resource-array", ("resource",), [], MALFORMED, "resource"),
    ("resource-location-number", ("resource", "labels", "location"), 1, MALFORMED, "resource.labels.location"),
]


@pytest.mark.parametrize(("path", "value", "reason", "named"), [v[1:] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_variant_of_the_success_entry(path: tuple[str, ...], value: object, reason: IgnoreReason, named: str | None) -> None:
    result = ignored(parse_log_entry(mutated("job_done_success", path, value), environment="dev"))
    assert result.reason == reason, result.message
    assert result.detail["insert_id"] == "-6q2kfle1a9kx"  # every log line can find the entry again
    if named is not None:
        assert result.detail["path"] == named
        assert result.message.startswith(named + " ")
    json.dumps(result.detail)


@pytest.mark.parametrize("payload", [[], "entry", None, 42, b"{}"], ids=["array", "string", "null", "number", "bytes"])
def test_not_an_object(payload: object) -> None:
    assert ignored(parse_log_entry(payload)).reason == IgnoreReason.NOT_AN_OBJECT


def test_malformed_labels_lists_every_problem() -> None:
    data = mutated("job_done_success", (*LABELS, "baton_attempt"), "0")
    data["protoPayload"]["metadata"]["jobChange"]["job"]["jobConfig"]["labels"]["baton_run"] = "nothex"
    result = ignored(parse_log_entry(data))
    assert result.reason == IgnoreReason.MALFORMED_LABELS
    assert result.detail["problems"] == [
        "baton_run 'nothex' is not 32 lowercase hex digits",
        "baton_attempt '0' is not a positive integer",
    ]


def test_malformed_labels_win_over_environment_filter() -> None:
    """An entry with a bad env label is malformed, not 'another environment'."""
    data = mutated("other_environment", (*LABELS, "baton_env"), "PROD")
    assert ignored(parse_log_entry(data, environment="dev")).reason == IgnoreReason.MALFORMED_LABELS


def test_child_job_is_recognised_before_its_foreign_id() -> None:
    result = ignored(parse_log_entry(entry("script_child_done")))
    assert result.reason == IgnoreReason.CHILD_JOB
    without_parent = mutated("script_child_done", (*STATS, "parentJobName"), DELETE)
    assert ignored(parse_log_entry(without_parent)).reason == IgnoreReason.FOREIGN_JOB_ID


def test_location_qualified_job_name_supplies_the_location() -> None:
    job_id = bigquery_job_id("dev", RUN, "load_orders", 1)
    data = mutated("job_done_success", (*JOB, "jobName"), f"projects/acme-analytics-dev/locations/europe-west3/jobs/{job_id}")
    result = parsed(parse_log_entry(data))
    assert (result.project, result.location, result.completion.bigquery_job_id) == ("acme-analytics-dev", "europe-west3", job_id)


def test_location_is_optional() -> None:
    data = mutated("job_done_success", ("resource", "labels", "location"), DELETE)
    assert parsed(parse_log_entry(data)).location is None


def test_int64_as_numbers_or_strings() -> None:
    data = mutated("job_done_success", (*QUERY_STATS, "totalBilledBytes"), 1024)
    data["protoPayload"]["metadata"]["jobChange"]["job"]["jobStats"]["totalSlotMs"] = "0"
    stats = parsed(parse_log_entry(data)).completion.stats
    assert (stats.total_bytes_billed, stats.total_slot_ms, stats.total_bytes_processed) == (1024, 0, 734003200)


def test_anonymous_result_table_is_no_destination() -> None:
    data = mutated("job_done_success", (*QUERY_CONFIG, "destinationTable"), "projects/p/datasets/_0a1b2c/tables/anon1")
    assert parsed(parse_log_entry(data)).completion.stats.destination_table is None


@pytest.mark.parametrize(
    ("error_result", "expected"),
    [
        ({}, None),  # an empty google.rpc.Status is OK
        ({"code": 0}, None),
        ({"code": "3", "message": "bad"}, JobError("invalidQuery", "bad", reason_inferred=True)),
        ({"code": 8, "message": "Exceeded"}, JobError("rateLimitExceeded", "Exceeded", reason_inferred=True)),
        ({"code": 5, "message": "gone"}, JobError("notFound", "gone")),  # one reason only: nothing to look up
        ({"code": 8, "message": "Quota exceeded", "reason": "quotaExceeded"}, JobError("quotaExceeded", "Quota exceeded")),
        ({"code": 99, "message": "?"}, JobError(reason_for_code(99), "?")),
        ({"code": 1}, JobError("stopped", "google.rpc code 1")),
        ({"message": "no code"}, JobError(reason_for_code(0), "no code")),
    ],
)
def test_error_result_mapping(error_result: dict[str, object], expected: JobError | None) -> None:
    data = mutated("job_done_success", ERROR, error_result)
    assert parsed(parse_log_entry(data)).completion.error == expected


# --- no input makes it raise -----------------------------------------------------------------

CONFUSIONS: list[object] = [None, [], {}, "", "x", 0, -1, True, 1.5, ["x"], {"k": [1]}]


def _paths(node: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


@pytest.mark.parametrize("name", FIXTURES)
def test_type_confusion_anywhere_never_raises(name: str) -> None:
    original = entry(name)
    checked = 0
    for path in _paths(original):
        for value in CONFUSIONS:
            data = copy.deepcopy(original)
            node: Any = data
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            result = parse_log_entry(data, environment="dev")
            assert isinstance(result, ParsedCompletion | Ignored)
            if isinstance(result, Ignored):
                json.dumps(result.detail)
                if result.reason == IgnoreReason.MALFORMED:
                    assert result.message.startswith(str(result.detail["path"]))
                    assert "\n" not in result.message
            checked += 1
    assert checked > 100
