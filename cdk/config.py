"""Per-environment settings: the one input of the stacks, and the one place resource names are made.

A team adapts Baton to its projects by editing `ENVIRONMENTS`; the stacks never
read the process environment, so `cdktf synth` gives the same JSON everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_ENV_NAME = re.compile(r"^[a-z][a-z0-9]{1,7}$")  # short: it ends up in 30-character service account ids
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
_INGRESS_SETTINGS = frozenset({"ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"})
_MEMBER_KINDS = ("user:", "group:", "serviceAccount:", "domain:", "principal:", "principalSet:")


@dataclass(frozen=True)
class PushDelivery:
    """How Pub/Sub hands completion events to the handler: bounded retries with backoff, then the dead-letter topic."""

    ack_deadline_seconds: int = 120  # at least the completion function's timeout, so a slow success is not redelivered
    minimum_backoff_seconds: int = 10
    maximum_backoff_seconds: int = 600
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
    bigquery_location: str = "US"
    read_datasets: tuple[str, ...] = ()  # datasets the jobs read; destinations of manifests are added automatically
    write_datasets: tuple[str, ...] = ()  # extra datasets the jobs write besides manifest destinations
    operator_members: tuple[str, ...] = ()  # may call start_manifest and reconcile, e.g. "group:data-eng@example.com"
    # Who can reach start_manifest over the network; IAM still decides who may call it. Cloud Scheduler
    # counts as internal. "ALLOW_ALL" lets operators start runs from outside Google Cloud (checkov flags it).
    start_manifest_ingress: str = "ALLOW_INTERNAL_ONLY"
    reconcile_schedule: str = "*/5 * * * *"
    schedule_time_zone: str = "Etc/UTC"
    push: PushDelivery = PushDelivery()
    function_max_instances: int = 20

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
        for dataset in (*self.read_datasets, *self.write_datasets):
            if not _DATASET.match(dataset):
                raise ValueError(f"'{dataset}' is not a dataset id")
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

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def resource_name(self, suffix: str) -> str:
        """Function and service account names: `baton-<env>-<suffix>`."""
        return f"baton-{self.name}-{suffix}"


# Datasets the manifests write with DML (INSERT/MERGE) rather than through a job's `destination`;
# destinations are granted automatically. Edit together with manifests/.
DML_WRITTEN_DATASETS = ("landing", "history", "events")

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
            write_datasets=DML_WRITTEN_DATASETS,
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
            write_datasets=DML_WRITTEN_DATASETS,
            function_max_instances=50,
        ),
    }
)
