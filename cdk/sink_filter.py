"""The log sink filter that turns BigQuery's audit log into Baton's completion events."""

from __future__ import annotations

import re

_ENV = re.compile(r"^[a-z][a-z0-9_]*$")


def sink_filter(environment: str) -> str:
    """BigQuery jobs that reached DONE and carry this environment's `baton_env` label.

    The label clause is what keeps dev and prod apart when they share a project,
    and keeps every job Baton did not submit out of the topic.
    """
    if not _ENV.match(environment):
        raise ValueError(f"environment '{environment}' cannot be a label value in a filter")
    return " AND ".join(
        (
            'resource.type="bigquery_project"',
            'protoPayload.metadata."@type"="type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"',
            'protoPayload.metadata.jobChange.after="DONE"',
            f'protoPayload.metadata.jobChange.job.jobConfig.labels.baton_env="{environment}"',
        )
    )
