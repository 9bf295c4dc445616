"""What the local stack must mirror, read from the synthesized Terraform JSON rather than restated.

Topic names, the sink filter, the push subscription's delivery policy and the Spanner
DDL all come from `<synth_dir>/stacks/baton-<env>-{platform,handlers}/cdk.tf.json`, so
the emulated environment cannot drift from what `cdktf deploy` would create.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REFERENCE = re.compile(r"^\$\{(?P<type>[a-z0-9_]+)\.(?P<name>[A-Za-z0-9_-]+)\.(?P<attribute>[a-z0-9_\[\]\.]+)\}$")
_TOPIC_PATH = re.compile(r"^projects/[^/]+/topics/(?P<topic>[^/]+)$")
_DURATION = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s$")
_SINK_DESTINATION = "pubsub.googleapis.com/"
# What Cloud Functions (2nd gen) uses when a service_config leaves these out.
DEFAULT_MAX_INSTANCES = 100
DEFAULT_REQUEST_CONCURRENCY = 1


class TopologyError(ValueError):
    """The synthesized stacks are missing or do not have the shape Baton's stacks produce."""


@dataclass(frozen=True)
class PushSubscription:
    name: str
    topic: str
    entry_point: str  # the function the subscription pushes to
    ack_deadline_seconds: int
    min_backoff_seconds: float
    max_backoff_seconds: float
    max_delivery_attempts: int
    dead_letter_topic: str


@dataclass(frozen=True)
class FunctionSpec:
    """How one function is deployed: its runtime identity and what Cloud Run lets it serve at once."""

    entry_point: str
    service_account_email: str
    max_instances: int
    request_concurrency: int  # requests per instance
    timeout_seconds: int

    @property
    def capacity(self) -> int:
        """Requests served at once before Cloud Run answers 429."""
        return self.max_instances * self.request_concurrency


@dataclass(frozen=True)
class Topology:
    environment: str
    project: str
    completion_topic: str
    dead_letter_topic: str
    run_events_topic: str
    sink_filter: str
    push_subscription: PushSubscription
    ddl_statements: tuple[str, ...]
    dead_letter_subscription: str  # the pull subscription that keeps dead letters for operators
    work_topic: str  # continuations (see handlers/baton/service/continuations.py)
    work_subscription: PushSubscription  # brings them back to the completion function
    functions: Mapping[str, FunctionSpec]  # by entry point


def _read_stack(synth_dir: Path, stack: str) -> dict[str, Any]:
    path = synth_dir / "stacks" / stack / "cdk.tf.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TopologyError(f"{path} does not exist: synthesize the stacks first (cdk.synth.synth or `cdktf synth`)") from None
    if not isinstance(document, dict):
        raise TopologyError(f"{path} is not a Terraform JSON object")
    return document


def _resources(document: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return dict(document.get("resource", {}).get(resource_type, {}))


def _only(document: dict[str, Any], resource_type: str, stack: str) -> dict[str, Any]:
    found = _resources(document, resource_type)
    if len(found) != 1:
        raise TopologyError(f"{stack}: expected exactly one {resource_type}, found {len(found)}")
    return next(iter(found.values()))


def _block(value: Any) -> dict[str, Any]:
    """Nested blocks are objects in CDKTF's output, but Terraform JSON also allows a one-element list."""
    if isinstance(value, list):
        value = value[0] if value else {}
    return value if isinstance(value, dict) else {}


def _topic_name(value: str, document: dict[str, Any], where: str) -> str:
    """A topic given as a literal path or name, or as a reference to a topic in the same stack."""
    reference = _REFERENCE.match(value)
    if reference:
        if reference["type"] != "google_pubsub_topic":
            raise TopologyError(f"{where}: {value} does not refer to a topic")
        topic = _resources(document, "google_pubsub_topic").get(reference["name"])
        if topic is None:
            raise TopologyError(f"{where}: {value} refers to a topic this stack does not declare")
        return str(topic["name"])
    path = _TOPIC_PATH.match(value)
    return path["topic"] if path else value


def _seconds(value: str, where: str) -> float:
    match = _DURATION.match(value)
    if not match:
        raise TopologyError(f"{where}: '{value}' is not a duration like '10s'")
    return float(match["seconds"])


def _push_subscriptions(handlers: dict[str, Any], stack: str) -> tuple[dict[str, PushSubscription], dict[str, Any]]:
    """Every push subscription of the handlers stack by topic, and the one function they all push to."""
    pushing = {key: sub for key, sub in _resources(handlers, "google_pubsub_subscription").items() if sub.get("push_config")}
    if not pushing:
        raise TopologyError(f"{stack}: expected a push subscription, found none")
    functions = _resources(handlers, "google_cloudfunctions2_function")
    found: dict[str, PushSubscription] = {}
    targets = set()
    for key, subscription in pushing.items():
        where = f"{stack}: google_pubsub_subscription.{key}"
        endpoint = _REFERENCE.match(str(_block(subscription["push_config"]).get("push_endpoint", "")))
        if not endpoint or endpoint["type"] != "google_cloudfunctions2_function" or endpoint["name"] not in functions:
            raise TopologyError(f"{where}: the push endpoint is not one of the stack's functions")
        targets.add(endpoint["name"])
        function = functions[endpoint["name"]]
        retry = _block(subscription.get("retry_policy"))
        dead_letter = _block(subscription.get("dead_letter_policy"))
        if not retry or not dead_letter:
            raise TopologyError(f"{where}: needs both a retry policy and a dead-letter policy")
        push = PushSubscription(
            name=str(subscription["name"]),
            topic=_topic_name(str(subscription["topic"]), handlers, where),
            entry_point=str(_block(function.get("build_config")).get("entry_point")),
            ack_deadline_seconds=int(subscription["ack_deadline_seconds"]),
            min_backoff_seconds=_seconds(str(retry["minimum_backoff"]), where),
            max_backoff_seconds=_seconds(str(retry["maximum_backoff"]), where),
            max_delivery_attempts=int(dead_letter["max_delivery_attempts"]),
            dead_letter_topic=_topic_name(str(dead_letter["dead_letter_topic"]), handlers, where),
        )
        found[push.topic] = push
    if len(targets) != 1:
        raise TopologyError(f"{stack}: push subscriptions go to {len(targets)} functions; Baton's go to one")
    return found, functions[targets.pop()]


@dataclass(frozen=True)
class SchedulerJob:
    """A Cloud Scheduler job of the handlers stack: which function it calls, and when."""

    name: str
    entry_point: str
    schedule: str
    time_zone: str
    paused: bool


def scheduler_jobs(synth_dir: Path, environment: str) -> list[SchedulerJob]:
    """The handlers stack's Cloud Scheduler jobs (the reconcile call, manifest schedules), as `baton dev` plays them."""
    stack = f"baton-{environment}-handlers"
    handlers = _read_stack(synth_dir, stack)
    functions = _resources(handlers, "google_cloudfunctions2_function")
    jobs = []
    for key, job in _resources(handlers, "google_cloud_scheduler_job").items():
        target = _REFERENCE.match(str(_block(job.get("http_target")).get("uri", "")))
        if not target or target["type"] != "google_cloudfunctions2_function" or target["name"] not in functions:
            raise TopologyError(f"{stack}: google_cloud_scheduler_job.{key} does not call one of the stack's functions")
        jobs.append(
            SchedulerJob(
                name=str(job["name"]),
                entry_point=str(_block(functions[target["name"]].get("build_config")).get("entry_point")),
                schedule=str(job["schedule"]),
                time_zone=str(job.get("time_zone", "Etc/UTC")),
                paused=bool(job.get("paused", False)),
            )
        )
    return jobs


def _service_account_email(value: str, document: dict[str, Any], where: str) -> str:
    """A literal email, or a reference to a google_service_account of the stack (account_id@project)."""
    reference = _REFERENCE.match(value)
    if not reference:
        return value
    account = _resources(document, "google_service_account").get(reference["name"])
    if reference["type"] != "google_service_account" or account is None or reference["attribute"] != "email":
        raise TopologyError(f"{where}: {value} is not the email of a service account this stack declares")
    return f"{account['account_id']}@{account['project']}.iam.gserviceaccount.com"


def _functions(handlers: dict[str, Any], stack: str) -> dict[str, FunctionSpec]:
    specs = {}
    for key, function in _resources(handlers, "google_cloudfunctions2_function").items():
        where = f"{stack}: google_cloudfunctions2_function.{key}"
        service = _block(function.get("service_config"))
        entry_point = str(_block(function.get("build_config")).get("entry_point"))
        specs[entry_point] = FunctionSpec(
            entry_point=entry_point,
            service_account_email=_service_account_email(str(service.get("service_account_email", "")), handlers, where),
            max_instances=int(service.get("max_instance_count", DEFAULT_MAX_INSTANCES)),
            request_concurrency=int(service.get("max_instance_request_concurrency", DEFAULT_REQUEST_CONCURRENCY)),
            timeout_seconds=int(service.get("timeout_seconds", 60)),
        )
    return specs


def load_topology(synth_dir: Path, environment: str) -> Topology:
    """The topology of `environment` as synthesized under `synth_dir` (the app's outdir, e.g. cdktf.out)."""
    platform_stack, handlers_stack = f"baton-{environment}-platform", f"baton-{environment}-handlers"
    platform = _read_stack(synth_dir, platform_stack)
    handlers = _read_stack(synth_dir, handlers_stack)

    sink = _only(platform, "google_logging_project_sink", platform_stack)
    destination = str(sink["destination"])
    if not destination.startswith(_SINK_DESTINATION):
        raise TopologyError(f"{platform_stack}: the sink does not write to Pub/Sub ({destination})")
    completion_topic = _topic_name(destination.removeprefix(_SINK_DESTINATION), platform, platform_stack)
    platform_topics = {str(topic["name"]) for topic in _resources(platform, "google_pubsub_topic").values()}

    subscriptions, function = _push_subscriptions(handlers, handlers_stack)
    push = subscriptions.get(completion_topic)
    if push is None:
        raise TopologyError(f"{handlers_stack}: no push subscription reads {completion_topic}, which the sink writes")
    variables = _block(function.get("service_config")).get("environment_variables", {})
    topics = {}
    for variable in ("BATON_RUN_EVENTS_TOPIC", "BATON_WORK_TOPIC"):
        if not variables.get(variable):
            raise TopologyError(f"{handlers_stack}: the completion function has no {variable}")
        topics[variable] = _topic_name(str(variables[variable]), handlers, handlers_stack)
    run_events_topic, work_topic = topics["BATON_RUN_EVENTS_TOPIC"], topics["BATON_WORK_TOPIC"]
    work = subscriptions.get(work_topic)
    if work is None:
        raise TopologyError(f"{handlers_stack}: no push subscription reads the work topic {work_topic}")
    missing = {push.dead_letter_topic, run_events_topic, work_topic} - platform_topics
    if missing:
        raise TopologyError(f"{platform_stack} does not declare topic(s) {', '.join(sorted(missing))}")

    holds = [
        str(sub["name"])
        for sub in _resources(platform, "google_pubsub_subscription").values()
        if _topic_name(str(sub["topic"]), platform, platform_stack) == push.dead_letter_topic
    ]
    if len(holds) != 1:
        raise TopologyError(f"{platform_stack}: expected one subscription on {push.dead_letter_topic}, found {len(holds)}")

    database = _only(platform, "google_spanner_database", platform_stack)
    project = _block(platform.get("provider", {}).get("google")).get("project") or sink.get("project")
    return Topology(
        environment=environment,
        project=str(project),
        completion_topic=completion_topic,
        dead_letter_topic=push.dead_letter_topic,
        run_events_topic=run_events_topic,
        sink_filter=str(sink["filter"]),
        push_subscription=push,
        ddl_statements=tuple(str(statement) for statement in database.get("ddl", ())),
        dead_letter_subscription=holds[0],
        work_topic=work_topic,
        work_subscription=work,
        functions=_functions(handlers, handlers_stack),
    )
