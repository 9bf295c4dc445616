"""BigQuery audit-log entries -> typed completions of Baton's jobs.

A Cloud Logging sink routes BigQuery's audit `LogEntry` JSON to Pub/Sub. The
completion is `protoPayload.metadata` (a `google.cloud.audit.BigQueryAuditMetadata`)
with `jobChange.after == "DONE"`; the job is under `jobChange.job`:

    jobName                         "projects/P/jobs/ID"
    jobConfig.labels                baton_env, baton_run, baton_job, baton_attempt (+ baton_check on a check)
    jobConfig.queryConfig.destinationTable   "projects/P/datasets/D/tables/T"
    jobStatus.errorResult           google.rpc.Status {code, message}
    jobStats.startTime / endTime / totalSlotMs / parentJobName
    jobStats.queryStats.totalProcessedBytes / totalBilledBytes / outputRowCount

Everything else is `Ignored` with a reason code, never an exception: the handler
acknowledges it and counts it (invariant 4). That includes the older `AuditData`
shape (`protoPayload.serviceData.jobCompletedEvent`, method
`jobservice.jobcompleted`), which BigQuery still writes beside the new one.
proto3 JSON writes int64 as strings, so numbers are accepted as strings or ints.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from baton.domain.bigquery_reasons import AMBIGUOUS_CODES, reason_for_code
from baton.domain.naming import (
    ATTEMPT_PATTERN,
    BATON_LABELS,
    CHECK_NAME_PATTERN,
    ENVIRONMENT_PATTERN,
    JOB_KEY_PATTERN,
    LABEL_ATTEMPT,
    LABEL_CHECK,
    LABEL_ENV,
    LABEL_JOB,
    LABEL_RUN,
    RUN_ID_PATTERN,
    bigquery_job_id,
    check_job_id,
)
from baton.domain.outcomes import completion_of
from baton.domain.records import CheckCompletion, Completion, JobError, JobStats
from baton.entrypoints.json_body import kind_of

BIGQUERY_SERVICE = "bigquery.googleapis.com"
AUDIT_METADATA_TYPE = "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata"

# The reference documents only "projects/P/jobs/ID". "projects/P/locations/L/jobs/ID"
# (how other Google APIs name located resources) is accepted as well: the job ID is
# still checked against Baton's own, and a format change must not silently turn
# every completion into an ignored event.
_JOB_NAME = re.compile(r"^projects/(?P<project>[^/]+)/(?:locations/(?P<location>[^/]+)/)?jobs/(?P<job_id>[^/]+)$")
_TABLE_NAME = re.compile(r"^projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[^/]+)$")
_INT64 = re.compile(r"^-?[0-9]{1,19}$")
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?(?P<tz>[Zz]|[+-]\d{2}:\d{2})$"
)
_CONFIG_KINDS = ("queryConfig", "loadConfig", "tableCopyConfig")
_INT64_MAX = 2**63 - 1


class IgnoreReason(StrEnum):
    """Why an entry is not a completion of one of Baton's jobs. Every one is acknowledged, not retried."""

    NOT_AN_OBJECT = "not_an_object"  # the payload is not a JSON object
    NOT_A_LOG_ENTRY = "not_a_log_entry"  # no protoPayload
    NOT_BIGQUERY = "not_bigquery"  # another service's audit entry
    LEGACY_AUDIT_DATA = "legacy_audit_data"  # the older AuditData (serviceData) shape
    UNKNOWN_BIGQUERY_PAYLOAD = "unknown_bigquery_payload"  # BigQuery, but neither AuditData nor BigQueryAuditMetadata
    NOT_JOB_CHANGE = "not_job_change"  # jobInsertion, tableDataChange, ...
    NOT_DONE = "not_done"  # jobChange to PENDING or RUNNING
    CHILD_JOB = "child_job"  # a statement of a script; Baton's job is the parent
    NOT_BATON_JOB = "not_baton_job"  # no Baton label at all
    MALFORMED_LABELS = "malformed_labels"  # Baton labels missing or invalid
    OTHER_ENVIRONMENT = "other_environment"  # baton_env is not the caller's environment
    FOREIGN_JOB_ID = "foreign_job_id"  # labels say Baton, the job ID is not the one Baton derives
    MALFORMED = "malformed"  # a field has the wrong type or format; the message names its path


@dataclass(frozen=True)
class Ignored:
    """An entry that completes nothing. `detail` is JSON-serialisable context for the log line."""

    reason: IgnoreReason
    message: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedCompletion:
    """A Baton job (or one of its checks) reached DONE. `environment` is its baton_env label; `location` is None
    when the entry omits it."""

    completion: Completion | CheckCompletion
    environment: str
    project: str
    location: str | None = None


def parse_log_entry(entry: object, *, environment: str | None = None) -> ParsedCompletion | Ignored:
    """Read one routed LogEntry. With `environment`, entries labelled for another one are ignored."""
    try:
        return _parse(entry, environment)
    except _MalformedError as exc:
        ids = _entry_ids(entry) if isinstance(entry, Mapping) else {}
        return Ignored(IgnoreReason.MALFORMED, str(exc), {"path": exc.path, **ids})


# --- the walk ---------------------------------------------------------------------------------


def _ignored(reason: IgnoreReason, message: str, **detail: object) -> Ignored:
    return Ignored(reason, message, detail)


def _parse(entry: object, environment: str | None) -> ParsedCompletion | Ignored:
    if not isinstance(entry, Mapping):
        return _ignored(IgnoreReason.NOT_AN_OBJECT, f"payload is {kind_of(entry)}, not a JSON object")
    ids = _entry_ids(entry)
    payload = _obj(entry, "protoPayload", "protoPayload")
    if payload is None:
        return _ignored(IgnoreReason.NOT_A_LOG_ENTRY, "no protoPayload: not an audit LogEntry", **ids)
    service = _str(payload, "serviceName", "protoPayload.serviceName")
    if service != BIGQUERY_SERVICE:
        message = f"audit entry of {service or 'an unnamed service'}, not BigQuery"
        return _ignored(IgnoreReason.NOT_BIGQUERY, message, service=service, **ids)
    method = _str(payload, "methodName", "protoPayload.methodName")
    if payload.get("serviceData") is not None:
        message = f"older AuditData entry ({method or 'serviceData'}); Baton reads BigQueryAuditMetadata"
        return _ignored(IgnoreReason.LEGACY_AUDIT_DATA, message, method=method, **ids)

    metadata = _obj(payload, "metadata", "protoPayload.metadata")
    metadata_type = "" if metadata is None else _str(metadata, "@type", "protoPayload.metadata.@type")
    if metadata is None or metadata_type not in ("", AUDIT_METADATA_TYPE):
        message = f"BigQuery entry without BigQueryAuditMetadata (metadata type '{metadata_type}')"
        return _ignored(IgnoreReason.UNKNOWN_BIGQUERY_PAYLOAD, message, method=method, metadata_type=metadata_type, **ids)
    change = _obj(metadata, "jobChange", "protoPayload.metadata.jobChange")
    if change is None:
        event = next((str(key) for key in metadata if key != "@type"), "")
        message = f"BigQueryAuditMetadata event {event or '(none)'}, not jobChange"
        return _ignored(IgnoreReason.NOT_JOB_CHANGE, message, event=event, **ids)

    at = "protoPayload.metadata.jobChange"
    after = _str(change, "after", f"{at}.after")
    if after != "DONE":
        job_name = _str(_obj(change, "job", f"{at}.job") or {}, "jobName", f"{at}.job.jobName")
        message = f"job changed to {after or 'an unspecified state'}, not DONE"
        return _ignored(IgnoreReason.NOT_DONE, message, job_name=job_name, after=after, **ids)
    job = _required_obj(change, "job", f"{at}.job")
    job_name = _str(job, "jobName", f"{at}.job.jobName", required=True)
    name = _JOB_NAME.fullmatch(job_name)
    if name is None:
        raise _MalformedError(f"{at}.job.jobName", f"is '{job_name[:200]}', not projects/P/jobs/ID")

    job_stats = _obj(job, "jobStats", f"{at}.job.jobStats") or {}
    parent = _str(job_stats, "parentJobName", f"{at}.job.jobStats.parentJobName")
    if parent:
        message = "child job of a script; the parent script job is the one Baton submitted"
        return _ignored(IgnoreReason.CHILD_JOB, message, job_name=job_name, parent_job_name=parent, **ids)

    config = _obj(job, "jobConfig", f"{at}.job.jobConfig") or {}
    labels = _labels(config, f"{at}.job.jobConfig.labels")
    checked = _check_labels(labels, job_name, environment)
    if isinstance(checked, Ignored):
        return Ignored(checked.reason, checked.message, {**checked.detail, **ids})
    env, run_id, job_key, attempt = checked
    check_name = labels.get(LABEL_CHECK)
    if check_name is not None and not CHECK_NAME_PATTERN.fullmatch(check_name):
        problem = f"{LABEL_CHECK} {check_name!r} does not match {CHECK_NAME_PATTERN.pattern}"
        message = f"Baton labels invalid: {problem}"
        return _ignored(IgnoreReason.MALFORMED_LABELS, message, job_name=job_name, labels=labels, problems=[problem], **ids)
    if check_name is None:
        expected = bigquery_job_id(env, run_id, job_key, attempt)
    else:
        expected = check_job_id(env, run_id, job_key, attempt, check_name)
    if name["job_id"] != expected:
        message = f"job ID '{name['job_id']}' is not Baton's '{expected}'"
        return _ignored(IgnoreReason.FOREIGN_JOB_ID, message, job_name=job_name, expected_job_id=expected, labels=labels, **ids)

    status = _obj(job, "jobStatus", f"{at}.job.jobStatus") or {}
    error = _job_error(status, f"{at}.job.jobStatus.errorResult")
    stats = _job_stats(config, job_stats, f"{at}.job")
    # A check's verdict is outputRowCount (stats.rows_affected), which proto3 JSON omits when it is zero; but an
    # entry without queryStats at all (truncated at 100 KB) says nothing, and None makes jobs.get tell.
    rows = None if check_name is None or "queryStats" not in job_stats else (stats.rows_affected or 0)
    completion = completion_of(
        run_id, job_key, attempt, expected, check_name=check_name, error=error, stats=stats, output_rows=rows
    )
    location = name["location"] or _location(entry)
    return ParsedCompletion(completion, environment=env, project=name["project"], location=location)


def _check_labels(labels: Mapping[str, str], job_name: str, environment: str | None) -> tuple[str, str, str, int] | Ignored:
    present = {key: labels[key] for key in BATON_LABELS if key in labels}
    if not present:
        return _ignored(IgnoreReason.NOT_BATON_JOB, "job carries no Baton labels", job_name=job_name)
    problems = [f"{key} is missing" for key in BATON_LABELS if key not in present]
    env = present.get(LABEL_ENV)
    if env is not None and not ENVIRONMENT_PATTERN.fullmatch(env):
        problems.append(f"{LABEL_ENV} {env!r} is not a Baton environment name")
    if not problems and environment is not None and env != environment:
        message = f"job of environment '{env}', this is '{environment}'"
        return _ignored(
            IgnoreReason.OTHER_ENVIRONMENT, message, job_name=job_name, environment=env, expected_environment=environment
        )
    run_id, job_key, attempt = present.get(LABEL_RUN), present.get(LABEL_JOB), present.get(LABEL_ATTEMPT)
    if run_id is not None and not RUN_ID_PATTERN.fullmatch(run_id):
        problems.append(f"{LABEL_RUN} {run_id!r} is not 32 lowercase hex digits")
    if job_key is not None and not JOB_KEY_PATTERN.fullmatch(job_key):
        problems.append(f"{LABEL_JOB} {job_key!r} does not match {JOB_KEY_PATTERN.pattern}")
    if attempt is not None and not ATTEMPT_PATTERN.fullmatch(attempt):
        problems.append(f"{LABEL_ATTEMPT} {attempt!r} is not a positive integer")
    if problems or env is None or run_id is None or job_key is None or attempt is None:
        message = "Baton labels invalid: " + "; ".join(problems)
        return _ignored(IgnoreReason.MALFORMED_LABELS, message, job_name=job_name, labels=present, problems=problems)
    return env, run_id, job_key, int(attempt)


def _job_error(status: Mapping[str, object], at: str) -> JobError | None:
    """google.rpc.Status -> JobError. An absent or empty Status (code 0, OK) is success."""
    result = _obj(status, "errorResult", at)
    if not result:
        return None
    code = _int64(result, "code", f"{at}.code") or 0
    message = _str(result, "message", f"{at}.message")
    reason = _str(result, "reason", f"{at}.reason")  # BigQuery-style, when a writer provides it
    if code == 0 and not message and not reason:
        return None
    return JobError(
        reason=reason or reason_for_code(code),
        message=message or f"google.rpc code {code}",
        reason_inferred=not reason and code in AMBIGUOUS_CODES,  # jobs.get tells which reason it was
    )


def _job_stats(config: Mapping[str, object], stats: Mapping[str, object], at: str) -> JobStats:
    """rows_affected is queryStats.outputRowCount, the only row count in JobStats.

    DML row counts are not in the jobChange entry (they come as separate tableDataChange entries).
    """
    query = _obj(stats, "queryStats", f"{at}.jobStats.queryStats") or {}
    return JobStats(
        total_bytes_processed=_int64(query, "totalProcessedBytes", f"{at}.jobStats.queryStats.totalProcessedBytes"),
        total_bytes_billed=_int64(query, "totalBilledBytes", f"{at}.jobStats.queryStats.totalBilledBytes"),
        total_slot_ms=_int64(stats, "totalSlotMs", f"{at}.jobStats.totalSlotMs"),
        rows_affected=_int64(query, "outputRowCount", f"{at}.jobStats.queryStats.outputRowCount"),
        destination_table=_destination(config, f"{at}.jobConfig"),
        start_time=_timestamp(stats, "startTime", f"{at}.jobStats.startTime"),
        end_time=_timestamp(stats, "endTime", f"{at}.jobStats.endTime"),
    )


def _destination(config: Mapping[str, object], at: str) -> str | None:
    """`projects/P/datasets/D/tables/T` -> `P.D.T`; a query's anonymous result table (dataset `_...`) is none."""
    for kind in _CONFIG_KINDS:
        sub = _obj(config, kind, f"{at}.{kind}")
        if sub is None:
            continue
        table = _str(sub, "destinationTable", f"{at}.{kind}.destinationTable")
        if not table:
            return None
        match = _TABLE_NAME.fullmatch(table)
        if match is None:
            raise _MalformedError(f"{at}.{kind}.destinationTable", f"is '{table[:200]}', not projects/P/datasets/D/tables/T")
        if match["dataset"].startswith("_"):
            return None
        return f"{match['project']}.{match['dataset']}.{match['table']}"
    return None


def _labels(config: Mapping[str, object], at: str) -> dict[str, str]:
    raw = config.get("labels")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _MalformedError(at, f"must be an object, got {kind_of(raw)}")
    labels: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise _MalformedError(f"{at}.{key}", f"must be a string, got {kind_of(value)}")
        labels[str(key)] = value
    return labels


def _location(entry: Mapping[str, object]) -> str | None:
    resource = _obj(entry, "resource", "resource")
    labels = None if resource is None else _obj(resource, "labels", "resource.labels")
    return None if labels is None else (_str(labels, "location", "resource.labels.location") or None)


def _entry_ids(entry: Mapping[str, object]) -> dict[str, object]:
    """logName and insertId, to find the entry again from a log line; taken only if they are strings."""
    detail: dict[str, object] = {}
    for key, name in (("logName", "log_name"), ("insertId", "insert_id")):
        value = entry.get(key)
        if isinstance(value, str):
            detail[name] = value
    return detail


# --- typed access that names the path of what is wrong -----------------------------------------


class _MalformedError(Exception):
    """A field Baton reads does not have its documented type or format."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.path = path


def _obj(parent: Mapping[str, object], key: str, path: str) -> Mapping[str, object] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _MalformedError(path, f"must be an object, got {kind_of(value)}")
    return value


def _required_obj(parent: Mapping[str, object], key: str, path: str) -> Mapping[str, object]:
    value = _obj(parent, key, path)
    if value is None:
        raise _MalformedError(path, "is missing")
    return value


def _str_opt(parent: Mapping[str, object], key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _MalformedError(path, f"must be a string, got {kind_of(value)}")
    return value


def _str(parent: Mapping[str, object], key: str, path: str, *, required: bool = False) -> str:
    """The string at `key`; "" when absent, as proto3 JSON omits empty strings. Required means non-empty."""
    value = _str_opt(parent, key, path) or ""
    if required and not value:
        raise _MalformedError(path, "is missing")
    return value


def _int64(parent: Mapping[str, object], key: str, path: str) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _MalformedError(path, f"must be an integer or a decimal string, got {kind_of(value)}")
    if isinstance(value, str):
        if not _INT64.fullmatch(value):
            raise _MalformedError(path, f"is '{value[:40]}', not a decimal integer")
        value = int(value)
    if value < 0:
        raise _MalformedError(path, f"is negative ({value})")
    if value > _INT64_MAX:  # Spanner's INT64 (and proto3's) cannot hold it
        raise _MalformedError(path, f"is {str(value)[:40]}, beyond int64")
    return value


def _timestamp(parent: Mapping[str, object], key: str, path: str) -> dt.datetime | None:
    """RFC 3339 with up to nanoseconds (proto3 Timestamp JSON) -> aware datetime, truncated to microseconds."""
    raw = _str_opt(parent, key, path)
    if not raw:
        return None
    match = _TIMESTAMP.fullmatch(raw)
    if match is None:
        raise _MalformedError(path, f"is '{raw[:40]}', not an RFC 3339 timestamp")
    frac = (match["frac"] or "").ljust(6, "0")[:6]
    tz = "+00:00" if match["tz"] in ("Z", "z") else match["tz"]
    try:
        value = dt.datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{tz}")
        value.astimezone(dt.UTC)  # 0001-01-01T00:00:00+01:00 is a valid string but no UTC time Python or Spanner has
    except (ValueError, OverflowError):
        raise _MalformedError(path, f"is '{raw[:40]}', not a valid date and time") from None
    return value
