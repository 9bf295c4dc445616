"""Google-managed service agents that the stacks grant to, created before the grants instead of on first use.

`google_project_service_identity` exists only in the google-beta provider, and no prebuilt CDKTF binding
covers google-beta, so it is declared as a plain Terraform resource: the synthesized JSON is the same
as a binding would write.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable, TerraformProvider, TerraformProviderGeneratorMetadata, TerraformResource
from constructs import Construct

GOOGLE_PROVIDER_VERSION = "6.50.0"  # the version the prebuilt google bindings pin; beta must match it
_BETA = TerraformProviderGeneratorMetadata(provider_name="google-beta", provider_version=GOOGLE_PROVIDER_VERSION)


def google_beta_provider(scope: Construct, project: str, region: str) -> TerraformProvider:
    provider = TerraformProvider(
        scope,
        "google-beta",
        terraform_resource_type="google-beta",
        terraform_provider_source="hashicorp/google-beta",
        terraform_generator_metadata=_BETA,
    )
    provider.add_override("project", project)
    provider.add_override("region", region)
    return provider


class ServiceIdentity(TerraformResource):
    """The service agent of one API (`service-<number>@gcp-sa-<api>.iam.gserviceaccount.com`)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        provider: TerraformProvider,
        project: str,
        service: str,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(
            scope,
            id_,
            terraform_resource_type="google_project_service_identity",
            terraform_generator_metadata=_BETA,
            provider=provider,
            depends_on=list(depends_on),
        )
        self.add_override("project", project)
        self.add_override("service", service)

    @property
    def member(self) -> str:
        return f"serviceAccount:{self.get_string_attribute('email')}"
