"""Load, copy and extract jobs in manifests, and the rule that a manifest touches only declared datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from baton.config import ConfigError, Settings
from baton.domain.records import JobRecord, JobStatus, RunRecord, RunStatus
from baton.domain.specs import CopySpec, ExtractSpec, JobKind, JobSpec, LoadSpec
from baton.errors import ManifestInvalid
from baton.manifests.datasets import DeclaredDatasets, sql_tables
from baton.manifests.loading import ManifestRepository, parse_manifest
from baton.service.submission import request_for

REPO = Path(__file__).resolve().parents[2]
DECLARED = DeclaredDatasets({"landing": "US", "consume": "US"}, project="acme-dev")

SHOP = """
name: shop
params:
  run_date: {type: DATE}
jobs:
  - key: land_orders
    load:
      source_uris: [gs://acme-landing/shop/orders/*.csv]
      format: CSV
      skip_leading_rows: 1
      schema: {order_id: INT64, customer: STRING, amount: FLOAT64}
    destination: landing.orders
    checks:
      - name: has_rows
        row_count_above: 0
  - key: customers
    needs: [land_orders]
    sql: SELECT customer, SUM(amount) AS revenue FROM landing.orders GROUP BY customer
    destination: consume.customers
  - key: keep_copy
    needs: [customers]
    copy: {source: consume.customers}
    destination: consume.customers_snapshot
  - key: export
    needs: [customers]
    extract: {source: consume.customers, destination_uris: ["gs://acme-exports/customers-*.csv"]}
"""


def parse(text: str, declared: DeclaredDatasets | None = DECLARED) -> list[JobSpec]:
    return list(parse_manifest(yaml.safe_load(text), "shop.yaml", Path("."), declared=declared).jobs)


def problems(text: str, declared: DeclaredDatasets | None = DECLARED) -> list[str]:
    with pytest.raises(ManifestInvalid) as caught:
        parse(text, declared)
    return list(caught.value.problems)


def test_each_kind_becomes_its_spec_and_load_and_copy_write_their_destination() -> None:
    land, customers, keep, export = parse(SHOP)
    assert land.kind == JobKind.LOAD
    assert land.load == LoadSpec(
        ("gs://acme-landing/shop/orders/*.csv",),
        "CSV",
        (("order_id", "INT64"), ("customer", "STRING"), ("amount", "FLOAT64")),
        skip_leading_rows=1,
    )
    assert (land.destination, land.write_disposition, land.sql) == ("landing.orders", "WRITE_TRUNCATE", "")
    assert [check.name for check in land.checks] == ["has_rows"]  # named checks read the load's destination
    assert "landing.orders" in land.checks[0].sql
    assert customers.kind == JobKind.QUERY
    assert keep.copy == CopySpec(("consume.customers",))
    assert keep.destination == "consume.customers_snapshot"
    assert export.extract == ExtractSpec("consume.customers", ("gs://acme-exports/customers-*.csv",), "CSV")
    assert export.destination is None


def test_specs_round_trip_and_a_query_job_keeps_its_json() -> None:
    for job in parse(SHOP):
        assert JobSpec.from_json(job.to_json()) == job
    query = parse(SHOP)[1].to_json()
    assert not {"load", "copy", "extract"} & set(query)  # so existing manifests keep their version hash


def test_the_example_manifests_keep_their_versions() -> None:
    # docs/cli.md and the README quote elt_daily @ 823fe276acafb35d; adding job kinds must not move it.
    assert ManifestRepository(REPO / "manifests").load("elt_daily").version == "823fe276acafb35d"


def test_the_submit_request_carries_the_kind_spec() -> None:
    land = parse(SHOP)[0]
    run = RunRecord("r1", "shop", "v1", "dev", {}, RunStatus.RUNNING, total_jobs=4, open_jobs=4)
    job = JobRecord("r1", land.key, JobStatus.READY, 1, 0, land, bigquery_job_id="baton_dev_r1_land_orders_1")
    request = request_for(run, job)
    assert request.load == land.load
    assert (request.destination, request.write_disposition, request.copy, request.extract) == (
        "landing.orders",
        "WRITE_TRUNCATE",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ("{key: a, sql: SELECT 1, load: {source_uris: [gs://b1/x.csv], autodetect: true}}", "give exactly one of sql, sql_file"),
        ("{key: a}", "give exactly one of sql, sql_file, load, copy, extract"),
        ("{key: a, load: {source_uris: [gs://b1/x.csv], autodetect: true}}", "load needs a destination table"),
        ("{key: a, load: {source_uris: [/tmp/x.csv], autodetect: true}, destination: landing.x}", "is not a Cloud Storage URI"),
        (
            "{key: a, load: {source_uris: [gs://b1/x.csv]}, destination: landing.x}",
            "either a schema (column: type) or autodetect",
        ),
        (
            "{key: a, load: {source_uris: [gs://b1/x.json], format: NEWLINE_DELIMITED_JSON, autodetect: true, "
            "skip_leading_rows: 1}, destination: landing.x}",
            "skip_leading_rows applies to CSV",
        ),
        ("{key: a, copy: {source: landing.x}}", "copy needs a destination table"),
        ("{key: a, copy: {source: landing.x, sources: [landing.y]}, destination: landing.z}", "exactly one of source or sources"),
        ("{key: a, copy: {source: landing.x}, destination: landing.x}", "both a source and the destination"),
        (
            "{key: a, extract: {source: landing.x, destination_uris: [gs://b1/x.csv]}, destination: landing.y}",
            "extract writes files, not a table",
        ),
        ("{key: a, extract: {source: x, destination_uris: [gs://b1/x.csv]}}", "extract source 'x' is not a table id"),
    ],
)
def test_kind_rules_name_the_problem(job: str, expected: str) -> None:
    found = problems(f"name: shop\njobs: [{job}]")
    assert any(expected in problem for problem in found), found


def test_a_bad_format_lists_the_valid_ones() -> None:
    found = problems("name: shop\njobs: [{key: a, load: {source_uris: [gs://b1/x.avro], format: AVRO}, destination: landing.x}]")
    assert any("'CSV', 'NEWLINE_DELIMITED_JSON' or 'PARQUET'" in problem for problem in found), found


def test_every_undeclared_dataset_is_named_once_per_job_wherever_it_is_touched() -> None:
    text = SHOP.replace("destination: consume.customers_snapshot", "destination: archive.customers_snapshot").replace(
        "FROM landing.orders", "FROM landing.orders JOIN `acme-dev.staging.rates` USING (customer) JOIN raw.x USING (customer)"
    )
    found = problems(text)
    assert found == [
        "job 'customers': dataset 'staging' (in acme-dev.staging.rates) is not declared for this environment "
        "(declared: consume, landing)",
        "job 'customers': dataset 'raw' (in raw.x) is not declared for this environment (declared: consume, landing)",
        "job 'keep_copy': dataset 'archive' (in archive.customers_snapshot) is not declared for this environment "
        "(declared: consume, landing)",
    ]


def test_datasets_are_not_checked_without_a_declaration_nor_in_another_project() -> None:
    text = SHOP.replace("FROM landing.orders", "FROM landing.orders JOIN `bigquery-public-data.samples.x` USING (customer)")
    assert len(parse(text)) == 4  # another project's dataset is that project's business
    assert len(parse(SHOP.replace("landing.orders", "elsewhere.orders"), declared=None)) == 4


def test_sql_tables_follows_its_documented_pattern() -> None:
    sql = """
    -- FROM commented.out
    WITH recent AS (SELECT * FROM landing.orders WHERE note != 'FROM quoted.text')
    SELECT EXTRACT(YEAR FROM o.ordered_on) AS y, a IS DISTINCT FROM b.c
    FROM recent o JOIN `acme-dev`.`consume`.`customers` c USING (customer)
    """
    assert sql_tables(sql) == ["landing.orders", "acme-dev.consume.customers"]
    assert sql_tables("MERGE consume.t USING landing.s ON TRUE WHEN MATCHED THEN DELETE") == ["consume.t", "landing.s"]
    assert sql_tables("INSERT INTO landing.t SELECT 1; TRUNCATE TABLE history.h; UPDATE events.e SET a = 1 WHERE TRUE") == [
        "landing.t",
        "history.h",
        "events.e",
    ]


def test_settings_read_the_declared_datasets() -> None:
    env = {"BATON_ENV": "dev", "BATON_PROJECT": "acme-dev", "BATON_DATASETS": '{"landing":"US","consume":"US"}'}
    assert Settings.from_env(env).datasets == DECLARED
    assert Settings.from_env({**env, "BATON_DATASETS": ""}).datasets is None
    with pytest.raises(ConfigError, match="BATON_DATASETS must be a JSON object"):
        Settings.from_env({**env, "BATON_DATASETS": '["landing"]'})
    assert DeclaredDatasets.parse(DECLARED.to_env(), "acme-dev") == DECLARED
