"""What keeps Baton operable once deployed: alerts, operator grants, image cleanup, functions sized for load."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdk.alerts import FAILED_RUN_STATUS, RECONCILE_FAILURE_MESSAGES, RUN_FINISHED_MESSAGE
from cdk.config import ENVIRONMENTS as CONFIGS
from tests.infra.conftest import REPO
from tests.infra.terraform_json import ENVIRONMENTS, load, only, ref, resources

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alert_policies_watch_dead_letters_5xx_reconcile_and_failed_runs(synth_dir: Path, env: str) -> None:
    config = CONFIGS[env]
    platform = load(synth_dir, f"baton-{env}-platform")
    channel_name, channel = only(platform, "google_monitoring_notification_channel")
    assert (channel["type"], channel["labels"]) == ("email", {"email_address": config.alert_email})
    policies = {
        body["display_name"].split(": ", 1)[1]: body for body in resources(platform, "google_monitoring_alert_policy").values()
    }
    assert set(policies) == {
        "dead letters waiting",
        "oldest dead letter ageing",
        "function 5xx",
        "reconcile failures",
        "runs failed",
    }
    metrics = {body["name"]: (name, body) for name, body in resources(platform, "google_logging_metric").items()}
    assert set(metrics) == {f"baton-{env}-reconcile-failures", f"baton-{env}-runs-failed"}
    for title, policy in policies.items():
        assert policy["notification_channels"] == [ref("google_monitoring_notification_channel", channel_name, "id")], title
        (condition,) = policy["conditions"]
        threshold = condition["condition_threshold"]
        assert threshold["comparison"] == "COMPARISON_GT"
        if "dead letter" in title:
            assert f'resource.labels.subscription_id="{config.dead_letter_subscription}"' in threshold["filter"]
    assert "num_undelivered_messages" in policies["dead letters waiting"]["conditions"][0]["condition_threshold"]["filter"]
    oldest = policies["oldest dead letter ageing"]["conditions"][0]["condition_threshold"]
    assert "oldest_unacked_message_age" in oldest["filter"] and oldest["threshold_value"] < 7 * 24 * 3600
    five_xx = policies["function 5xx"]["conditions"][0]["condition_threshold"]["filter"]
    assert 'response_code_class="5xx"' in five_xx and all(name in five_xx for name in config.functions)
    for title, metric in (("reconcile failures", "reconcile-failures"), ("runs failed", "runs-failed")):
        metric_name, _ = metrics[f"baton-{env}-{metric}"]
        policy = policies[title]
        assert ref("google_logging_metric", metric_name, "name") in policy["conditions"][0]["condition_threshold"]["filter"]
        assert f"google_logging_metric.{metric_name}" in policy["depends_on"]  # refused until the metric exists


def test_log_based_metrics_match_lines_the_handlers_write() -> None:
    """The metrics count log lines by their message: renaming one in handlers/ must fail here, not in production."""
    source = "\n".join(path.read_text() for path in (REPO / "handlers").rglob("*.py"))
    for message in (*RECONCILE_FAILURE_MESSAGES, RUN_FINISHED_MESSAGE):
        assert f'"{message}"' in source, message
    assert "status=str(run.status)" in source and FAILED_RUN_STATUS == "FAILED"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_operators_get_what_the_cli_does(synth_dir: Path, env: str) -> None:
    config = CONFIGS[env]
    assert config.operator_members
    platform = load(synth_dir, f"baton-{env}-platform")
    _, role = only(platform, "google_project_iam_custom_role")
    assert "bigquery.jobs.update" in role["permissions"]  # cancel jobs the functions submitted
    for member in config.operator_members:
        granted = {
            (kind, body.get("role"), body.get("topic") or body.get("subscription") or body.get("database") or body.get("project"))
            for kind, found in platform["resource"].items()
            if kind.endswith("_iam_member")
            for body in found.values()
            if body["member"] == member
        }
        assert granted == {
            ("google_project_iam_member", ref("google_project_iam_custom_role", "operator_role", "id"), config.project),
            (
                "google_spanner_database_iam_member",
                "roles/spanner.databaseUser",
                ref("google_spanner_database", "spanner_database", "name"),
            ),
            (
                "google_pubsub_subscription_iam_member",
                "roles/pubsub.subscriber",
                ref("google_pubsub_subscription", "dead_letter_hold", "name"),
            ),
            ("google_pubsub_topic_iam_member", "roles/pubsub.publisher", ref("google_pubsub_topic", "completion_topic", "name")),
            ("google_pubsub_topic_iam_member", "roles/pubsub.publisher", ref("google_pubsub_topic", "run_events_topic", "name")),
        }
        handlers = load(synth_dir, f"baton-{env}-handlers")
        invokers = [b for b in resources(handlers, "google_cloud_run_v2_service_iam_member").values() if b["member"] == member]
        assert len(invokers) == 2  # start_manifest and reconcile


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_image_cleanup_deletes_old_images_and_keeps_the_newest(synth_dir: Path, env: str) -> None:
    _, repository = only(load(synth_dir, f"baton-{env}-handlers"), "google_artifact_registry_repository")
    assert repository["cleanup_policy_dry_run"] is False
    policies = {policy["action"]: policy for policy in repository["cleanup_policies"]}
    assert policies["DELETE"]["condition"] == {"tag_state": "ANY", "older_than": "2592000s"}
    assert policies["KEEP"]["most_recent_versions"]["keep_count"] >= 5


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_completion_function_holds_the_largest_fan_out(synth_dir: Path, env: str) -> None:
    config = CONFIGS[env]
    handlers = load(synth_dir, f"baton-{env}-handlers")
    functions = {b["build_config"]["entry_point"]: b for b in resources(handlers, "google_cloudfunctions2_function").values()}
    service = functions["bigquery_job_completed"]["service_config"]
    in_flight = service["max_instance_count"] * service["max_instance_request_concurrency"]
    assert config.largest_fan_out <= in_flight
    assert service["environment_variables"]["THREADS"] == str(service["max_instance_request_concurrency"])
    assert service["available_cpu"] == "1"
    assert service["available_memory"] == "512Mi"
    pushes = [b for b in resources(handlers, "google_pubsub_subscription").values() if "push_config" in b]
    assert pushes and all(b["ack_deadline_seconds"] > service["timeout_seconds"] for b in pushes)
