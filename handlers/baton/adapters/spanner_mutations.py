"""How many mutations a commit costs, counted the way Spanner counts them, so the store can refuse what Spanner would.

Spanner refuses a commit over 80,000 mutations with INVALID_ARGUMENT; the emulator does
not. An insert or update counts one mutation per column written; each secondary index
whose columns it touches adds the index entry's columns (its key and the table's
primary key), for the old entry removed and the new one written. This errs on the
high side, which is the safe side. PRIMARY_KEYS and INDEXES mirror spanner_schema/
(tests/integration/test_mutation_budget.py keeps them in step).
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.domain.limits import MUTATION_LIMIT

__all__ = ["GENERATED", "INDEXES", "MUTATION_LIMIT", "PRIMARY_KEYS", "row_mutations"]

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "Runs": ("RunId",),
    "RunJobs": ("RunId", "JobKey"),
    "RunJobDependents": ("RunId", "JobKey", "DependentKey"),
    "RunJobChecks": ("RunId", "JobKey", "Attempt", "CheckName"),
    "Catalog": ("TableRef",),
    "ManifestControls": ("ManifestName",),
    "RunEventOutbox": ("RunId", "EventId"),
    "Pools": ("PoolName",),
    "PoolQueue": ("PoolName", "Rank", "QueuedAt", "RunId", "JobKey"),
    "Backfills": ("BackfillId",),
}

INDEXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Runs": (
        ("RunsByManifest", ("ManifestName", "CreatedAt")),
        ("OpenRuns", ("OpenStatus", "RunId")),
        ("OpenRunsByQueue", ("Queue", "OpenStatus", "CreatedAt")),
        ("RunsByBackfill", ("BackfillId", "CreatedAt")),
        ("RunsByDeadline", ("DeadlineShard", "OpenDeadline")),
    ),
    "RunJobs": (
        ("OpenRunJobs", ("OpenStatus", "RunId", "JobKey")),
        ("RunJobsByDeadline", ("DeadlineShard", "OpenDeadline")),
    ),
}
# Stored generated columns: written (and counted) whenever a column they derive from is written.
GENERATED: dict[str, dict[str, tuple[str, ...]]] = {
    "Runs": {"OpenStatus": ("Status",), "OpenDeadline": ("Status", "Deadline"), "DeadlineShard": ()},
    # DeadlineShard derives from the key, which no update changes, so it is never rewritten.
    "RunJobs": {"OpenStatus": ("Status",), "OpenDeadline": ("Status", "Deadline"), "DeadlineShard": ()},
}


def row_mutations(table: str, columns: Sequence[str]) -> int:
    """Mutations of writing `columns` of one row of `table`."""
    written = set(columns)
    written |= {name for name, sources in GENERATED.get(table, {}).items() if written & set(sources)}
    count = len(written)
    keys = set(PRIMARY_KEYS[table])
    for _, index_columns in INDEXES.get(table, ()):
        if written & (set(index_columns) - keys):  # the primary key is in every write; it moves no entry
            count += 2 * len(set(index_columns) | keys)
    return count
