"""The local stand-in for BigQuery's audit logging and the Logging sink that routes it to Pub/Sub.

When a job changes state BigQuery writes a `BigQueryAuditMetadata` LogEntry; a sink
whose filter matches publishes it (JSON) to a topic. This module writes the same
entries (field names from the public BigQueryAuditMetadata reference, proto3 JSON:
enums as names, int64 as strings), runs them through the sink filter and hands
matches to a publisher. The insertion and RUNNING entries are written too: the
filter must reject them, which is the point of keeping them.

A `DeliveryPolicy` decides how often and when each routed entry is published, so
chaos tests can drop, duplicate or delay events as Pub/Sub and Logging may.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from baton.domain.bigquery_reasons import code_for_reason
from devstack.logging_filter import LogFilter, parse_filter

if TYPE_CHECKING:
    from devstack.transfer_jobs import TransferAudit

__all__ = [
    "AuditJob",
    "AuditLogBridge",
    "ChaosPolicy",
    "DeliverOnce",
    "DeliveryPolicy",
    "JobErrorInfo",
    "PubSubPublisher",
    "Publish",
    "entry_job_id",
    "job_change_entry",
    "job_insertion_entry",
]

_log = logging.getLogger(__name__)

AUDIT_LOG_TYPE = "type.googleapis.com/google.cloud.audit.AuditLog"
METADATA_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"
INSERT_JOB_METHOD = "google.cloud.bigquery.v2.JobService.InsertJob"
DATA_ACCESS_LOG = "cloudaudit.googleapis.com%2Fdata_access"

Publish = Callable[[Mapping[str, Any]], None]
"""Receives one LogEntry (a JSON-ready dict) per delivery; raising makes the bridge retry it."""


@dataclass(frozen=True)
class JobErrorInfo:
    reason: str
    message: str


@dataclass(frozen=True)
class AuditJob:
    """What the audit entries say about one job, as the façade knows it (a query unless `transfer` says otherwise)."""

    project: str
    job_id: str
    location: str
    query: str
    labels: Mapping[str, str]
    create_time: dt.datetime
    principal_email: str = "local-user@example.com"
    user_agent: str = ""
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    destination_table: Mapping[str, str] | None = None  # {projectId, datasetId, tableId}
    default_dataset: Mapping[str, str] | None = None
    create_disposition: str | None = None
    write_disposition: str | None = None
    priority: str | None = None  # INTERACTIVE / BATCH, as the jobs API spells it
    statement_type: str | None = None
    error: JobErrorInfo | None = None
    errors: Sequence[JobErrorInfo] = ()
    total_slot_ms: int | None = None
    total_processed_bytes: int | None = None
    total_billed_bytes: int | None = None
    output_row_count: int | None = None
    cache_hit: bool | None = None
    parent_job_id: str | None = None
    transfer: TransferAudit | None = None


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _table_name(ref: Mapping[str, str]) -> str:
    return f"projects/{ref['projectId']}/datasets/{ref['datasetId']}/tables/{ref['tableId']}"


def _rpc_status(error: JobErrorInfo) -> dict[str, Any]:
    return {"code": code_for_reason(error.reason), "message": error.message}


def _job_payload(job: AuditJob, state: str) -> dict[str, Any]:
    query_config: dict[str, Any] = {"query": job.query[:50_000]}
    if len(job.query) > 50_000:
        query_config["queryTruncated"] = True
    if job.destination_table:
        query_config["destinationTable"] = _table_name(job.destination_table)
    if job.create_disposition:
        query_config["createDisposition"] = job.create_disposition
    if job.write_disposition:
        query_config["writeDisposition"] = job.write_disposition
    if job.default_dataset:
        dataset = job.default_dataset
        query_config["defaultDataset"] = f"projects/{dataset.get('projectId', job.project)}/datasets/{dataset['datasetId']}"
    query_config["priority"] = "QUERY_BATCH" if job.priority == "BATCH" else "QUERY_INTERACTIVE"
    if job.statement_type:
        query_config["statementType"] = job.statement_type
    job_config: dict[str, Any] = {"type": "QUERY", "queryConfig": query_config}
    if job.transfer is not None:
        job_config = {"type": job.transfer.job_type, job.transfer.config_key: dict(job.transfer.config)}
    if job.labels:
        job_config["labels"] = dict(job.labels)

    status: dict[str, Any] = {"jobState": state}
    if state == "DONE" and job.error is not None:
        status["errorResult"] = _rpc_status(job.error)
        status["errors"] = [_rpc_status(error) for error in (job.errors or [job.error])]

    stats: dict[str, Any] = {"createTime": _timestamp(job.create_time)}
    if job.start_time is not None:
        stats["startTime"] = _timestamp(job.start_time)
    if job.parent_job_id:
        stats["parentJobName"] = f"projects/{job.project}/jobs/{job.parent_job_id}"
    if state == "DONE":
        if job.end_time is not None:
            stats["endTime"] = _timestamp(job.end_time)
        if job.total_slot_ms is not None:
            stats["totalSlotMs"] = str(job.total_slot_ms)
            stats["reservation"] = "unreserved"
        query_stats: dict[str, Any] = {}
        if job.total_processed_bytes is not None:
            query_stats["totalProcessedBytes"] = str(job.total_processed_bytes)
        if job.total_billed_bytes is not None:
            query_stats["totalBilledBytes"] = str(job.total_billed_bytes)
        if job.output_row_count is not None:
            query_stats["outputRowCount"] = str(job.output_row_count)
        if job.cache_hit is not None:
            query_stats["cacheHit"] = job.cache_hit
        if query_stats and job.transfer is None:
            stats["queryStats"] = query_stats
        if job.transfer is not None and job.transfer.stats_key and job.error is None:
            stats[job.transfer.stats_key] = dict(job.transfer.stats)
    return {
        "jobName": f"projects/{job.project}/jobs/{job.job_id}",
        "jobConfig": job_config,
        "jobStatus": status,
        "jobStats": stats,
    }


def _entry(
    job: AuditJob, metadata: dict[str, Any], *, at: dt.datetime, failed: bool, first: bool = False, last: bool = False
) -> dict[str, Any]:
    proto: dict[str, Any] = {
        "@type": AUDIT_LOG_TYPE,
        "status": _rpc_status(job.error) if failed and job.error else {},
        "authenticationInfo": {"principalEmail": job.principal_email},
        "requestMetadata": {"callerIp": "127.0.0.1", "callerSuppliedUserAgent": job.user_agent},
        "serviceName": "bigquery.googleapis.com",
        "methodName": INSERT_JOB_METHOD,
        "resourceName": f"projects/{job.project}/jobs/{job.job_id}",
        "metadata": {"@type": METADATA_TYPE, **metadata},
    }
    now = _timestamp(at)
    operation: dict[str, Any] = {
        "id": f"{int(job.create_time.timestamp() * 1000)}-{job.project}:{job.job_id}",
        "producer": "bigquery.googleapis.com",
    }
    if first:
        operation["first"] = True
    if last:
        operation["last"] = True
    return {
        "protoPayload": proto,
        "insertId": secrets.token_hex(8),
        "resource": {"type": "bigquery_project", "labels": {"project_id": job.project, "location": job.location}},
        "timestamp": now,
        "receiveTimestamp": now,
        "severity": "ERROR" if failed else "INFO",
        "logName": f"projects/{job.project}/logs/{DATA_ACCESS_LOG}",
        "operation": operation,
    }


def job_insertion_entry(job: AuditJob, state: str = "RUNNING") -> dict[str, Any]:
    """The insertion entry; `state` is PENDING for a job that waits in BigQuery's query queue."""
    metadata = {"jobInsertion": {"job": _job_payload(job, state), "reason": "JOB_INSERT_REQUEST"}}
    return _entry(job, metadata, at=job.create_time, failed=False, first=True)


def job_change_entry(job: AuditJob, before: str, after: str) -> dict[str, Any]:
    metadata = {"jobChange": {"before": before, "after": after, "job": _job_payload(job, after)}}
    failed = after == "DONE" and job.error is not None
    at = (job.end_time if after == "DONE" else job.start_time) or job.create_time
    return _entry(job, metadata, at=at, failed=failed, last=after == "DONE")


def entry_job_id(entry: Mapping[str, Any]) -> str | None:
    """The BigQuery job ID an entry is about (the last part of `protoPayload.resourceName`)."""
    name = entry.get("protoPayload", {}).get("resourceName", "")
    return name.rsplit("/", 1)[-1] if "/jobs/" in name else None


# --- delivery policies --------------------------------------------------------------------------


class DeliveryPolicy(Protocol):
    def deliveries(self, entry: Mapping[str, Any]) -> Sequence[float]:
        """Delay in seconds of each copy to publish: [] drops the entry, [0, 0] duplicates it."""
        ...


class DeliverOnce:
    """What a healthy sink does: every routed entry once, at once."""

    def deliveries(self, entry: Mapping[str, Any]) -> Sequence[float]:
        return (0.0,)


EntryMatch = str | Callable[[Mapping[str, Any]], bool]


@dataclass
class _Rule:
    match: EntryMatch
    delays: tuple[float, ...]
    remaining: int | None

    def applies(self, entry: Mapping[str, Any]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return entry_job_id(entry) == self.match if isinstance(self.match, str) else bool(self.match(entry))


@dataclass
class ChaosPolicy:
    """Scripted misbehaviour for chaos tests; entries no rule matches are delivered once.

    `match` is a BigQuery job ID or a predicate over the LogEntry; `times` is how many
    matching entries the rule affects (None: all). The first applicable rule wins.
    """

    rules: list[_Rule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def drop(self, match: EntryMatch, *, times: int | None = 1) -> ChaosPolicy:
        return self._add(match, (), times)

    def duplicate(self, match: EntryMatch, *, copies: int = 2, gap_s: float = 0.0, times: int | None = 1) -> ChaosPolicy:
        return self._add(match, tuple(index * gap_s for index in range(copies)), times)

    def delay(self, match: EntryMatch, seconds: float, *, times: int | None = 1) -> ChaosPolicy:
        return self._add(match, (seconds,), times)

    def _add(self, match: EntryMatch, delays: tuple[float, ...], times: int | None) -> ChaosPolicy:
        with self._lock:
            self.rules.append(_Rule(match, delays, times))
        return self

    def deliveries(self, entry: Mapping[str, Any]) -> Sequence[float]:
        with self._lock:
            for rule in self.rules:
                if rule.applies(entry):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule.delays
        return (0.0,)


# --- the bridge ---------------------------------------------------------------------------------


class AuditLogBridge:
    """Writes the audit entries of jobs, routes those the sink filter matches, and publishes them."""

    def __init__(
        self,
        sink_filter: str | LogFilter,
        publish: Publish,
        *,
        policy: DeliveryPolicy | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.filter = parse_filter(sink_filter) if isinstance(sink_filter, str) else sink_filter
        self.publish = publish
        self.policy: DeliveryPolicy = policy or DeliverOnce()
        self.max_attempts = max_attempts
        self.entries: list[dict[str, Any]] = []  # everything "written to Cloud Logging"
        self.routed: list[dict[str, Any]] = []  # what the sink filter matched
        self.published: list[dict[str, Any]] = []  # each successful publish (duplicates included)
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, int, dict[str, Any]]] = []  # (due, seq, attempt, entry)
        self._seq = itertools.count()
        self._in_flight = 0
        self._closed = False
        self._thread = threading.Thread(target=self._deliver_loop, name="audit-bridge", daemon=True)
        self._thread.start()

    # writing -----------------------------------------------------------------------------------

    def job_inserted(self, job: AuditJob) -> None:
        self.write(job_insertion_entry(job))
        self.write(job_change_entry(job, "PENDING", "RUNNING"))

    def job_queued(self, job: AuditJob) -> None:
        """Inserted behind the running cap: PENDING until `job_started`."""
        self.write(job_insertion_entry(job, "PENDING"))

    def job_started(self, job: AuditJob) -> None:
        self.write(job_change_entry(job, "PENDING", "RUNNING"))

    def job_done(self, job: AuditJob) -> None:
        self.write(job_change_entry(job, "RUNNING", "DONE"))

    def write(self, entry: dict[str, Any]) -> bool:
        """Log one entry; returns whether the sink routed it."""
        matched = self.filter.matches(entry)
        with self._cond:
            self.entries.append(entry)
            if not matched:
                return False
            self.routed.append(entry)
            now = time.monotonic()
            for delay in self.policy.deliveries(entry):
                heapq.heappush(self._queue, (now + max(0.0, delay), next(self._seq), 1, entry))
            self._cond.notify_all()
        return True

    # delivering --------------------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, attempt, entry = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self.publish(entry)
            except Exception as exc:  # a publisher failure must not kill delivery of later entries
                message = f"publishing {entry_job_id(entry)} failed (attempt {attempt}): {exc!r}"
                _log.warning(message)
                with self._cond:
                    self.errors.append(message)
                    if attempt < self.max_attempts:
                        retry_at = time.monotonic() + 0.2 * 2 ** (attempt - 1)
                        heapq.heappush(self._queue, (retry_at, next(self._seq), attempt + 1, entry))
            else:
                with self._cond:
                    self.published.append(entry)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every scheduled delivery (delays included) is done; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)


class PubSubPublisher:
    """Publishes entries as a log sink does: JSON data plus the `logging.googleapis.com/timestamp` attribute."""

    def __init__(self, project: str, topic: str, *, emulator_host: str | None = None, timeout_s: float = 30.0) -> None:
        from google.cloud.pubsub_v1 import PublisherClient

        if emulator_host:
            import grpc
            from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

            transport = PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host))
            self._client = PublisherClient(transport=transport)
        else:
            self._client = PublisherClient()  # honours PUBSUB_EMULATOR_HOST
        self.topic_path = topic if topic.startswith("projects/") else self._client.topic_path(project, topic)
        self.timeout_s = timeout_s

    def __call__(self, entry: Mapping[str, Any]) -> None:
        data = json.dumps(entry, separators=(",", ":")).encode()
        attributes = {"logging.googleapis.com/timestamp": str(entry.get("timestamp", ""))}
        self._client.publish(self.topic_path, data, **attributes).result(timeout=self.timeout_s)

    def close(self) -> None:
        self._client.stop()
