"""A local stack of its own for the scale suite: the real stack with the Spanner commit budget lowered.

With BATON_SPANNER_MUTATION_BUDGET at 10,000 a transition writes at most ~320 job rows
per commit, so a 1,000-job run takes every chunked path (release, skip, cancel, retry)
and every hand-on by message (the work topic), as a 10,000-job run does at the real
budget in `make bench`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from baton.adapters.spanner_store import SpannerRunStore
from baton.config import Settings
from devstack.stack import REPO, LocalStack, LocalStackOptions

BUDGET = 10_000
WIDTH = 998  # root -> WIDTH -> sink: 1,000 jobs


def wide_manifest(name: str, width: int, *, root_sql: str = "SELECT 1 AS one", middle_ms: int | None = None) -> dict[str, Any]:
    middle_labels = {"sim_duration_ms": str(middle_ms)} if middle_ms else {}
    middle = [f"m{index:04d}" for index in range(width)]
    jobs: list[dict[str, Any]] = [{"key": "root", "sql": root_sql}]
    jobs += [{"key": key, "sql": "SELECT 1 AS one", "needs": ["root"], "labels": middle_labels} for key in middle]
    jobs.append({"key": "sink", "sql": "SELECT 1 AS one", "needs": middle})
    return {"name": name, "retry": {"max_attempts": 1}, "jobs": jobs}


MANIFESTS = {
    "wide": wide_manifest("wide", WIDTH),
    # Fails at its root until the table it reads exists: retried after the test creates it.
    "gated": wide_manifest("gated", WIDTH, root_sql="SELECT * FROM scale.gate"),
    "slow": wide_manifest("slow", WIDTH, middle_ms=120_000),
}


@dataclass
class ScaleStack:
    stack: LocalStack
    store: SpannerRunStore
    manifests_dir: Path

    def settings(self) -> Settings:
        """What the operator CLI uses to reach this stack (it cancels and retries like `baton`); use it inside
        `stack.client_env()`, since it also publishes (run events, continuations) to the stack's Pub/Sub."""
        settings: Settings = self.stack.operator_settings()
        return settings

    def handler_log(self) -> str:
        return "".join(server.process.log_path.read_text(errors="replace") for server in self.stack.functions.values())


@pytest.fixture(scope="package")
def scale(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleStack]:
    manifests = tmp_path_factory.mktemp("scale-manifests")
    for name, document in MANIFESTS.items():
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    options = LocalStackOptions(
        work_dir=REPO / ".devstack" / f"scale-{os.getpid()}",
        job_duration_s=0.0,
        manifests_dir=manifests,
        synth_dir=synth_dir,
        push_backoff_s=(1.0, 2.0),
        extra_handler_env={"BATON_SPANNER_MUTATION_BUDGET": str(BUDGET)},
        extra_datasets=("scale",),  # the gated manifest reads scale.gate
    )
    with LocalStack.start(options) as stack:
        yield ScaleStack(stack, SpannerRunStore(stack.database(), mutation_budget=BUDGET), manifests)
