"""spanner_schema/ is the one source of the DDL: ordered files, each one or more statements.

This module only reads and splits them; `spanner_store.migrate` applies them, and
the infrastructure stack embeds the same statements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent.parent.parent / "spanner_schema"
_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> list[str]:
    """Statements separated by ';', with `--` comments dropped (Spanner DDL has no string literals with ';')."""
    lines = [line.split("--", 1)[0].rstrip() for line in sql.splitlines()]
    text = "\n".join(line for line in lines if line.strip())
    return [" ".join(part.split()) for part in text.split(";") if part.strip()]


def load_migrations(directory: Path = SCHEMA_DIR) -> list[Migration]:
    """All migrations in version order; refuses gaps, duplicates and stray files so mistakes show early."""
    migrations = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: schema files must be named NNNN_description.sql")
        migrations.append(Migration(int(match.group(1)), path.name, tuple(split_statements(path.read_text()))))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"schema versions must be 1..N without gaps, got {versions}")
    return migrations


def all_statements(directory: Path = SCHEMA_DIR) -> list[str]:
    return [statement for migration in load_migrations(directory) for statement in migration.statements]
