"""In-process synthesis, for tests and the local stack: the same stacks `cdktf synth` writes."""

from __future__ import annotations

from pathlib import Path

from cdktf import App

from cdk.config import ENVIRONMENTS
from cdk.main import create_stacks
from cdk.sources import RepositorySources


def synth(
    outdir: Path,
    handlers_dir: Path | None = None,
    *,
    manifests_dir: Path | None = None,
    schema_dir: Path | None = None,
    environments: tuple[str, ...] | None = None,
) -> Path:
    """Write `<outdir>/stacks/<stack>/cdk.tf.json` for the chosen environments (all by default); return outdir."""
    default = RepositorySources.default()
    sources = RepositorySources(
        handlers_dir=handlers_dir or default.handlers_dir,
        manifests_dir=manifests_dir or default.manifests_dir,
        schema_dir=schema_dir or default.schema_dir,
    )
    chosen = [ENVIRONMENTS[name] for name in (environments or tuple(ENVIRONMENTS))]
    app = App(outdir=str(outdir))
    create_stacks(app, sources, chosen)
    app.synth()
    return outdir


def stack_file(outdir: Path, stack: str) -> Path:
    return outdir / "stacks" / stack / "cdk.tf.json"
