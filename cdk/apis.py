"""Which Google API each Terraform resource type needs: the one table behind REQUIRED_APIS and the order checks.

The platform stack enables every API listed here and makes each of its resources wait for its own;
the handlers stack is applied after the platform stack, so its resources find their APIs enabled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

# Needed before any plan can run (`data "google_project"`, project IAM, `google_project_service` itself),
# so a stack cannot enable them: the one-time bootstrap in the README does.
BOOTSTRAP_APIS = ("cloudresourcemanager.googleapis.com", "serviceusage.googleapis.com")

_FUNCTIONS = (  # a gen2 function is built by Cloud Build into Artifact Registry and runs on Cloud Run
    "cloudfunctions.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)

APIS_BY_RESOURCE_TYPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "google_project_service": (),  # Service Usage: bootstrap
        "google_project_iam_member": (),  # Cloud Resource Manager: bootstrap
        "google_project_service_identity": ("pubsub.googleapis.com",),  # the service whose agent it creates
        "google_project_iam_custom_role": ("iam.googleapis.com",),
        "google_service_account": ("iam.googleapis.com",),
        "google_service_account_iam_member": ("iam.googleapis.com",),
        "google_pubsub_topic": ("pubsub.googleapis.com",),
        "google_pubsub_topic_iam_member": ("pubsub.googleapis.com",),
        "google_pubsub_subscription": ("pubsub.googleapis.com",),
        "google_pubsub_subscription_iam_member": ("pubsub.googleapis.com",),
        "google_logging_project_sink": ("logging.googleapis.com",),
        "google_logging_metric": ("logging.googleapis.com",),
        "google_monitoring_alert_policy": ("monitoring.googleapis.com",),
        "google_monitoring_notification_channel": ("monitoring.googleapis.com",),
        "google_spanner_instance": ("spanner.googleapis.com",),
        "google_spanner_database": ("spanner.googleapis.com",),
        "google_spanner_database_iam_member": ("spanner.googleapis.com",),
        "google_bigquery_dataset": ("bigquery.googleapis.com",),
        "google_bigquery_dataset_iam_member": ("bigquery.googleapis.com",),
        "google_storage_bucket": ("storage.googleapis.com",),
        "google_storage_bucket_iam_member": ("storage.googleapis.com",),
        "google_storage_bucket_object": ("storage.googleapis.com",),
        "google_artifact_registry_repository": ("artifactregistry.googleapis.com",),
        "google_artifact_registry_repository_iam_member": ("artifactregistry.googleapis.com",),
        "google_cloudfunctions2_function": _FUNCTIONS,
        "google_cloud_run_v2_service_iam_member": ("run.googleapis.com",),
        "google_cloud_scheduler_job": ("cloudscheduler.googleapis.com",),
        "time_sleep": (),  # runs in Terraform itself
    }
)

# Every API Baton's resources need, enabled by the platform stack; bootstrap ones are already on.
REQUIRED_APIS = tuple(sorted({api for apis in APIS_BY_RESOURCE_TYPE.values() for api in apis} - set(BOOTSTRAP_APIS)))


class UnknownResourceType(KeyError):
    """A stack declares a resource type that this table (and so the API order and the deployer role) does not cover."""


def apis_for(resource_type: str) -> tuple[str, ...]:
    try:
        return APIS_BY_RESOURCE_TYPE[resource_type]
    except KeyError:
        raise UnknownResourceType(f"{resource_type}: add it to cdk/apis.py with the APIs it needs") from None


def apis_for_all(resource_types: Iterable[str]) -> set[str]:
    return {api for resource_type in resource_types for api in apis_for(resource_type)}
