"""OpenLineage run events for each BigQuery job Baton runs, through the openlineage-python client.

The client is imported on first use only (bootstrap builds this adapter when lineage is
configured, and most invocations emit one event at most), so a cold start does not pay for it.
Events go to a file (the local stack) with the client's own file transport, or to a Pub/Sub
topic as the client serializes them (the client has no Pub/Sub transport).
"""

from __future__ import annotations

from typing import Any

from baton.domain.lineage import DATASET_NAMESPACE, PRODUCER, LineageEvent
from baton.domain.timing import TimeBudget
from baton.service.ports import LineageEmitter


class OpenLineageEmitter(LineageEmitter):
    """`file_path`: append each event as a JSON line there; else publish it to `topic` (projects/P/topics/T),
    within `budget` like every other publish."""

    def __init__(
        self, project: str, *, file_path: str | None = None, topic: str | None = None, budget: TimeBudget | None = None
    ) -> None:
        if (file_path is None) == (topic is None):
            raise ValueError("give exactly one of file_path and topic")
        self.project = project
        self.file_path = file_path
        self.topic = topic
        self.budget = budget or TimeBudget()
        self._transport: Any = None
        self._publisher: Any = None

    def emit(self, event: LineageEvent) -> None:
        run_event = to_openlineage(event, self.project)
        if self.file_path is not None:
            if self._transport is None:
                from openlineage.client.transport.file import FileConfig, FileTransport

                self._transport = FileTransport(FileConfig(log_file_path=self.file_path, append=True))
            self._transport.emit(run_event)
            return
        from openlineage.client.serde import Serde

        from baton.adapters.pubsub import publish_within_budget, publisher

        assert self.topic is not None
        if self._publisher is None:
            self._publisher = publisher()
        data = Serde.to_json(run_event).encode()
        attributes = {"eventType": event.event_type, "job": event.job_name, "bigquery_job_id": event.bigquery_job_id}
        publish_within_budget(self._publisher, self.topic, data, attributes, self.budget)


def qualified(table: str, project: str) -> str:
    """OpenLineage's BigQuery dataset name is `project.dataset.table`; a manifest may leave the project out."""
    return table if table.count(".") >= 2 else f"{project}.{table}"


def to_openlineage(event: LineageEvent, project: str) -> Any:
    """The client's RunEvent for `event` (its classes are generated from the OpenLineage schema)."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import (
        error_message_run,
        external_query_run,
        job_type_job,
        output_statistics_output_dataset,
        parent_run,
        sql_job,
    )

    run_facets: dict[str, Any] = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=event.parent_run_id),
            job=parent_run.Job(namespace=event.job_namespace, name=event.parent_job_name),
            producer=PRODUCER,
        ),
        "externalQuery": external_query_run.ExternalQueryRunFacet(
            externalQueryId=event.bigquery_job_id, source="bigquery", producer=PRODUCER
        ),
    }
    if event.error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=event.error, programmingLanguage="SQL", producer=PRODUCER
        )
    job_facets: dict[str, Any] = {
        "sql": sql_job.SQLJobFacet(query=event.sql, dialect="bigquery", producer=PRODUCER),
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="BATON", jobType="QUERY", producer=PRODUCER),
    }
    outputs = []
    for table in event.outputs:
        facets: dict[str, Any] = {}
        if table.rows is not None or table.bytes is not None:
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=table.rows, size=table.bytes, producer=PRODUCER
            )
        outputs.append(OutputDataset(namespace=DATASET_NAMESPACE, name=qualified(table.name, project), outputFacets=facets))
    return RunEvent(
        eventType=RunState(event.event_type),
        eventTime=event.time.isoformat(),
        run=Run(runId=event.run_id, facets=run_facets),
        job=Job(namespace=event.job_namespace, name=event.job_name, facets=job_facets),
        inputs=[InputDataset(namespace=DATASET_NAMESPACE, name=qualified(name, project)) for name in event.inputs],
        outputs=outputs,
        producer=PRODUCER,
    )
