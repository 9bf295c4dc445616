"""`baton infra diff`: review a change to the stacks offline, without `terraform plan` or the cloud.

Both revisions are synthesized with the project's own Python (`cdk/main.py`, as `cdktf synth` runs it)
and their Terraform JSON is compared per stack: resources added, removed and changed, with the changed
attributes. IAM changes and changes to stateful resources are flagged; a stateful resource that would be
destroyed or replaced (a removed address, or a change to an attribute that forces a new resource) makes
the exit code non-zero, so CI can stop before anyone runs `deploy`.

The default compares the working tree against HEAD. A git revision is exported with `git archive` into a
temporary directory, so nothing in the repository (index, worktrees, checkout) changes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Stateful types and the attributes whose change makes Terraform destroy and recreate the resource
# (ForceNew in the google provider 6.x schema). Anything else on these types is an in-place update.
FORCE_NEW: Mapping[str, frozenset[str]] = {
    "google_spanner_instance": frozenset({"name", "config", "project"}),
    "google_spanner_database": frozenset({"name", "instance", "project", "database_dialect"}),
    "google_pubsub_topic": frozenset({"name", "project"}),
    "google_pubsub_subscription": frozenset({"name", "topic", "project"}),
    "google_logging_project_sink": frozenset({"name", "project", "unique_writer_identity"}),
    "google_bigquery_dataset": frozenset({"dataset_id", "project", "location"}),
    "google_storage_bucket": frozenset({"name", "project", "location"}),
}
STATEFUL_TYPES = frozenset(FORCE_NEW)
EXIT_OK, EXIT_STATEFUL_LOSS, EXIT_ERROR = 0, 1, 2
_METADATA = "//"


class SynthError(RuntimeError):
    """A revision could not be exported or synthesized."""


@dataclass(frozen=True)
class ResourceChange:
    stack: str
    address: str  # type.name, as in the plan
    action: str  # "add" | "remove" | "change"
    attributes: tuple[str, ...] = ()
    replaced_by: tuple[str, ...] = ()  # the force-new attributes among `attributes`

    @property
    def resource_type(self) -> str:
        return self.address.split(".", 1)[0]

    @property
    def is_iam(self) -> bool:
        kind = self.resource_type
        return kind.endswith(("_iam_member", "_iam_binding", "_iam_policy")) or kind.endswith("_iam_custom_role")

    @property
    def is_stateful(self) -> bool:
        return self.resource_type in STATEFUL_TYPES

    @property
    def loses_state(self) -> bool:
        """A stateful resource destroyed, or replaced (destroyed, then created empty)."""
        return self.is_stateful and (self.action == "remove" or bool(self.replaced_by))


@dataclass
class InfraDiff:
    changes: list[ResourceChange] = field(default_factory=list)
    stacks_added: list[str] = field(default_factory=list)
    stacks_removed: list[str] = field(default_factory=list)

    @property
    def state_losses(self) -> list[ResourceChange]:
        return [change for change in self.changes if change.loses_state]

    @property
    def exit_code(self) -> int:
        removed_stateful = any(
            change.is_stateful for change in self.changes if change.stack in self.stacks_removed and change.action == "remove"
        )
        return EXIT_STATEFUL_LOSS if self.state_losses or removed_stateful else EXIT_OK

    def by_stack(self) -> dict[str, list[ResourceChange]]:
        grouped: dict[str, list[ResourceChange]] = {}
        for change in self.changes:
            grouped.setdefault(change.stack, []).append(change)
        return grouped


def _without_metadata(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_metadata(item) for key, item in value.items() if key != _METADATA}
    if isinstance(value, list):
        return [_without_metadata(item) for item in value]
    return value


def _resources(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{kind}.{name}": _without_metadata(body)
        for kind, found in document.get("resource", {}).items()
        for name, body in found.items()
    }


def changed_paths(old: Any, new: Any, prefix: str = "", depth: int = 4) -> list[str]:
    """Dotted paths of what differs, descending into blocks (dicts) a few levels so a reviewer sees the setting."""
    if old == new:
        return []
    if depth and isinstance(old, dict) and isinstance(new, dict):
        paths = []
        for key in sorted(set(old) | set(new)):
            paths += changed_paths(old.get(key), new.get(key), f"{prefix}{key}.", depth - 1)
        return paths
    return [prefix.rstrip(".")]


def _replacing(
    resource_type: str, before: Mapping[str, Any], after: Mapping[str, Any], changed: Sequence[str]
) -> tuple[str, ...]:
    forced = [name for name in changed if name in FORCE_NEW.get(resource_type, frozenset())]
    if resource_type == "google_spanner_database" and "ddl" in changed:
        # The provider applies appended statements as a schema update; editing or removing one recreates the database.
        old, new = list(before.get("ddl", [])), list(after.get("ddl", []))
        if new[: len(old)] != old:
            forced.append("ddl")
    return tuple(sorted(forced))


def diff_stack(stack: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[ResourceChange]:
    old, new = _resources(before), _resources(after)
    changes = [ResourceChange(stack, address, "add") for address in sorted(set(new) - set(old))]
    changes += [ResourceChange(stack, address, "remove") for address in sorted(set(old) - set(new))]
    for address in sorted(set(old) & set(new)):
        if old[address] == new[address]:
            continue
        paths = tuple(changed_paths(old[address], new[address]))
        top_level = sorted({path.split(".", 1)[0] for path in paths})
        kind = address.split(".", 1)[0]
        changes.append(ResourceChange(stack, address, "change", paths, _replacing(kind, old[address], new[address], top_level)))
    return changes


def diff_synth_dirs(before_dir: Path, after_dir: Path) -> InfraDiff:
    before, after = load_stacks(before_dir), load_stacks(after_dir)
    report = InfraDiff(stacks_added=sorted(set(after) - set(before)), stacks_removed=sorted(set(before) - set(after)))
    for stack in sorted(set(before) | set(after)):
        report.changes += diff_stack(stack, before.get(stack, {}), after.get(stack, {}))
    return report


def load_stacks(synth_dir: Path) -> dict[str, dict[str, Any]]:
    stacks = {}
    for path in sorted((synth_dir / "stacks").glob("*/cdk.tf.json")):
        stacks[path.parent.name] = json.loads(path.read_text())
    if not stacks:
        raise SynthError(f"{synth_dir} holds no synthesized stacks")
    return stacks


def repository_root(start: Path) -> Path:
    result = _git(start, "rev-parse", "--show-toplevel")
    return Path(result.decode().strip())


def _git(repo: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise SynthError(f"git {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout


def export_revision(repo: Path, revision: str, target: Path) -> Path:
    """The tree of `revision`, as committed, under `target` (git archive: nothing in the repository changes)."""
    archive = _git(repo, "archive", "--format=tar", revision)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def project_python(repo: Path) -> str:
    """The project's venv interpreter (where cdktf and the bindings are installed), else this one."""
    candidate = repo / ".venv" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def synthesize(source: Path, outdir: Path, python: str) -> Path:
    """Run `cdk/main.py` of `source` as `cdktf synth` would, writing `outdir/stacks/*/cdk.tf.json`."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CDKTF_OUTDIR": str(outdir),
        "CHECKPOINT_DISABLE": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": os.environ.get("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"),
        "PYTHONDONTWRITEBYTECODE": "1",
        # The revision's own handlers (manifest parser, schema reader) win over any installed copy.
        "PYTHONPATH": os.pathsep.join([str(source / "handlers"), str(source)]),
    }
    result = subprocess.run(
        [python, str(source / "cdk" / "main.py")], cwd=source, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SynthError(f"synthesizing {source} failed:\n{result.stderr[-4000:]}")
    return outdir


def infra_diff(repo: Path, before: str = "HEAD", after: str | None = None, *, python: str | None = None) -> InfraDiff:
    """Diff the synthesized stacks of two revisions; `after=None` is the working tree."""
    repo = repository_root(repo)
    python = python or project_python(repo)
    with tempfile.TemporaryDirectory(prefix="baton-infra-diff-") as scratch:
        work = Path(scratch)

        def synthesized(revision: str | None, name: str) -> Path:
            source = repo if revision is None else export_revision(repo, revision, work / f"{name}-src")
            return synthesize(source, work / f"{name}-out", python)

        return diff_synth_dirs(synthesized(before, "before"), synthesized(after, "after"))


def format_diff(report: InfraDiff, before: str = "HEAD", after: str = "working tree") -> str:
    symbols = {"add": "+", "remove": "-", "change": "~"}
    lines = [f"infra diff: {before} -> {after}"]
    for stack in report.stacks_added:
        lines.append(f"+ stack {stack} (new)")
    for stack in report.stacks_removed:
        lines.append(f"- stack {stack} (removed)")
    grouped = report.by_stack()
    if not grouped:
        lines.append("no resource changes")
    for stack, changes in grouped.items():
        lines.append("")
        lines.append(
            f"{stack}: {sum(c.action == 'add' for c in changes)} to add, "
            f"{sum(c.action == 'change' for c in changes)} to change, {sum(c.action == 'remove' for c in changes)} to remove"
        )
        for change in changes:
            flags = []
            if change.is_iam:
                flags.append("IAM")
            if change.is_stateful:
                flags.append("STATEFUL")
            if change.replaced_by:
                flags.append(f"REPLACED ({', '.join(change.replaced_by)} forces a new resource)")
            elif change.loses_state:
                flags.append("DESTROYED")
            attributes = f": {', '.join(change.attributes)}" if change.attributes else ""
            marker = "-/+" if change.replaced_by else symbols[change.action]
            lines.append(f"  {marker} {change.address}{attributes}" + (f"  [{'; '.join(flags)}]" if flags else ""))
    losses = report.state_losses
    if losses:
        lines.append("")
        lines.append(f"STOP: {len(losses)} stateful resource(s) would be destroyed or replaced, and their data lost:")
        lines += [f"  {change.stack}: {change.address}" for change in losses]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baton infra diff", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("before", nargs="?", default="HEAD", help="git revision to compare from (default: HEAD)")
    parser.add_argument("after", nargs="?", default=None, help="git revision to compare to (default: the working tree)")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository (default: the current directory)")
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")
    args = parser.parse_args(argv)
    try:
        report = infra_diff(args.repo, args.before, args.after)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(
            json.dumps(
                {
                    "changes": [
                        {
                            **change.__dict__,
                            "iam": change.is_iam,
                            "stateful": change.is_stateful,
                            "loses_state": change.loses_state,
                        }
                        for change in report.changes
                    ],
                    "stacks_added": report.stacks_added,
                    "stacks_removed": report.stacks_removed,
                    "exit_code": report.exit_code,
                },
                indent=2,
            )
        )
    else:
        print(format_diff(report, args.before, args.after or "working tree"))
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
