"""Offline checks of what `terraform apply` would trip on in a fresh project, over synthesized stacks.

Each check returns its violations (empty: the rule holds), so a test can show it passes on the real
stacks and fails on a copy broken on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from cdk.apis import apis_for
from cdk.config import ENVIRONMENTS

Stack = Mapping[str, Any]
_INTERPOLATION = re.compile(r"\$\{((?:data\.)?[a-z0-9_]+\.[A-Za-z0-9_-]+)[.}\[]")
_SERVICE_AGENT = re.compile(r"service-[^@]+@gcp-sa-([a-z0-9-]+)\.iam\.gserviceaccount\.com")
_ACCOUNT = re.compile(r"serviceAccount:([a-z0-9-]+)@([a-z0-9-]+)\.iam\.gserviceaccount\.com")
_TOPIC_PATH = re.compile(r"^projects/[^/]+/topics/([^/]+)$")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key != "//":
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _resources(stack: Stack) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for kind, found in stack.get("resource", {}).items():
        for name, body in found.items():
            yield kind, name, body


def dependency_graph(stack: Stack) -> dict[str, set[str]]:
    """address -> addresses it waits for: `depends_on` plus every `${type.name...}` it interpolates."""
    graph: dict[str, set[str]] = {}
    for kind, name, body in _resources(stack):
        edges = set(body.get("depends_on", []))
        for text in _strings({k: v for k, v in body.items() if k != "depends_on"}):
            edges |= {match.group(1) for match in _INTERPOLATION.finditer(text)}
        graph[f"{kind}.{name}"] = edges
    return graph


def waits_for(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        address = todo.pop()
        if address not in seen:
            seen.add(address)
            todo.extend(graph.get(address, ()))
    return seen


def enabled_apis(stack: Stack) -> dict[str, str]:
    """service -> address of the google_project_service enabling it."""
    return {
        body["service"]: f"google_project_service.{name}"
        for name, body in stack["resource"].get("google_project_service", {}).items()
    }


def api_order_violations(platform: Stack, handlers: Stack) -> list[str]:
    """Platform resources wait for their API's enablement; the handlers stack only needs APIs the platform enables."""
    graph, enabled = dependency_graph(platform), enabled_apis(platform)
    problems = []
    for kind, name, _ in _resources(platform):
        reached = waits_for(graph, f"{kind}.{name}")
        for api in apis_for(kind):
            if api not in enabled:
                problems.append(f"{kind}.{name} needs {api}, which the platform stack does not enable")
            elif enabled[api] not in reached:
                problems.append(f"{kind}.{name} does not wait for {api} to be enabled")
    for kind, name, _ in _resources(handlers):
        problems += [f"{kind}.{name} needs {api}, not enabled by the platform" for api in apis_for(kind) if api not in enabled]
    return problems


def _sleeps_between(graph: Mapping[str, set[str]], start: str, target: str) -> bool:
    """Does `start` wait for a time_sleep that itself waits for `target`?"""
    return any(a.startswith("time_sleep.") and target in waits_for(graph, a) for a in waits_for(graph, start))


def identity_order_violations(stack: Stack) -> list[str]:
    """A grant to a service identity or a sink's writer waits, through a time_sleep, for that identity to exist."""
    graph = dependency_graph(stack)
    problems = []
    for kind, name, body in _resources(stack):
        if not kind.endswith("_iam_member"):
            continue
        member = str(body.get("member", ""))
        for match in _INTERPOLATION.finditer(member):
            target = match.group(1)
            new_identity = target.startswith(("google_project_service_identity.", "google_logging_project_sink."))
            if new_identity and not _sleeps_between(graph, f"{kind}.{name}", target):
                problems.append(f"{kind}.{name} grants to {target} without waiting for it to propagate")
    return problems


def build_order_violations(stack: Stack) -> list[str]:
    """Each function waits, through a time_sleep, for every grant to its build service account."""
    graph = dependency_graph(stack)
    problems = []
    for name, function in stack["resource"].get("google_cloudfunctions2_function", {}).items():
        account = _INTERPOLATION.search(str(function["build_config"]["service_account"]))
        if account is None:
            problems.append(f"function {name} builds as {function['build_config']['service_account']}, not a stack account")
            continue
        grants = [
            f"{kind}.{grant}"
            for kind, grant, body in _resources(stack)
            if kind.endswith("_iam_member") and f"${{{account.group(1)}." in str(body.get("member", ""))
        ]
        if not grants:
            problems.append(f"function {name}: its build account has no grants")
        problems += [
            f"function {name} does not wait for {grant} to propagate"
            for grant in grants
            if not _sleeps_between(graph, f"google_cloudfunctions2_function.{name}", grant)
        ]
    return problems


# Referenced by name but created by no stack on purpose: the README's one-time bootstrap creates them.
DOCUMENTED_PREREQUISITES = frozenset(("bucket", config.state_bucket) for config in ENVIRONMENTS.values())


def created_by_name(stacks: Mapping[str, Stack]) -> set[tuple[str, str]]:
    created: set[tuple[str, str]] = set()
    for stack in stacks.values():
        for kind, _, body in _resources(stack):
            if kind == "google_pubsub_topic":
                created.add(("topic", body["name"]))
            elif kind == "google_bigquery_dataset":
                created.add(("dataset", body["dataset_id"]))
            elif kind == "google_storage_bucket":
                created.add(("bucket", body["name"]))
            elif kind == "google_service_account":
                created.add(("service account", body["account_id"]))
            elif kind == "google_project_service_identity":
                created.add(("service agent", body["service"].split(".")[0]))
            elif kind == "google_spanner_instance":
                created.add(("spanner instance", body["name"]))
            elif kind == "google_spanner_database":
                created.add(("spanner database", body["name"]))
    return created


def referenced_by_name(stacks: Mapping[str, Stack]) -> set[tuple[str, str, str]]:
    """(kind, name, where) of every literal name a resource points at (interpolations resolve inside a stack)."""
    found: set[tuple[str, str, str]] = set()

    def literal(value: Any) -> bool:
        return isinstance(value, str) and "${" not in value

    for stack_name, stack in stacks.items():
        backend = stack.get("terraform", {}).get("backend", {}).get("gcs")
        if backend:
            found.add(("bucket", backend["bucket"], f"{stack_name} backend"))
        for kind, name, body in _resources(stack):
            where = f"{stack_name}: {kind}.{name}"
            if kind == "google_bigquery_dataset_iam_member" and literal(body["dataset_id"]):
                found.add(("dataset", body["dataset_id"], where))
            if kind == "google_pubsub_topic_iam_member" and literal(body["topic"]):
                found.add(("topic", body["topic"], where))
            if kind == "google_spanner_database_iam_member":
                if literal(body["instance"]):
                    found.add(("spanner instance", body["instance"], where))
                if literal(body["database"]):
                    found.add(("spanner database", body["database"], where))
            for text in _strings(body):
                path = _TOPIC_PATH.match(text)
                if path:
                    found.add(("topic", path.group(1), where))
                for agent in _SERVICE_AGENT.finditer(text):
                    found.add(("service agent", agent.group(1), where))
                for account in _ACCOUNT.finditer(text):
                    found.add(("service account", account.group(1), where))
            if kind == "google_cloudfunctions2_function":
                source = body["build_config"]["source"]["storage_source"]["bucket"]
                if literal(source):
                    found.add(("bucket", source, where))
    return found


def unresolved_references(stacks: Mapping[str, Stack]) -> list[str]:
    known = created_by_name(stacks) | DOCUMENTED_PREREQUISITES
    return sorted(
        f"{where} names {kind} '{name}', which no stack creates"
        for kind, name, where in referenced_by_name(stacks)
        if (kind, name) not in known
    )
