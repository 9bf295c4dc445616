"""Where the app finds what it deploys: handler code, manifests and the Spanner schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RepositorySources:
    """The three inputs the stacks read from disk; tests and the local stack may point elsewhere."""

    handlers_dir: Path
    manifests_dir: Path
    schema_dir: Path

    @classmethod
    def default(cls, root: Path = REPOSITORY_ROOT) -> RepositorySources:
        return cls(handlers_dir=root / "handlers", manifests_dir=root / "manifests", schema_dir=root / "spanner_schema")
