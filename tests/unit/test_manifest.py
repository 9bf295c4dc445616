import datetime as dt
from pathlib import Path

import pytest

from baton.errors import InvalidParams, ManifestInvalid, ManifestNotFound
from baton.manifests.loading import ManifestRepository, load_manifest, parse_manifest

GOOD = """
name: daily
params:
  run_date: {type: DATE}
  min_amount: {type: INT64, default: 10}
retry: {max_attempts: 2}
labels: {team: data}
jobs:
  - key: land
    sql: SELECT @run_date AS d
    destination: landing.orders
  - key: hist
    sql_file: sql/hist.sql
    needs: [land]
    labels: {layer: history}
    retry: {max_attempts: 4, retryable_reasons: [backendError]}
  - key: consume
    sql: SELECT 1
    needs: [hist, land]
    params: {limit_rows: 5}
"""


def write(tmp_path: Path, text: str, name: str = "daily.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    (tmp_path / "sql").mkdir(exist_ok=True)
    (tmp_path / "sql" / "hist.sql").write_text("SELECT * FROM landing.orders WHERE d = @run_date")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(write(tmp_path, text))
    return caught.value.problems


def test_a_valid_manifest_resolves_sql_files_defaults_and_graph(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, GOOD))
    assert [job.key for job in manifest.jobs] == ["land", "hist", "consume"]
    assert manifest.job("hist").sql.startswith("SELECT * FROM landing.orders")
    assert manifest.job("land").write_disposition == "WRITE_TRUNCATE"
    assert manifest.job("land").retry.max_attempts == 2
    assert manifest.job("hist").retry.retryable_reasons == ("backendError",)
    assert manifest.job("hist").labels == {"team": "data", "layer": "history"}
    assert manifest.roots() == ["land"]
    assert manifest.dependents() == {"land": ["hist", "consume"], "hist": ["consume"], "consume": []}


def test_version_changes_when_sql_changes(tmp_path: Path) -> None:
    before = load_manifest(write(tmp_path, GOOD)).version
    after = load_manifest(write(tmp_path, GOOD.replace("SELECT 1", "SELECT 2"))).version
    assert before != after
    assert load_manifest(write(tmp_path, GOOD)).version == before


def test_every_problem_is_reported_once_naming_file_and_job(tmp_path: Path) -> None:
    text = """
name: daily
jobs:
  - {key: a, sql: SELECT 1, needs: [ghost]}
  - {key: a, sql: SELECT 2}
  - {key: b, sql_file: missing.sql, destination: "not a table"}
  - {key: Bad-Key, sql: SELECT 3}
  - {key: c, sql: SELECT 4, write_disposition: WRITE_APPEND}
"""
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(write(tmp_path, text))
    message = str(caught.value)
    assert "job 'a': needs unknown job 'ghost'" in message
    assert "job 'a': duplicate key" in message
    assert "job 'b': sql_file 'missing.sql' not found" in message
    assert "job 'b': destination 'not a table' is not a table id" in message
    assert "job 'Bad-Key': key must match" in message
    assert "job 'c': write_disposition needs a destination" in message
    assert all(line.startswith(str(tmp_path / "daily.yaml")) for line in message.splitlines())


def test_a_cycle_is_reported_once_with_its_path(tmp_path: Path) -> None:
    text = """
name: daily
jobs:
  - {key: a, sql: SELECT 1, needs: [c]}
  - {key: b, sql: SELECT 1, needs: [a]}
  - {key: c, sql: SELECT 1, needs: [b]}
  - {key: d, sql: SELECT 1}
"""
    assert problems_of(tmp_path, text) == ["job 'a': part of the cycle a -> b -> c -> a"]


def test_schema_errors_name_the_job_and_field(tmp_path: Path) -> None:
    text = """
name: daily
jobs:
  - {key: a, sql: SELECT 1, retry: {max_attempts: 0}}
  - {key: b, sql: SELECT 1, colour: blue}
"""
    problems = problems_of(tmp_path, text)
    assert any(p.startswith("job 'a': retry.max_attempts:") for p in problems)
    assert any(p.startswith("job 'b': colour: unknown field (job fields: key, sql, sql_file,") for p in problems), problems
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not: [valid", "not valid YAML"),
        ("- just\n- a list", "must hold a mapping"),
        ("name: x\njobs: []", "at least one job"),
        ("name: x\nname: y\njobs: []", "duplicate key 'name'"),
        ("name: x\nparams: {d: {type: DATE, default: nope}}\njobs: [{key: a, sql: SELECT 1}]", "'d' default: expected a date"),
        ("name: x\njobs: [{key: a, sql: '   '}]", "SQL is empty"),
        ("name: x\njobs: [{key: a, sql_file: ../../etc/passwd}]", "must stay inside"),
        ("name: x\nlabels: {baton_env: x}\njobs: [{key: a, sql: SELECT 1}]", "reserved for Baton"),
        ("name: x\njobs: [{key: a, sql: SELECT 1, needs: [a]}]", "needs itself"),
        ("name: x\njobs: [{key: a}]", "job 'a': give exactly one of sql, sql_file, load, copy, extract"),
        ("name: x\njobs: [{key: a, sql: SELECT 1, needs: b}]", "job 'a': needs:"),
    ],
)
def test_malformed_manifests_are_rejected_with_a_reason(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ManifestInvalid) as caught:
        load_manifest(write(tmp_path, text))
    assert expected in str(caught.value)


def test_params_are_typed_defaulted_and_checked(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, GOOD))
    today = dt.date(2026, 11, 27)
    bound = manifest.bind_params({"min_amount": "7"}, today)
    assert bound["run_date"].value == "2026-11-27"
    assert bound["min_amount"].value == 7
    with pytest.raises(InvalidParams) as caught:
        manifest.bind_params({"run_date": "27/11/2026", "min_amount": True, "extra": 1}, today)
    message = str(caught.value)
    assert "unknown param 'extra'" in message
    assert "param 'run_date': expected a date" in message
    assert "param 'min_amount': expected an integer" in message


def test_repository_finds_manifests_by_name_only(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    repo = ManifestRepository(tmp_path)
    assert repo.names() == ["daily"]
    assert repo.load("daily").name == "daily"
    with pytest.raises(ManifestNotFound):
        repo.load("../daily")
    with pytest.raises(ManifestNotFound):
        repo.load("nope")


def _fan(width: int) -> dict[str, object]:
    return {
        "name": "wide",
        "jobs": [{"key": "root", "sql": "SELECT 1"}]
        + [{"key": f"m{index:05d}", "sql": "SELECT 1", "needs": ["root"]} for index in range(width)],
    }


def test_a_manifest_past_the_limits_is_refused_with_the_limit_named(tmp_path: Path) -> None:
    from baton.domain.limits import MAX_FAN_OUT, MAX_JOBS

    with pytest.raises(ManifestInvalid) as caught:
        parse_manifest(_fan(MAX_FAN_OUT + 1), "wide.yaml", tmp_path)
    assert f"jobs: {MAX_FAN_OUT + 2} jobs; Baton runs at most {MAX_JOBS} per manifest" in caught.value.problems[0]
    assert f"job 'root': {MAX_FAN_OUT + 1} jobs need it; at most {MAX_FAN_OUT} may (fan-out)" in caught.value.problems


def test_a_manifest_near_the_limits_is_valid_and_warned_about(tmp_path: Path) -> None:
    from baton.domain.limits import MAX_JOBS
    from baton.manifests.limits import near_limits

    manifest = parse_manifest(_fan(MAX_JOBS - 1), "wide.yaml", tmp_path)
    warnings = near_limits(manifest.jobs)
    assert f"{MAX_JOBS} jobs in the manifest: 100% of the limit of {MAX_JOBS}" in warnings
    assert any("(fan-out)" in warning for warning in warnings)
    assert near_limits(parse_manifest(_fan(10), "small.yaml", tmp_path).jobs) == []
