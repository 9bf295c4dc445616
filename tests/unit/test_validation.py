"""Validation in one pass: schema and semantic problems together, checks by name, what is valid, schedules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from baton.errors import ManifestInvalid, Problem
from baton.manifests import check_sql
from baton.manifests.loading import parse_manifest
from baton.manifests.schedule import next_starts
from baton.manifests.schema import CHECK_KINDS


def problems_of(data: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(data, "m.yaml", tmp_path)
    assert all(str(line).startswith("m.yaml: ") for line in str(caught.value).splitlines())
    return caught.value.problems


def details_of(data: dict[str, Any], tmp_path: Path) -> list[Problem]:
    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(data, "m.yaml", tmp_path)
    return caught.value.details


def job(key: str, **fields: Any) -> dict[str, Any]:
    return {"key": key, "sql": "SELECT 1", **fields}


def test_schema_errors_do_not_hide_semantic_ones(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "jobs": [
            job("a", colour="blue", needs=["ghost"]),  # unknown field and an unknown upstream, in the same job
            job("b", write_disposition="WRITE_OVERWRITE"),
            job(
                "c",
                needs=["a"],
                destination="s.c",
                checks=[{"name": "fk", "foreign_key": {"column": "x"}}, {"name": "Bad", "not_null": "x"}],
            ),
        ],
    }
    problems = problems_of(data, tmp_path)
    assert problems[0].startswith("job 'a': colour: unknown field (job fields: key, sql, sql_file,")
    assert "job 'a': needs unknown job 'ghost' (jobs: a, b, c)" in problems
    assert any(
        p.startswith("job 'b': write_disposition: 'WRITE_OVERWRITE' is not valid; one of 'WRITE_TRUNCATE', 'WRITE_APPEND'")
        for p in problems
    ), problems
    # The check by its name, never its index, with the list of check kinds.
    fk = next(p for p in problems if p.startswith("job 'c': check 'fk': "))
    assert fk.startswith("job 'c': check 'fk': foreign_key: unknown field (check kinds: " + ", ".join(CHECK_KINDS))
    assert "checks.0" not in "\n".join(problems)
    # The bad check is left out, the good-looking one is still validated.
    assert any(p.startswith("job 'c': check 'Bad': name must match") for p in problems), problems
    assert len(problems) == 5, problems


def test_header_problems_and_job_problems_come_together(tmp_path: Path) -> None:
    data = {
        "name": "Not A Name",
        "params": {"d": {"type": "DATETIME"}, "ok": {"type": "DATE", "default": "nope"}},
        "jobs": [job("a", needs=["a"])],
    }
    problems = problems_of(data, tmp_path)
    assert (
        "params.d.type: 'DATETIME' is not valid; one of 'STRING', 'INT64', 'FLOAT64', 'BOOL', 'DATE' or 'TIMESTAMP'" in problems
    )
    assert any(p.startswith("name 'Not A Name' must be") for p in problems)
    assert any(p.startswith("params: 'ok' default: expected a date") for p in problems)
    assert "job 'a': needs itself" in problems


def test_a_job_without_a_key_and_a_check_without_a_name_are_named_by_position(tmp_path: Path) -> None:
    data = {"name": "m", "jobs": [{"sql": "SELECT 1"}, job("b", needs=["a"], checks=[{"not_null": "x", "severity": "fatal"}])]}
    problems = problems_of(data, tmp_path)
    assert "job #1 (no key): key: required field is missing" in problems
    assert "job 'b': check #1 (no name): name: required field is missing" in problems
    assert "job 'b': check #1 (no name): severity: 'fatal' is not valid; one of 'error' or 'warn'" in problems
    assert "job 'b': needs unknown job 'a' (jobs: b)" in problems


def test_a_job_that_does_not_parse_still_counts_as_a_known_upstream(tmp_path: Path) -> None:
    data = {"name": "m", "jobs": [job("a", retry={"max_attempts": 0}, colour=1), job("b", needs=["a"])]}
    problems = problems_of(data, tmp_path)
    assert not any("unknown job" in p for p in problems), problems


def test_union_alternatives_are_one_line(tmp_path: Path) -> None:
    data = {"name": "m", "jobs": [job("a", destination="s.t", checks=[{"name": "u", "unique": 5}])]}
    assert problems_of(data, tmp_path) == ["job 'a': check 'u': unique: expected str or list[str], got 5"]


def test_problems_carry_the_job_and_check_for_scripts(tmp_path: Path) -> None:
    data = {"name": "m", "jobs": [job("a", checks=[{"name": "n", "not_null": "x"}])]}
    assert details_of(data, tmp_path) == [Problem("not_null needs the job's destination or an explicit 'table'", "a", "n")]


def test_one_cycle_once_with_its_path_and_two_cycles_twice(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "jobs": [
            job("x", needs=["z"]),
            job("y", needs=["x"]),
            job("z", needs=["y"]),
            job("p", needs=["q"]),
            job("q", needs=["p"]),
            job("r", needs=["p"]),
        ],
    }
    assert problems_of(data, tmp_path) == [
        "job 'x': part of the cycle x -> y -> z -> x",
        "job 'p': part of the cycle p -> q -> p",
    ]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("61 25 * * *", "schedule '61 25 * * *' is not a valid cron expression (Bad minute; fields: minute hour"),
        ("every day at 7", "schedule 'every day at 7' has 4 field(s); a cron expression has five: minute hour"),
        (
            "0 0 7 * * *",
            "schedule '0 0 7 * * *' has 6 field(s)",
        ),  # seconds: the cron library takes them, Cloud Scheduler does not
        ("0 7 * * MON-FRI", None),
        ("*/15 6-18 * * 1-5", None),
    ],
)
def test_schedules_are_cron_expressions(tmp_path: Path, schedule: str, expected: str | None) -> None:
    data = {"name": "m", "schedule": schedule, "jobs": [job("a")]}
    if expected is None:
        assert parse_manifest(data, "m.yaml", tmp_path).schedule == schedule
        return
    (problem,) = problems_of(data, tmp_path)
    assert problem.startswith(expected), problem


@pytest.mark.parametrize("zone", ["Mars/Olympus", "CEST", "../etc/passwd", "", "posix/Europe/Berlin", "localtime"])
def test_time_zones_come_from_the_iana_database(tmp_path: Path, zone: str) -> None:
    data = {"name": "m", "schedule": "0 7 * * *", "time_zone": zone, "jobs": [job("a")]}
    (problem,) = problems_of(data, tmp_path)
    assert problem.startswith(f"time_zone '{zone}' is not in the IANA time zone database")


def test_next_starts_follow_the_time_zone_across_a_dst_change() -> None:
    after = dt.datetime(2026, 3, 27, 12, 0, tzinfo=dt.UTC)
    starts = next_starts("0 7 * * *", "Europe/Berlin", after)
    assert [s.isoformat() for s in starts] == [
        "2026-03-28T07:00:00+01:00",
        "2026-03-29T07:00:00+02:00",  # summer time began that night
        "2026-03-30T07:00:00+02:00",
    ]
    assert [s.astimezone(dt.UTC).hour for s in starts] == [6, 5, 5]


# --- relationships, and checks that read other jobs' outputs ------------------------------------------------


def test_relationships_compiles_to_the_orphan_rows(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "jobs": [
            job("customers", destination="sales.customers"),
            job(
                "orders",
                needs=["customers"],
                destination="sales.orders",
                checks=[
                    {"name": "known_customer", "relationships": {"column": "customer_id", "to": "sales.customers", "field": "id"}}
                ],
            ),
        ],
    }
    (check,) = parse_manifest(data, "m.yaml", tmp_path).job("orders").checks
    assert check.kind == "relationships"
    assert check.sql == (
        "SELECT child.`customer_id` FROM `sales.orders` AS child LEFT JOIN `sales.customers` AS parent "
        "ON child.`customer_id` = parent.`id` WHERE child.`customer_id` IS NOT NULL AND parent.`id` IS NULL "
        f"LIMIT {check_sql.ROW_LIMIT}"
    )


def test_relationships_refuses_a_bad_table_or_column(tmp_path: Path) -> None:
    bad_to = {"column": "c", "to": "not a table", "field": "id"}
    bad_field = {"column": "c", "to": "s.t", "field": "id; DROP"}
    data = {
        "name": "m",
        "jobs": [
            job(
                "a",
                destination="s.o",
                checks=[
                    {"name": "r1", "relationships": bad_to},
                    {"name": "r2", "relationships": bad_field},
                    {"name": "r3", "relationships": {"column": "c"}},
                ],
            )
        ],
    }
    problems = problems_of(data, tmp_path)
    assert (
        "job 'a': check 'r1': relationships: to 'not a table' is not a table id like dataset.table or project.dataset.table"
        in problems
    )
    assert "job 'a': check 'r2': 'id; DROP' is not a column name" in problems
    assert "job 'a': check 'r3': relationships.to: required field is missing" in problems


def test_a_check_may_read_the_outputs_of_jobs_its_job_needs(tmp_path: Path) -> None:
    raw = "SELECT o.id FROM `sales.orders` o LEFT JOIN proj-123.sales.customers c USING (id) WHERE c.id IS NULL"
    data = {
        "name": "m",
        "jobs": [
            job("customers", destination="proj-123.sales.customers"),
            job("orders", destination="sales.orders"),
            job("audit", needs=["orders", "customers"], checks=[{"name": "orphans", "sql_returns_no_rows": raw}]),
            job("report", needs=["audit"], checks=[{"name": "far", "sql_is_true": "(SELECT COUNT(*) FROM sales.customers) > 0"}]),
        ],
    }
    manifest = parse_manifest(data, "m.yaml", tmp_path)
    assert [c.name for c in manifest.job("audit").checks] == ["orphans"]
    assert [c.name for c in manifest.job("report").checks] == ["far"]  # customers is upstream through audit


def test_a_check_reading_a_job_it_does_not_need_is_refused(tmp_path: Path) -> None:
    data = {
        "name": "m",
        "jobs": [
            job(
                "orders",
                destination="sales.orders",
                checks=[{"name": "fk", "relationships": {"column": "c", "to": "sales.customers", "field": "id"}}],
            ),
            job("customers", destination="sales.customers", needs=["orders"]),
        ],
    }
    assert problems_of(data, tmp_path) == [
        "job 'orders': check 'fk': reads sales.customers, which job 'customers' writes, but 'orders' does not need "
        "'customers': add it to needs so the check reads this run's rows"
    ]


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("SELECT * FROM sales.orders", ["sales.orders"]),
        ("SELECT * FROM `sales`.`orders` JOIN `p-1234.sales.items`", ["sales.orders", "p-1234.sales.items"]),
        ("SELECT * FROM sales.orders_old", []),
        ("SELECT * FROM other.sales.orders", []),
        ("SELECT * FROM sales.items", ["p-1234.sales.items"]),  # the default project's table
    ],
)
def test_tables_read_finds_destinations_in_sql(sql: str, found: list[str]) -> None:
    assert check_sql.tables_read(sql, ["sales.orders", "p-1234.sales.items"]) == found


def test_near_misses_get_a_suggestion(tmp_path: Path) -> None:
    many = [job(f"job_{n:02d}") for n in range(20)]
    data = {
        "name": "m",
        "jobs": [
            *many,
            job("hist_orders", destinaton="s.t", checks=[{"name": "c", "not_nul": "x"}]),
            job("b", needs=["hist_order", "nothing_like_it"]),
        ],
    }
    problems = problems_of(data, tmp_path)
    assert any(
        p.startswith("job 'hist_orders': destinaton: unknown field (did you mean 'destination'? job fields:") for p in problems
    )
    assert any(
        p.startswith("job 'hist_orders': check 'c': not_nul: unknown field (did you mean 'not_null'? check kinds:")
        for p in problems
    )
    assert "job 'b': needs unknown job 'hist_order' (did you mean 'hist_orders'?)" in problems
    assert "job 'b': needs unknown job 'nothing_like_it'" in problems  # 22 jobs are too many to list
