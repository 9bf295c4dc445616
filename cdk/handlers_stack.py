"""The code half of an environment: the handler archive, three functions, their triggers and their grants.

Redeploying handlers (`cdktf deploy baton-<env>-handlers`) replaces the archive object
and updates the functions; nothing stateful lives here, so such a plan cannot lose data.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from cdktf import (
    AssetType,
    GcsBackend,
    ITerraformDependable,
    TerraformAsset,
    TerraformOutput,
    TerraformResourceLifecycle,
    TerraformStack,
)
from cdktf_cdktf_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
    ArtifactRegistryRepositoryCleanupPolicies,
    ArtifactRegistryRepositoryCleanupPoliciesCondition,
    ArtifactRegistryRepositoryCleanupPoliciesMostRecentVersions,
)
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import ArtifactRegistryRepositoryIamMember
from cdktf_cdktf_provider_google.bigquery_dataset_iam_member import BigqueryDatasetIamMember
from cdktf_cdktf_provider_google.cloud_scheduler_job import (
    CloudSchedulerJob,
    CloudSchedulerJobHttpTarget,
    CloudSchedulerJobHttpTargetOidcToken,
    CloudSchedulerJobRetryConfig,
)
from cdktf_cdktf_provider_google.data_google_project import DataGoogleProject
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember, ProjectIamMemberCondition
from cdktf_cdktf_provider_google.provider import GoogleProvider
from cdktf_cdktf_provider_google.pubsub_subscription import (
    PubsubSubscription,
    PubsubSubscriptionDeadLetterPolicy,
    PubsubSubscriptionExpirationPolicy,
    PubsubSubscriptionPushConfig,
    PubsubSubscriptionPushConfigOidcToken,
    PubsubSubscriptionRetryPolicy,
)
from cdktf_cdktf_provider_google.pubsub_subscription_iam_member import PubsubSubscriptionIamMember
from cdktf_cdktf_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktf_cdktf_provider_google.spanner_database_iam_member import SpannerDatabaseIamMember
from cdktf_cdktf_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
    StorageBucketVersioning,
)
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from cdktf_cdktf_provider_google.storage_bucket_object import StorageBucketObject
from cdktf_cdktf_provider_time.provider import TimeProvider
from cdktf_cdktf_provider_time.sleep import Sleep
from constructs import Construct

from baton.manifests.datasets import DeclaredDatasets
from baton.manifests.model import Manifest
from baton.manifests.schema import TABLE_PATTERN
from cdk.archive import HandlerArchive
from cdk.config import SCRATCH_DATASET, EnvironmentConfig
from cdk.function import BatonFunction, FunctionPackage
from cdk.platform_stack import IDENTITY_PROPAGATION, pubsub_service_agent

START_TIMEOUT_SECONDS = 300  # writes a whole run (batched mutations) before submitting roots
RECONCILE_TIMEOUT_SECONDS = 300


def manifest_datasets(manifests: Sequence[Manifest], default_project: str) -> list[tuple[str, str]]:
    """(project, dataset) of every manifest destination: the datasets Baton's jobs write."""
    found = set()
    for manifest in manifests:
        for job in manifest.jobs:
            match = TABLE_PATTERN.match(job.destination or "")
            if match:
                found.add((match.group("project") or default_project, match.group("dataset")))
    return sorted(found)


class UndeclaredDataset(ValueError):
    """A manifest writes a dataset that cdk/config.py does not declare, so no stack would create it."""


class UndeclaredPool(ValueError):
    """A manifest names a pool that cdk/config.py does not configure, so the functions would refuse it."""


def declared_datasets_variable(config: EnvironmentConfig) -> str:
    """BATON_DATASETS: the environment's datasets (cdk/config.py) with their location, as the functions read them."""
    return DeclaredDatasets({d.dataset_id: d.location or config.bigquery_location for d in config.datasets}).to_env()


def start_request_body(manifest: Manifest) -> str:
    """What a schedule posts to start_manifest, base64 as Cloud Scheduler wants it; params take their defaults."""
    return base64.b64encode(json.dumps({"manifest": manifest.name}).encode()).decode()


class HandlersStack(TerraformStack):
    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        *,
        archive: HandlerArchive,
        manifests: Sequence[Manifest],
    ) -> None:
        super().__init__(scope, config.handlers_stack_name)
        self.config = config
        GcsBackend(self, bucket=config.state_bucket, prefix=f"baton/{config.handlers_stack_name}")
        GoogleProvider(self, "google", project=config.project, region=config.region, default_labels=dict(config.labels))
        TimeProvider(self, "time")
        project = DataGoogleProject(self, "project", project_id=config.project)
        pubsub_agent = pubsub_service_agent(project.number)
        self.pubsub_agent = pubsub_agent

        self.bucket = StorageBucket(
            self,
            "source_bucket",
            project=config.project,
            name=config.source_bucket,
            location=config.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=not config.deletion_protection,
            versioning=StorageBucketVersioning(enabled=True),
            # A replaced archive stays as a noncurrent version for a while, enough to roll back by hand.
            lifecycle_rule=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(days_since_noncurrent_time=30, with_state="ARCHIVED"),
                )
            ],
        )
        asset = TerraformAsset(self, "handler_archive", path=str(archive.path), type=AssetType.FILE)
        self.archive_object = StorageBucketObject(
            self,
            "handler_archive_object",
            bucket=self.bucket.name,
            name=archive.object_name,
            source=asset.path,
            content_type="application/zip",
            # The new archive exists before the old one goes, so a function is never left pointing at nothing.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )

        self.images = ArtifactRegistryRepository(
            self,
            "function_images",
            project=config.project,
            location=config.region,
            repository_id=config.artifact_repository,
            format="DOCKER",
            description="Images Cloud Build makes from the handler archive",
            # KEEP alone deletes nothing: images older than 30 days go, except the 10 newest of each image,
            # enough to roll a function back by hand. KEEP wins over DELETE where both match.
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                ArtifactRegistryRepositoryCleanupPolicies(
                    id="delete-old",
                    action="DELETE",
                    condition=ArtifactRegistryRepositoryCleanupPoliciesCondition(tag_state="ANY", older_than="2592000s"),
                ),
                ArtifactRegistryRepositoryCleanupPolicies(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=ArtifactRegistryRepositoryCleanupPoliciesMostRecentVersions(keep_count=10),
                ),
            ],
        )
        build_account, build_grants = self._build_service_account()
        # The build account's grants take up to a minute to propagate; a build started before fails on them.
        build_ready = Sleep(self, "build_grants_propagated", create_duration=IDENTITY_PROPAGATION, depends_on=build_grants)

        package = FunctionPackage(
            source_bucket=self.bucket.name,
            archive=archive,
            archive_object=self.archive_object,
            # What handlers/baton/config.py reads; BATON_MANIFESTS_DIR stays unset, so the archive's manifests/ is used.
            environment={
                "BATON_ENV": config.name,
                "BATON_PROJECT": config.project,
                "BATON_SPANNER_INSTANCE": config.spanner_instance,
                "BATON_SPANNER_DATABASE": config.spanner_database,
                "BATON_BQ_LOCATION": config.bigquery_location,
                "BATON_RUN_EVENTS_TOPIC": config.topic_path(config.run_events_topic),
                # bigquery_job_completed dead-letters what it cannot process, with the reason, itself;
                # on the last delivery attempt it does the same for what keeps failing.
                "BATON_DEAD_LETTER_TOPIC": config.topic_path(config.dead_letter_topic),
                "BATON_MAX_DELIVERY_ATTEMPTS": str(config.push.max_delivery_attempts),
                "BATON_RECONCILE_INTERVAL_S": str(config.reconcile_interval_seconds),
                # Continuations (the rest of a wide release, skip or submission) go here; the work push
                # subscription brings them back to bigquery_job_completed.
                "BATON_WORK_TOPIC": config.topic_path(config.work_topic),
                # Regular (not multiplexed) sessions for read-write transactions, chosen on purpose: it is the
                # mode every test exercises (the Spanner emulator retries concurrent read-write transactions only
                # in it), and at Baton's rate of short transactions a session pool costs nothing that matters.
                "GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW": "false",
                # The environment's datasets with their location: manifests may read and write no other
                # (checked when a manifest is loaded), and the local stack creates exactly these.
                "BATON_DATASETS": declared_datasets_variable(config),
                "BATON_SCRATCH_DATASET": SCRATCH_DATASET,
                # The environment's pools (name -> size); manifests may name no other (docs/pools.md).
                "BATON_POOLS": json.dumps(dict(config.pools), sort_keys=True),
                "BATON_LINEAGE_TOPIC": config.topic_path(config.lineage_topic),
            },
            build_service_account=build_account.id,
            docker_repository=self.images.id,
            build_ready=build_ready,
        )
        # Pub/Sub and Cloud Scheduler in the same project count as internal traffic, so only
        # start_manifest may need to be reachable from outside (config.start_manifest_ingress).
        self.completion = BatonFunction(
            self,
            "completion",
            name=config.completion_function,
            entry_point="bigquery_job_completed",
            description="Records a finished BigQuery job and submits what became ready",
            ingress="ALLOW_INTERNAL_ONLY",
            timeout_seconds=config.completion_timeout_seconds,
            memory=config.function_memory,
            # Sized for the largest fan-out (config checks max instances x concurrency >= largest_fan_out).
            max_instances=config.completion_max_instances,
            concurrency=config.completion_concurrency,
            config=config,
            package=package,
        )
        self.start = BatonFunction(
            self,
            "start",
            name=config.start_function,
            entry_point="start_manifest",
            description="Starts a run of a manifest",
            ingress=config.start_manifest_ingress,
            timeout_seconds=START_TIMEOUT_SECONDS,
            memory=config.function_memory,
            max_instances=config.function_max_instances,
            config=config,
            package=package,
        )
        self.reconcile = BatonFunction(
            self,
            "reconcile",
            name=config.reconcile_function,
            entry_point="reconcile",
            description="Heals runs whose completion events were lost",
            ingress="ALLOW_INTERNAL_ONLY",
            timeout_seconds=RECONCILE_TIMEOUT_SECONDS,
            memory=config.function_memory,
            max_instances=config.function_max_instances,
            config=config,
            package=package,
        )
        self.functions = (self.completion, self.start, self.reconcile)

        self._grant_runtime_access(manifests)
        PubsubTopicIamMember(
            self,
            "completion_dead_letters",
            project=config.project,
            topic=config.dead_letter_topic,
            role="roles/pubsub.publisher",
            member=self.completion.member,
        )
        # Each function may hand work on: start submits wide roots in batches, reconcile repairs wide runs.
        for function in self.functions:
            PubsubTopicIamMember(
                self,
                f"{function.node.id}_work_publisher",
                project=config.project,
                topic=config.work_topic,
                role="roles/pubsub.publisher",
                member=function.member,
            )
        self._push_subscription(pubsub_agent)
        self._schedules(manifests)
        for function in (self.start, self.reconcile):
            for index, member in enumerate(config.operator_members):
                function.grant_invoker(f"operator_invoker_{index}", member)

        TerraformOutput(self, "handler_archive_object_name", value=archive.object_name)
        for function in self.functions:
            TerraformOutput(self, f"{function.node.id}_uri", value=function.uri)

    def _build_service_account(self) -> tuple[ServiceAccount, list[ITerraformDependable]]:
        """Cloud Build's identity for the function images, instead of the broad default one, and its grants."""
        config = self.config
        account = ServiceAccount(
            self,
            "build_service_account",
            project=config.project,
            account_id=config.resource_name("function-build"),
            display_name=f"Baton {config.name} function builds",
        )
        member = account.member
        reads_source = StorageBucketIamMember(
            self, "build_reads_source", bucket=self.bucket.name, role="roles/storage.objectViewer", member=member
        )
        writes_images = ArtifactRegistryRepositoryIamMember(
            self,
            "build_writes_images",
            project=config.project,
            location=config.region,
            repository=self.images.name,
            role="roles/artifactregistry.writer",
            member=member,
        )
        # Build logs are written to the project's log buckets; logWriter has no narrower resource.
        writes_logs = ProjectIamMember(
            self, "build_writes_logs", project=config.project, role="roles/logging.logWriter", member=member
        )
        # Cloud Functions stages the source in its own gcf-v2-sources-* bucket, which the build reads.
        reads_staged = ProjectIamMember(
            self,
            "build_reads_staged_source",
            project=config.project,
            role="roles/storage.objectViewer",
            member=member,
            condition=ProjectIamMemberCondition(
                title="gcf-staged-sources-only",
                expression='resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")',
            ),
        )
        return account, [reads_source, writes_images, writes_logs, reads_staged]

    def _grant_runtime_access(self, manifests: Sequence[Manifest]) -> None:
        config = self.config
        declared = {dataset.dataset_id: dataset for dataset in config.datasets}
        for dataset_project, dataset_id in manifest_datasets(manifests, config.project):
            if dataset_project != config.project or dataset_id not in declared:
                raise UndeclaredDataset(
                    f"a manifest writes {dataset_project}.{dataset_id}, which cdk/config.py does not declare "
                    f"for {config.name}: add it to the environment's datasets so the platform stack creates it"
                )
        for manifest in manifests:
            for job in manifest.jobs:
                if job.pool is not None and job.pool not in config.pools:
                    raise UndeclaredPool(
                        f"manifest '{manifest.name}' job '{job.key}' names pool '{job.pool}', which cdk/config.py does "
                        f"not configure for {config.name}: add it to the environment's pools"
                    )
        for function in self.functions:
            prefix = function.node.id
            SpannerDatabaseIamMember(
                self,
                f"{prefix}_spanner",
                project=config.project,
                instance=config.spanner_instance,
                database=config.spanner_database,
                role="roles/spanner.databaseUser",
                member=function.member,
            )
            for topic in ("run_events", "lineage"):
                PubsubTopicIamMember(
                    self,
                    f"{prefix}_{topic}",
                    project=config.project,
                    topic=getattr(config, f"{topic}_topic"),
                    role="roles/pubsub.publisher",
                    member=function.member,
                )
            # Every function submits jobs (roots, dependents, retries); job creation is a project permission.
            ProjectIamMember(
                self, f"{prefix}_bigquery_jobs", project=config.project, role="roles/bigquery.jobUser", member=function.member
            )
            for dataset in config.datasets:
                role = "roles/bigquery.dataEditor" if dataset.access == "write" else "roles/bigquery.dataViewer"
                # A dataset IAM member rewrites the dataset's access list and drops authorized views from it.
                # These datasets are created by the platform stack with no access block and no authorized
                # views, so the members below are the only access there is to keep: nothing is stripped.
                BigqueryDatasetIamMember(
                    self,
                    f"{prefix}_{role.rsplit('.', 1)[1]}_{dataset.dataset_id}",
                    project=config.project,
                    dataset_id=dataset.dataset_id,
                    role=role,
                    member=function.member,
                )
        # The reconciler reads jobs the other two functions submitted: jobs.get on others' jobs is project-wide.
        ProjectIamMember(
            self,
            "reconcile_bigquery_job_reader",
            project=config.project,
            role="roles/bigquery.resourceViewer",
            member=self.reconcile.member,
        )

    def _push_subscription(self, pubsub_agent: str) -> None:
        """Completion events, and the continuations the function hands itself, reach it by explicit push
        subscriptions, which, unlike an event trigger, carry a retry policy and a dead-letter policy."""
        config = self.config
        invoker = ServiceAccount(
            self,
            "push_invoker",
            project=config.project,
            account_id=config.resource_name("push-invoker"),
            display_name=f"Baton {config.name} Pub/Sub push identity",
        )
        self.completion.grant_invoker("push_invoker_run", invoker.member)
        # Pub/Sub mints the OIDC token as the invoker; older projects need this grant explicitly.
        ServiceAccountIamMember(
            self,
            "push_invoker_token_creator",
            service_account_id=invoker.name,
            role="roles/iam.serviceAccountTokenCreator",
            member=pubsub_agent,
        )
        self.push_subscription = self._push_to_completion(
            "completion_push", "push_subscriber_pubsub_agent", config.push_subscription, config.completion_topic, invoker
        )
        self.work_subscription = self._push_to_completion(
            "work_push", "work_push_subscriber_pubsub_agent", config.work_push_subscription, config.work_topic, invoker
        )

    def _push_to_completion(self, id_: str, grant_id: str, name: str, topic: str, invoker: ServiceAccount) -> PubsubSubscription:
        """A push subscription to bigquery_job_completed with the delivery policy: OIDC, backoff, dead letters."""
        config = self.config
        push = config.push
        subscription = PubsubSubscription(
            self,
            id_,
            project=config.project,
            name=name,
            topic=config.topic_path(topic),
            ack_deadline_seconds=push.ack_deadline_seconds,  # above the function's timeout (config checks it)
            push_config=PubsubSubscriptionPushConfig(
                push_endpoint=self.completion.uri,
                oidc_token=PubsubSubscriptionPushConfigOidcToken(
                    service_account_email=invoker.email,
                    audience=self.completion.uri,
                ),
            ),
            retry_policy=PubsubSubscriptionRetryPolicy(
                minimum_backoff=f"{push.minimum_backoff_seconds}s",
                maximum_backoff=f"{push.maximum_backoff_seconds}s",
            ),
            dead_letter_policy=PubsubSubscriptionDeadLetterPolicy(
                dead_letter_topic=config.topic_path(config.dead_letter_topic),
                max_delivery_attempts=push.max_delivery_attempts,
            ),
            expiration_policy=PubsubSubscriptionExpirationPolicy(ttl=""),
        )
        # Dead-lettering acknowledges on the source subscription as the Pub/Sub agent.
        PubsubSubscriptionIamMember(
            self,
            grant_id,
            project=config.project,
            subscription=subscription.name,
            role="roles/pubsub.subscriber",
            member=self.pubsub_agent,
        )
        return subscription

    def _schedules(self, manifests: Sequence[Manifest]) -> None:
        config = self.config
        caller = ServiceAccount(
            self,
            "scheduler",
            project=config.project,
            account_id=config.resource_name("scheduler"),
            display_name=f"Baton {config.name} Cloud Scheduler identity",
        )
        self.start.grant_invoker("scheduler_invoker", caller.member)
        self.reconcile.grant_invoker("scheduler_invoker", caller.member)
        self.schedules: dict[str, CloudSchedulerJob] = {}
        for manifest in manifests:
            if manifest.schedule is None:
                continue
            self.schedules[manifest.name] = self._scheduled_call(
                f"schedule_{manifest.name}",
                name=config.resource_name(f"start-{manifest.name}"),
                description=f"Starts manifest {manifest.name}",
                schedule=manifest.schedule,
                time_zone=manifest.time_zone,
                function=self.start,
                body=start_request_body(manifest),
                caller=caller,
                paused=not config.schedules_enabled,
            )
        self.reconcile_schedule = self._scheduled_call(
            "schedule_reconcile",
            name=config.resource_name("reconcile"),
            description="Heals lost completion events; its cost does not grow with job duration",
            schedule=config.reconcile_schedule,
            time_zone=config.schedule_time_zone,
            function=self.reconcile,
            body=base64.b64encode(b"{}").decode(),
            caller=caller,
            paused=False,
        )

    def _scheduled_call(
        self,
        id_: str,
        *,
        name: str,
        description: str,
        schedule: str,
        time_zone: str,
        function: BatonFunction,
        body: str,
        caller: ServiceAccount,
        paused: bool,
    ) -> CloudSchedulerJob:
        return CloudSchedulerJob(
            self,
            id_,
            project=self.config.project,
            region=self.config.region,
            name=name,
            description=description,
            schedule=schedule,
            time_zone=time_zone,
            paused=paused,
            attempt_deadline=f"{START_TIMEOUT_SECONDS + 20}s",
            # No retries: a retried start would begin a second run; the next tick or an operator covers a miss.
            retry_config=CloudSchedulerJobRetryConfig(retry_count=0),
            http_target=CloudSchedulerJobHttpTarget(
                uri=function.uri,
                http_method="POST",
                body=body,
                headers={"Content-Type": "application/json"},
                oidc_token=CloudSchedulerJobHttpTargetOidcToken(service_account_email=caller.email, audience=function.uri),
            ),
        )
