"""A handler change redeploys code and nothing else: the platform stack stays byte-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baton_cli.infra_diff import diff_stack
from tests.infra.conftest import Synthesize
from tests.infra.terraform_json import ENVIRONMENTS, load, stack_path

pytestmark = pytest.mark.infra


def changed_resources(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """What `baton infra diff` would list for this stack."""
    return {change.address for change in diff_stack("handlers", before, after)}


def test_handler_change_touches_only_the_archive_and_the_functions(
    synth_dir: Path, synthesize: Synthesize, handlers_copy: Path
) -> None:
    unchanged = synthesize("synth-copy", handlers_dir=handlers_copy)
    main = handlers_copy / "main.py"
    main.write_text(main.read_text() + "\n# a hot-swapped line\n")
    swapped = synthesize("synth-swapped", handlers_dir=handlers_copy)

    for env in ENVIRONMENTS:
        platform, handlers = f"baton-{env}-platform", f"baton-{env}-handlers"
        # Same code, same bytes: synthesis is deterministic, so a plan shows no spurious change.
        assert stack_path(unchanged, handlers).read_bytes() == stack_path(synth_dir, handlers).read_bytes()
        assert stack_path(swapped, platform).read_bytes() == stack_path(synth_dir, platform).read_bytes()

        before, after = load(synth_dir, handlers), load(swapped, handlers)
        functions = {f"google_cloudfunctions2_function.{name}" for name in before["resource"]["google_cloudfunctions2_function"]}
        assert changed_resources(before, after) == {"google_storage_bucket_object.handler_archive_object"} | functions
        old_object = before["resource"]["google_storage_bucket_object"]["handler_archive_object"]
        new_object = after["resource"]["google_storage_bucket_object"]["handler_archive_object"]
        assert old_object["name"] != new_object["name"]
        # Each function changed in one respect only: the archive it builds from.
        for name in functions:
            kind, key = name.split(".")
            old_function, new_function = before["resource"][kind][key], after["resource"][kind][key]
            assert old_function["build_config"]["source"]["storage_source"]["object"] == old_object["name"]
            assert new_function["build_config"]["source"]["storage_source"]["object"] == new_object["name"]
            new_function["build_config"]["source"]["storage_source"]["object"] = old_object["name"]
            assert new_function == old_function
        assert {k: v for k, v in before.items() if k not in ("resource", "output")} == {
            k: v for k, v in after.items() if k not in ("resource", "output")
        }
