"""Bad input through the real functions-framework app, with the core on the Spanner emulator.

One database per package, seeded with one run of elt_daily whose root has finished
and whose second layer is running: events about it that must change nothing have
something to change. Each case snapshots every table before and after.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app

from baton import bootstrap
from baton.adapters.spanner_store import SpannerRunStore
from baton.config import Settings
from baton.domain.records import Completion
from baton.errors import TransientError
from baton.manifests.loading import ManifestRepository
from baton.service.orchestrator import Orchestrator
from baton.service.ports import DeadLetters
from tests.fakes import RecordingSubmitter
from tests.fixtures import load_fixture

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / "handlers" / "main.py")
PROJECT = "baton-local"
ENTRY_POINTS = ("start_manifest", "bigquery_job_completed", "reconcile")

BROKEN_MANIFESTS = {
    "broken_yaml": "name: broken_yaml\njobs: [ {key: a, sql: 'SELECT 1'\n",
    "cyclic": "name: cyclic\njobs:\n  - {key: a, sql: SELECT 1, needs: [b]}\n  - {key: b, sql: SELECT 1, needs: [a]}\n",
    "misnamed": "name: other_name\njobs:\n  - {key: a, sql: SELECT 1}\n",
    "needs_param": "name: needs_param\nparams:\n  region: {type: STRING}\njobs:\n  - {key: a, sql: SELECT @region}\n",
}


def pubsub_refusal(data: bytes, attributes: Mapping[str, str]) -> str | None:
    """Why Pub/Sub would refuse to publish this message, if it would: 10 MB, 100 attributes, 256-byte keys,
    1,024-byte values, UTF-8 text."""
    try:
        sizes = [(len(key.encode()), len(value.encode())) for key, value in attributes.items()]
    except UnicodeEncodeError:
        return "attributes are not UTF-8"
    if len(attributes) > 100:
        return f"{len(attributes)} attributes, over 100"
    if any(key > 256 or value > 1024 for key, value in sizes):
        return "an attribute over its size limit"
    if len(data) + sum(key + value for key, value in sizes) > 10_000_000:
        return "message over 10 MB"
    return None


class RecordingDeadLetters(DeadLetters):
    def __init__(self) -> None:
        self.letters: list[tuple[bytes, dict[str, str]]] = []
        self.fail: Exception | None = None

    def put(self, data: bytes, attributes: Mapping[str, str]) -> str | None:
        """Refuses what Pub/Sub refuses (as the adapter reports it: TransientError), so a dead letter that
        could never be published shows up as the endless 503 it would be."""
        if self.fail is not None:
            raise self.fail
        problem = pubsub_refusal(data, attributes)
        if problem:
            raise TransientError(f"dead-letter topic: 400 {problem}")
        self.letters.append((data, dict(attributes)))
        return f"dead-letter-{len(self.letters)}"


@dataclass
class World:
    database: Any
    store: SpannerRunStore
    submitter: RecordingSubmitter
    orchestrator: Orchestrator
    settings: Settings
    run_id: str
    dead_letters: RecordingDeadLetters = field(default_factory=RecordingDeadLetters)
    apps: dict[str, Any] = field(default_factory=dict)

    def client(self, entry_point: str) -> Any:
        if entry_point not in self.apps:
            self.apps[entry_point] = create_app(entry_point, MAIN)  # type: ignore[no-untyped-call]
        return self.apps[entry_point].test_client()

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: what 'no run state changes' is checked against."""
        with self.database.snapshot(multi_use=True) as snapshot:
            tables = [
                row[0] for row in snapshot.execute_sql("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ''")
            ]
            return {
                table: sorted(tuple(row) for row in snapshot.execute_sql(f"SELECT * FROM {table}")) for table in sorted(tables)
            }

    def calls(self) -> tuple[int, int, int]:
        return len(self.submitter.requests), len(self.submitter.lookups), len(self.submitter.cancelled)


@pytest.fixture(scope="package")
def world(spanner_emulator: object, tmp_path_factory: pytest.TempPathFactory) -> World:
    from google.cloud import spanner

    from baton.adapters.spanner_migrations import load_migrations, migrate
    from tests.conftest import INSTANCE

    database = spanner.Client(project=PROJECT).instance(INSTANCE).database(f"bad{secrets.token_hex(5)}")  # type: ignore[no-untyped-call]
    database.create().result(120)
    migrate(database, load_migrations())
    manifests = tmp_path_factory.mktemp("manifests")
    shutil.copytree(REPO / "manifests", manifests, dirs_exist_ok=True)
    for name, text in BROKEN_MANIFESTS.items():
        (manifests / f"{name}.yaml").write_text(text)
    settings = Settings(
        environment="dev",
        project=PROJECT,
        spanner_instance=INSTANCE,
        spanner_database=database.database_id,
        bigquery_location="US",
        manifests_dir=manifests,
    )
    store = SpannerRunStore(database)
    submitter = RecordingSubmitter()
    orchestrator = Orchestrator(store, submitter, ManifestRepository(manifests), "dev")
    run = orchestrator.start("elt_daily", {"run_date": "2026-11-27"})
    orchestrator.complete(Completion(run.run_id, "land_raw", 1, f"baton_dev_{run.run_id}_land_raw_1"))
    return World(database, store, submitter, orchestrator, settings, run.run_id)


@pytest.fixture(autouse=True)
def wired(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(bootstrap, "orchestrator", lambda: world.orchestrator)
    monkeypatch.setattr(bootstrap, "settings", lambda: world.settings)
    monkeypatch.setattr(bootstrap, "dead_letters", lambda: world.dead_letters)
    world.dead_letters.fail = None
    return world


# --- building messages ----------------------------------------------------------------------------


def push(data: bytes | None, **message: Any) -> bytes:
    """A push body around `data` (None: no data field)."""
    body: dict[str, Any] = {"messageId": "4711", **message}
    if data is not None:
        body["data"] = base64.b64encode(data).decode()
    return json.dumps(
        {"message": body, "subscription": "projects/baton-local/subscriptions/baton-dev-job-completed-push"}
    ).encode()


def entry_push(entry: object) -> bytes:
    return push(json.dumps(entry).encode())


def done_entry(run_id: str, job_key: str, attempt: int = 1, *, env: str = "dev", job_id: str | None = None) -> dict[str, Any]:
    """A well-formed DONE entry of one of Baton's jobs."""
    entry = load_fixture("audit_log/job_done_success")
    job = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    job_id = job_id or f"baton_{env}_{run_id}_{job_key}_{attempt}"
    job["jobName"] = f"projects/{PROJECT}/jobs/{job_id}"
    entry["protoPayload"]["resourceName"] = job["jobName"]
    job["jobConfig"]["labels"].update(baton_env=env, baton_run=run_id, baton_job=job_key, baton_attempt=str(attempt))
    return entry


def one_line(message: object) -> bool:
    return isinstance(message, str) and "\n" not in message and 0 < len(message) <= 500
