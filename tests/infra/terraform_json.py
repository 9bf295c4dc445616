"""Reading synthesized stacks in tests: resources by Terraform type, references, IAM bindings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("dev", "prod")
STACKS = tuple(f"baton-{env}-{kind}" for env in ENVIRONMENTS for kind in ("platform", "handlers"))
_REFERENCE = re.compile(r"\$\{([a-z0-9_]+)\.([A-Za-z0-9_-]+)\.")


def stack_path(synth_dir: Path, stack: str) -> Path:
    return synth_dir / "stacks" / stack / "cdk.tf.json"


def load(synth_dir: Path, stack: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stack_path(synth_dir, stack).read_text())
    return document


def resources(stack: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = stack.get("resource", {}).get(resource_type, {})
    return found


def only(stack: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = resources(stack, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def ref(resource_type: str, name: str, attribute: str) -> str:
    return f"${{{resource_type}.{name}.{attribute}}}"


def referenced(value: str) -> tuple[str, str]:
    """(type, name) of the resource an interpolation like ${type.name.attr} points at."""
    match = _REFERENCE.match(value)
    assert match, f"{value!r} is not a reference"
    return match.group(1), match.group(2)


def iam_resources(stack: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every IAM member, binding or policy resource: (type, name, body)."""
    for resource_type, found in stack.get("resource", {}).items():
        if re.search(r"_iam_(member|binding|policy)$", resource_type):
            for name, body in found.items():
                yield resource_type, name, body


def members_of(body: dict[str, Any]) -> list[str]:
    members = list(body.get("members", []))
    if "member" in body:
        members.append(body["member"])
    return members
