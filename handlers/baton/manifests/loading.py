"""Manifest files: read YAML (refusing duplicate keys), validate, resolve; and the folder they are deployed in.

Every problem is reported at once, one line each, naming the file, the job and
what is wrong, so a data engineer fixes a manifest in one pass.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from baton.errors import ManifestInvalid, ManifestNotFound
from baton.manifests.datasets import DeclaredDatasets
from baton.manifests.model import Manifest
from baton.manifests.schema import MANIFEST_NAME_PATTERN
from baton.manifests.structure import parse_structure
from baton.manifests.validation import check_and_resolve

# libyaml's parser where PyYAML was built with it: several times faster on large manifests.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_manifest(
    path: Path,
    display_name: str | None = None,
    declared: DeclaredDatasets | None = None,
    pools: Collection[str] | None = None,
) -> Manifest:
    """Read, validate and resolve one manifest file; raise ManifestInvalid listing every problem."""
    where = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestNotFound(where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(where, [f"cannot read file: {exc}"]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ManifestInvalid(where, [f"not valid YAML: {' '.join(str(exc).split())}"]) from exc
    return parse_manifest(data, where, base_dir=path.parent, declared=declared, pools=pools)


def parse_manifest(
    data: object,
    where: str,
    base_dir: Path,
    declared: DeclaredDatasets | None = None,
    pools: Collection[str] | None = None,
) -> Manifest:
    if not isinstance(data, dict):
        raise ManifestInvalid(where, ["the file must hold a mapping with 'name' and 'jobs'"])
    return check_and_resolve(parse_structure(data), where, base_dir, declared, pools)


class ManifestRepository:
    """Manifests by name from one folder: `<name>.yaml` (or .yml).

    With `declared`, a manifest touching a dataset the environment does not declare is invalid;
    with `pools`, so is one naming a pool the environment does not configure.
    """

    def __init__(self, directory: Path, declared: DeclaredDatasets | None = None, pools: Collection[str] | None = None) -> None:
        self.directory = directory
        self.declared = declared
        self.pools = pools

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.iterdir() if p.suffix in (".yaml", ".yml"))

    def load(self, name: str) -> Manifest:
        if not MANIFEST_NAME_PATTERN.fullmatch(name):
            raise ManifestNotFound(name)
        for suffix in (".yaml", ".yml"):
            path = self.directory / f"{name}{suffix}"
            if path.is_file():
                manifest = load_manifest(
                    path, display_name=f"{self.directory.name}/{path.name}", declared=self.declared, pools=self.pools
                )
                if manifest.name != name:
                    problem = f"name '{manifest.name}' differs from the file name '{name}'"
                    raise ManifestInvalid(f"{self.directory.name}/{path.name}", [problem])
                return manifest
        raise ManifestNotFound(name)
