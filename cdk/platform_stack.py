"""The stateful half of an environment: APIs, topics, the log sink, Spanner, datasets, alerts, operator grants.

Handler deploys never touch it. The first apply creates everything in order: each resource waits for the
API it needs, and grants to Google-managed identities wait until those identities exist and have propagated.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import GcsBackend, ITerraformDependable, TerraformOutput, TerraformResourceLifecycle, TerraformStack
from cdktf_cdktf_provider_google.bigquery_dataset import BigqueryDataset
from cdktf_cdktf_provider_google.data_google_project import DataGoogleProject
from cdktf_cdktf_provider_google.logging_project_sink import LoggingProjectSink
from cdktf_cdktf_provider_google.project_iam_custom_role import ProjectIamCustomRole
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
from cdktf_cdktf_provider_google.project_service import ProjectService
from cdktf_cdktf_provider_google.provider import GoogleProvider
from cdktf_cdktf_provider_google.pubsub_subscription import PubsubSubscription, PubsubSubscriptionExpirationPolicy
from cdktf_cdktf_provider_google.pubsub_subscription_iam_member import PubsubSubscriptionIamMember
from cdktf_cdktf_provider_google.pubsub_topic import PubsubTopic
from cdktf_cdktf_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktf_cdktf_provider_google.spanner_database import SpannerDatabase
from cdktf_cdktf_provider_google.spanner_database_iam_member import SpannerDatabaseIamMember
from cdktf_cdktf_provider_google.spanner_instance import SpannerInstance
from cdktf_cdktf_provider_time.provider import TimeProvider
from cdktf_cdktf_provider_time.sleep import Sleep
from constructs import Construct

from cdk.alerts import Alerts
from cdk.apis import REQUIRED_APIS, apis_for
from cdk.config import EnvironmentConfig
from cdk.service_agents import ServiceIdentity, google_beta_provider
from cdk.sink_filter import sink_filter

DEAD_LETTER_RETENTION = "604800s"  # 7 days, Pub/Sub's maximum: time to read a dead letter and replay it
# IAM propagation: a new service agent or writer identity can be refused as a grant member for up to a minute.
IDENTITY_PROPAGATION = "60s"
OPERATOR_JOB_PERMISSIONS = (
    "bigquery.jobs.create",  # retry resubmits jobs
    "bigquery.jobs.get",
    "bigquery.jobs.list",
    "bigquery.jobs.listAll",
    "bigquery.jobs.update",  # cancel a job another identity (a function) created
)


def pubsub_service_agent(project_number: str) -> str:
    """Pub/Sub's own identity, which forwards undeliverable messages to the dead-letter topic."""
    return f"serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


class PlatformStack(TerraformStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, ddl: Sequence[str]) -> None:
        super().__init__(scope, config.platform_stack_name)
        self.config = config
        GcsBackend(self, bucket=config.state_bucket, prefix=f"baton/{config.platform_stack_name}")
        GoogleProvider(self, "google", project=config.project, region=config.region, default_labels=dict(config.labels))
        beta = google_beta_provider(self, config.project, config.region)
        TimeProvider(self, "time")
        DataGoogleProject(self, "project", project_id=config.project)
        self.apis = {
            api: ProjectService(self, f"api_{api.split('.')[0]}", project=config.project, service=api, disable_on_destroy=False)
            for api in REQUIRED_APIS
        }
        # Stateful resources refuse `destroy` in protected environments, beyond Spanner's own flags.
        protect = TerraformResourceLifecycle(prevent_destroy=True) if config.deletion_protection else None

        # Pub/Sub creates its agent lazily; created here, it exists before the grants below name it.
        self.pubsub_agent = ServiceIdentity(
            self,
            "pubsub_agent",
            provider=beta,
            project=config.project,
            service="pubsub.googleapis.com",
            depends_on=self._needs("google_project_service_identity"),
        )

        self.completion_topic = self._topic("completion_topic", config.completion_topic)
        self.dead_letter_topic = self._topic("dead_letter_topic", config.dead_letter_topic)
        # A topic without subscriptions drops what it receives; this one keeps dead letters for inspection and replay.
        self.dead_letter_hold = PubsubSubscription(
            self,
            "dead_letter_hold",
            project=config.project,
            name=config.dead_letter_subscription,
            topic=self.dead_letter_topic.id,
            ack_deadline_seconds=60,
            message_retention_duration=DEAD_LETTER_RETENTION,
            expiration_policy=PubsubSubscriptionExpirationPolicy(ttl=""),  # never expires for lack of pulls
        )
        self.run_events_topic = self._topic("run_events_topic", config.run_events_topic)
        # OpenLineage run events of every job, for a lineage backend (Marquez, Dataplex) to subscribe to.
        self.lineage_topic = self._topic("lineage_topic", config.lineage_topic)
        # Work a transition could not finish in one commit or one invocation (a 10,000-wide release).
        self.work_topic = self._topic("work_topic", config.work_topic)

        self.sink = LoggingProjectSink(
            self,
            "completion_sink",
            project=config.project,
            name=config.sink_name,
            description="BigQuery job completions of Baton's jobs in this environment",
            destination=f"pubsub.googleapis.com/{self.completion_topic.id}",
            filter=sink_filter(config.name),
            unique_writer_identity=True,
            depends_on=self._needs("google_logging_project_sink"),
        )
        # The agent and the sink's writer identity are new principals: IAM may refuse them for up to a minute.
        identities_ready = Sleep(
            self, "service_identities_propagated", create_duration=IDENTITY_PROPAGATION, depends_on=[self.pubsub_agent, self.sink]
        )
        PubsubTopicIamMember(
            self,
            "dead_letter_publisher_pubsub_agent",
            project=config.project,
            topic=self.dead_letter_topic.name,
            role="roles/pubsub.publisher",
            member=self.pubsub_agent.member,
            depends_on=[identities_ready],
        )
        # The sink's own identity may publish to this one topic, and nothing else.
        PubsubTopicIamMember(
            self,
            "completion_publisher_sink",
            project=config.project,
            topic=self.completion_topic.name,
            role="roles/pubsub.publisher",
            member=self.sink.writer_identity,
            depends_on=[identities_ready],
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
            depends_on=self._needs("google_spanner_instance"),
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

        self.datasets = {
            dataset.dataset_id: BigqueryDataset(
                self,
                f"dataset_{dataset.dataset_id}",
                project=config.project,
                dataset_id=dataset.dataset_id,
                location=dataset.location,
                description=dataset.description,
                default_table_expiration_ms=dataset.table_expiration_days * 86_400_000 if dataset.table_expiration_days else None,
                labels={**config.labels, "baton_access": dataset.access},
                # Access is granted only by the stacks' dataset IAM members, so no `access` block here: one
                # would make every apply reset grants made on the dataset's IAM policy.
                delete_contents_on_destroy=not config.deletion_protection,
                lifecycle=protect,
                depends_on=self._needs("google_bigquery_dataset"),
            )
            for dataset in config.datasets
        }

        self._operator_access()
        Alerts(self, "alerts", config=config, depends_on=self._needs("google_logging_metric", "google_monitoring_alert_policy"))

        TerraformOutput(self, "completion_topic_id", value=self.completion_topic.id)
        TerraformOutput(self, "dead_letter_subscription_name", value=config.dead_letter_subscription)
        TerraformOutput(self, "run_events_topic_id", value=self.run_events_topic.id)
        TerraformOutput(self, "work_topic_id", value=self.work_topic.id)
        TerraformOutput(self, "lineage_topic_id", value=self.lineage_topic.id)
        TerraformOutput(self, "spanner_database_id", value=self.spanner_database.id)

    def _needs(self, *resource_types: str) -> list[ITerraformDependable]:
        """The API enablements a resource of these types must wait for (cdk/apis.py)."""
        return [self.apis[api] for api in sorted({a for t in resource_types for a in apis_for(t)})]

    def _topic(self, id_: str, name: str) -> PubsubTopic:
        return PubsubTopic(self, id_, project=self.config.project, name=name, depends_on=self._needs("google_pubsub_topic"))

    def _operator_access(self) -> None:
        """What the `baton` CLI does for operators: read and change runs in Spanner, cancel Baton's BigQuery jobs
        (submitted by the functions, so cancelling needs bigquery.jobs.update on others' jobs), and pull and
        replay dead letters. Invoking start_manifest and reconcile is granted by the handlers stack."""
        config = self.config
        if not config.operator_members:
            return
        # jobs.update on jobs other identities created exists only project-wide (roles/bigquery.admin has it, and
        # far more); this role holds exactly the job permissions the CLI uses.
        role = ProjectIamCustomRole(
            self,
            "operator_role",
            project=config.project,
            role_id=f"baton_{config.name}_operator",
            title=f"Baton {config.name} operator",
            description="Inspect and cancel Baton's BigQuery jobs, whoever submitted them (baton cancel, status, retry)",
            permissions=list(OPERATOR_JOB_PERMISSIONS),
            depends_on=self._needs("google_project_iam_custom_role"),
        )
        for index, member in enumerate(config.operator_members):
            ProjectIamMember(self, f"operator_{index}_bigquery_jobs", project=config.project, role=role.id, member=member)
            SpannerDatabaseIamMember(
                self,
                f"operator_{index}_spanner",
                project=config.project,
                instance=self.spanner_instance.name,
                database=self.spanner_database.name,
                role="roles/spanner.databaseUser",  # retry and cancel write run rows, as the functions do
                member=member,
            )
            PubsubSubscriptionIamMember(
                self,
                f"operator_{index}_dead_letter_pull",
                project=config.project,
                subscription=self.dead_letter_hold.name,
                role="roles/pubsub.subscriber",
                member=member,
            )
            # A replay republishes a dead letter to the completion topic, where the push subscription takes it.
            PubsubTopicIamMember(
                self,
                f"operator_{index}_replay",
                project=config.project,
                topic=self.completion_topic.name,
                role="roles/pubsub.publisher",
                member=member,
            )
            # start, retry and cancel publish run events, as the functions do.
            PubsubTopicIamMember(
                self,
                f"operator_{index}_run_events",
                project=config.project,
                topic=self.run_events_topic.name,
                role="roles/pubsub.publisher",
                member=member,
            )
