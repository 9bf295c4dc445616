"""Per-environment settings: the one input of the stacks, and the one place resource names are made.

A team adapts Baton to its projects by editing `ENVIRONMENTS`; the stacks never
read the process environment, so `cdktf synth` gives the same JSON everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from baton.domain.naming import POOL_NAME_PATTERN

_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,7}$")  # short: it ends up in 30-character service account ids
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
_INGRESS_SETTINGS = frozenset({"ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"})
_MEMBER_KINDS = ("user:", "group:", "serviceAccount:", "domain:", "principal:", "principalSet:")


@dataclass(frozen=True)
class Dataset:
    """A BigQuery dataset Baton's jobs read or write: created by the platform stack, declared only here."""

    dataset_id: str
    description: str
    access: Literal["write", "read"] = "write"  # what the functions get: dataEditor or dataViewer
    location: str | None = None  # None: the environment's bigquery_location; anything else must equal it
    table_expiration_days: int | None = None  # tables delete themselves this long after they are written

    def __post_init__(self) -> None:
        if not _DATASET.match(self.dataset_id):
            raise ValueError(f"'{self.dataset_id}' is not a dataset id")
        if self.access not in ("write", "read"):
            raise ValueError(f"dataset '{self.dataset_id}': access must be 'write' or 'read'")


@dataclass(frozen=True)
class PushDelivery:
    """How Pub/Sub hands completion events to the handler: bounded retries with backoff, then the dead-letter topic."""

    # Above the completion function's timeout (checked by EnvironmentConfig): a push that is still being
    # processed must not be redelivered to a second instance, which would only find it done and count an attempt.
    ack_deadline_seconds: int = 180
    minimum_backoff_seconds: int = 10
    maximum_backoff_seconds: int = 600
    # 10 attempts with 10 s..600 s exponential backoff span roughly 40 minutes: enough to ride out a Spanner
    # or BigQuery brownout or a deploy, short enough that a poison message reaches the dead-letter hold (and
    # the dead-letter alert) the same hour. Capacity refusals (429) no longer burn attempts because the
    # completion function is sized for the largest fan-out; and a job whose event was dead-lettered is still
    # healed by the reconciler from BigQuery's own state, so more attempts would buy nothing.
    max_delivery_attempts: int = 10

    def __post_init__(self) -> None:
        # Pub/Sub's own limits, checked here so a bad edit fails at synth rather than at apply.
        if not 10 <= self.ack_deadline_seconds <= 600:
            raise ValueError("ack_deadline_seconds must be within 10..600")
        if not 0 <= self.minimum_backoff_seconds <= self.maximum_backoff_seconds <= 600:
            raise ValueError("backoff must satisfy 0 <= minimum <= maximum <= 600 seconds")
        if not 5 <= self.max_delivery_attempts <= 100:
            raise ValueError("max_delivery_attempts must be within 5..100")


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between dev and prod."""

    name: str
    project: str
    region: str
    spanner_config: str
    spanner_processing_units: int
    deletion_protection: bool
    schedules_enabled: bool  # manifest schedules; the reconciler always runs, it is what heals lost events
    state_bucket: str  # GCS bucket holding the Terraform state of both stacks
    labels: Mapping[str, str] = field(default_factory=dict)
    bigquery_location: str = "US"  # where the functions run jobs; every dataset lives here too
    # Every dataset the jobs read or write (manifest destinations and DML targets alike): the platform stack
    # creates them, the handlers stack grants on them, and synth refuses a manifest writing one not listed.
    datasets: tuple[Dataset, ...] = ()
    # Named concurrency limits (pool name -> size): a job naming a pool (`pool:` in its manifest) waits QUEUED
    # while that many of the pool's jobs are released and not yet done in BigQuery (docs/pools.md).
    # Jobs naming no pool are not limited. Passed to the functions as BATON_POOLS; manifests may name no other.
    pools: Mapping[str, int] = field(default_factory=dict)
    # Operators: invoke start_manifest and reconcile, read Spanner, cancel Baton's BigQuery jobs, pull and
    # replay dead letters (what the `baton` CLI does), e.g. "group:data-eng@example.com".
    operator_members: tuple[str, ...] = ()
    # Where alerts go: an email address for a notification channel the platform stack creates.
    alert_email: str = ""
    # Who can reach start_manifest over the network; IAM still decides who may call it. Cloud Scheduler
    # counts as internal. "ALLOW_ALL" lets operators start runs from outside Google Cloud (checkov flags it).
    start_manifest_ingress: str = "ALLOW_INTERNAL_ONLY"
    reconcile_schedule: str = "*/5 * * * *"
    schedule_time_zone: str = "Etc/UTC"
    push: PushDelivery = PushDelivery()
    function_max_instances: int = 20  # start_manifest and reconcile: operator- and schedule-driven, low traffic
    # The largest number of completion events that can arrive at once: the widest fan-out or fan-in wave of
    # a manifest (jobs finishing together), documented in docs/infrastructure.md. The completion function must
    # hold them all in flight (max instances x concurrency), or Cloud Run answers 429 and each refusal
    # counts as a delivery attempt toward the dead-letter topic.
    largest_fan_out: int = 500
    completion_concurrency: int = 20  # requests per instance; needs 1 vCPU (Cloud Run's rule above 1)
    completion_max_instances: int = 30
    completion_timeout_seconds: int = 120  # one Spanner transaction plus a bounded batch of jobs.insert calls
    # The completion path imports ~179 MiB (clients, pydantic, manifests); 512 MiB leaves the rest for
    # `completion_concurrency` requests in flight (gRPC buffers, a released batch's specs) without an OOM restart.
    function_memory: str = "512Mi"

    def __post_init__(self) -> None:
        if not _ENV_NAME.match(self.name):
            raise ValueError(f"environment name '{self.name}' must be 2-8 lowercase letters or digits")
        if self.spanner_processing_units < 100 or (
            self.spanner_processing_units % 100 if self.spanner_processing_units < 1000 else self.spanner_processing_units % 1000
        ):
            raise ValueError("spanner_processing_units must be a multiple of 100 below 1000, else of 1000")
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
                raise ValueError(f"label {key}={value} is not a valid Google Cloud label")
        ids = [dataset.dataset_id for dataset in self.datasets]
        if len(ids) != len(set(ids)):
            raise ValueError(f"datasets are declared twice: {sorted(i for i in ids if ids.count(i) > 1)}")
        for dataset in self.datasets:
            if dataset.location is not None and dataset.location.lower() != self.bigquery_location.lower():
                raise ValueError(
                    f"dataset '{dataset.dataset_id}' location {dataset.location} differs from the functions' "
                    f"BigQuery location {self.bigquery_location}: jobs could not read or write it"
                )
        object.__setattr__(self, "datasets", tuple(replace(d, location=self.bigquery_location) for d in self.datasets))
        for pool, size in self.pools.items():
            if not POOL_NAME_PATTERN.fullmatch(pool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"pool '{pool}': the name must be lowercase letters, digits, '_' or '-', the size at least 1")
        if self.alert_email and not _EMAIL.match(self.alert_email):
            raise ValueError(f"alert_email '{self.alert_email}' is not an email address")
        if self.push.ack_deadline_seconds <= self.completion_timeout_seconds:
            raise ValueError(
                "push.ack_deadline_seconds must exceed completion_timeout_seconds, or slow successes are redelivered"
            )
        if self.completion_concurrency > 1000 or self.completion_concurrency < 1:
            raise ValueError("completion_concurrency must be within 1..1000 (Cloud Run's limit)")
        if self.completion_max_instances * self.completion_concurrency < self.largest_fan_out:
            raise ValueError(
                f"completion_max_instances x completion_concurrency ({self.completion_max_instances} x "
                f"{self.completion_concurrency}) must hold largest_fan_out ({self.largest_fan_out}) pushes in flight"
            )
        if self.start_manifest_ingress not in _INGRESS_SETTINGS:
            raise ValueError(f"start_manifest_ingress must be one of {', '.join(sorted(_INGRESS_SETTINGS))}")
        for member in self.operator_members:
            if member in _PUBLIC_MEMBERS or not member.startswith(_MEMBER_KINDS):
                raise ValueError(f"operator member '{member}' must name a principal, never the public")
        # A read-only view: the config is shared by both stacks and must not drift between them.
        object.__setattr__(self, "labels", MappingProxyType({"app": "baton", "baton_env": self.name, **self.labels}))

    # Stack names are a contract with the docs and the local stack.
    @property
    def platform_stack_name(self) -> str:
        return f"baton-{self.name}-platform"

    @property
    def handlers_stack_name(self) -> str:
        return f"baton-{self.name}-handlers"

    # Names shared by both stacks: the handlers stack refers to platform resources by these,
    # so the stacks need no cross-stack outputs and each synthesized file stands on its own.
    @property
    def reconcile_interval_seconds(self) -> int:
        """How often reconcile runs, which its lookup schedule must know; only `*/N * * * *` is supported."""
        match = re.fullmatch(r"\*/([1-9][0-9]?) \* \* \* \*", self.reconcile_schedule)
        if not match:
            raise ValueError(f"reconcile_schedule '{self.reconcile_schedule}' must have the form '*/N * * * *'")
        return int(match.group(1)) * 60

    @property
    def completion_topic(self) -> str:
        return f"baton-{self.name}-job-completed"

    @property
    def dead_letter_topic(self) -> str:
        return f"baton-{self.name}-job-completed-dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        return f"baton-{self.name}-job-completed-dead-letter-hold"

    @property
    def run_events_topic(self) -> str:
        return f"baton-{self.name}-run-events"

    @property
    def lineage_topic(self) -> str:
        """OpenLineage run events of each BigQuery job, for a lineage backend to subscribe to."""
        return f"baton-{self.name}-lineage"

    @property
    def push_subscription(self) -> str:
        return f"baton-{self.name}-job-completed-push"

    @property
    def work_topic(self) -> str:
        """Continuations: the rest of a wide release or skip, handed on by bigquery_job_completed to itself."""
        return f"baton-{self.name}-work"

    @property
    def work_push_subscription(self) -> str:
        return f"baton-{self.name}-work-push"

    @property
    def sink_name(self) -> str:
        return f"baton-{self.name}-bigquery-job-completed"

    @property
    def spanner_instance(self) -> str:
        return f"baton-{self.name}"

    @property
    def spanner_database(self) -> str:
        return "baton"

    @property
    def source_bucket(self) -> str:
        return f"{self.project}-baton-{self.name}-functions"

    @property
    def artifact_repository(self) -> str:
        return f"baton-{self.name}-functions"

    # Function names: the handlers stack deploys them, the platform stack's alerts watch them.
    @property
    def completion_function(self) -> str:
        return self.resource_name("job-completed")

    @property
    def start_function(self) -> str:
        return self.resource_name("start-manifest")

    @property
    def reconcile_function(self) -> str:
        return self.resource_name("reconcile")

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.completion_function, self.start_function, self.reconcile_function)

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def resource_name(self, suffix: str) -> str:
        """Function and service account names: `baton-<env>-<suffix>`."""
        return f"baton-{self.name}-{suffix}"


# The datasets manifests/ writes: destinations (consume, trusted) and DML targets (landing, history, events).
# Edit together with manifests/; synth refuses a destination that is not declared here.
SCRATCH_DATASET = "baton_scratch"

BATON_DATASETS = (
    Dataset("landing", "Raw rows as loaded, one table per source"),
    Dataset("history", "Slowly changing history of the landing tables"),
    Dataset("trusted", "Checked, deduplicated tables that downstream jobs trust"),
    Dataset("consume", "Tables for reports and consumers"),
    Dataset("events", "Business events derived from the daily loads"),
    # Data checks write their offending rows here (BATON_SCRATCH_DATASET), so whichever function heals a check,
    # under its own service account, can read them: an anonymous result table is its creator's alone.
    Dataset(SCRATCH_DATASET, "Data checks' offending rows, one table per check job; kept a day", table_expiration_days=1),
)

# The pools manifests/ may name: `bigquery` for manifests that set it as their default (`pool: bigquery`), to
# keep their jobs together under BigQuery's interactive-query queueing, `heavy` for the few large rebuilds that
# should not run side by side. A job naming no pool is not limited: there is no implicit default pool.
BATON_POOLS: Mapping[str, int] = MappingProxyType({"bigquery": 100, "heavy": 4})

ENVIRONMENTS: Mapping[str, EnvironmentConfig] = MappingProxyType(
    {
        "dev": EnvironmentConfig(
            name="dev",
            project="baton-dev-project",
            region="us-central1",
            spanner_config="regional-us-central1",
            spanner_processing_units=100,
            deletion_protection=False,
            schedules_enabled=False,
            state_bucket="baton-dev-project-tfstate",
            labels={"team": "data-platform"},
            datasets=BATON_DATASETS,
            pools=BATON_POOLS,
            alert_email="data-platform-alerts@example.com",
            operator_members=("group:data-platform-operators@example.com",),
        ),
        "prod": EnvironmentConfig(
            name="prod",
            project="baton-prod-project",
            region="us-central1",
            spanner_config="regional-us-central1",
            spanner_processing_units=1000,
            deletion_protection=True,
            schedules_enabled=True,
            state_bucket="baton-prod-project-tfstate",
            labels={"team": "data-platform"},
            datasets=BATON_DATASETS,
            pools=BATON_POOLS,
            alert_email="data-platform-alerts@example.com",
            operator_members=("group:data-platform-operators@example.com",),
            function_max_instances=50,
        ),
    }
)
