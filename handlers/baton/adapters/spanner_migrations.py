"""spanner_schema/ is the one source of the DDL: ordered files, each one or more statements.

This module reads and splits them and `migrate` applies them; the infrastructure
stack embeds the same statements.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import spanner
from google.cloud.spanner_v1.database import Database

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "spanner_schema"
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
    # Branch-only: 0012 lands from another branch; at merge the files are renumbered and this goes back to 1..N.
    if versions != sorted(set(versions)) or (versions and versions[0] != 1):
        raise ValueError(f"schema versions must be 1..N without duplicates, got {versions}")
    return migrations


def all_statements(directory: Path = SCHEMA_DIR) -> list[str]:
    return [statement for migration in load_migrations(directory) for statement in migration.statements]


_MIGRATIONS_DDL = (
    "CREATE TABLE SchemaMigrations (Version INT64 NOT NULL, Name STRING(256) NOT NULL, "
    "AppliedAt TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true)) PRIMARY KEY (Version)"
)


def applied_versions(database: Database) -> set[int]:
    try:
        with database.snapshot() as snapshot:
            return {row[0] for row in snapshot.execute_sql("SELECT Version FROM SchemaMigrations")}
    except gexc.NotFound:
        return set()
    except gexc.InvalidArgument as exc:  # the emulator says "Table not found" this way
        if "SchemaMigrations" in str(exc):
            return set()
        raise


def migrate(database: Database, migrations: Sequence[Migration], timeout: float = 300) -> list[Migration]:
    """Apply the migrations not yet recorded, in order, recording each. Running it twice is a no-op."""
    applied = applied_versions(database)
    if not applied and not _has_table(database, "SchemaMigrations"):
        database.update_ddl([_MIGRATIONS_DDL]).result(timeout)
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        database.update_ddl(list(migration.statements)).result(timeout)
        with database.batch() as batch:
            batch.insert(
                "SchemaMigrations",
                ("Version", "Name", "AppliedAt"),
                [[migration.version, migration.name, spanner.COMMIT_TIMESTAMP]],
            )
        done.append(migration)
    return done


def _has_table(database: Database, name: str) -> bool:
    with database.snapshot() as snapshot:
        rows = list(
            snapshot.execute_sql(
                "SELECT t.TABLE_NAME FROM INFORMATION_SCHEMA.TABLES AS t WHERE t.TABLE_SCHEMA = '' AND t.TABLE_NAME = @name",
                params={"name": name},
                param_types={"name": spanner.param_types.STRING},
            )
        )
    return bool(rows)
