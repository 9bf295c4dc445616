"""The deployer role covers every resource type the stacks contain, and says so loudly when it does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cdk.apis import APIS_BY_RESOURCE_TYPE
from cdk.deployer_role import PERMISSIONS_BY_TYPE, UncoveredResourceType, deployer_permissions, main, resource_types
from tests.infra.terraform_json import ENVIRONMENTS, STACKS, load

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_role_covers_every_resource_type_of_both_stacks(synth_dir: Path, env: str) -> None:
    stacks = [load(synth_dir, f"baton-{env}-{kind}") for kind in ("platform", "handlers")]
    permissions = deployer_permissions(stacks)
    # What the issue found missing: setting IAM on individual resources.
    for needed in (
        "pubsub.topics.setIamPolicy",
        "pubsub.subscriptions.setIamPolicy",
        "run.services.setIamPolicy",
        "iam.serviceAccounts.setIamPolicy",
        "storage.buckets.setIamPolicy",
        "artifactregistry.repositories.setIamPolicy",
        "spanner.databases.setIamPolicy",
        "bigquery.datasets.setIamPolicy",
        "iam.serviceAccounts.actAs",
    ):
        assert needed in permissions
    assert all(p.count(".") == 2 for p in permissions), [p for p in permissions if p.count(".") != 2]


def test_a_stack_that_gains_an_uncovered_type_fails(synth_dir: Path) -> None:
    """Breaks the rule on purpose: a copy of a real stack with one resource type the table lacks."""
    stack = copy.deepcopy(load(synth_dir, "baton-dev-handlers"))
    stack["resource"]["google_compute_instance"] = {"vm": {"name": "vm", "machine_type": "e2-small"}}
    with pytest.raises(UncoveredResourceType, match="google_compute_instance"):
        deployer_permissions([stack])
    stack["data"] = {"google_storage_bucket": {"b": {"name": "b"}}}
    del stack["resource"]["google_compute_instance"]
    with pytest.raises(UncoveredResourceType, match=r"data\.google_storage_bucket"):
        deployer_permissions([stack])


def test_the_api_table_and_the_role_table_cover_the_same_resource_types(synth_dir: Path) -> None:
    used = set().union(*(resource_types(load(synth_dir, stack)) for stack in STACKS))
    resources_used = {kind for kind in used if not kind.startswith("data.")}
    assert resources_used <= set(APIS_BY_RESOURCE_TYPE)
    assert set(APIS_BY_RESOURCE_TYPE) <= set(PERMISSIONS_BY_TYPE)


def test_the_command_prints_a_gcloud_role_definition(synth_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(synth_dir), "baton-prod-platform", "baton-prod-handlers"]) == 0
    role = json.loads(capsys.readouterr().out)
    assert role["stage"] == "GA"
    assert "spanner.databases.updateDdl" in role["includedPermissions"]
