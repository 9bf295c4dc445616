"""Load, copy and extract jobs on the local BigQuery: what BigQuery does with them, done on the engine.

The façade owns the job (ID, labels, state, audit entry); this module does the work when the
job's simulated duration is over:
- load: the source objects are read from the Cloud Storage emulator (a `*` URI expanded as
  BigQuery does) into a staging folder, and the engine creates or appends the destination with
  DuckDB's `read_csv` / `read_json` / `read_parquet`, casting to the declared schema;
- copy: `CREATE OR REPLACE TABLE dest AS SELECT * FROM src [UNION ALL ...]` (or INSERT to append);
- extract: the source table's rows, read back from the engine, written as CSV or newline-delimited
  JSON objects (a `*` in a URI becomes BigQuery's 12-digit shard number).
A missing dataset, table or source file fails the job with BigQuery's `notFound` reason and message.
The job resource's statistics and the audit entry's shape come from `resource_statistics` and `audit`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devstack.cloud_storage import StorageClient, StorageError

EngineCall = Callable[..., requests.Response]
TRANSFER_KINDS = ("load", "copy", "extract")
# jobs API configuration key -> (jobConfig.type and config key in BigQueryAuditMetadata, jobs API jobType)
_AUDIT_SHAPE = {"load": ("IMPORT", "loadConfig"), "extract": ("EXPORT", "extractConfig"), "copy": ("COPY", "tableCopyConfig")}
_JOB_TYPE = {"load": "LOAD", "copy": "COPY", "extract": "EXTRACT"}
_READERS = {
    "CSV": "read_csv",
    "NEWLINE_DELIMITED_JSON": "read_json",
    "PARQUET": "read_parquet",
}
_SUFFIX = {"CSV": ".csv", "NEWLINE_DELIMITED_JSON": ".json", "PARQUET": ".parquet"}
_NUMERIC = {"INT64", "INTEGER", "FLOAT64", "FLOAT", "NUMERIC", "BIGNUMERIC"}
_TYPE_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


@dataclass(frozen=True)
class TransferAudit:
    """A load, extract or copy job's part of its audit entry, already in BigQueryAuditMetadata's JSON shape.

    `job_type` is JobConfig.Type (IMPORT, EXPORT, COPY); `config_key` is `loadConfig`, `extractConfig` or
    `tableCopyConfig`; `stats_key` is `loadStats` or `extractStats` (a copy job has no stats of its own).
    """

    job_type: str
    config_key: str
    config: Mapping[str, Any]
    stats_key: str | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)


class TransferFailed(Exception):
    """The job ends DONE with this errorResult (BigQuery reports a job's failure on the job)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.error = {"reason": reason, "message": message}


@dataclass
class TransferResult:
    error: dict[str, Any] | None = None
    destination: dict[str, str] | None = None  # the table a load or copy wrote
    output_rows: int | None = None
    input_files: int = 0
    input_bytes: int = 0
    file_counts: list[int] = field(default_factory=list)  # extract: files per destination URI


def transfer_kind(configuration: Mapping[str, Any]) -> str | None:
    """`load`, `copy` or `extract` when the jobs.insert configuration is one of them."""
    return next((kind for kind in TRANSFER_KINDS if kind in configuration), None)


def _table(ref: Mapping[str, str], project: str) -> dict[str, str]:
    return {"projectId": ref.get("projectId") or project, "datasetId": ref["datasetId"], "tableId": ref["tableId"]}


def _sql_table(ref: Mapping[str, str]) -> str:
    return f"`{ref['projectId']}`.`{ref['datasetId']}`.`{ref['tableId']}`"


def _text(ref: Mapping[str, str]) -> str:
    return f"{ref['projectId']}:{ref['datasetId']}.{ref['tableId']}"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class TransferJobs:
    """Runs one load, copy or extract job on the engine (called by the façade's scheduler only)."""

    def __init__(self, engine_call: EngineCall, storage: StorageClient | None, staging_dir: Path) -> None:
        self.engine_call = engine_call
        self.storage = storage
        self.staging_dir = staging_dir

    def run(self, project: str, location: str, engine_job_id: str, configuration: Mapping[str, Any]) -> TransferResult:
        kind = transfer_kind(configuration)
        try:
            if kind == "load":
                return self._load(project, location, engine_job_id, configuration["load"])
            if kind == "copy":
                return self._copy(project, location, engine_job_id, configuration["copy"])
            if kind == "extract":
                return self._extract(project, configuration["extract"])
        except TransferFailed as failed:
            return TransferResult(error=failed.error)
        except StorageError as exc:
            return TransferResult(error={"reason": "backendError", "message": f"local Cloud Storage: {exc}"})
        finally:
            shutil.rmtree(self.staging_dir / engine_job_id, ignore_errors=True)
        return TransferResult(error={"reason": "invalid", "message": "Job configuration is not a load, copy or extract"})

    # --- engine --------------------------------------------------------------------------------------

    def _sql(self, project: str, location: str, engine_job_id: str, sql: str) -> None:
        body = {
            "jobReference": {"projectId": project, "jobId": engine_job_id, "location": location},
            "configuration": {"query": {"query": sql, "useLegacySql": False}},
        }
        response = self.engine_call("POST", f"/bigquery/v2/projects/{project}/jobs", json_body=body)
        error = None
        if response.status_code != 200:
            error = ((response.json().get("error") or {}).get("errors") or [{}])[0] if response.content else {}
        else:
            error = (response.json().get("status") or {}).get("errorResult")
        if error:
            raise TransferFailed(str(error.get("reason") or "invalid"), str(error.get("message") or response.text[:300]))

    def _get_table(self, ref: Mapping[str, str]) -> dict[str, Any] | None:
        path = f"/bigquery/v2/projects/{ref['projectId']}/datasets/{ref['datasetId']}/tables/{ref['tableId']}"
        response = self.engine_call("GET", path)
        return response.json() if response.status_code == 200 else None

    def _require_dataset(self, ref: Mapping[str, str]) -> None:
        response = self.engine_call("GET", f"/bigquery/v2/projects/{ref['projectId']}/datasets/{ref['datasetId']}")
        if response.status_code == 404:
            raise TransferFailed("notFound", f"Not found: Dataset {ref['projectId']}:{ref['datasetId']}")

    def _require_table(self, ref: Mapping[str, str]) -> dict[str, Any]:
        self._require_dataset(ref)
        table = self._get_table(ref)
        if table is None:
            raise TransferFailed("notFound", f"Not found: Table {_text(ref)}")
        return table

    def _write(
        self, project: str, location: str, engine_job_id: str, destination: dict[str, str], select: str, disposition: str
    ) -> int:
        """Create, replace or append `destination` from `select` as the write disposition says; its rows after."""
        self._require_dataset(destination)
        existing = self._get_table(destination)
        if existing is not None and disposition == "WRITE_EMPTY" and int(existing.get("numRows") or 0) > 0:
            raise TransferFailed("duplicate", f"Already Exists: Table {_text(destination)}")
        if existing is not None and disposition == "WRITE_APPEND":
            statement = f"INSERT INTO {_sql_table(destination)}\n{select}"
        else:
            statement = f"CREATE OR REPLACE TABLE {_sql_table(destination)} AS\n{select}"
        self._sql(project, location, engine_job_id, statement)
        written = self._get_table(destination) or {}
        return int(written.get("numRows") or 0)

    # --- load ----------------------------------------------------------------------------------------

    def _stage(self, engine_job_id: str, uris: Sequence[str], suffix: str) -> tuple[list[Path], int]:
        if self.storage is None:
            raise TransferFailed("invalid", "the local BigQuery has no Cloud Storage emulator to load from")
        folder = self.staging_dir / engine_job_id
        folder.mkdir(parents=True, exist_ok=True)
        files: list[Path] = []
        size = 0
        for uri in uris:
            try:
                objects = self.storage.expand(uri)
            except FileNotFoundError:
                raise TransferFailed("notFound", f"Not found: URI {uri}") from None
            if not objects:
                raise TransferFailed("notFound", f"Not found: URI {uri}")
            for bucket, name in objects:
                try:
                    data = self.storage.download(bucket, name)
                except FileNotFoundError:
                    raise TransferFailed("notFound", f"Not found: URI gs://{bucket}/{name}") from None
                path = folder / f"{len(files):06d}{suffix}"
                path.write_bytes(data)
                files.append(path)
                size += len(data)
        return files, size

    def _load(self, project: str, location: str, engine_job_id: str, config: Mapping[str, Any]) -> TransferResult:
        destination = _table(config["destinationTable"], project)
        self._require_dataset(destination)
        source_format = str(config.get("sourceFormat") or "CSV")
        if source_format not in _READERS:
            raise TransferFailed("invalid", f"The local BigQuery does not load {source_format} files")
        uris = config.get("sourceUris") or []
        files, size = self._stage(engine_job_id, uris, _SUFFIX[source_format])
        fields = ((config.get("schema") or {}).get("fields")) or []
        columns = [(str(f["name"]), _TYPE_ALIASES.get(str(f["type"]).upper(), str(f["type"]).upper())) for f in fields]
        select = self._load_select(source_format, [str(path) for path in files], columns, config)
        disposition = str(config.get("writeDisposition") or "WRITE_APPEND")  # the jobs API's default for loads
        rows_before = 0
        if disposition == "WRITE_APPEND":
            existing = self._get_table(destination)
            rows_before = int((existing or {}).get("numRows") or 0)
        rows = self._write(project, location, engine_job_id, destination, select, disposition)
        return TransferResult(destination=destination, output_rows=rows - rows_before, input_files=len(files), input_bytes=size)

    @staticmethod
    def _load_select(source_format: str, files: list[str], columns: list[tuple[str, str]], config: Mapping[str, Any]) -> str:
        file_list = "[" + ", ".join(_literal(path) for path in files) + "]"
        skip = int(config.get("skipLeadingRows") or 0)
        if source_format == "CSV":
            if columns:
                names = "[" + ", ".join(_literal(name) for name, _ in columns) + "]"
                reader = f"read_csv({file_list}, header=false, skip={skip}, all_varchar=true, names={names})"
            else:  # autodetect: the first skipped row holds the column names, as BigQuery reads it
                reader = f"read_csv({file_list}, header={'true' if skip else 'false'}, skip={max(skip - 1, 0)})"
        elif source_format == "NEWLINE_DELIMITED_JSON":
            reader = f"read_json({file_list}, format='newline_delimited')"
        else:
            reader = f"read_parquet({file_list})"
        if not columns:
            return f"SELECT * FROM {reader}"

        def cast(name: str, type_: str) -> str:
            column = f"`{name}`"
            if source_format == "CSV" and type_ != "STRING":
                column = f"NULLIF({column}, '')"  # an empty CSV field is NULL, as in BigQuery
            return f"CAST({column} AS {type_}) AS `{name}`"

        return f"SELECT {', '.join(cast(name, type_) for name, type_ in columns)} FROM {reader}"

    # --- copy ----------------------------------------------------------------------------------------

    def _copy(self, project: str, location: str, engine_job_id: str, config: Mapping[str, Any]) -> TransferResult:
        sources = [_table(ref, project) for ref in (config.get("sourceTables") or [config.get("sourceTable")]) if ref]
        for source in sources:
            self._require_table(source)
        destination = _table(config["destinationTable"], project)
        select = "\nUNION ALL\n".join(f"SELECT * FROM {_sql_table(source)}" for source in sources)
        disposition = str(config.get("writeDisposition") or "WRITE_EMPTY")  # the jobs API's default for copies
        rows = self._write(project, location, engine_job_id, destination, select, disposition)
        return TransferResult(destination=destination, output_rows=rows)

    # --- extract -------------------------------------------------------------------------------------

    def _rows(self, ref: Mapping[str, str]) -> list[list[Any]]:
        path = f"/bigquery/v2/projects/{ref['projectId']}/datasets/{ref['datasetId']}/tables/{ref['tableId']}/data"
        rows: list[list[Any]] = []
        token: str | None = None
        while True:
            params = {"maxResults": "10000", **({"pageToken": token} if token else {})}
            body = self.engine_call("GET", path, params=params).json()
            rows += [[cell.get("v") for cell in row.get("f", [])] for row in body.get("rows") or []]
            token = body.get("pageToken")
            if not token:
                return rows

    def _extract(self, project: str, config: Mapping[str, Any]) -> TransferResult:
        if self.storage is None:
            raise TransferFailed("invalid", "the local BigQuery has no Cloud Storage emulator to extract to")
        source = _table(config["sourceTable"], project)
        table = self._require_table(source)
        fields = [(str(f["name"]), str(f.get("type", "STRING")).upper()) for f in (table.get("schema") or {}).get("fields", [])]
        rows = self._rows(source)
        destination_format = str(config.get("destinationFormat") or "CSV")
        if destination_format == "CSV":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if config.get("printHeader", True) is not False:
                writer.writerow([name for name, _ in fields])
            writer.writerows(rows)
            data = buffer.getvalue().encode()
        elif destination_format == "NEWLINE_DELIMITED_JSON":
            lines = [
                json.dumps({name: _typed(value, type_) for (name, type_), value in zip(fields, row, strict=False)})
                for row in rows
            ]
            data = "".join(line + "\n" for line in lines).encode()
        else:
            raise TransferFailed("invalid", f"The local BigQuery does not extract to {destination_format}")
        counts = []
        for uri in config.get("destinationUris") or []:
            bucket, name = _shard(uri)
            self.storage.ensure_bucket(bucket)
            self.storage.upload(bucket, name, data)
            counts.append(1)
        return TransferResult(output_rows=len(rows), input_bytes=len(data), file_counts=counts)


def _shard(uri: str) -> tuple[str, str]:
    from devstack.cloud_storage import parse_gcs_uri

    bucket, name = parse_gcs_uri(uri)
    return bucket, name.replace("*", "000000000000", 1)


def _typed(value: Any, type_: str) -> Any:
    """tabledata.list gives every value as text; JSON output carries numbers and booleans as JSON does."""
    if value is None:
        return None
    if type_ in ("INTEGER", "INT64"):
        return int(value)
    if type_ in ("FLOAT", "FLOAT64"):
        return float(value)
    if type_ in ("BOOLEAN", "BOOL"):
        return str(value).lower() == "true"
    return value


# --- the job resource and the audit entry ------------------------------------------------------------


def job_type(configuration: Mapping[str, Any]) -> str:
    """The jobs API's `configuration.jobType`."""
    kind = transfer_kind(configuration)
    return _JOB_TYPE[kind] if kind else "QUERY"


def resource_statistics(configuration: Mapping[str, Any], result: TransferResult) -> dict[str, Any]:
    """`statistics.load`, `.copy` or `.extract` of a successful job, as jobs.get returns them (int64 as strings)."""
    kind = transfer_kind(configuration)
    if kind == "load":
        return {
            "load": {
                "inputFiles": str(result.input_files),
                "inputFileBytes": str(result.input_bytes),
                "outputRows": str(result.output_rows or 0),
                "outputBytes": "0",
            }
        }
    if kind == "copy":
        return {"copy": {"copiedRows": str(result.output_rows or 0), "copiedLogicalBytes": "0"}}
    if kind == "extract":
        return {
            "extract": {"destinationUriFileCounts": [str(n) for n in result.file_counts], "inputBytes": str(result.input_bytes)}
        }
    return {}


def _table_name(ref: Mapping[str, str], project: str) -> str:
    table = _table(ref, project)
    return f"projects/{table['projectId']}/datasets/{table['datasetId']}/tables/{table['tableId']}"


def audit(configuration: Mapping[str, Any], project: str, result: TransferResult | None) -> TransferAudit:
    """The job's jobConfig and jobStats parts in BigQueryAuditMetadata's shape (loadConfig, extractConfig, tableCopyConfig)."""
    kind = transfer_kind(configuration)
    assert kind is not None
    job_config_type, config_key = _AUDIT_SHAPE[kind]
    config = configuration[kind]
    shaped: dict[str, Any]
    stats_key: str | None = None
    stats: dict[str, Any] = {}
    if kind == "load":
        shaped = {
            "sourceUris": list(config.get("sourceUris") or []),
            "destinationTable": _table_name(config["destinationTable"], project),
        }
        if (config.get("schema") or {}).get("fields"):
            shaped["schemaJson"] = json.dumps({"fields": config["schema"]["fields"]})
        shaped["createDisposition"] = config.get("createDisposition") or "CREATE_IF_NEEDED"
        shaped["writeDisposition"] = config.get("writeDisposition") or "WRITE_APPEND"
        stats_key, stats = "loadStats", {"totalOutputBytes": str(result.input_bytes if result else 0)}
    elif kind == "extract":
        shaped = {
            "destinationUris": list(config.get("destinationUris") or []),
            "sourceTable": _table_name(config["sourceTable"], project),
        }
        stats_key, stats = "extractStats", {"totalInputBytes": str(result.input_bytes if result else 0)}
    else:
        sources = config.get("sourceTables") or [config.get("sourceTable")]
        shaped = {
            "sourceTables": [_table_name(ref, project) for ref in sources if ref],
            "destinationTable": _table_name(config["destinationTable"], project),
            "createDisposition": config.get("createDisposition") or "CREATE_IF_NEEDED",
            "writeDisposition": config.get("writeDisposition") or "WRITE_EMPTY",
        }
    return TransferAudit(job_type=job_config_type, config_key=config_key, config=shaped, stats_key=stats_key, stats=stats)
