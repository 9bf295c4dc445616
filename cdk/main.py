"""The CDKTF app (`cdktf synth` runs it): for each environment, its platform stack and its handlers stack."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):  # run as a script by cdktf.json's "app": make the `cdk` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Before jsii starts its Node runtime: CDKTF 0.21 is frozen on Node 20, whose end-of-life banner jsii would
# print on every `npx cdktf synth` (relayed by the CLI as `[ERROR] ... b'!!! ...'`). Node 20 is what the
# project pins; the banner tells a user nothing they can act on.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktf import App

from baton.adapters.spanner_migrations import all_statements
from baton.manifests.loading import ManifestRepository
from baton.manifests.model import Manifest
from cdk.archive import build_archive
from cdk.config import ENVIRONMENTS, EnvironmentConfig
from cdk.handlers_stack import HandlersStack
from cdk.platform_stack import PlatformStack
from cdk.sources import RepositorySources


def load_manifests(directory: Path) -> list[Manifest]:
    """Every manifest, validated: one that cannot run must not be deployed either."""
    repository = ManifestRepository(directory)
    return [repository.load(name) for name in repository.names()]


def create_stacks(
    app: App, sources: RepositorySources, environments: Iterable[EnvironmentConfig] = ENVIRONMENTS.values()
) -> None:
    archive = build_archive(sources.handlers_dir, sources.manifests_dir, Path(app.outdir) / "archives")
    manifests = load_manifests(sources.manifests_dir)
    ddl = all_statements(sources.schema_dir)
    # No stack dependency is declared between the two: it would make the CLI refuse the handlers-only
    # deploy (`cdktf deploy baton-<env>-handlers`) that hot swaps rely on. The first deploy applies the
    # platform stack first (docs/infrastructure.md).
    for config in environments:
        PlatformStack(app, config, ddl)
        HandlersStack(app, config, archive=archive, manifests=manifests)


def main() -> None:
    app = App()
    create_stacks(app, RepositorySources.default())
    app.synth()


if __name__ == "__main__":
    main()
