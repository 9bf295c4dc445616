"""Policy: checkov passes on every synthesized stack, with each skipped check written down and justified."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import REPO
from tests.infra.terraform_json import ENVIRONMENTS, stack_path

pytestmark = pytest.mark.infra

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
SHARED_CONFIG = REPO / ".checkov.yaml"
# Dev turns deletion protection off on purpose; its extra skips live in their own file so prod is held to the shared one.
CONFIG_FOR = {"dev": REPO / ".checkov.dev.yaml", "prod": SHARED_CONFIG}
_SKIP_LINE = re.compile(r"^\s*-\s*(CKV2?_[A-Z0-9_]+)\s*(#\s*(.*))?$")

needs_checkov = pytest.mark.skipif(
    not CHECKOV.exists(), reason=f"checkov's own venv is missing ({CHECKOV}); `make test` creates it via $(CHECKOV_STAMP)"
)


def skipped_checks(config: Path) -> dict[str, str]:
    """Check id -> the reason written beside it."""
    skips = {}
    for line in config.read_text().splitlines():
        match = _SKIP_LINE.match(line)
        if match:
            skips[match.group(1)] = (match.group(3) or "").strip()
    return skips


def test_every_skip_has_a_reason_and_dev_only_adds_to_the_shared_policy() -> None:
    shared, dev = skipped_checks(SHARED_CONFIG), skipped_checks(CONFIG_FOR["dev"])
    assert shared, "the shared config lists its skips; finding none means the parsing broke"
    for config, skips in ((SHARED_CONFIG, shared), (CONFIG_FOR["dev"], dev)):
        missing = [check for check, reason in skips.items() if len(reason) < 15]
        assert not missing, f"{config.name}: skipped without a reason: {missing}"
    assert shared.items() <= dev.items()
    # Deletion protection is only ever waived for dev.
    assert {"CKV_GCP_119", "CKV_GCP_120"} <= set(dev) - set(shared)


@needs_checkov
def test_checkov_passes_on_every_stack(synth_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    runs = {}
    for environment in ENVIRONMENTS:  # both in parallel: checkov's start-up is most of its run time
        files = [str(stack_path(synth_dir, f"baton-{environment}-{kind}")) for kind in ("platform", "handlers")]
        command = [str(CHECKOV), "--config-file", str(CONFIG_FOR[environment]), "--skip-download", "-o", "json"]
        command += [arg for file in files for arg in ("-f", file)]
        runs[environment] = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for environment, process in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        assert stdout.strip(), f"checkov printed nothing for {environment}: {stderr[-2000:]}"
        report = json.loads(stdout)
        reports = report if isinstance(report, list) else [report]
        failed = [
            f"{check['check_id']} {check['resource']} ({Path(check['file_path']).parent.name}): {check['check_name']}"
            for one in reports
            for check in one["results"]["failed_checks"]
        ]
        assert not failed, f"checkov failed for {environment}:\n" + "\n".join(failed)
        assert process.returncode == 0, stderr[-2000:]
        # Each stack was actually read: checks passed on resources of both files.
        scanned = {Path(check["file_path"]).parent.name for one in reports for check in one["results"]["passed_checks"]}
        assert scanned == {f"baton-{environment}-platform", f"baton-{environment}-handlers"}, scanned


@needs_checkov
def test_checkov_fails_a_stack_broken_on_purpose(synth_dir: Path, tmp_path: Path) -> None:
    """The scan can fail: a copy of the prod handlers stack with the source bucket's uniform access turned off."""
    stack = json.loads(stack_path(synth_dir, "baton-prod-handlers").read_text())
    (bucket,) = stack["resource"]["google_storage_bucket"].values()
    bucket["uniform_bucket_level_access"] = False
    broken = tmp_path / "broken" / "cdk.tf.json"
    broken.parent.mkdir()
    broken.write_text(json.dumps(stack))
    env = {**os.environ, "HOME": str(tmp_path), "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING"}
    command = [str(CHECKOV), "--config-file", str(SHARED_CONFIG), "--skip-download", "-o", "json", "-f", str(broken)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    failed = {check["check_id"] for check in report["results"]["failed_checks"]}
    assert "CKV_GCP_29" in failed, failed  # uniform bucket-level access
    assert result.returncode != 0
