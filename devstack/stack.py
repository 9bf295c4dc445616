"""The whole local stack, wired as the cloud is: for the demo, the end-to-end tests and benchmarks.

Topology (topic names, sink filter, push policy, DDL, function settings) comes
from the synthesized dev stacks, never restated here. The handlers run under
functions-framework and know nothing of what is local: they talk to "BigQuery"
and receive "Pub/Sub" pushes exactly as deployed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from devstack.audit_bridge import DeliveryPolicy, PubSubPublisher
from devstack.bigquery_facade import LocalBigQuery
from devstack.cloud_storage import StorageEmulator
from devstack.emulators import FunctionServer, PubSubEmulator, SpannerEmulator, create_spanner_database, emulator_env
from devstack.faults import FaultBoard, FaultClient
from devstack.function_front import FunctionFront
from devstack.processes import ProcessSupervisor, reap_orphans
from devstack.pubsub_admin import PubSubTopology, PushSubscriptionSpec, provision_pubsub
from devstack.topology import PushSubscription, Topology, load_topology

REPO = Path(__file__).resolve().parent.parent
HANDLERS_MAIN = REPO / "handlers" / "main.py"
CDK_APP_DIR = REPO / "cdk"
ENTRY_POINTS = ("bigquery_job_completed", "start_manifest", "reconcile")


def cdk_app() -> ModuleType:
    """The checkout's CDKTF app package, loaded from beside this file.

    `cdk` is not an installed package, so importing it by name works only when the working directory
    happens to be the checkout; a script that uses the local stack from anywhere else would fail.
    """
    loaded = sys.modules.get("cdk")
    if loaded is not None:
        where = Path(loaded.__file__ or "").resolve().parent
        if where != CDK_APP_DIR:
            raise ImportError(f"a different 'cdk' package is already imported ({where}); Baton's app is {CDK_APP_DIR}")
        return loaded
    init = CDK_APP_DIR / "__init__.py"
    spec = importlib.util.spec_from_file_location("cdk", init, submodule_search_locations=[str(CDK_APP_DIR)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the CDKTF app from {CDK_APP_DIR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["cdk"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["cdk"]
        raise
    return module


def synthesize(outdir: Path, environment: str) -> Path:
    """Synthesize one environment's stacks in-process (the provider import is slow: do it once)."""
    # jsii reads these when it starts its Node runtime: no end-of-life banner, a project-local cache.
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(REPO / ".cache" / "jsii"))
    os.environ.setdefault("CHECKPOINT_DISABLE", "1")
    cdk_app()
    synth: Callable[..., Path] = importlib.import_module("cdk.synth").synth
    return synth(outdir, environments=(environment,))


def function_settings(synth_dir: Path, environment: str) -> dict[str, dict[str, str]]:
    """Environment variables of each deployed function, by entry point, from the handlers stack."""
    path = synth_dir / "stacks" / f"baton-{environment}-handlers" / "cdk.tf.json"
    document = json.loads(path.read_text())
    functions = document["resource"]["google_cloudfunctions2_function"].values()
    return {f["build_config"]["entry_point"]: dict(f["service_config"]["environment_variables"]) for f in functions}


@dataclass
class LocalStackOptions:
    work_dir: Path
    environment: str = "dev"
    job_duration_s: float = 0.3  # simulated BigQuery run time of every job
    duration_fn: Callable[[str, Mapping[str, str]], float | None] | None = None
    delivery_policy: DeliveryPolicy | None = None  # drop/duplicate/delay audit entries (chaos)
    manifests_dir: Path = REPO / "manifests"
    synth_dir: Path | None = None  # reuse an existing synthesis
    handle_signals: bool = True
    extra_handler_env: Mapping[str, str] = field(default_factory=dict)
    handlers_source: Path = HANDLERS_MAIN  # what functions-framework serves; the chaos suite wraps the real handlers
    # (minimum, maximum) redelivery backoff in seconds instead of the stack's, so that a test of dead-lettering
    # after the stack's max delivery attempts is bounded; None keeps the stack's retry policy.
    push_backoff_s: tuple[float, float] | None = None
    # Datasets declared on top of the environment's (as a test environment's own config would), in its location.
    extra_datasets: Sequence[str] = ()


def _with_datasets(env: Mapping[str, str], extra: Sequence[str]) -> dict[str, str]:
    from baton.config import declared_datasets
    from baton.manifests.datasets import DeclaredDatasets

    declared = declared_datasets(env)
    location = env.get("BATON_BQ_LOCATION", "US")
    datasets = {**(declared.datasets if declared else {}), **{name: location for name in extra}}
    return {**env, "BATON_DATASETS": DeclaredDatasets(datasets).to_env()}


class LocalStack:
    """Start with `LocalStack.start(options)`; stop with `.stop()` or a `with` block."""

    def __init__(self, options: LocalStackOptions, supervisor: ProcessSupervisor) -> None:
        self.options = options
        self.supervisor = supervisor
        self.topology: Topology
        self.spanner: SpannerEmulator
        self.pubsub: PubSubEmulator
        self.bigquery: LocalBigQuery
        self.storage: StorageEmulator
        self.pubsub_paths: PubSubTopology
        self.functions: dict[str, FunctionServer] = {}
        self.function_env: dict[str, dict[str, str]] = {}
        self.fronts: dict[str, FunctionFront] = {}  # Cloud Run's side of each function: callers go through it
        self.faults = FaultBoard()  # every fault off until a test turns it on (see faults())
        self.settings: dict[str, str] = {}

    @classmethod
    def start(cls, options: LocalStackOptions, progress: Callable[[str], None] = lambda _: None) -> LocalStack:
        options.work_dir.mkdir(parents=True, exist_ok=True)
        reap_orphans(options.work_dir)
        supervisor = ProcessSupervisor(work_dir=options.work_dir, handle_signals=options.handle_signals)
        stack = cls(options, supervisor)
        try:
            stack._start(progress)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _start(self, progress: Callable[[str], None]) -> None:
        options = self.options
        synth_dir = options.synth_dir
        if synth_dir is None:
            progress("synthesizing the dev stacks")
            synth_dir = synthesize(options.work_dir / "cdktf.out", options.environment)
        self.topology = load_topology(synth_dir, options.environment)
        settings = function_settings(synth_dir, options.environment)
        if options.extra_datasets:
            settings = {entry: _with_datasets(env, options.extra_datasets) for entry, env in settings.items()}
        self.settings = dict(settings["bigquery_job_completed"])
        project = self.topology.project

        progress("starting the Spanner and Pub/Sub emulators")
        self.spanner = SpannerEmulator.start(self.supervisor)
        self.pubsub = PubSubEmulator.start(self.supervisor, project=project)

        progress("applying spanner_schema/")
        create_spanner_database(
            self.spanner.host,
            project=project,
            instance=self.settings["BATON_SPANNER_INSTANCE"],
            database=self.settings["BATON_SPANNER_DATABASE"],
        )
        self.migrate()

        progress("starting the Cloud Storage emulator")
        self.storage = StorageEmulator.start(self.supervisor)

        progress("starting the local BigQuery and its audit-log bridge")
        publisher = PubSubPublisher(project, self.topology.completion_topic, emulator_host=self.pubsub.host)
        self.bigquery = LocalBigQuery.start(
            options.work_dir / "bigquery",
            self.topology.sink_filter,
            publisher,
            options.job_duration_s,
            policy=options.delivery_policy,
            duration_fn=options.duration_fn,
            supervisor=self.supervisor,
            location=self.settings.get("BATON_BQ_LOCATION", "US"),
            faults=self.faults,
            storage_endpoint=self.storage.endpoint,
        )
        progress("creating the environment's datasets")
        self.create_datasets(sorted(self.declared_datasets()))

        progress("serving the handlers with functions-framework")
        for entry_point in ENTRY_POINTS:
            deployed = self.topology.functions[entry_point]
            env = {
                **settings[entry_point],
                **self.spanner.env(),
                **self.pubsub.env(),
                # Each function reaches BigQuery as its own service account, as deployed.
                "BATON_BIGQUERY_ENDPOINT": self.bigquery.facade.endpoint_for(deployed.service_account_email),
                "BATON_MANIFESTS_DIR": str(options.manifests_dir),
                "PYTHONUNBUFFERED": "1",
                **options.extra_handler_env,
            }
            self.function_env[entry_point] = env
            self.functions[entry_point] = FunctionServer.start(
                self.supervisor, source=options.handlers_source, target=entry_point, env=env, name=f"fn-{entry_point}"
            )
            self.fronts[entry_point] = FunctionFront(deployed, self.functions[entry_point].url, self.faults)
            self.fronts[entry_point].start()

        progress("creating topics and the push subscriptions from the stack")

        def spec(push: PushSubscription) -> PushSubscriptionSpec:
            return PushSubscriptionSpec(
                name=push.name,
                push_endpoint=self.fronts[push.entry_point].url,
                ack_deadline_seconds=push.ack_deadline_seconds,
                min_backoff_seconds=options.push_backoff_s[0] if options.push_backoff_s else push.min_backoff_seconds,
                max_backoff_seconds=options.push_backoff_s[1] if options.push_backoff_s else push.max_backoff_seconds,
                max_delivery_attempts=push.max_delivery_attempts,
            )

        self.pubsub_paths = provision_pubsub(
            self.pubsub.host,
            project,
            completion_topic=self.topology.completion_topic,
            dead_letter_topic=self.topology.dead_letter_topic,
            run_events_topic=self.topology.run_events_topic,
            push_subscription=spec(self.topology.push_subscription),
            dead_letter_subscription=self.topology.dead_letter_subscription,
            work_topic=self.topology.work_topic,
            work_subscription=spec(self.topology.work_subscription),
        )

    def restart_function(self, entry_point: str) -> FunctionServer:
        """Serve a function again on its port, as Cloud Run starts a new instance behind the same URL.

        What is left of the old server (a worker outliving its master) is stopped first, so the port is free.
        """
        old = self.functions[entry_point]
        self.supervisor.stop(old.process)
        self.functions[entry_point] = FunctionServer.start(
            self.supervisor,
            source=self.options.handlers_source,
            target=entry_point,
            env=self.function_env[entry_point],
            port=old.port,
            name=old.process.name,
        )
        return self.functions[entry_point]

    def client_environment(self) -> dict[str, str]:
        """The variables with which a client on this machine (the `baton` CLI) reaches this stack as the handlers do."""
        return {
            **self.settings,
            **self.spanner.env(),
            **self.pubsub.env(),
            "BATON_BIGQUERY_ENDPOINT": self.bigquery.endpoint,
            "BATON_MANIFESTS_DIR": str(self.options.manifests_dir),
            "BATON_COMPLETION_TOPIC": self.topology.completion_topic,
            "BATON_DEAD_LETTER_SUBSCRIPTION": self.topology.dead_letter_subscription,
            **self.storage.env(),
        }

    def operator_settings(self) -> Any:
        """The `Settings` an operator's `baton` (or a test acting as one) uses against this stack."""
        from baton.config import Settings

        return Settings.from_env({**self.client_environment(), **self.options.extra_handler_env})

    def migrate(self) -> None:
        from baton.adapters.spanner_migrations import load_migrations, migrate

        migrate(self.database(), load_migrations())

    def fault_client(self) -> FaultClient:
        """Turns this stack's cloud faults on and off, over the local BigQuery's /_faults (see devstack.faults)."""
        return FaultClient(self.bigquery.endpoint)

    def client_env(self) -> Any:
        """A block in which Google clients built in this process talk to this stack's emulators."""
        return emulator_env({**self.spanner.env(), **self.pubsub.env()})

    def database(self) -> Any:
        """A Spanner database handle bound to this stack's emulator (the process environment is left alone)."""
        from google.cloud import spanner

        with emulator_env(self.spanner.env()):
            client = spanner.Client(project=self.topology.project)
        return client.instance(self.settings["BATON_SPANNER_INSTANCE"]).database(self.settings["BATON_SPANNER_DATABASE"])

    def bigquery_client(self) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.topology.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.bigquery.endpoint),
            location=self.settings.get("BATON_BQ_LOCATION", "US"),
        )

    def declared_datasets(self) -> dict[str, str]:
        """The environment's datasets (id -> location), as its config declares them to the functions (BATON_DATASETS)."""
        from baton.config import declared_datasets

        declared = declared_datasets(self.settings)
        return dict(declared.datasets) if declared is not None else {}

    def create_datasets(self, names: Sequence[str]) -> None:
        """Create datasets in the local BigQuery, each in its declared location (the environment's by default)."""
        from google.cloud import bigquery

        client = self.bigquery_client()
        locations = self.declared_datasets()
        for name in names:
            dataset = bigquery.Dataset(f"{self.topology.project}.{name}")
            dataset.location = locations.get(name, self.settings.get("BATON_BQ_LOCATION", "US"))
            client.create_dataset(dataset, exists_ok=True)

    def start_run(self, manifest: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call start_manifest over HTTP, as Cloud Scheduler or the CLI would."""
        import requests

        response = requests.post(self.fronts["start_manifest"].url, json={"manifest": manifest, "params": params}, timeout=60)
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"start_manifest answered {response.status_code}: {body.get('message', body)}")
        return body

    def reconcile(self) -> dict[str, Any]:
        import requests

        response = requests.post(self.fronts["reconcile"].url, timeout=120)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        for front in self.fronts.values():
            front.stop()
        if getattr(self, "bigquery", None) is not None:
            self.bigquery.stop()
        self.supervisor.close()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m devstack.stack synth OUTDIR`: the synthesis alone, for a process that should not keep jsii's
    Node runtime alive afterwards (``baton dev``)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="synthesize one environment's stacks")
    synth.add_argument("outdir", type=Path)
    synth.add_argument("--environment", default="dev")
    args = parser.parse_args(argv)
    synthesize(args.outdir, args.environment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
