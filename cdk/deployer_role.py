"""The deployer role as code: the permissions the identity applying a stack needs, from the stack's resource types.

`PERMISSIONS_BY_TYPE` is the one table (Terraform resource or data source type -> IAM permissions to create,
read, update and delete it, and to set IAM where the type is a grant). `deployer_permissions` reads a
synthesized stack and refuses a type the table does not cover, so a stack cannot gain a resource the
deployer would be refused at apply time without a test failing first.

    python -m cdk.deployer_role cdktf.out baton-dev-platform baton-dev-handlers > deployer-role.yaml
    gcloud iam roles create baton_deployer --project=PROJECT --file=deployer-role.yaml
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any


def _crud(prefix: str, *, update: bool = True) -> tuple[str, ...]:
    return (f"{prefix}.create", f"{prefix}.get", f"{prefix}.delete", *((f"{prefix}.update",) if update else ()))


def _iam(prefix: str) -> tuple[str, ...]:
    return (f"{prefix}.getIamPolicy", f"{prefix}.setIamPolicy")


# Setting a function's, a subscription's or a scheduler job's identity needs actAs on that account.
_ACT_AS = ("iam.serviceAccounts.actAs",)

PERMISSIONS_BY_TYPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # data sources
        "data.google_project": ("resourcemanager.projects.get",),
        # resources
        "google_project_service": ("serviceusage.services.enable", "serviceusage.services.get", "serviceusage.services.list"),
        "google_project_service_identity": ("serviceusage.services.use",),
        "google_project_iam_member": _iam("resourcemanager.projects"),
        "google_project_iam_custom_role": (*_crud("iam.roles"), "iam.roles.undelete", "iam.roles.list"),
        "google_service_account": (*_crud("iam.serviceAccounts"), "iam.serviceAccounts.list"),
        "google_service_account_iam_member": _iam("iam.serviceAccounts"),
        "google_pubsub_topic": _crud("pubsub.topics"),
        "google_pubsub_topic_iam_member": _iam("pubsub.topics"),
        "google_pubsub_subscription": (*_crud("pubsub.subscriptions"), "pubsub.topics.attachSubscription", *_ACT_AS),
        "google_pubsub_subscription_iam_member": _iam("pubsub.subscriptions"),
        "google_logging_project_sink": _crud("logging.sinks"),
        "google_logging_metric": _crud("logging.logMetrics"),
        "google_monitoring_alert_policy": _crud("monitoring.alertPolicies"),
        "google_monitoring_notification_channel": _crud("monitoring.notificationChannels"),
        "google_spanner_instance": (*_crud("spanner.instances"), "spanner.instanceOperations.get"),
        "google_spanner_database": (
            "spanner.databases.create",
            "spanner.databases.get",
            "spanner.databases.getDdl",
            "spanner.databases.updateDdl",
            "spanner.databases.update",
            "spanner.databases.drop",
            "spanner.databaseOperations.get",
        ),
        "google_spanner_database_iam_member": _iam("spanner.databases"),
        "google_bigquery_dataset": _crud("bigquery.datasets"),
        "google_bigquery_dataset_iam_member": ("bigquery.datasets.get", "bigquery.datasets.update", *_iam("bigquery.datasets")),
        "google_storage_bucket": _crud("storage.buckets"),
        "google_storage_bucket_iam_member": _iam("storage.buckets"),
        "google_storage_bucket_object": _crud("storage.objects"),
        "google_artifact_registry_repository": _crud("artifactregistry.repositories"),
        "google_artifact_registry_repository_iam_member": _iam("artifactregistry.repositories"),
        "google_cloudfunctions2_function": (
            *_crud("cloudfunctions.functions"),
            "cloudfunctions.functions.sourceCodeSet",
            "cloudfunctions.operations.get",
            *_ACT_AS,  # the runtime and the build service accounts
        ),
        "google_cloud_run_v2_service_iam_member": _iam("run.services"),
        "google_cloud_scheduler_job": (
            *_crud("cloudscheduler.jobs"),
            "cloudscheduler.jobs.pause",
            "cloudscheduler.jobs.enable",
            *_ACT_AS,
        ),
        "time_sleep": (),  # Terraform's own clock
    }
)
# The GCS backend: the deployer reads and writes state objects. Granted on the state bucket only (README bootstrap).
STATE_BUCKET_ROLE = "roles/storage.objectAdmin"


class UncoveredResourceType(KeyError):
    """A stack declares a type with no entry in PERMISSIONS_BY_TYPE: the deployer would be refused at apply."""


def resource_types(stack: Mapping[str, Any]) -> set[str]:
    """Every resource type and `data.<type>` of one synthesized stack."""
    return set(stack.get("resource", {})) | {f"data.{kind}" for kind in stack.get("data", {})}


def deployer_permissions(stacks: Iterable[Mapping[str, Any]]) -> list[str]:
    types = set().union(*(resource_types(stack) for stack in stacks))
    uncovered = sorted(types - set(PERMISSIONS_BY_TYPE))
    if uncovered:
        raise UncoveredResourceType(f"no deployer permissions for {', '.join(uncovered)}: add them to cdk/deployer_role.py")
    return sorted({permission for kind in types for permission in PERMISSIONS_BY_TYPE[kind]})


def role_definition(stacks: Iterable[Mapping[str, Any]], title: str) -> str:
    """A `gcloud iam roles create --file` definition (YAML; JSON is a subset of it)."""
    permissions = deployer_permissions(stacks)
    return json.dumps(
        {
            "title": title,
            "description": "Applies Baton's stacks: derived from their resource types by cdk/deployer_role.py",
            "stage": "GA",
            "includedPermissions": permissions,
        },
        indent=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m cdk.deployer_role SYNTH_DIR STACK [STACK...]", file=sys.stderr)
        return 2
    synth_dir, stacks = Path(args[0]), args[1:]
    documents = [json.loads((synth_dir / "stacks" / stack / "cdk.tf.json").read_text()) for stack in stacks]
    print(role_definition(documents, f"Baton deployer ({', '.join(stacks)})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
