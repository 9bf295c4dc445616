"""A Cloud Functions (2nd gen) function with its own service account: the unit the handlers stack repeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloud_run_v2_service_iam_member import CloudRunV2ServiceIamMember
from cdktf_cdktf_provider_google.cloudfunctions2_function import (
    Cloudfunctions2Function,
    Cloudfunctions2FunctionBuildConfig,
    Cloudfunctions2FunctionBuildConfigSource,
    Cloudfunctions2FunctionBuildConfigSourceStorageSource,
    Cloudfunctions2FunctionServiceConfig,
)
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.storage_bucket_object import StorageBucketObject
from constructs import Construct

from cdk.archive import HandlerArchive
from cdk.config import EnvironmentConfig

RUNTIME = "python311"


@dataclass(frozen=True)
class FunctionPackage:
    """What every function of an environment is built from and runs with; only the entry point differs."""

    source_bucket: str
    archive: HandlerArchive
    archive_object: StorageBucketObject
    environment: Mapping[str, str]
    build_service_account: str  # projects/P/serviceAccounts/EMAIL
    docker_repository: str
    build_ready: ITerraformDependable  # the build account's grants, propagated: the first build must not race them


class BatonFunction(Construct):
    """One entry point of handlers/main.py, deployed under an identity of its own.

    The account starts with no roles: the stack grants each function exactly what
    it uses, on the resource itself wherever the resource has an IAM policy.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        package: FunctionPackage,
        name: str,
        entry_point: str,
        description: str,
        ingress: str,
        timeout_seconds: int,
        memory: str,
        max_instances: int,
        concurrency: int = 1,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self.config = config
        self.name = name
        self.service_account = ServiceAccount(
            self,
            "service_account",
            project=config.project,
            account_id=self.name,
            display_name=f"Baton {config.name} {entry_point}",
            description=f"Runtime identity of the {entry_point} function",
        )
        self.function = Cloudfunctions2Function(
            self,
            "function",
            project=config.project,
            location=config.region,
            name=self.name,
            description=description,
            build_config=Cloudfunctions2FunctionBuildConfig(
                runtime=RUNTIME,
                entry_point=entry_point,
                # The object's literal, content-hashed name rather than a reference to it: a handler change
                # then shows in the synthesized function itself, and in `cdktf diff`, as a new source.
                source=Cloudfunctions2FunctionBuildConfigSource(
                    storage_source=Cloudfunctions2FunctionBuildConfigSourceStorageSource(
                        bucket=package.source_bucket, object=package.archive.object_name
                    ),
                ),
                service_account=package.build_service_account,
                docker_repository=package.docker_repository,
            ),
            service_config=Cloudfunctions2FunctionServiceConfig(
                service_account_email=self.service_account.email,
                # functions-framework serves with THREADS threads (default 4 per CPU): match the concurrency,
                # or requests Cloud Run admitted would queue inside the instance. The handlers derive every
                # Google call's deadline from the function's own timeout.
                environment_variables={
                    **package.environment,
                    "THREADS": str(concurrency),
                    "BATON_FUNCTION_TIMEOUT_S": str(timeout_seconds),
                },
                ingress_settings=ingress,
                timeout_seconds=timeout_seconds,
                available_memory=memory,
                available_cpu="1",  # Cloud Run allows more than one request per instance only from 1 vCPU
                max_instance_request_concurrency=concurrency,
                min_instance_count=0,
                max_instance_count=max_instances,
                all_traffic_on_latest_revision=True,
            ),
            depends_on=[package.archive_object, package.build_ready, *depends_on],
        )

    @property
    def member(self) -> str:
        """The IAM member string of the function's runtime identity."""
        return self.service_account.member

    @property
    def uri(self) -> str:
        """The run.app URL: the audience of OIDC tokens, and an "internal" address for Pub/Sub and Scheduler."""
        return self.function.service_config.uri

    def grant_invoker(self, id_: str, member: str) -> CloudRunV2ServiceIamMember:
        """Let `member` call the function; gen2 checks run.invoker on the underlying Cloud Run service."""
        return CloudRunV2ServiceIamMember(
            self,
            id_,
            project=self.config.project,
            location=self.config.region,
            name=self.function.name,
            role="roles/run.invoker",
            member=member,
        )
