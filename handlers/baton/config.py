"""The one place that reads the environment. Everything else receives a `Settings`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baton.errors import BatonError

_HANDLERS_DIR = Path(__file__).resolve().parent.parent


class ConfigError(BatonError):
    """A required setting is missing or malformed."""


def default_manifests_dir() -> Path:
    """`manifests/` beside main.py in the deployed archive, else the repository's top-level one."""
    packaged = _HANDLERS_DIR / "manifests"
    return packaged if packaged.is_dir() else _HANDLERS_DIR.parent / "manifests"


@dataclass(frozen=True)
class Settings:
    environment: str
    project: str
    spanner_instance: str
    spanner_database: str
    bigquery_location: str
    manifests_dir: Path
    run_events_topic: str | None = None
    bigquery_endpoint: str | None = None  # the local façade; None means Google's API

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("BATON_ENV", "BATON_PROJECT") if not env.get(name)]
        if missing:
            raise ConfigError(f"missing environment variable(s): {', '.join(missing)}")
        environment = env["BATON_ENV"]
        if not environment.isidentifier() or environment.lower() != environment:
            raise ConfigError(f"BATON_ENV '{environment}' must be lowercase letters, digits or '_'")
        return cls(
            environment=environment,
            project=env["BATON_PROJECT"],
            spanner_instance=env.get("BATON_SPANNER_INSTANCE", f"baton-{environment}"),
            spanner_database=env.get("BATON_SPANNER_DATABASE", "baton"),
            bigquery_location=env.get("BATON_BQ_LOCATION", "US"),
            manifests_dir=Path(env["BATON_MANIFESTS_DIR"]) if env.get("BATON_MANIFESTS_DIR") else default_manifests_dir(),
            run_events_topic=env.get("BATON_RUN_EVENTS_TOPIC") or None,
            bigquery_endpoint=env.get("BATON_BIGQUERY_ENDPOINT") or None,
        )
