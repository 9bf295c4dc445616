"""The local stack's view of the topology comes from the synthesized stacks, and matches what is deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.topology import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_REQUEST_CONCURRENCY,
    FunctionSpec,
    PushSubscription,
    SchedulerJob,
    TopologyError,
    load_topology,
    scheduler_jobs,
)

REPO = Path(__file__).resolve().parents[2]

PLATFORM = {
    "provider": {"google": [{"project": "p-1"}]},
    "resource": {
        "google_logging_project_sink": {
            "sink": {"destination": "pubsub.googleapis.com/${google_pubsub_topic.done.id}", "filter": "F"}
        },
        "google_pubsub_topic": {
            "done": {"name": "t-done"},
            "dead": {"name": "t-dead"},
            "events": {"name": "t-events"},
            "work": {"name": "t-work"},
        },
        "google_pubsub_subscription": {"hold": {"name": "s-dead-hold", "topic": "${google_pubsub_topic.dead.id}"}},
        "google_spanner_database": {"db": {"ddl": ["CREATE TABLE A (X INT64) PRIMARY KEY (X)"]}},
    },
}
HANDLERS = {
    "resource": {
        "google_cloudfunctions2_function": {
            "fn": {
                "build_config": {"entry_point": "bigquery_job_completed"},
                "service_config": {
                    "environment_variables": {
                        "BATON_RUN_EVENTS_TOPIC": "projects/p-1/topics/t-events",
                        "BATON_WORK_TOPIC": "projects/p-1/topics/t-work",
                    }
                },
            }
        },
        "google_pubsub_subscription": {
            "push": {
                "name": "s-push",
                "topic": "projects/p-1/topics/t-done",
                "ack_deadline_seconds": 30,
                "push_config": {"push_endpoint": "${google_cloudfunctions2_function.fn.service_config[0].uri}"},
                "retry_policy": {"minimum_backoff": "1.5s", "maximum_backoff": "20s"},
                "dead_letter_policy": {"dead_letter_topic": "projects/p-1/topics/t-dead", "max_delivery_attempts": 5},
            },
            "work": {
                "name": "s-work",
                "topic": "projects/p-1/topics/t-work",
                "ack_deadline_seconds": 30,
                "push_config": {"push_endpoint": "${google_cloudfunctions2_function.fn.service_config[0].uri}"},
                "retry_policy": {"minimum_backoff": "1.5s", "maximum_backoff": "20s"},
                "dead_letter_policy": {"dead_letter_topic": "projects/p-1/topics/t-dead", "max_delivery_attempts": 5},
            },
        },
    }
}


def write_stacks(root: Path, platform: dict[str, Any], handlers: dict[str, Any], env: str = "x") -> Path:
    for kind, document in (("platform", platform), ("handlers", handlers)):
        path = root / "stacks" / f"baton-{env}-{kind}" / "cdk.tf.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(document))
    return root


def test_reads_names_policy_and_ddl_from_hand_written_stacks(tmp_path: Path) -> None:
    topology = load_topology(write_stacks(tmp_path, PLATFORM, HANDLERS), "x")
    assert topology.project == "p-1"
    assert (topology.completion_topic, topology.dead_letter_topic, topology.run_events_topic) == ("t-done", "t-dead", "t-events")
    assert topology.sink_filter == "F"
    assert topology.push_subscription == PushSubscription(
        name="s-push",
        topic="t-done",
        entry_point="bigquery_job_completed",
        ack_deadline_seconds=30,
        min_backoff_seconds=1.5,
        max_backoff_seconds=20.0,
        max_delivery_attempts=5,
        dead_letter_topic="t-dead",
    )
    assert topology.ddl_statements == ("CREATE TABLE A (X INT64) PRIMARY KEY (X)",)
    assert topology.dead_letter_subscription == "s-dead-hold"
    assert (topology.work_topic, topology.work_subscription.name, topology.work_subscription.entry_point) == (
        "t-work",
        "s-work",
        "bigquery_job_completed",
    )


def test_refuses_a_stack_whose_work_topic_nobody_pushes(tmp_path: Path) -> None:
    handlers = json.loads(json.dumps(HANDLERS))
    del handlers["resource"]["google_pubsub_subscription"]["work"]
    with pytest.raises(TopologyError, match="no push subscription reads the work topic t-work"):
        load_topology(write_stacks(tmp_path, PLATFORM, handlers), "x")


def test_refuses_a_subscription_that_does_not_read_the_sinks_topic(tmp_path: Path) -> None:
    handlers = json.loads(json.dumps(HANDLERS))
    handlers["resource"]["google_pubsub_subscription"]["push"]["topic"] = "projects/p-1/topics/elsewhere"
    with pytest.raises(TopologyError, match="no push subscription reads t-done"):
        load_topology(write_stacks(tmp_path, PLATFORM, handlers), "x")


def test_refuses_a_push_subscription_without_dead_letter_policy(tmp_path: Path) -> None:
    handlers = json.loads(json.dumps(HANDLERS))
    del handlers["resource"]["google_pubsub_subscription"]["push"]["dead_letter_policy"]
    with pytest.raises(TopologyError, match="dead-letter"):
        load_topology(write_stacks(tmp_path, PLATFORM, handlers), "x")


def test_says_to_synthesize_when_nothing_is_there(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="synthesize"):
        load_topology(tmp_path, "dev")


@pytest.mark.infra
def test_dev_topology_matches_the_stacks_as_synthesized(synth_dir: Path) -> None:
    from baton.adapters.spanner_migrations import all_statements
    from cdk.config import ENVIRONMENTS
    from cdk.sink_filter import sink_filter

    topology = load_topology(synth_dir, "dev")
    config = ENVIRONMENTS["dev"]
    assert topology.project == config.project
    assert topology.completion_topic == config.completion_topic
    assert topology.dead_letter_topic == config.dead_letter_topic
    assert topology.run_events_topic == config.run_events_topic
    assert topology.sink_filter == sink_filter("dev")
    assert topology.push_subscription == PushSubscription(
        name=config.push_subscription,
        topic=config.completion_topic,
        entry_point="bigquery_job_completed",
        ack_deadline_seconds=config.push.ack_deadline_seconds,
        min_backoff_seconds=config.push.minimum_backoff_seconds,
        max_backoff_seconds=config.push.maximum_backoff_seconds,
        max_delivery_attempts=config.push.max_delivery_attempts,
        dead_letter_topic=config.dead_letter_topic,
    )
    assert list(topology.ddl_statements) == all_statements(REPO / "spanner_schema")
    assert topology.ddl_statements, "spanner_schema/ has statements, so the stack must carry them"
    assert topology.dead_letter_subscription == config.dead_letter_subscription


@pytest.mark.infra
def test_dev_scheduler_jobs_are_read_from_the_stack_as_synthesized(synth_dir: Path) -> None:
    from cdk.config import ENVIRONMENTS

    config = ENVIRONMENTS["dev"]
    jobs = {job.name: job for job in scheduler_jobs(synth_dir, "dev")}
    reconcile = SchedulerJob(
        name=config.resource_name("reconcile"),
        entry_point="reconcile",
        schedule=config.reconcile_schedule,
        time_zone=config.schedule_time_zone,
        paused=False,
    )
    assert jobs[reconcile.name] == reconcile
    started = [job for job in jobs.values() if job.entry_point == "start_manifest"]
    assert started and all(job.paused for job in started)  # dev does not start manifests on their schedules


def test_refuses_a_scheduler_job_that_calls_no_function_of_the_stack(tmp_path: Path) -> None:
    handlers = json.loads(json.dumps(HANDLERS))
    handlers["resource"]["google_cloud_scheduler_job"] = {
        "tick": {"name": "tick", "schedule": "* * * * *", "http_target": {"uri": "https://example.com/"}}
    }
    with pytest.raises(TopologyError, match=r"google_cloud_scheduler_job\.tick"):
        scheduler_jobs(write_stacks(tmp_path, PLATFORM, handlers), "x")


def test_function_limits_and_identity_come_from_the_service_config(tmp_path: Path) -> None:
    handlers = json.loads(json.dumps(HANDLERS))
    handlers["resource"]["google_service_account"] = {"sa": {"account_id": "fn-done", "project": "p-1"}}
    service = handlers["resource"]["google_cloudfunctions2_function"]["fn"]["service_config"]
    service.update(
        service_account_email="${google_service_account.sa.email}",
        max_instance_count=7,
        max_instance_request_concurrency=3,
        timeout_seconds=90,
    )
    spec = load_topology(write_stacks(tmp_path, PLATFORM, handlers), "x").functions["bigquery_job_completed"]
    assert spec == FunctionSpec("bigquery_job_completed", "fn-done@p-1.iam.gserviceaccount.com", 7, 3, 90)
    assert spec.capacity == 21


def test_function_limits_default_as_cloud_functions_does(tmp_path: Path) -> None:
    spec = load_topology(write_stacks(tmp_path, PLATFORM, HANDLERS), "x").functions["bigquery_job_completed"]
    assert (spec.max_instances, spec.request_concurrency) == (DEFAULT_MAX_INSTANCES, DEFAULT_REQUEST_CONCURRENCY) == (100, 1)


@pytest.mark.infra
def test_each_dev_function_has_its_own_identity_and_the_configured_limit(synth_dir: Path) -> None:
    from cdk.config import ENVIRONMENTS

    functions = load_topology(synth_dir, "dev").functions
    assert set(functions) == {"bigquery_job_completed", "start_manifest", "reconcile"}
    assert len({spec.service_account_email for spec in functions.values()}) == 3
    assert all(spec.service_account_email.endswith("@baton-dev-project.iam.gserviceaccount.com") for spec in functions.values())
    dev = ENVIRONMENTS["dev"]
    assert {entry: spec.capacity for entry, spec in functions.items()} == {
        "bigquery_job_completed": dev.completion_max_instances * dev.completion_concurrency,
        "start_manifest": dev.function_max_instances * 1,
        "reconcile": dev.function_max_instances * 1,
    }
