"""The synthesized stacks: what is deployed, who may do what, and how events are delivered."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import REPO
from tests.infra.terraform_json import (
    ENVIRONMENTS,
    STACKS,
    iam_resources,
    load,
    members_of,
    only,
    ref,
    referenced,
    resources,
    stack_path,
)

pytestmark = pytest.mark.infra

ENTRY_POINTS = {"bigquery_job_completed", "start_manifest", "reconcile"}
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
# Project-level grants are allowed only where the permission has no narrower resource.
PROJECT_LEVEL_ROLES = {
    "roles/bigquery.jobUser",  # jobs are created in a project
    "roles/bigquery.resourceViewer",  # the reconciler reads jobs other identities created
    "roles/logging.logWriter",  # build logs
    "roles/storage.objectViewer",  # the build reads gcf-v2-sources-*; conditioned to those buckets
    "${google_project_iam_custom_role.operator_role.id}",  # operators cancel jobs others created: project-wide
}


def functions_by_entry_point(handlers: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        body["build_config"]["entry_point"]: (name, body)
        for name, body in resources(handlers, "google_cloudfunctions2_function").items()
    }


def test_both_environments_are_synthesized(synth_dir: Path) -> None:
    manifest = json.loads((synth_dir / "manifest.json").read_text())
    assert set(manifest["stacks"]) == set(STACKS)
    for stack in STACKS:
        assert load(synth_dir, stack)["//"]["metadata"]["stackName"] == stack


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sink_selects_this_environments_bigquery_completions(synth_dir: Path, env: str) -> None:
    platform = load(synth_dir, f"baton-{env}-platform")
    _, sink = only(platform, "google_logging_project_sink")
    assert sink["filter"] == (
        'resource.type="bigquery_project" AND '
        'protoPayload.metadata."@type"="type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata" AND '
        'protoPayload.metadata.jobChange.after="DONE" AND '
        f'protoPayload.metadata.jobChange.job.jobConfig.labels.baton_env="{env}"'
    )
    assert sink["unique_writer_identity"] is True
    assert sink["destination"] == "pubsub.googleapis.com/" + ref("google_pubsub_topic", "completion_topic", "id")
    assert resources(platform, "google_pubsub_topic")["completion_topic"]["name"] == f"baton-{env}-job-completed"


def test_sink_filter_function_is_the_one_in_the_stack() -> None:
    from cdk.sink_filter import sink_filter

    assert sink_filter("dev").endswith('labels.baton_env="dev"')
    assert sink_filter("dev") != sink_filter("prod")
    with pytest.raises(ValueError, match="label value"):
        sink_filter('dev" OR "1"="1')


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sink_writer_may_publish_to_the_completion_topic_only(synth_dir: Path, env: str) -> None:
    platform = load(synth_dir, f"baton-{env}-platform")
    sink_name, _ = only(platform, "google_logging_project_sink")
    writer = ref("google_logging_project_sink", sink_name, "writer_identity")
    grants = [(kind, body) for kind, _, body in iam_resources(platform) if writer in members_of(body)]
    assert len(grants) == 1, grants
    kind, body = grants[0]
    assert kind == "google_pubsub_topic_iam_member"
    assert body["role"] == "roles/pubsub.publisher"
    assert body["topic"] == ref("google_pubsub_topic", "completion_topic", "name")
    handlers = load(synth_dir, f"baton-{env}-handlers")
    assert not [b for _, _, b in iam_resources(handlers) if writer in members_of(b)]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_function_runs_as_its_own_service_account(synth_dir: Path, env: str) -> None:
    handlers = load(synth_dir, f"baton-{env}-handlers")
    functions = functions_by_entry_point(handlers)
    assert set(functions) == ENTRY_POINTS
    accounts = {referenced(body["service_config"]["service_account_email"]) for _, body in functions.values()}
    assert len(accounts) == len(ENTRY_POINTS)
    assert all(kind == "google_service_account" for kind, _ in accounts)
    # Nobody else (invokers, builds) shares a runtime identity.
    others = {
        referenced(body["push_config"]["oidc_token"]["service_account_email"])
        for body in resources(handlers, "google_pubsub_subscription").values()
        if "push_config" in body
    }
    others |= {
        referenced(job["http_target"]["oidc_token"]["service_account_email"])
        for job in resources(handlers, "google_cloud_scheduler_job").values()
    }
    others |= {referenced(body["build_config"]["service_account"]) for _, body in functions.values()}
    assert not accounts & others
    for _, body in functions.values():
        assert body["build_config"]["runtime"] == "python311"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_functions_get_the_handlers_settings(synth_dir: Path, env: str) -> None:
    from cdk.config import ENVIRONMENTS as CONFIGS

    config = CONFIGS[env]
    for _, body in functions_by_entry_point(load(synth_dir, f"baton-{env}-handlers")).values():
        timeout = body["service_config"]["timeout_seconds"]
        assert body["service_config"]["environment_variables"] == {
            "BATON_FUNCTION_TIMEOUT_S": str(timeout),
            "BATON_ENV": env,
            "BATON_PROJECT": config.project,
            "BATON_SPANNER_INSTANCE": f"baton-{env}",
            "BATON_SPANNER_DATABASE": "baton",
            "BATON_BQ_LOCATION": config.bigquery_location,
            "BATON_RUN_EVENTS_TOPIC": f"projects/{config.project}/topics/baton-{env}-run-events",
            "BATON_DEAD_LETTER_TOPIC": f"projects/{config.project}/topics/baton-{env}-job-completed-dead-letter",
            "BATON_MAX_DELIVERY_ATTEMPTS": str(config.push.max_delivery_attempts),
            "BATON_RECONCILE_INTERVAL_S": "300",
            "BATON_WORK_TOPIC": f"projects/{config.project}/topics/baton-{env}-work",
            "GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW": "false",  # the session mode the tests exercise
            "THREADS": str(body["service_config"].get("max_instance_request_concurrency", 1)),
            "BATON_DATASETS": json.dumps(
                {
                    dataset: config.bigquery_location
                    for dataset in ("baton_scratch", "consume", "events", "history", "landing", "trusted")
                },
                separators=(",", ":"),
            ),
            "BATON_SCRATCH_DATASET": "baton_scratch",  # data checks' rows, readable by every Baton function
            "BATON_POOLS": json.dumps(dict(config.pools), sort_keys=True),
            "BATON_LINEAGE_TOPIC": f"projects/{config.project}/topics/baton-{env}-lineage",
        }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_completion_function_may_write_dead_letters(synth_dir: Path, env: str) -> None:
    handlers = load(synth_dir, f"baton-{env}-handlers")
    functions = functions_by_entry_point(handlers)
    dead_letter_topic = f"baton-{env}-job-completed-dead-letter"
    writers = [
        body["member"]
        for body in resources(handlers, "google_pubsub_topic_iam_member").values()
        if body["topic"] == dead_letter_topic and body["role"] == "roles/pubsub.publisher"
    ]
    completion_account = functions["bigquery_job_completed"][1]["service_config"]["service_account_email"]
    account_name = referenced(completion_account)[1]
    function_writers = [w for w in writers if "google_service_account" in w]
    assert function_writers == [ref("google_service_account", account_name, "member")]


def _statements_in_schema_dir() -> list[str]:
    """An independent reading of spanner_schema/: files in name order, `--` comments out, split on ';'."""
    statements = []
    for path in sorted((REPO / "spanner_schema").glob("*.sql")):
        text = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
        statements += [" ".join(part.split()) for part in text.split(";") if part.strip()]
    return statements


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_ddl_is_spanner_schema(synth_dir: Path, env: str) -> None:
    _, database = only(load(synth_dir, f"baton-{env}-platform"), "google_spanner_database")
    expected = _statements_in_schema_dir()
    assert database["ddl"] == expected
    assert all(re.match(r"^(CREATE|ALTER|DROP) ", statement) for statement in database["ddl"])


def test_open_status_columns_turn_null_at_exactly_the_engines_terminal_statuses() -> None:
    from baton.adapters.spanner_migrations import all_statements
    from baton.domain.records import JobStatus, RunStatus

    ddl = all_statements(REPO / "spanner_schema")
    for table, statuses in (("RunJobs", JobStatus), ("Runs", RunStatus)):
        (statement,) = [s for s in ddl if s.startswith(f"ALTER TABLE {table} ADD COLUMN OpenStatus ")]
        listed = re.search(r"IF\(Status IN \(([^)]*)\), NULL, Status\)", statement)
        assert listed, statement
        assert {v.strip(" '") for v in listed.group(1).split(",")} == {str(s) for s in statuses if s.terminal}


def test_no_index_puts_a_timestamp_right_after_a_status_and_finished_runs_expire() -> None:
    from baton.adapters.spanner_migrations import all_statements

    indexes: dict[str, str] = {}
    for statement in all_statements(REPO / "spanner_schema"):
        created = re.match(r"CREATE (?:NULL_FILTERED )?INDEX (\w+) ON \w+\s*\(([^)]*)\)", statement)
        if created:
            indexes[created.group(1)] = created.group(2)
        dropped = re.match(r"DROP INDEX (\w+)", statement)
        if dropped:
            del indexes[dropped.group(1)]
    for name, keys in indexes.items():
        columns = [key.split()[0] for key in keys.split(",")]
        assert not (columns[0].endswith("Status") and len(columns) > 1 and columns[1].endswith("At")), (name, keys)
    assert {"OpenRunJobs", "OpenRuns"} <= set(indexes)
    for table in ("Runs", "Backfills"):  # a backfill's row goes with its runs
        policies = [
            s
            for s in all_statements(REPO / "spanner_schema")
            if s.startswith(f"ALTER TABLE {table} ") and "ROW DELETION POLICY" in s
        ]
        assert policies and re.fullmatch(
            rf"ALTER TABLE {table} (ADD|REPLACE) ROW DELETION POLICY \(OLDER_THAN\(FinishedAt, INTERVAL \d+ DAY\)\)", policies[-1]
        ), table


def test_prod_is_protected_from_deletion_and_dev_is_not(synth_dir: Path) -> None:
    prod = load(synth_dir, "baton-prod-platform")
    _, database = only(prod, "google_spanner_database")
    _, instance = only(prod, "google_spanner_instance")
    assert database["deletion_protection"] is True
    assert database["enable_drop_protection"] is True
    assert database["lifecycle"]["prevent_destroy"] is True
    assert instance["lifecycle"]["prevent_destroy"] is True
    assert instance["force_destroy"] is False
    _, bucket = only(load(synth_dir, "baton-prod-handlers"), "google_storage_bucket")
    assert bucket["force_destroy"] is False

    dev = load(synth_dir, "baton-dev-platform")
    _, dev_database = only(dev, "google_spanner_database")
    assert dev_database["deletion_protection"] is False
    assert "lifecycle" not in dev_database


@pytest.mark.parametrize("stack", STACKS)
def test_no_public_members_and_no_primitive_roles(synth_dir: Path, stack: str) -> None:
    document = load(synth_dir, stack)
    bindings = list(iam_resources(document))
    assert bindings, "every stack grants something; finding nothing means the walk is broken"
    for kind, name, body in bindings:
        assert not set(members_of(body)) & PUBLIC_MEMBERS, f"{kind}.{name} is public"
        assert body.get("role") not in PRIMITIVE_ROLES, f"{kind}.{name} grants a primitive role"
        assert not kind.endswith(("_iam_policy", "_iam_binding")), f"{kind}.{name} would overwrite grants made elsewhere"
    # Whatever the resource type, the public never appears anywhere in the document.
    text = stack_path(synth_dir, stack).read_text()
    assert "allUsers" not in text
    assert "allAuthenticatedUsers" not in text


@pytest.mark.parametrize("stack", STACKS)
def test_grants_sit_on_resources_unless_the_permission_is_project_wide(synth_dir: Path, stack: str) -> None:
    document = load(synth_dir, stack)
    project_roles = {body["role"] for body in resources(document, "google_project_iam_member").values()}
    assert project_roles <= PROJECT_LEVEL_ROLES
    for body in resources(document, "google_project_iam_member").values():
        if body["role"] == "roles/storage.objectViewer":
            assert 'startsWith("projects/_/buckets/gcf-v2-sources-")' in body["condition"]["expression"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_function_identities_reach_data_through_the_resources(synth_dir: Path, env: str) -> None:
    handlers = load(synth_dir, f"baton-{env}-handlers")
    accounts = {
        entry_point: referenced(b["service_config"]["service_account_email"])[1]
        for entry_point, (_, b) in functions_by_entry_point(handlers).items()
    }
    for entry_point, account in accounts.items():
        member = ref("google_service_account", account, "member")
        spanner = [b for b in resources(handlers, "google_spanner_database_iam_member").values() if b["member"] == member]
        assert [(b["instance"], b["database"], b["role"]) for b in spanner] == [
            (f"baton-{env}", "baton", "roles/spanner.databaseUser")
        ]
        publish = [b for b in resources(handlers, "google_pubsub_topic_iam_member").values() if b["member"] == member]
        # Every function may hand work on and emits OpenLineage events (it submits jobs).
        topics = [f"baton-{env}-run-events", f"baton-{env}-work", f"baton-{env}-lineage"]
        if entry_point == "bigquery_job_completed":  # it dead-letters what it cannot process, with the reason
            topics.append(f"baton-{env}-job-completed-dead-letter")
        assert sorted((b["topic"], b["role"]) for b in publish) == sorted((t, "roles/pubsub.publisher") for t in topics)
        project = sorted(b["role"] for b in resources(handlers, "google_project_iam_member").values() if b["member"] == member)
        assert "roles/bigquery.jobUser" in project


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_completion_events_are_pushed_with_oidc_backoff_and_dead_letter(synth_dir: Path, env: str) -> None:
    """Both subscriptions that call bigquery_job_completed: BigQuery's completions and Baton's continuations."""
    from cdk.config import ENVIRONMENTS as CONFIGS

    config = CONFIGS[env]
    handlers = load(synth_dir, f"baton-{env}-handlers")
    platform = load(synth_dir, f"baton-{env}-platform")
    subscriptions = resources(handlers, "google_pubsub_subscription")
    assert sorted(subscriptions) == ["completion_push", "work_push"]
    completion_name, _ = functions_by_entry_point(handlers)["bigquery_job_completed"]
    uri = ref("google_cloudfunctions2_function", completion_name, "service_config[0].uri")
    agent = "serviceAccount:service-${data.google_project.project.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    subscribers = {b["subscription"]: b for b in resources(handlers, "google_pubsub_subscription_iam_member").values()}
    assert len(subscribers) == 2
    assert "work_topic" in resources(platform, "google_pubsub_topic")

    for name, subscription_name, topic in (
        ("completion_push", f"baton-{env}-job-completed-push", f"baton-{env}-job-completed"),
        ("work_push", f"baton-{env}-work-push", f"baton-{env}-work"),
    ):
        subscription = subscriptions[name]
        assert subscription["name"] == subscription_name
        assert subscription["topic"] == f"projects/{config.project}/topics/{topic}"
        assert subscription["ack_deadline_seconds"] == config.push.ack_deadline_seconds > config.completion_timeout_seconds
        assert subscription["retry_policy"] == {"minimum_backoff": "10s", "maximum_backoff": "600s"}
        assert subscription["dead_letter_policy"] == {
            "dead_letter_topic": f"projects/{config.project}/topics/baton-{env}-job-completed-dead-letter",
            "max_delivery_attempts": 10,
        }
        assert subscription["expiration_policy"] == {"ttl": ""}
        push = subscription["push_config"]
        assert push["push_endpoint"] == uri
        assert push["oidc_token"]["audience"] == uri
        invoker = ref("google_service_account", referenced(push["oidc_token"]["service_account_email"])[1], "member")
        invokers = [b for b in resources(handlers, "google_cloud_run_v2_service_iam_member").values() if b["member"] == invoker]
        assert [(b["name"], b["role"]) for b in invokers] == [
            (ref("google_cloudfunctions2_function", completion_name, "name"), "roles/run.invoker")
        ]
        # Dead-lettering needs the Pub/Sub service agent on both ends.
        subscriber = subscribers[ref("google_pubsub_subscription", name, "name")]
        assert (subscriber["role"], subscriber["member"]) == ("roles/pubsub.subscriber", agent)

    # The platform stack creates the agent (service identity) and grants to it; the handlers stack names it.
    _, identity = only(platform, "google_project_service_identity")
    assert identity["service"] == "pubsub.googleapis.com"
    platform_agent = "serviceAccount:" + ref("google_project_service_identity", "pubsub_agent", "email")
    dead_letter_grants = [
        (b["topic"], b["role"])
        for b in resources(platform, "google_pubsub_topic_iam_member").values()
        if b["member"] == platform_agent
    ]
    assert dead_letter_grants == [(ref("google_pubsub_topic", "dead_letter_topic", "name"), "roles/pubsub.publisher")]
    # Something must hold dead letters, or a topic without subscriptions drops them.
    holds = [
        b
        for b in resources(platform, "google_pubsub_subscription").values()
        if b["topic"] == ref("google_pubsub_topic", "dead_letter_topic", "id")
    ]
    assert len(holds) == 1 and holds[0]["message_retention_duration"] == "604800s"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_start_manifest_could_be_opened_to_outside_traffic(synth_dir: Path, env: str) -> None:
    functions = functions_by_entry_point(load(synth_dir, f"baton-{env}-handlers"))
    assert functions["bigquery_job_completed"][1]["service_config"]["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert functions["reconcile"][1]["service_config"]["ingress_settings"] == "ALLOW_INTERNAL_ONLY"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_schedules_call_functions_with_oidc(example_synth_dir: Path, env: str) -> None:
    from cdk.config import ENVIRONMENTS as CONFIGS

    handlers = load(example_synth_dir, f"baton-{env}-handlers")
    functions = functions_by_entry_point(handlers)
    jobs = {body["name"]: body for body in resources(handlers, "google_cloud_scheduler_job").values()}
    # nightly_sales declares a schedule, adhoc_backfill does not.
    assert set(jobs) == {f"baton-{env}-start-nightly_sales", f"baton-{env}-reconcile"}
    nightly = jobs[f"baton-{env}-start-nightly_sales"]
    start_uri = ref("google_cloudfunctions2_function", functions["start_manifest"][0], "service_config[0].uri")
    assert (nightly["schedule"], nightly["time_zone"]) == ("30 2 * * *", "Europe/Berlin")
    assert nightly["http_target"]["uri"] == start_uri
    assert nightly["http_target"]["oidc_token"]["audience"] == start_uri
    assert json.loads(base64.b64decode(nightly["http_target"]["body"])) == {"manifest": "nightly_sales"}
    assert nightly["paused"] is (not CONFIGS[env].schedules_enabled)
    reconcile = jobs[f"baton-{env}-reconcile"]
    assert reconcile["http_target"]["uri"] == ref(
        "google_cloudfunctions2_function", functions["reconcile"][0], "service_config[0].uri"
    )
    assert reconcile["paused"] is False
    assert re.match(r"^\*/\d+ \* \* \* \*$", reconcile["schedule"])


def test_schedules_follow_the_repository_manifests(synth_dir: Path) -> None:
    from baton.manifests.loading import ManifestRepository

    repository = ManifestRepository(REPO / "manifests")
    scheduled = {name for name in repository.names() if repository.load(name).schedule}
    jobs = {body["name"] for body in resources(load(synth_dir, "baton-dev-handlers"), "google_cloud_scheduler_job").values()}
    assert jobs == {f"baton-dev-start-{name}" for name in scheduled} | {"baton-dev-reconcile"}


def test_every_function_gets_each_declared_dataset_and_the_platform_creates_them(example_synth_dir: Path) -> None:
    from cdk.config import ENVIRONMENTS as CONFIGS

    for env in ENVIRONMENTS:
        config = CONFIGS[env]
        handlers = load(example_synth_dir, f"baton-{env}-handlers")
        platform = load(example_synth_dir, f"baton-{env}-platform")
        roles = {"write": "roles/bigquery.dataEditor", "read": "roles/bigquery.dataViewer"}
        grants = {(b["dataset_id"], b["role"]) for b in resources(handlers, "google_bigquery_dataset_iam_member").values()}
        assert grants == {(d.dataset_id, roles[d.access]) for d in config.datasets}
        assert {"trusted", "consume"} <= {dataset for dataset, _ in grants}  # the example manifest's destinations
        per_dataset = [
            b for b in resources(handlers, "google_bigquery_dataset_iam_member").values() if b["dataset_id"] == "consume"
        ]
        assert len({b["member"] for b in per_dataset}) == len(ENTRY_POINTS)

        created = {body["dataset_id"]: body for body in resources(platform, "google_bigquery_dataset").values()}
        assert set(created) == {dataset for dataset, _ in grants}
        for body in created.values():
            assert body["location"] == config.bigquery_location
            assert body["labels"]["baton_env"] == env
            assert "access" not in body  # an access block would reset the IAM members' grants at every apply
            assert body["delete_contents_on_destroy"] is (not config.deletion_protection)
            assert ("lifecycle" in body) is config.deletion_protection
            if config.deletion_protection:
                assert body["lifecycle"]["prevent_destroy"] is True
            assert "google_project_service.api_bigquery" in body["depends_on"]


def test_a_manifest_writing_an_undeclared_dataset_is_refused(tmp_path: Path) -> None:
    from cdktf import App

    from baton.manifests.loading import parse_manifest
    from cdk.archive import HandlerArchive
    from cdk.config import ENVIRONMENTS as CONFIGS
    from cdk.handlers_stack import HandlersStack, UndeclaredDataset

    manifest = parse_manifest(
        {"name": "m", "jobs": [{"key": "a", "sql": "SELECT 1", "destination": "nowhere.daily"}]}, "m.yaml", base_dir=REPO
    )
    archive_file = tmp_path / "handlers-0.zip"
    archive_file.write_bytes(b"")
    archive = HandlerArchive(path=archive_file, digest="0", entries=())
    with pytest.raises(UndeclaredDataset, match="nowhere"):
        HandlersStack(App(outdir=str(tmp_path)), CONFIGS["dev"], archive=archive, manifests=[manifest])


def test_destination_datasets_are_found_with_or_without_a_project() -> None:
    from baton.manifests.loading import parse_manifest
    from cdk.handlers_stack import manifest_datasets

    manifest = parse_manifest(
        {
            "name": "m",
            "jobs": [
                {"key": "a", "sql": "SELECT 1", "destination": "sales.daily"},
                {"key": "b", "sql": "SELECT 1", "destination": "other-project-1.shared.daily"},
                {"key": "c", "sql": "SELECT 1"},
            ],
        },
        "m.yaml",
        base_dir=REPO,
    )
    assert manifest_datasets([manifest], "home-project") == [("home-project", "sales"), ("other-project-1", "shared")]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_lineage_topic_is_declared_and_every_function_may_publish_to_it(synth_dir: Path, env: str) -> None:
    platform = load(synth_dir, f"baton-{env}-platform")
    handlers = load(synth_dir, f"baton-{env}-handlers")
    assert resources(platform, "google_pubsub_topic")["lineage_topic"]["name"] == f"baton-{env}-lineage"
    grants = [b for b in resources(handlers, "google_pubsub_topic_iam_member").values() if b["topic"] == f"baton-{env}-lineage"]
    assert sorted(b["role"] for b in grants) == ["roles/pubsub.publisher"] * len(functions_by_entry_point(handlers))
