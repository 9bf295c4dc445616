"""`baton pools` and QUEUED jobs in `baton status`, over the Spanner emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Core, invoke

HEAVY = """
name: rebuilds
pool: heavy
jobs:
  - {key: first, sql: SELECT 1}
  - {key: second, sql: SELECT 2}
"""


def test_pools_shows_size_in_use_and_queued_and_status_shows_queued_jobs(core: Core, manifests_dir: Path) -> None:
    (manifests_dir / "rebuilds.yaml").write_text(HEAVY)
    core.store.pool_sizes = {"bigquery": 100, "heavy": 1}
    run = core.orchestrator.start("rebuilds", {})

    document = json.loads(invoke("pools", "--json").stdout)
    assert document == {
        "schema_version": 1,
        "pools": [
            {"pool": "bigquery", "size": 100, "in_use": 0, "queued": 0},
            {"pool": "heavy", "size": 1, "in_use": 1, "queued": 1},
        ],
    }
    table = invoke("pools")
    assert table.exit_code == 0 and "heavy" in table.stdout and "in use" in table.stdout

    status = invoke("status", run.run_id)
    assert status.exit_code == 0, status.output
    assert "QUEUED heavy" in status.stdout
    jobs = {job["key"]: job for job in json.loads(invoke("status", run.run_id, "--json").stdout)["jobs"]}
    assert (jobs["first"]["status"], jobs["second"]["status"]) == ("SUBMITTED", "QUEUED")
    assert (jobs["second"]["pool"], jobs["second"]["priority"]) == ("heavy", 0)


def test_pools_says_when_the_environment_configures_none(core: Core) -> None:
    result = invoke("pools")
    assert result.exit_code == 0 and "configures no pools" in result.stderr
    assert json.loads(invoke("pools", "--json").stdout)["pools"] == []


def test_validate_refuses_a_pool_the_environment_does_not_configure(manifests_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (manifests_dir / "rebuilds.yaml").write_text(HEAVY)
    monkeypatch.setenv("BATON_POOLS", '{"bigquery": 100}')
    result = invoke("manifest", "validate", "rebuilds")
    assert result.exit_code != 0
    assert "pool 'heavy' is not one of the environment's pools (bigquery)" in result.output
    monkeypatch.setenv("BATON_POOLS", '{"bigquery": 100, "heavy": 4}')
    assert invoke("manifest", "validate", "rebuilds").exit_code == 0
