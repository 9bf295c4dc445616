"""A seeded, layered DAG manifest for the chaos suite: wide fan-out from one root, random links, one wide fan-in."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Dag:
    needs: dict[str, tuple[str, ...]]  # job key -> upstream keys, in manifest order

    @property
    def keys(self) -> list[str]:
        return list(self.needs)

    def dependents(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {key: [] for key in self.needs}
        for key, upstreams in self.needs.items():
            for upstream in upstreams:
                result[upstream].append(key)
        return result

    def depth(self) -> int:
        level: dict[str, int] = {}
        for key, upstreams in self.needs.items():
            level[key] = 1 + max((level[u] for u in upstreams), default=0)
        return max(level.values())


def layered_dag(seed: int, layers: int = 10, width: int = 30) -> Dag:
    """1 root fanning out to the first layer, `layers` layers of `width` jobs each needing 1-3 jobs of the
    layer before (sometimes one further back), and a final job needing the whole last layer."""
    rng = random.Random(seed)
    needs: dict[str, tuple[str, ...]] = {"root": ()}
    previous = ["root"]
    earlier: list[str] = []
    for layer in range(layers):
        current = [f"l{layer:02d}_j{index:02d}" for index in range(width)]
        for key in current:
            if previous == ["root"]:
                chosen = ["root"]
            else:
                chosen = rng.sample(previous, rng.randint(1, 3))
                if earlier and rng.random() < 0.2:
                    extra = rng.choice(earlier)
                    if extra not in chosen:
                        chosen.append(extra)
            needs[key] = tuple(sorted(chosen))
        earlier += previous if previous != ["root"] else []
        previous = current
    needs["fan_in"] = tuple(previous)
    return Dag(needs)


def write_manifest(dag: Dag, directory: Path, name: str, *, labels: dict[str, str], retry: dict[str, Any]) -> Path:
    """The DAG as a manifest the handlers load: trivial SQL, so the local engine is not the bottleneck."""
    document = {
        "name": name,
        "description": "Generated for the chaos suite",
        "labels": labels,
        "retry": retry,
        "jobs": [{"key": key, "sql": "SELECT 1 AS one", **({"needs": list(up)} if up else {})} for key, up in dag.needs.items()],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
