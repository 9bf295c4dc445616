"""The deployed handlers, run in this process through functions-framework's own app.

Each benchmark that needs numbers from inside a handler (time per event, Spanner
rows read) drives `handlers/main.py` here, exactly as a push request would, on the
local stack's Spanner emulator. It gets a database of its own, and a BigQuery
façade that accepts jobs.insert like the local one but never runs a job: the
benchmark decides when each job "finishes" and hands the handler the LogEntry
BigQuery would have written.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from google.cloud import spanner

from baton import bootstrap
from baton.adapters.spanner_migrations import load_migrations, migrate
from baton.adapters.spanner_store import SpannerRunStore
from baton.domain.naming import baton_labels, bigquery_job_id, new_run_id
from baton.domain.records import NewRun
from baton.domain.timing import ReconcilePolicy
from baton.domain.transitions.start import activate_run, plan_run
from baton.manifests.model import Manifest
from baton.service.orchestrator import Orchestrator
from benchmarks.pubsub_player import Deliveries, PubSubPlayer
from devstack.audit_bridge import AuditJob, JobErrorInfo, job_change_entry
from devstack.bigquery_facade import BigQueryFacade
from devstack.pubsub_admin import admin_clients, ensure_pull_subscription, ensure_topic, subscription_path
from devstack.stack import HANDLERS_MAIN, LocalStack

# Jobs.insert'ed into the façade stay RUNNING this long: far beyond any benchmark.
NEVER_S = 10.0**7
# Nothing listens on the discard port: a job the façade did try to run would fail loudly.
NO_ENGINE = "http://127.0.0.1:9"


def spanner_database(project: str, instance: str, name: str, ddl: Sequence[str] = ()) -> Any:
    """A database handle on the emulator the environment points at (the Spanner client library is untyped)."""
    client: Any = spanner.Client(project=project)
    return client.instance(instance).database(name, ddl_statements=list(ddl))


def functions_app(target: str) -> Any:
    """functions-framework's own app for one entry point of handlers/main.py, as `functions-framework` serves it."""
    from functions_framework import create_app

    make: Any = create_app
    return make(target, str(HANDLERS_MAIN))


def push_body(entry: Mapping[str, Any], subscription: str = "projects/baton-local/subscriptions/bench") -> bytes:
    """A Pub/Sub push request body carrying one LogEntry, as the push subscription sends it."""
    data = base64.b64encode(json.dumps(entry, separators=(",", ":")).encode()).decode()
    message = {
        "data": data,
        "messageId": secrets.token_hex(8),
        "publishTime": dt.datetime.now(dt.UTC).isoformat(),
        "attributes": {"logging.googleapis.com/timestamp": str(entry.get("timestamp", ""))},
    }
    return json.dumps({"message": message, "subscription": subscription}).encode()


def completion_entry(
    project: str, environment: str, run_id: str, job_key: str, attempt: int = 1, error: JobErrorInfo | None = None
) -> dict[str, Any]:
    """The LogEntry BigQuery writes when Baton's job succeeds (or fails with `error`), by the local stack's own code."""
    now = dt.datetime.now(dt.UTC)
    job = AuditJob(
        project=project,
        job_id=bigquery_job_id(environment, run_id, job_key, attempt),
        location="US",
        query="SELECT 1",
        labels=baton_labels(environment, run_id, job_key, attempt),
        create_time=now - dt.timedelta(seconds=1),
        start_time=now - dt.timedelta(seconds=1),
        end_time=now,
        statement_type="SELECT",
        total_slot_ms=10,
        total_processed_bytes=0,
        total_billed_bytes=0,
        output_row_count=1,
        cache_hit=False,
        error=error,
        errors=(error,) if error else (),
    )
    return job_change_entry(job, "RUNNING", "DONE")


@dataclass
class RowsRead:
    """Spanner rows read, and time spent, by every transaction of the handler's store while counting."""

    total: int = 0
    transactions: int = 0
    seconds: list[float] = field(default_factory=list)  # per transaction, retries included


@dataclass
class HandlerHarness:
    stack: LocalStack
    manifests_dir: Path
    facade: BigQueryFacade
    env: dict[str, str]
    database_name: str = ""
    work_subscription: str = ""
    continuations_published: int = 0  # by the in-process handlers, to the benchmark's work topic
    _counting: list[RowsRead] = field(default_factory=list)
    _players: dict[int, PubSubPlayer] = field(default_factory=dict)
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def start(cls, stack: LocalStack, manifests_dir: Path) -> HandlerHarness:
        facade = BigQueryFacade(NO_ENGINE, bridge=None, default_duration_s=NEVER_S)
        endpoint = facade.start()
        # Continuations go to a work topic of the benchmark's own: the stack's work topic is pushed to the
        # stack's function, which reads another database. The benchmark pulls them and pushes them itself.
        project, work_topic = stack.topology.project, f"{stack.topology.work_topic}-bench"
        with admin_clients(stack.pubsub.host) as (publisher, subscriber):
            ensure_topic(publisher, project, work_topic)
            ensure_pull_subscription(subscriber, project, topic=work_topic, name=f"{work_topic}-pull", ack_deadline_seconds=600)
        env = {
            **stack.settings,  # the deployed function's own settings, from the synthesized handlers stack
            **stack.spanner.env(),
            **stack.pubsub.env(),
            "BATON_BIGQUERY_ENDPOINT": endpoint,
            "BATON_MANIFESTS_DIR": str(manifests_dir),
            "BATON_WORK_TOPIC": work_topic,
            # As the local stack's functions: OpenLineage events to its file. The deployed lineage topic is not
            # provisioned in the Pub/Sub emulator, so publishing there only timed a 404 on every completion.
            "BATON_LINEAGE_FILE": str(stack.lineage_file),
        }
        harness = cls(stack=stack, manifests_dir=manifests_dir, facade=facade, env=env)
        harness.work_subscription = subscription_path(project, f"{work_topic}-pull")
        harness._saved_env = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        return harness

    @property
    def project(self) -> str:
        return self.stack.topology.project

    @property
    def environment(self) -> str:
        return self.env["BATON_ENV"]

    def use_database(self, name: str) -> SpannerRunStore:
        """Create and migrate a database of its own for one benchmark; the handlers use it from now on."""
        database = spanner_database(self.project, self.env["BATON_SPANNER_INSTANCE"], name)
        database.create().result(120)
        migrate(database, load_migrations())
        self.database_name = name
        self.env["BATON_SPANNER_DATABASE"] = name
        os.environ["BATON_SPANNER_DATABASE"] = name
        bootstrap.settings.cache_clear()
        bootstrap.orchestrator.cache_clear()
        self._instrument(bootstrap.orchestrator().store)
        self._count_continuations(bootstrap.orchestrator().work)
        return SpannerRunStore(database)

    def handler_store(self) -> SpannerRunStore:
        store = bootstrap.orchestrator().store
        assert isinstance(store, SpannerRunStore)
        return store

    def orchestrator(self) -> Orchestrator:
        """The handlers' own orchestrator (built from the environment, as in a function instance)."""
        return bootstrap.orchestrator()

    def handler_submitter(self) -> Any:
        return bootstrap.orchestrator().submitter

    def reconcile_policy(self) -> ReconcilePolicy:
        """The reconciler policy the deployed settings give (defaults unless the stack overrides them)."""
        policy = getattr(bootstrap.settings(), "reconcile", None)
        return policy if isinstance(policy, ReconcilePolicy) else ReconcilePolicy()

    def set_pools(self, pools: Mapping[str, int]) -> None:
        """Give the handlers these pools, as the environment's config would (read when the settings are built)."""
        value = json.dumps(dict(pools), separators=(",", ":"))
        self.env["BATON_POOLS"] = value
        self._saved_env.setdefault("BATON_POOLS", os.environ.get("BATON_POOLS"))
        os.environ["BATON_POOLS"] = value
        bootstrap.settings.cache_clear()
        bootstrap.orchestrator.cache_clear()

    def facade_jobs(self) -> list[dict[str, Any]]:
        """Every job BigQuery (the façade) holds, as its jobs.list would."""
        response = requests.get(f"{self.env['BATON_BIGQUERY_ENDPOINT']}/_facade/jobs", timeout=30)
        response.raise_for_status()
        jobs: list[dict[str, Any]] = response.json()["jobs"]
        return jobs

    def client(self, target: str) -> Any:
        return functions_app(target).test_client()

    def player(self, client: Any | None = None) -> PubSubPlayer:
        """Pub/Sub's part for the completion handler: redelivery with the stack's backoff, continuations pushed back."""
        return PubSubPlayer(
            client or self.client("bigquery_job_completed"),
            self.stack.topology.push_subscription,
            self.work_subscription,
            lambda: self.continuations_published,
            self.stack.pubsub.host,
        )

    def create_run(self, store: SpannerRunStore, manifest: Manifest, prepare: Callable[[NewRun], NewRun] | None = None) -> NewRun:
        """Write a run's rows as start_manifest does (batched under the mutation limit) and activate it."""
        plan = plan_run(manifest, {}, self.environment, new_run_id(), dt.datetime.now(dt.UTC))
        if prepare is not None:
            plan = prepare(plan)
        store.create_run(plan)
        store.transact(lambda tx: activate_run(tx, plan.run.run_id))
        return plan

    def completion(self, run_id: str, job_key: str, attempt: int = 1, error: JobErrorInfo | None = None) -> bytes:
        return push_body(completion_entry(self.project, self.environment, run_id, job_key, attempt, error))

    def post(self, client: Any, body: bytes, what: str = "event") -> tuple[float, dict[str, Any]]:
        """One event delivered as Pub/Sub would (redelivered after a refusal), then the continuations it handed on:
        (seconds for all of it, the event's JSON answer)."""
        player = self._players.get(id(client))
        if player is None:
            player = self._players[id(client)] = self.player(client)
        start = time.perf_counter()
        answer = player.deliver_all(body, what)
        return time.perf_counter() - start, answer

    def deliveries(self) -> dict[str, Any]:
        """What every player of this harness delivered so far, summed."""
        total = Deliveries()
        for player in self._players.values():
            log = player.log
            total.invocations += log.invocations
            total.redeliveries += log.redeliveries
            total.continuations += log.continuations
            total.statuses.update(log.statuses)
            total.seconds += log.seconds
            if log.longest_s > total.longest_s:
                total.longest_s, total.longest = log.longest_s, log.longest
        return total.to_json()

    def submitted(self, run_id: str, job_key: str, attempt: int = 1) -> bool:
        """Whether BigQuery (the façade) holds the job: the handler's jobs.insert happened."""
        job_id = bigquery_job_id(self.environment, run_id, job_key, attempt)
        return self.facade.job_state(self.project, job_id) is not None

    @contextmanager
    def rows_read(self) -> Iterator[RowsRead]:
        """Sum `last_rows_read` over the handler store's transactions inside the block."""
        counter = RowsRead()
        self._counting.append(counter)
        try:
            yield counter
        finally:
            self._counting.remove(counter)

    def _instrument(self, store: Any) -> None:
        transact = store.transact

        def counted(fn: Callable[[Any], Any]) -> Any:
            started = time.perf_counter()
            result = transact(fn)
            elapsed = time.perf_counter() - started
            for counter in self._counting:
                counter.total += store.last_rows_read
                counter.transactions += 1
                counter.seconds.append(elapsed)
            return result

        store.transact = counted

    def _count_continuations(self, work: Any) -> None:
        if work is None:
            raise RuntimeError("the handlers have no work topic: continuations would run in-process")
        publish = work.publish

        def counted(items: Sequence[Any]) -> None:
            publish(items)
            self.continuations_published += len(items)

        work.publish = counted

    def stop(self) -> None:
        for player in self._players.values():
            player.close()
        self.facade.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        bootstrap.settings.cache_clear()
        bootstrap.orchestrator.cache_clear()
