"""OpenLineage run events of each job: emitted at submission and completion, built with the openlineage-python
client, and valid by its schema-generated model."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import attr
import pytest
from openlineage.client import event_v2
from openlineage.client.facet_v2 import output_statistics_output_dataset, parent_run, sql_job

from baton.adapters.openlineage import OpenLineageEmitter, to_openlineage
from baton.domain.lineage import DATASET_NAMESPACE, attempt_run_id
from baton.domain.naming import bigquery_job_id
from baton.domain.records import Completion, JobError, JobStats
from baton.service.ports import TableSize
from tests.fakes import RecordingLineage
from tests.unit.test_engine import World

PROJECT = "proj-1"
MANIFEST = {
    "name": "m",
    "retry": {"max_attempts": 2},
    "jobs": [
        {"key": "load", "sql": "SELECT * FROM landing.raw", "destination": "sales.orders"},
        {"key": "report", "sql": "SELECT 2", "needs": ["load"]},
    ],
}


def validated(document: dict[str, Any]) -> event_v2.RunEvent:
    """Rebuild the client's RunEvent from the JSON: its classes are generated from the OpenLineage schema and
    validate on construction (attrs validators: eventTime, producer and schemaURL, the enum of event types)."""
    assert set(document) >= {"eventTime", "producer", "schemaURL", "run", "job", "eventType"}, "required by the schema"
    assert uuid.UUID(document["run"]["runId"]).version == 5
    run_facets = document["run"]["facets"]
    parent = run_facets["parent"]
    event = event_v2.RunEvent(
        eventType=event_v2.RunState(document["eventType"]),
        eventTime=document["eventTime"],
        run=event_v2.Run(
            runId=document["run"]["runId"],
            facets={
                "parent": parent_run.ParentRunFacet(
                    run=parent_run.Run(runId=parent["run"]["runId"]), job=parent_run.Job(**parent["job"])
                )
            },
        ),
        job=event_v2.Job(
            namespace=document["job"]["namespace"],
            name=document["job"]["name"],
            facets={"sql": sql_job.SQLJobFacet(query=document["job"]["facets"]["sql"]["query"])},
        ),
        inputs=[event_v2.InputDataset(namespace=d["namespace"], name=d["name"]) for d in document.get("inputs", [])],
        outputs=[
            event_v2.OutputDataset(
                namespace=d["namespace"],
                name=d["name"],
                outputFacets={
                    name: output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                        rowCount=facet.get("rowCount"), size=facet.get("size")
                    )
                    for name, facet in d.get("outputFacets", {}).items()
                },
            )
            for d in document.get("outputs", [])
        ],
        producer=document["producer"],
    )
    attr.validate(event)
    assert document["schemaURL"] == event.schemaURL, "the schema version the client implements"
    for facets in (run_facets, document["job"]["facets"]):
        for facet in facets.values():
            assert facet["_producer"] == document["producer"] and facet["_schemaURL"].startswith("https://openlineage.io/spec/")
    uuid.UUID(parent["run"]["runId"])
    return event


def test_each_job_emits_start_at_submission_and_complete_or_fail_when_bigquery_finishes(tmp_path: Path) -> None:
    world = World(tmp_path, MANIFEST)
    world.orchestrator.lineage = lineage = RecordingLineage()
    world.submitter.tables[f"{PROJECT}.sales.orders"] = TableSize(rows=7, bytes=512)
    run_id = world.start()
    first = bigquery_job_id("test", run_id, "load", 1)
    stats = JobStats(destination_table=f"{PROJECT}.sales.orders", referenced_tables=(f"{PROJECT}.landing.raw",))
    world.orchestrator.complete(Completion(run_id, "load", 1, first, JobError("backendError", "x"), stats))
    second = bigquery_job_id("test", run_id, "load", 2)
    world.orchestrator.complete(Completion(run_id, "load", 2, second, None, stats))
    world.finish(run_id, "report")
    seen = [(e.event_type, e.job_name, e.bigquery_job_id) for e in lineage.events]
    report = bigquery_job_id("test", run_id, "report", 1)
    assert sorted(seen) == sorted(
        [
            ("START", "m.load", first),
            ("FAIL", "m.load", first),
            ("START", "m.load", second),
            ("COMPLETE", "m.load", second),
            ("START", "m.report", report),
            ("COMPLETE", "m.report", report),
        ]
    )
    # Each attempt's START comes before its end; a completion emits its own end last (after what it released).
    for job_id in (first, second, report):
        kinds = [kind for kind, _, emitted in seen if emitted == job_id]
        assert kinds[0] == "START" and len(kinds) == 2
    by_kind = {(e.event_type, e.bigquery_job_id): e for e in lineage.events}
    complete, started = by_kind[("COMPLETE", second)], by_kind[("START", second)]
    assert complete.inputs == (f"{PROJECT}.landing.raw",)
    assert [(o.name, o.rows, o.bytes) for o in complete.outputs] == [(f"{PROJECT}.sales.orders", 7, 512)]
    assert complete.run_id == started.run_id == attempt_run_id(second) != by_kind[("START", first)].run_id
    assert by_kind[("FAIL", first)].error == "backendError: x" and by_kind[("FAIL", first)].outputs == ()
    assert {e.parent_run_id for e in lineage.events} == {str(uuid.UUID(hex=run_id))}


def test_events_written_by_the_client_validate_against_its_schema(tmp_path: Path) -> None:
    world = World(tmp_path, MANIFEST)
    path = tmp_path / "lineage.jsonl"
    world.orchestrator.lineage = OpenLineageEmitter(PROJECT, file_path=str(path))
    run_id = world.start()
    stats = JobStats(destination_table=f"{PROJECT}.sales.orders", referenced_tables=(f"{PROJECT}.landing.raw",))
    world.submitter.tables[f"{PROJECT}.sales.orders"] = TableSize(rows=7, bytes=512)
    world.orchestrator.complete(Completion(run_id, "load", 1, bigquery_job_id("test", run_id, "load", 1), None, stats))
    documents = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(d["eventType"] for d in documents) == ["COMPLETE", "START", "START"]
    for document in documents:
        validated(document)
    load = [d for d in documents if d["job"]["name"] == "m.load"]
    start, complete = sorted(load, key=lambda d: d["eventType"] != "START")
    assert start["outputs"] == [
        {"namespace": DATASET_NAMESPACE, "name": f"{PROJECT}.sales.orders", "facets": {}, "outputFacets": {}}
    ]
    assert complete["inputs"][0]["name"] == f"{PROJECT}.landing.raw"
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 7
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == bigquery_job_id("test", run_id, "load", 1)
    assert complete["job"] == start["job"] and complete["job"]["namespace"] == "baton-test"


def test_a_broken_transport_does_not_fail_the_job(tmp_path: Path) -> None:
    world = World(tmp_path, MANIFEST)
    world.orchestrator.lineage = OpenLineageEmitter(PROJECT, file_path=str(tmp_path / "no-such-dir" / "x.jsonl"))
    run_id = world.start()
    assert world.submitter.submitted_keys() == ["load"]
    world.finish(run_id, "load")
    assert world.submitter.submitted_keys() == ["load", "report"]


def test_the_client_refuses_what_the_schema_refuses(tmp_path: Path) -> None:
    from baton.domain.lineage import LineageEvent

    when = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    bad = LineageEvent("START", when, "not-a-uuid", str(uuid.uuid4()), "n", "j", "m", "id", "SELECT 1")
    with pytest.raises(ValueError, match="badly formed"):
        to_openlineage(bad, PROJECT)
    world = World(tmp_path, MANIFEST)
    path = tmp_path / "lineage.jsonl"
    world.orchestrator.lineage = OpenLineageEmitter(PROJECT, file_path=str(path))
    world.start()
    document = json.loads(path.read_text().splitlines()[0])
    with pytest.raises(ValueError, match="has to contain time"):
        validated({**document, "eventTime": "2026-12-03"})
