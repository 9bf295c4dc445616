"""The stateful half of an environment: topics, the log sink, Spanner. Handler deploys never touch it."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import GcsBackend, TerraformOutput, TerraformResourceLifecycle, TerraformStack
from cdktf_cdktf_provider_google.data_google_project import DataGoogleProject
from cdktf_cdktf_provider_google.logging_project_sink import LoggingProjectSink
from cdktf_cdktf_provider_google.project_service import ProjectService
from cdktf_cdktf_provider_google.provider import GoogleProvider
from cdktf_cdktf_provider_google.pubsub_subscription import PubsubSubscription, PubsubSubscriptionExpirationPolicy
from cdktf_cdktf_provider_google.pubsub_topic import PubsubTopic
from cdktf_cdktf_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktf_cdktf_provider_google.spanner_database import SpannerDatabase
from cdktf_cdktf_provider_google.spanner_instance import SpannerInstance
from constructs import Construct

from cdk.config import EnvironmentConfig
from cdk.sink_filter import sink_filter

# Every API either stack uses; enabled here because the platform stack is deployed first.
REQUIRED_APIS = (
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "spanner.googleapis.com",
    "storage.googleapis.com",
)
DEAD_LETTER_RETENTION = "604800s"  # 7 days, Pub/Sub's maximum: time to read a dead letter and replay it


def pubsub_service_agent(project_number: str) -> str:
    """Pub/Sub's own identity, which forwards undeliverable messages to the dead-letter topic."""
    return f"serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


class PlatformStack(TerraformStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, ddl: Sequence[str]) -> None:
        super().__init__(scope, config.platform_stack_name)
        self.config = config
        GcsBackend(self, bucket=config.state_bucket, prefix=f"baton/{config.platform_stack_name}")
        GoogleProvider(self, "google", project=config.project, region=config.region, default_labels=dict(config.labels))
        project = DataGoogleProject(self, "project", project_id=config.project)
        apis = [
            ProjectService(self, f"api_{api.split('.')[0]}", project=config.project, service=api, disable_on_destroy=False)
            for api in REQUIRED_APIS
        ]
        # Stateful resources refuse `destroy` in protected environments, beyond Spanner's own flags.
        protect = TerraformResourceLifecycle(prevent_destroy=True) if config.deletion_protection else None

        self.completion_topic = PubsubTopic(
            self, "completion_topic", project=config.project, name=config.completion_topic, depends_on=apis
        )
        self.dead_letter_topic = PubsubTopic(
            self, "dead_letter_topic", project=config.project, name=config.dead_letter_topic, depends_on=apis
        )
        # A topic without subscriptions drops what it receives; this one keeps dead letters for inspection and replay.
        PubsubSubscription(
            self,
            "dead_letter_hold",
            project=config.project,
            name=config.dead_letter_subscription,
            topic=self.dead_letter_topic.id,
            ack_deadline_seconds=60,
            message_retention_duration=DEAD_LETTER_RETENTION,
            expiration_policy=PubsubSubscriptionExpirationPolicy(ttl=""),  # never expires for lack of pulls
        )
        PubsubTopicIamMember(
            self,
            "dead_letter_publisher_pubsub_agent",
            project=config.project,
            topic=self.dead_letter_topic.name,
            role="roles/pubsub.publisher",
            member=pubsub_service_agent(project.number),
        )
        self.run_events_topic = PubsubTopic(
            self, "run_events_topic", project=config.project, name=config.run_events_topic, depends_on=apis
        )
        # OpenLineage run events of every job, for a lineage backend (Marquez, Dataplex) to subscribe to.
        self.lineage_topic = PubsubTopic(
            self, "lineage_topic", project=config.project, name=config.lineage_topic, depends_on=apis
        )
        # Work a transition could not finish in one commit or one invocation (a 10,000-wide release).
        self.work_topic = PubsubTopic(self, "work_topic", project=config.project, name=config.work_topic, depends_on=apis)

        self.sink = LoggingProjectSink(
            self,
            "completion_sink",
            project=config.project,
            name=config.sink_name,
            description="BigQuery job completions of Baton's jobs in this environment",
            destination=f"pubsub.googleapis.com/{self.completion_topic.id}",
            filter=sink_filter(config.name),
            unique_writer_identity=True,
            depends_on=apis,
        )
        # The sink's own identity may publish to this one topic, and nothing else.
        PubsubTopicIamMember(
            self,
            "completion_publisher_sink",
            project=config.project,
            topic=self.completion_topic.name,
            role="roles/pubsub.publisher",
            member=self.sink.writer_identity,
        )

        self.spanner_instance = SpannerInstance(
            self,
            "spanner_instance",
            project=config.project,
            name=config.spanner_instance,
            config=config.spanner_config,
            display_name=f"Baton {config.name}",
            processing_units=config.spanner_processing_units,
            default_backup_schedule_type="AUTOMATIC" if config.deletion_protection else "NONE",
            force_destroy=not config.deletion_protection,
            lifecycle=protect,
            depends_on=apis,
        )
        self.spanner_database = SpannerDatabase(
            self,
            "spanner_database",
            project=config.project,
            instance=self.spanner_instance.name,
            name=config.spanner_database,
            database_dialect="GOOGLE_STANDARD_SQL",
            # spanner_schema/ in order; new files append statements, which the provider applies as DDL updates.
            ddl=list(ddl),
            deletion_protection=config.deletion_protection,  # Terraform refuses to delete
            enable_drop_protection=config.deletion_protection,  # Spanner refuses to drop, whoever asks
            lifecycle=protect,
        )

        TerraformOutput(self, "completion_topic_id", value=self.completion_topic.id)
        TerraformOutput(self, "dead_letter_subscription_name", value=config.dead_letter_subscription)
        TerraformOutput(self, "run_events_topic_id", value=self.run_events_topic.id)
        TerraformOutput(self, "work_topic_id", value=self.work_topic.id)
        TerraformOutput(self, "lineage_topic_id", value=self.lineage_topic.id)
        TerraformOutput(self, "spanner_database_id", value=self.spanner_database.id)
