"""Start-up: starting a 10,000-job run through start_manifest, with its Spanner writes batched.

Two 10,000-job manifests with one root each (a chain, and a root -> 9,998 -> sink
fan-out/fan-in), read from YAML as the handler reads any manifest. The time is the
whole request: load and validate the manifest, write every row in commits under
the mutation limit, activate the run and submit the root. Each commit's size is
estimated from what it writes: one mutation per column value, plus, per row, the
columns of each secondary index entry (read from INFORMATION_SCHEMA), since
Spanner's 80,000-mutation limit counts index entries too.

The floor, in the same rounds: the same rows, planned beforehand, written by the
store alone (the same batched commits, no request, no YAML, no validation).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.adapters.spanner_mutations import MUTATION_LIMIT
from baton.domain.naming import new_run_id
from baton.domain.transitions.start import plan_run
from benchmarks import shapes
from benchmarks.handler_harness import HandlerHarness

JOBS = 10_000


def index_cells_per_row(database: Any) -> dict[str, int]:
    """Per table, the mutations one inserted row adds to secondary indexes (index columns + primary key)."""
    sql = (
        "SELECT c.TABLE_NAME, c.INDEX_NAME, c.INDEX_TYPE, c.COLUMN_NAME FROM INFORMATION_SCHEMA.INDEX_COLUMNS AS c "
        "WHERE c.TABLE_SCHEMA = ''"
    )
    with database.snapshot() as snapshot:
        rows = list(snapshot.execute_sql(sql))
    primary: dict[str, set[str]] = defaultdict(set)
    indexes: dict[tuple[str, str], set[str]] = defaultdict(set)
    for table, index, kind, column in rows:
        if kind == "PRIMARY_KEY":
            primary[table].add(column)
        else:
            indexes[(table, index)].add(column)
    cells: dict[str, int] = defaultdict(int)
    for (table, _), columns in indexes.items():
        cells[table] += len(columns | primary[table])
    return dict(cells)


@dataclass
class _Commits:
    """Every batch commit through the store's database: its estimated mutations."""

    index_cells: dict[str, int]
    mutations: list[int] = field(default_factory=list)
    _open: list[int] = field(default_factory=list)

    def batch_started(self) -> None:
        self._open.append(0)

    def inserted(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
        self._open[-1] += len(rows) * (len(columns) + self.index_cells.get(table, 0))

    def batch_committed(self) -> None:
        self.mutations.append(self._open.pop())


class _CountingBatch:
    def __init__(self, commits: _Commits, inner: Any) -> None:
        self._commits = commits
        self._inner = inner

    def __enter__(self) -> _CountingBatch:
        self._batch = self._inner.__enter__()
        self._commits.batch_started()
        return self

    def insert(self, table: str, columns: Sequence[str], values: Sequence[Any]) -> None:
        self._commits.inserted(table, columns, values)
        self._batch.insert(table, columns, values)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __exit__(self, *exc: Any) -> Any:
        result = self._inner.__exit__(*exc)
        self._commits.batch_committed()
        return result


class _CountingDatabase:
    """The store's database, with every `batch()` commit counted; everything else passes through."""

    def __init__(self, inner: Any, commits: _Commits) -> None:
        self._inner = inner
        self._commits = commits

    def batch(self, *args: Any, **kwargs: Any) -> _CountingBatch:
        return _CountingBatch(self._commits, self._inner.batch(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _write_alone(harness: HandlerHarness, store: Any, data: dict[str, Any]) -> float:
    """The floor: the run's rows, planned beforehand, written by the store in the same batched commits."""
    plan = plan_run(shapes.build(data), {}, harness.environment, new_run_id(), dt.datetime.now(dt.UTC))
    started = time.perf_counter()
    store.create_run(plan)
    return time.perf_counter() - started


def run(harness: HandlerHarness, progress: Callable[[str], None], repeats: int = 3, jobs: int = JOBS) -> dict[str, Any]:
    store = harness.use_database("bench-startup")
    # Each repeat starts the same manifest while the earlier runs are still RUNNING (only their roots ran), so
    # they must overlap rather than queue: what is measured is a run that starts.
    manifests = {
        "chain": {**shapes.chain(f"start-chain-{jobs}", jobs), "concurrency": "allow"},
        "wide": {**shapes.diamond(f"start-wide-{jobs}", jobs - 2), "concurrency": "allow"},
    }
    for data in manifests.values():
        shapes.write_yaml(data, harness.manifests_dir)
    client = harness.client("start_manifest")
    handler_store = harness.handler_store()
    commits = _Commits(index_cells_per_row(store.database))
    handler_store.database = _CountingDatabase(handler_store.database, commits)  # type: ignore[assignment]
    create_run = handler_store.create_run
    load = harness.orchestrator().manifests.load
    phase: dict[str, float] = {}

    def timed_create_run(new_run: Any) -> None:
        started = time.perf_counter()
        create_run(new_run)
        phase["write_s"] = time.perf_counter() - started

    def timed_load(name: str) -> Any:
        started = time.perf_counter()
        manifest = load(name)
        phase["load_s"] = time.perf_counter() - started
        return manifest

    handler_store.create_run = timed_create_run  # type: ignore[method-assign]
    harness.orchestrator().manifests.load = timed_load  # type: ignore[method-assign]
    samples: dict[str, list[dict[str, float]]] = {shape: [] for shape in manifests}
    for attempt in range(repeats):
        for shape, data in manifests.items():
            progress(f"start-up: {jobs:,}-job {shape} run ({attempt + 1}/{repeats})")
            commits.mutations.clear()
            started = time.perf_counter()
            response = client.post("/", json={"manifest": data["name"], "params": {}})
            total = time.perf_counter() - started
            answer = response.get_json(silent=True) or {}
            if response.status_code != 200 or answer.get("jobs") != jobs:
                raise RuntimeError(f"start_manifest answered {response.status_code}: {answer}")
            run = store.get_run(answer["run_id"])
            root = shapes.chain_key(0) if shape == "chain" else "root"
            if run is None or str(run.status) != "RUNNING" or not harness.submitted(run.run_id, root):
                raise RuntimeError(f"the {shape} run should be RUNNING with its root submitted: {run}")
            progress(f"start-up: the floor, the same rows written alone ({shape})")
            floor_s = _write_alone(harness, store, data)
            samples[shape].append(
                {
                    "total_s": total,
                    "floor_s": floor_s,
                    "load_s": phase["load_s"],
                    "write_s": phase["write_s"],
                    "commits": float(len(commits.mutations)),
                    "max_mutations": float(max(commits.mutations)),
                }
            )
    results = []
    for shape, runs in samples.items():
        median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        results.append(
            {
                "shape": shape,
                "jobs": jobs,
                "edges": sum(len(job.get("needs", ())) for job in manifests[shape]["jobs"]),
                "repeats": repeats,
                **median,
                "other_s": median["total_s"] - median["load_s"] - median["write_s"],
                "within_limit": all(r["max_mutations"] <= MUTATION_LIMIT for r in runs),
                "ratio": median["total_s"] / median["floor_s"],
            }
        )
    return {"mutation_limit": MUTATION_LIMIT, "results": results}
