"""The per-environment config refuses values that would only fail at apply time, or open Baton to the public."""

from __future__ import annotations

import dataclasses

import pytest

from cdk.config import ENVIRONMENTS, Dataset, EnvironmentConfig, PushDelivery

pytestmark = pytest.mark.infra


def dev(**changes: object) -> EnvironmentConfig:
    return dataclasses.replace(ENVIRONMENTS["dev"], **changes)  # type: ignore[arg-type]


def test_dev_and_prod_exist_and_differ_where_they_should() -> None:
    assert set(ENVIRONMENTS) >= {"dev", "prod"}
    assert ENVIRONMENTS["prod"].deletion_protection and not ENVIRONMENTS["dev"].deletion_protection
    assert ENVIRONMENTS["dev"].project != ENVIRONMENTS["prod"].project
    assert ENVIRONMENTS["prod"].labels["baton_env"] == "prod"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Dev"}, "environment name"),
        ({"name": "development"}, "environment name"),
        ({"spanner_processing_units": 150}, "processing_units"),
        ({"spanner_processing_units": 1500}, "processing_units"),
        ({"operator_members": ("allUsers",)}, "never the public"),
        ({"operator_members": ("allAuthenticatedUsers",)}, "never the public"),
        ({"start_manifest_ingress": "EVERYONE"}, "start_manifest_ingress"),
        ({"labels": {"Team": "x"}}, "label"),
        ({"datasets": (Dataset("sales", "x"), Dataset("sales", "y"))}, "declared twice"),
        ({"datasets": (Dataset("sales", "x", location="EU"),)}, "differs from the functions' BigQuery location"),
        ({"alert_email": "nobody"}, "alert_email"),
        ({"completion_timeout_seconds": 180}, "ack_deadline_seconds must exceed"),
        ({"completion_max_instances": 5}, "largest_fan_out"),
        ({"largest_fan_out": 100_000}, "largest_fan_out"),
    ],
)
def test_invalid_settings_fail_at_synth(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dev(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ack_deadline_seconds": 5}, "ack_deadline_seconds"),
        ({"max_delivery_attempts": 4}, "max_delivery_attempts"),
        ({"minimum_backoff_seconds": 700, "maximum_backoff_seconds": 600}, "backoff"),
    ],
)
def test_push_delivery_stays_within_pubsub_limits(changes: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PushDelivery(**changes)


def test_names_are_shared_by_both_stacks() -> None:
    config = ENVIRONMENTS["prod"]
    assert (config.platform_stack_name, config.handlers_stack_name) == ("baton-prod-platform", "baton-prod-handlers")
    assert (
        config.topic_path(config.dead_letter_topic) == "projects/baton-prod-project/topics/baton-prod-job-completed-dead-letter"
    )
    assert len(config.resource_name("start-manifest")) <= 30  # service account ids are at most 30 characters


def test_a_dataset_id_must_be_valid() -> None:
    with pytest.raises(ValueError, match="dataset id"):
        Dataset("bad-dataset", "x")


def test_datasets_take_the_functions_location_and_a_matching_one_is_accepted() -> None:
    config = dev(bigquery_location="EU", datasets=(Dataset("a", "x"), Dataset("b", "y", location="eu")))
    assert {dataset.location for dataset in config.datasets} == {"EU"}
    assert {dataset.location for dataset in ENVIRONMENTS["prod"].datasets} == {ENVIRONMENTS["prod"].bigquery_location}


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_completion_function_holds_the_largest_fan_out_in_flight(env: str) -> None:
    """Max in-flight pushes (one per event of the widest wave) <= instances x concurrency, so no 429 burns an attempt."""
    config = ENVIRONMENTS[env]
    assert config.largest_fan_out <= config.completion_max_instances * config.completion_concurrency
    assert config.push.ack_deadline_seconds > config.completion_timeout_seconds
