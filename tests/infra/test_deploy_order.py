"""A first apply in an empty project: everything named exists, and everything waits for what it needs.

Each rule is checked on the real stacks and shown to fail on a copy broken on purpose.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.infra.deploy_checks import (
    DOCUMENTED_PREREQUISITES,
    api_order_violations,
    build_order_violations,
    identity_order_violations,
    unresolved_references,
)
from tests.infra.terraform_json import ENVIRONMENTS, STACKS, load, resources

pytestmark = pytest.mark.infra


def stacks_of(synth_dir: Path, env: str) -> dict[str, dict[str, Any]]:
    """One environment's stacks: what dev names must exist in dev, whatever prod creates."""
    return {stack: copy.deepcopy(load(synth_dir, stack)) for stack in STACKS if stack.startswith(f"baton-{env}-")}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_name_a_stack_points_at_is_created_or_a_documented_prerequisite(synth_dir: Path, env: str) -> None:
    assert unresolved_references(stacks_of(synth_dir, env)) == []
    assert {kind for kind, _ in DOCUMENTED_PREREQUISITES} == {"bucket"}  # only the state buckets


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        ("dataset", lambda s: s["baton-dev-platform"]["resource"]["google_bigquery_dataset"].pop("dataset_consume"), "'consume'"),
        ("topic", lambda s: s["baton-dev-platform"]["resource"]["google_pubsub_topic"].pop("run_events_topic"), "run-events"),
        ("agent", lambda s: s["baton-dev-platform"]["resource"].pop("google_project_service_identity"), "'pubsub'"),
        ("instance", lambda s: s["baton-prod-platform"]["resource"].pop("google_spanner_instance"), "'baton-prod'"),
    ],
)
def test_a_reference_to_something_no_stack_creates_is_caught(synth_dir: Path, kind: str, mutate: Any, expected: str) -> None:
    stacks = stacks_of(synth_dir, "prod" if kind == "instance" else "dev")
    mutate(stacks)
    problems = unresolved_references(stacks)
    assert problems and all(expected in problem for problem in problems), problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_first_apply_order_holds(synth_dir: Path, env: str) -> None:
    platform, handlers = load(synth_dir, f"baton-{env}-platform"), load(synth_dir, f"baton-{env}-handlers")
    assert api_order_violations(platform, handlers) == []
    assert identity_order_violations(platform) == []
    assert identity_order_violations(handlers) == []
    assert build_order_violations(handlers) == []
    # The waits themselves: about a minute, as the provider's own examples use.
    for stack in (platform, handlers):
        assert [body["create_duration"] for body in resources(stack, "time_sleep").values()] == ["60s"]


def test_a_resource_that_stops_waiting_for_its_api_is_caught(synth_dir: Path) -> None:
    platform, handlers = copy.deepcopy(load(synth_dir, "baton-dev-platform")), load(synth_dir, "baton-dev-handlers")
    del platform["resource"]["google_bigquery_dataset"]["dataset_landing"]["depends_on"]
    assert api_order_violations(platform, handlers) == [
        "google_bigquery_dataset.dataset_landing does not wait for bigquery.googleapis.com to be enabled"
    ]
    del platform["resource"]["google_project_service"]["api_cloudscheduler"]
    assert any(
        "cloudscheduler" in problem and "not enabled by the platform" in problem
        for problem in api_order_violations(platform, handlers)
    )


def test_a_grant_that_races_a_new_identity_is_caught(synth_dir: Path) -> None:
    platform = copy.deepcopy(load(synth_dir, "baton-dev-platform"))
    del platform["resource"]["google_pubsub_topic_iam_member"]["dead_letter_publisher_pubsub_agent"]["depends_on"]
    del platform["resource"]["google_pubsub_topic_iam_member"]["completion_publisher_sink"]["depends_on"]
    assert sorted(identity_order_violations(platform)) == [
        "google_pubsub_topic_iam_member.completion_publisher_sink grants to google_logging_project_sink.completion_sink "
        "without waiting for it to propagate",
        "google_pubsub_topic_iam_member.dead_letter_publisher_pubsub_agent grants to "
        "google_project_service_identity.pubsub_agent without waiting for it to propagate",
    ]


def test_a_function_that_races_its_build_grants_is_caught(synth_dir: Path) -> None:
    handlers = copy.deepcopy(load(synth_dir, "baton-dev-handlers"))
    name = next(iter(resources(handlers, "google_cloudfunctions2_function")))
    function = handlers["resource"]["google_cloudfunctions2_function"][name]
    function["depends_on"] = [d for d in function["depends_on"] if not d.startswith("time_sleep.")]
    problems = build_order_violations(handlers)
    assert len(problems) == 4 and all(p.startswith(f"function {name} does not wait for") for p in problems), problems
    # And a sleep that no longer covers one of the grants.
    handlers = copy.deepcopy(load(synth_dir, "baton-dev-handlers"))
    (sleep,) = handlers["resource"]["time_sleep"].values()
    sleep["depends_on"] = [d for d in sleep["depends_on"] if d != "google_project_iam_member.build_writes_logs"]
    assert {p.split(" does not wait for ")[1] for p in build_order_violations(handlers)} == {
        "google_project_iam_member.build_writes_logs to propagate"
    }
