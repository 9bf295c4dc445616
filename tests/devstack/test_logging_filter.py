"""The Logging-query-language subset that decides which audit entries the local sink routes."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from devstack.audit_bridge import AuditJob, JobErrorInfo, job_change_entry, job_insertion_entry
from devstack.logging_filter import And, Comparison, FilterSyntaxError, GlobalRestriction, Not, Or, parse_filter
from tests.fixtures import load_fixture

SINK_FILTER = (
    'resource.type="bigquery_project" AND '
    'protoPayload.metadata."@type"="type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata" AND '
    'protoPayload.metadata.jobChange.after="DONE" AND '
    'protoPayload.metadata.jobChange.job.jobConfig.labels.baton_env="dev"'
)


def _job(**changes: Any) -> AuditJob:
    created = dt.datetime(2025, 3, 14, 2, 4, 51, tzinfo=dt.UTC)
    values: dict[str, Any] = {
        "project": "acme-dev",
        "job_id": "baton_dev_0123456789abcdef0123456789abcdef_load_1",
        "location": "US",
        "query": "SELECT 1",
        "labels": {
            "baton_env": "dev",
            "baton_run": "0123456789abcdef0123456789abcdef",
            "baton_job": "load",
            "baton_attempt": "1",
        },
        "create_time": created,
        "start_time": created,
        "end_time": created + dt.timedelta(seconds=3),
        "statement_type": "SELECT",
        "total_slot_ms": 1200,
        "output_row_count": 7,
    }
    values.update(changes)
    return AuditJob(**values)


def _done(**changes: Any) -> dict[str, Any]:
    return job_change_entry(_job(**changes), "RUNNING", "DONE")


@pytest.fixture(scope="module")
def sink() -> Any:
    return parse_filter(SINK_FILTER)


# --- the sink filter on realistic entries -------------------------------------------------------


def test_sink_filter_parses_into_four_equalities(sink: Any) -> None:
    assert sink.root == And(
        (
            Comparison(("resource", "type"), "=", "bigquery_project"),
            Comparison(
                ("protoPayload", "metadata", "@type"), "=", "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
            ),
            Comparison(("protoPayload", "metadata", "jobChange", "after"), "=", "DONE"),
            Comparison(("protoPayload", "metadata", "jobChange", "job", "jobConfig", "labels", "baton_env"), "=", "dev"),
        )
    )


def test_sink_routes_a_done_entry_of_its_environment(sink: Any) -> None:
    assert sink.matches(_done())
    assert sink.matches(_done(error=JobErrorInfo("invalidQuery", "Syntax error")))


def test_sink_rejects_the_running_and_insertion_entries(sink: Any) -> None:
    assert not sink.matches(job_change_entry(_job(end_time=None), "PENDING", "RUNNING"))
    assert not sink.matches(job_insertion_entry(_job(end_time=None)))


def test_sink_rejects_another_environment_and_unlabelled_jobs(sink: Any) -> None:
    prod = {**_job().labels, "baton_env": "prod"}
    assert not sink.matches(_done(labels=prod))
    assert not sink.matches(_done(labels={}))


def test_sink_rejects_a_wrong_metadata_type(sink: Any) -> None:
    entry = _done()
    entry["protoPayload"]["metadata"]["@type"] = "type.googleapis.com/google.cloud.audit.SomethingElse"
    assert not sink.matches(entry)


def test_sink_rejects_the_old_audit_data_shape(sink: Any) -> None:
    legacy = load_fixture("audit_log/legacy_job_completed")
    assert "jobCompletedEvent" in legacy["protoPayload"]["serviceData"]
    assert not sink.matches(legacy)
    # Even moved under the new resource type the legacy shape lacks metadata.jobChange.
    legacy["resource"]["type"] = "bigquery_project"
    assert not sink.matches(legacy)


@pytest.mark.parametrize(
    ("fixture", "routed"),
    [
        ("job_done_success", True),
        ("job_done_backend_error", True),
        ("job_done_invalid_query", True),
        ("script_parent_done", True),
        ("script_child_done", True),  # routed; the handler ignores child jobs
        ("job_change_running", False),
        ("job_insertion", False),
        ("legacy_job_completed", False),
        ("no_baton_labels", False),
        ("other_environment", False),
        ("non_bigquery", False),
    ],
)
def test_sink_on_the_sample_payloads(sink: Any, fixture: str, routed: bool) -> None:
    assert sink.matches(load_fixture(f"audit_log/{fixture}")) is routed


# --- language rules -----------------------------------------------------------------------------


def test_or_binds_tighter_than_and() -> None:
    # The documented example: "a" OR NOT "b" AND NOT "c" OR "d"  ==  ("a" OR (NOT "b")) AND ((NOT "c") OR "d")
    implicit = parse_filter('"a" OR NOT "b" AND NOT "c" OR "d"')
    explicit = parse_filter('("a" OR (NOT "b")) AND ((NOT "c") OR "d")')
    assert implicit.root == explicit.root
    # x=1 OR y=1 AND z=1 is (x OR y) AND z: false here, although SQL precedence would say true.
    entry = {"x": 1, "y": 0, "z": 0}
    assert not parse_filter("x=1 OR y=1 AND z=1").matches(entry)
    assert parse_filter("x=1 OR (y=1 AND z=1)").matches(entry)


def test_juxtaposition_is_and() -> None:
    flt = parse_filter('a=1 b="two"')
    assert flt.root == And((Comparison(("a",), "=", "1"), Comparison(("b",), "=", "two")))
    assert flt.matches({"a": 1, "b": "two"})
    assert not flt.matches({"a": 1, "b": "three"})


def test_not_and_minus_negate() -> None:
    assert parse_filter("NOT a=1").root == Not(Comparison(("a",), "=", "1"))
    assert parse_filter("-a:x").root == Not(Comparison(("a",), ":", "x"))
    assert parse_filter("NOT a=1").matches({"a": 2})
    assert not parse_filter("-a=1").matches({"a": 1})
    # A minus after an operator is part of the value.
    assert parse_filter("a > -5").matches({"a": -1})


def test_quoted_path_parts_and_values() -> None:
    entry = {"labels": {"compute.googleapis.com/name": "vm 1", "say": 'he said "hi"'}, "m": {"@type": "t/x"}}
    assert parse_filter('labels."compute.googleapis.com/name"="vm 1"').matches(entry)
    assert parse_filter(r'labels.say="he said \"hi\""').matches(entry)
    assert parse_filter('m."@type"=t/x').matches(entry)  # unquoted value with a slash
    assert not parse_filter('labels."compute.googleapis.com/name"="vm 2"').matches(entry)


def test_string_comparisons_ignore_case_but_regexes_do_not() -> None:
    entry = {"after": "DONE", "text": "Job Finished"}
    assert parse_filter("after=done").matches(entry)
    assert parse_filter('text:"finished"').matches(entry)
    assert parse_filter('text=~"^Job"').matches(entry)
    assert not parse_filter('text=~"^job"').matches(entry)
    assert parse_filter('text!~"^job"').matches(entry)


def test_missing_fields_compare_false() -> None:
    entry = {"present": "x"}
    assert not parse_filter("missing=1").matches(entry)
    assert not parse_filter("missing!=1").matches(entry)
    assert not parse_filter("missing<1").matches(entry)
    assert not parse_filter("missing:*").matches(entry)
    assert parse_filter("NOT missing=1").matches(entry)
    assert parse_filter("present:*").matches(entry)
    assert not parse_filter("present.deeper=x").matches(entry)


def test_ordering_numbers_severity_and_timestamps() -> None:
    entry = {"n": "10", "severity": "WARNING", "timestamp": "2025-03-14T02:05:17Z"}
    assert parse_filter("n > 9").matches(entry)  # numerically, although "10" < "9" as text
    assert parse_filter("n <= 10 AND n >= 10").matches(entry)
    assert parse_filter("severity >= INFO").matches(entry)
    assert not parse_filter("severity >= ERROR").matches(entry)
    assert parse_filter('timestamp >= "2025-03-14T00:00:00Z"').matches(entry)
    assert not parse_filter('timestamp < "2025-03-14T00:00:00Z"').matches(entry)


def test_has_global_restriction_repeated_fields_and_value_lists() -> None:
    entry = {"tags": ["alpha", "beta"], "payload": {"message": "Query finished in 3s"}}
    assert parse_filter("tags=beta").matches(entry)
    assert not parse_filter("tags=gamma").matches(entry)
    assert parse_filter("payload:finished").matches(entry)  # has looks inside a structure
    assert parse_filter('"finished in"').root == GlobalRestriction("finished in")
    assert parse_filter('"finished in"').matches(entry)
    assert not parse_filter("unheard").matches(entry)
    assert parse_filter("tags=(gamma OR alpha)").root == Or(
        (Comparison(("tags",), "=", "gamma"), Comparison(("tags",), "=", "alpha"))
    )
    assert parse_filter("tags=(gamma OR alpha)").matches(entry)


def test_empty_filter_matches_everything() -> None:
    assert parse_filter("").matches({})
    assert parse_filter("   ").matches({"a": 1})


def test_lowercase_boolean_words_are_values_not_operators() -> None:
    # Logging requires uppercase operators; "and" is a search term (global restriction).
    flt = parse_filter("a=1 and b=2")
    assert GlobalRestriction("and") in flt.root.operands  # type: ignore[union-attr]


def test_parsing_is_independent_of_the_entry() -> None:
    flt = parse_filter(SINK_FILTER)
    entry = _done()
    before = copy.deepcopy(entry)
    assert flt.matches(entry)
    assert entry == before


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("a =", 3, "expected a value after '='"),
        ("(a=1", 4, "expected ')'"),
        ("a=1)", 3, "unexpected ')'"),
        ("AND a=1", 0, "unexpected 'AND'"),
        ("a=1 AND", 7, "expected a term after AND"),
        ("a=1 OR OR b=1", 7, "expected a term after OR"),
        ("NOT", 3, "expected a term after NOT"),
        ('a="open', 2, "unterminated string"),
        ("= 1", 0, "operator '=' without a field"),
        ("a ! b", 2, "unexpected character '!'"),
        ("a..b=1", 0, "empty field name in path"),
        ('a=~"("', 3, "invalid regular expression"),
        ("()", 1, "empty parentheses"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    assert caught.value.position == position
    assert caught.value.reason.startswith(reason)
    assert f"at position {position}" in str(caught.value)
