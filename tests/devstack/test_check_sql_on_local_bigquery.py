"""What the named checks compile to, run on the local BigQuery: each returns exactly the offending rows."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from google.api_core.client_info import ClientInfo
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from baton.manifests.loading import parse_manifest
from devstack.bigquery_facade import LocalBigQuery

pytestmark = pytest.mark.integration

PROJECT = "baton-local"


@pytest.fixture(scope="module")
def client(local_bigquery: LocalBigQuery) -> bigquery.Client:
    return bigquery.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local_bigquery.endpoint},
        client_info=ClientInfo(user_agent="baton-handlers/0.1.0"),
    )


@pytest.fixture(scope="module")
def shop(client: bigquery.Client) -> str:
    """customers 1, 2; orders from customers 1, 2, 3 (unknown), 3 again and NULL (not_null's business)."""
    dataset = f"checks_{secrets.token_hex(3)}"
    client.create_dataset(dataset)
    client.query(f"CREATE TABLE `{dataset}.customers` AS SELECT 1 AS id UNION ALL SELECT 2").result()
    orders = [(10, "1"), (11, "2"), (12, "3"), (13, "3"), (14, "CAST(NULL AS INT64)")]
    rows = " UNION ALL ".join(f"SELECT {order_id} AS order_id, {customer} AS customer_id" for order_id, customer in orders)
    client.query(f"CREATE TABLE `{dataset}.orders` AS {rows}").result()
    return dataset


def test_relationships_returns_the_orphans_and_passes_on_a_superset(client: bigquery.Client, shop: str, tmp_path: Path) -> None:
    def check_sql(to: str, field: str) -> str:
        data = {
            "name": "shop",
            "jobs": [
                {
                    "key": "orders",
                    "sql": "SELECT 1",
                    "destination": f"{shop}.orders",
                    "checks": [{"name": "fk", "relationships": {"column": "customer_id", "to": to, "field": field}}],
                }
            ],
        }
        (check,) = parse_manifest(data, "shop.yaml", tmp_path).job("orders").checks
        return check.sql

    orphans = [row["customer_id"] for row in client.query(check_sql(f"{shop}.customers", "id")).result()]
    assert sorted(orphans) == [3, 3]
    # Against orders' own column every value has a match: the check passes (no rows).
    assert list(client.query(check_sql(f"{shop}.orders", "customer_id")).result()) == []
