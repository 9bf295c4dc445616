"""The local BigQuery: a façade that owns the job control plane in front of the bqemulator engine.

bqemulator runs SQL well but accepts duplicate job IDs, drops labels and finishes
every job inside jobs.insert. Baton's invariants are about exactly those things, so
the façade answers the jobs API itself (the subset google-cloud-bigquery uses):

- a job registry: a second insert of a job ID answers 409 Already Exists;
- labels kept and returned; jobs RUNNING for a simulated duration, then DONE with
  the engine's real result (a failing query is DONE with `status.errorResult`);
- the engine runs a job only when its duration is over (one scheduler thread, so
  engine work is serialized), which lets jobs.cancel prevent the query's effects;
- the engine sees the façade's own internal job IDs, so its lack of uniqueness is moot;
- `destinationTable` + write/create dispositions are applied here (the engine ignores them);
- every DONE job goes to the audit-log bridge, which routes it like a Logging sink;
- jobs.get calls are counted per caller (User-Agent product) to prove nobody polls.
- callers have identities (`/_as/<email>` endpoints), recorded on their jobs;
- Google Cloud's own failures, off until a test turns them on (devstack.faults, `/_faults`): refusals
  and slow answers on jobs.insert/get/getQueryResults, a query queue with BigQuery's refusal,
  truncated audit entries, anonymous results readable only by the identity that ran the query.

Datasets, tables and tabledata calls are proxied to the engine unchanged.
Use `LocalBigQuery.start(...)`, or run `python -m devstack.bigquery_facade --help`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime as dt
import heapq
import itertools
import json
import logging
import re
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import requests
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.audit_bridge import AuditJob, AuditLogBridge, DeliveryPolicy, JobErrorInfo, Publish, PubSubPublisher
from devstack.bigquery_engine import BigQueryEngine
from devstack.bigquery_error_shapes import engine_job_error, error_body, in_bigquery_words, rewrite_not_found_body
from devstack.bigquery_metering import billed_bytes, referenced_tables, table_bytes
from devstack.cloud_storage import StorageClient
from devstack.faults import FaultBoard, FaultDocumentError
from devstack.transfer_jobs import TransferJobs, TransferResult, audit, job_type, resource_statistics, transfer_kind

if TYPE_CHECKING:
    from devstack.processes import ProcessSupervisor

__all__ = ["IDENTITY_PREFIX", "BigQueryFacade", "CallStats", "JobMatch", "LocalBigQuery", "caller_of"]

_log = logging.getLogger(__name__)

DURATION_LABEL = "sim_duration_ms"
"""A job label that sets the job's simulated duration in milliseconds (for tests)."""

JobMatch = str | Callable[[str, Mapping[str, str]], bool]
"""A BigQuery job ID, or a predicate over (job ID, labels)."""

_LONG_POLL_CAP_S = 10.0  # jobs.getQueryResults' documented default wait
_STOPPED = {"reason": "stopped", "message": "Job execution was cancelled: User requested cancellation"}
_TRUNCATED_STATS: dict[str, Any] = dict.fromkeys(
    ("total_slot_ms", "total_processed_bytes", "total_billed_bytes", "output_row_count", "cache_hit")
)
"""What a truncated DONE entry loses (Cloud Logging cuts audit entries over 100 KB): the job's statistics."""
IDENTITY_PREFIX = "/_as/"
"""`<endpoint>/_as/<email>` is the façade as seen by `<email>`: how each local function runs as its own identity.

google-cloud-bigquery keeps a path in `api_endpoint`, so a function needs nothing but its endpoint (the
handlers take no credentials locally). Without the prefix a caller is the façade's `principal_email`.
"""
_QUEUE_FULL = "Quota exceeded: Your project_and_region exceeded quota for max number of jobs that can be queued per project."


def caller_of(user_agent: str) -> str:
    """The product of the first User-Agent token: 'baton-handlers/0.1 gl-python/3.11' -> 'baton-handlers'."""
    first = user_agent.strip().split(" ", 1)[0]
    return first.split("/", 1)[0] or "unknown"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _millis(value: dt.datetime) -> str:
    return str(int(value.timestamp() * 1000))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(code: int, message: str, reason: str) -> Response:
    return _json(error_body(code, message, reason), code)


# --- SQL shape (just enough to place a destination table) ---------------------------------------


def _outline(sql: str) -> str:
    """`sql` with comments and literal contents blanked to spaces (same length), for keyword and ';' checks."""
    out = list(sql)
    i, n = 0, len(sql)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        if sql.startswith("--", i) or sql[i] == "#":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif sql[i] in "'\"`":
            quote = sql[i] * 3 if sql.startswith(sql[i] * 3, i) else sql[i]
            j = i + len(quote)
            while j < n and not sql.startswith(quote, j):
                j += 2 if sql[j] == "\\" else 1
            end = min(n, j + len(quote))
            blank(i + len(quote), end - len(quote))
            i = end
        else:
            i += 1
    return "".join(out)


def _statement_shape(sql: str) -> tuple[str, bool, str]:
    """(leading keyword, is a multi-statement script, the SQL without trailing semicolons)."""
    outline = _outline(sql)
    end = len(outline.rstrip())
    while end and outline[end - 1] == ";":
        end = len(outline[: end - 1].rstrip())
    body = sql[:end]
    match = re.match(r"[\s(]*([A-Za-z_]+)", outline[:end])
    return (match.group(1).upper() if match else ""), ";" in outline[:end], body


_PARAM_REF = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


def _sql_literal(type_: str, value: str | None) -> str:
    if value is None:
        return f"CAST(NULL AS {type_})"
    if type_ in ("INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC"):
        return f"CAST({value!r} AS {type_})"
    if type_ == "BOOL":
        return "TRUE" if value.lower() == "true" else "FALSE"
    quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return quoted if type_ == "STRING" else f"{type_} {quoted}"


def _script_with_declared_params(sql: str, parameters: list[dict[str, Any]]) -> str:
    """The engine runs scripts without query parameters, so declare each as a script variable instead.

    BigQuery itself binds @params in scripts; this rewrite is the local engine's
    workaround only. Handlers still send typed parameters, never literals.
    """
    declares, names = [], {}
    for param in parameters:
        name = str(param["name"])
        variable = names[name] = f"_param_{name}"
        type_ = str(param["parameterType"]["type"])
        declares.append(f"DECLARE {variable} {type_} DEFAULT {_sql_literal(type_, param['parameterValue'].get('value'))};")
    outline = _outline(sql)
    pieces, last = [], 0
    for match in _PARAM_REF.finditer(outline):
        if match.group(1) in names:
            pieces += [sql[last : match.start()], names[match.group(1)]]
            last = match.end()
    return "\n".join(declares) + "\n" + "".join(pieces) + sql[last:]


def _table_sql(ref: Mapping[str, str]) -> str:
    return f"`{ref['projectId']}`.`{ref['datasetId']}`.`{ref['tableId']}`"


def _table_text(ref: Mapping[str, str]) -> str:
    return f"{ref['projectId']}:{ref['datasetId']}.{ref['tableId']}"


# --- registry -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What running a job on the engine produced."""

    error: dict[str, Any] | None = None
    query_stats: dict[str, Any] = field(default_factory=dict)
    results_id: str | None = None  # the engine job whose rows getQueryResults serves
    destination: dict[str, str] | None = None
    output_rows: int | None = None
    transfer: TransferResult | None = None  # a load, copy or extract job's result (devstack/transfer_jobs.py)


@dataclass
class _Job:
    project: str
    job_id: str
    location: str
    configuration: dict[str, Any]
    user_agent: str
    internal_id: str
    created: dt.datetime
    duration_s: float
    identity: str
    due: float = 0.0
    state: str = "PENDING"
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    executing: bool = False
    outcome: _Outcome | None = None
    etag: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.configuration.get("labels") or {})

    @property
    def query_config(self) -> dict[str, Any]:
        return dict(self.configuration.get("query") or {})


@dataclass
class _JobRule:
    """Applies to jobs matching `match`, `remaining` more times (None: always)."""

    match: JobMatch
    remaining: int | None

    def take(self, job_id: str, labels: Mapping[str, str]) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        hit = self.match == job_id if isinstance(self.match, str) else bool(self.match(job_id, labels))
        if hit and self.remaining is not None:
            self.remaining -= 1
        return hit


@dataclass
class _Fault(_JobRule):
    reason: str = "backendError"
    message: str = ""


@dataclass
class _InsertFault(_JobRule):
    status: int = 503
    register: bool = False  # True: the job is created but the answer is lost (the ambiguous case)


class CallStats:
    """Jobs API calls per method and caller, and how many of them found the job not yet DONE."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, dict[str, int]] = {}
        self.calls_before_done: dict[str, dict[str, int]] = {}

    def count(self, method: str, caller: str, *, before_done: bool = False) -> None:
        with self._lock:
            per_caller = self.calls.setdefault(method, {})
            per_caller[caller] = per_caller.get(caller, 0) + 1
            if before_done:
                early = self.calls_before_done.setdefault(method, {})
                early[caller] = early.get(caller, 0) + 1

    def get_calls(self, caller: str | None = None) -> int:
        return self._sum(self.calls, "jobs.get", caller)

    def get_calls_before_done(self, caller: str | None = None) -> int:
        return self._sum(self.calls_before_done, "jobs.get", caller)

    def _sum(self, table: dict[str, dict[str, int]], method: str, caller: str | None) -> int:
        with self._lock:
            per_caller = table.get(method, {})
            return sum(per_caller.values()) if caller is None else per_caller.get(caller, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": copy.deepcopy(self.calls), "calls_before_done": copy.deepcopy(self.calls_before_done)}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.calls_before_done.clear()


# --- the façade ---------------------------------------------------------------------------------


class BigQueryFacade:
    """The jobs API over an engine endpoint. Thread-safe; `start()` serves it over HTTP."""

    def __init__(
        self,
        engine_endpoint: str,
        bridge: AuditLogBridge | None = None,
        *,
        default_duration_s: float = 0.2,
        duration_fn: Callable[[str, Mapping[str, str]], float | None] | None = None,
        default_location: str = "US",
        principal_email: str = "developer@baton.local",
        faults: FaultBoard | None = None,
        storage: StorageClient | None = None,
        staging_dir: Path | None = None,
    ) -> None:
        self.engine_endpoint = engine_endpoint.rstrip("/")
        self.faults = faults or FaultBoard()
        self.bridge = bridge
        self.default_duration_s = default_duration_s
        self.duration_fn = duration_fn
        self.default_location = default_location
        self.principal_email = principal_email
        self.stats = CallStats()
        self._durations: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._insert_faults: list[_InsertFault] = []
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._pending: deque[tuple[str, str]] = deque()  # queued behind the running cap, oldest first
        self._anonymous_tables: dict[tuple[str, str, str], _Job] = {}  # result tables of jobs without a destination
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._engine_lock = threading.Lock()
        self._session = requests.Session()
        # Load, copy and extract jobs: files from and to the Cloud Storage emulator, staged where the engine reads them.
        self._transfers = TransferJobs(self._engine_call, storage, staging_dir or Path(".devstack") / "bigquery-staging")
        self._stopped = False
        self._scheduler = threading.Thread(target=self._schedule_loop, name="bq-facade-scheduler", daemon=True)
        self._scheduler.start()
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self._url_map = Map(
            [
                Rule("/bigquery/v2/projects/<project>/jobs", methods=["POST"], endpoint="insert"),
                Rule("/bigquery/v2/projects/<project>/jobs", methods=["GET"], endpoint="list"),
                Rule("/bigquery/v2/projects/<project>/jobs/<job_id>", methods=["GET"], endpoint="get"),
                Rule("/bigquery/v2/projects/<project>/jobs/<job_id>", methods=["DELETE"], endpoint="delete"),
                Rule("/bigquery/v2/projects/<project>/jobs/<job_id>/delete", methods=["DELETE"], endpoint="delete"),
                Rule("/bigquery/v2/projects/<project>/jobs/<job_id>/cancel", methods=["POST"], endpoint="cancel"),
                Rule("/bigquery/v2/projects/<project>/queries", methods=["POST"], endpoint="query"),
                Rule("/bigquery/v2/projects/<project>/queries/<job_id>", methods=["GET"], endpoint="results"),
                Rule("/bigquery/v2/projects/<project>/datasets/<dataset>/tables/<table>/data", endpoint="tabledata"),
                Rule("/_faults", methods=["GET", "POST", "DELETE"], endpoint="faults"),
                Rule("/bigquery/v2/projects/<project>/datasets/<dataset>/tables/<table>", methods=["GET"], endpoint="table"),
                Rule("/_facade/stats", methods=["GET", "DELETE"], endpoint="stats"),
                Rule("/_facade/jobs", methods=["GET"], endpoint="jobs"),
            ]
        )

    # --- test and chaos controls ---------------------------------------------------------------

    def set_duration(self, job_id: str, seconds: float) -> None:
        """Simulated duration of a job not yet inserted (overrides label, callable and default)."""
        with self._cond:
            self._durations[job_id] = seconds

    def inject_failure(
        self, match: JobMatch, *, reason: str = "backendError", message: str | None = None, times: int | None = 1
    ) -> None:
        """Make matching jobs end DONE with errorResult `reason` instead of running on the engine."""
        text = message or f"Simulated {reason} (injected by the local BigQuery façade)"
        with self._cond:
            self._faults.append(_Fault(match, times, reason=reason, message=text))

    def inject_insert_error(self, match: JobMatch, *, status: int = 503, register: bool = False, times: int | None = 1) -> None:
        """Make jobs.insert answer an HTTP error; with `register=True` the job is created anyway (a lost response)."""
        with self._cond:
            self._insert_faults.append(_InsertFault(match, times, status=status, register=register))

    def job_state(self, project: str, job_id: str) -> str | None:
        with self._cond:
            job = self._jobs.get((project, job_id))
            return job.state if job else None

    def wait_done(self, project: str, job_id: str, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                job = self._jobs.get((project, job_id))
                if job is not None and job.state == "DONE":
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve over HTTP on a daemon thread; returns the endpoint URL."""
        self._server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=_QuietRequestHandler)
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="bq-facade-http", daemon=True)
        self._server_thread.start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the façade is not serving; call start()")
        return f"http://{self._server.host}:{self._server.server_port}"

    def endpoint_for(self, identity: str) -> str:
        """The endpoint as `identity` (a service account email) calls it; see IDENTITY_PREFIX."""
        return f"{self.endpoint}{IDENTITY_PREFIX}{identity}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._scheduler.join(timeout=10)
        self._session.close()

    # --- WSGI ----------------------------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = str(environ.get("PATH_INFO", ""))
        identity = self.principal_email
        if path.startswith(IDENTITY_PREFIX):
            identity, _, rest = path[len(IDENTITY_PREFIX) :].partition("/")
            environ["PATH_INFO"] = "/" + rest
        environ["baton.identity"] = identity
        request = Request(environ)
        try:
            endpoint, args = self._url_map.bind_to_environ(environ).match()
        except NotFound:
            response = self._proxy(request)
        except HTTPException as exc:
            response = _error(exc.code or 400, exc.description or "bad request", "invalid")
        else:
            try:
                response = getattr(self, f"_on_{endpoint}")(request, **args)
            except _BadRequestError as exc:
                response = _error(400, str(exc), "invalid")
            except Exception as exc:
                # A reason the client does not retry, so a façade bug fails a test at once instead of after 10 minutes.
                _log.exception("local BigQuery façade failed on %s %s", request.method, request.path)
                response = _error(500, f"local BigQuery façade error: {exc!r}", "facadeError")
        return response(environ, start_response)

    # --- jobs.insert ---------------------------------------------------------------------------

    def _on_insert(self, request: Request, project: str) -> Response:
        body = _request_json(request)
        configuration = body.get("configuration")
        if not isinstance(configuration, dict):
            raise _BadRequestError("Job configuration is required")
        if transfer_kind(configuration) and not configuration.get("dryRun"):
            # Load, copy and extract jobs get the same job control plane (ID, 409, labels, states) as queries.
            return self._insert_query_job(project, body, request.headers.get("User-Agent", ""), _identity(request))
        if "query" not in configuration or configuration.get("dryRun"):
            return self._proxy(request)  # dry runs: the engine answers directly
        return self._insert_query_job(project, body, request.headers.get("User-Agent", ""), _identity(request))

    def _insert_query_job(self, project: str, body: Mapping[str, Any], user_agent: str, identity: str) -> Response:
        configuration = body["configuration"]
        reference = body.get("jobReference") or {}
        job_id = reference.get("jobId") or f"job_{secrets.token_hex(12)}"
        location = reference.get("location") or self.default_location
        self.stats.count("jobs.insert", caller_of(user_agent))
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", job_id):
            raise _BadRequestError(f"Invalid job ID '{job_id}'")
        labels = dict(configuration.get("labels") or {})
        refusal = self._faulted("jobs.insert", job_id=job_id, labels=labels, identity=identity)
        if refusal is not None:
            return refusal  # refused before the job exists, as BigQuery refuses a rate or quota excess
        with self._cond:
            existing = self._jobs.get((project, job_id))
            if existing is not None:
                return _error(409, f"Already Exists: Job {project}:{existing.location}.{job_id}", "duplicate")
            insert_fault = next((fault for fault in self._insert_faults if fault.take(job_id, labels)), None)
            if insert_fault is not None and not insert_fault.register:
                return _error(insert_fault.status, "Simulated jobs.insert failure", "backendError")
            queue = self.faults.settings.job_queue
            if queue is not None and self._running_count() >= queue.max_running and self._queued_count() >= queue.max_queued:
                return _error(403, _QUEUE_FULL, "quotaExceeded")
            job = _Job(
                project=project,
                job_id=job_id,
                location=location,
                configuration=copy.deepcopy(configuration),
                user_agent=user_agent,
                internal_id=f"facade_{secrets.token_hex(10)}",
                created=_now(),
                duration_s=self._duration_for(job_id, labels),
                identity=identity,
            )
            self._jobs[(project, job_id)] = job
            self._start_queued()  # older queued jobs go first
            if queue is None or (self._running_count() < queue.max_running and not self._queued_count()):
                self._begin(job)
                self._audit(job, "inserted")
            else:
                self._pending.append((project, job_id))
                self._audit(job, "queued")
            self._cond.notify_all()
            resource = self._resource(job)
        if insert_fault is not None:
            return _error(insert_fault.status, "Simulated jobs.insert failure after the job was created", "backendError")
        return _json(resource)

    def _faulted(self, method: str, *, job_id: str, labels: Mapping[str, str], identity: str) -> Response | None:
        """Play a matching fault rule: hold the call for its delay, then answer its error (None: carry on)."""
        rule = self.faults.take(method, job_id=job_id, labels=labels, identity=identity)
        if rule is None:
            return None
        if rule.delay_s:
            time.sleep(rule.delay_s)
        return _error(rule.status, rule.error_message, rule.error_reason) if rule.status else None

    def _running_count(self) -> int:
        return sum(1 for job in self._jobs.values() if job.state == "RUNNING")

    def _queued_count(self) -> int:
        return sum(1 for key in self._pending if self._jobs.get(key) is not None and self._jobs[key].state == "PENDING")

    def _start_queued(self) -> None:
        """Under `_cond`: move PENDING jobs to RUNNING, oldest first, while the running cap (if any) allows."""
        while self._pending:
            queue = self.faults.settings.job_queue
            if queue is not None and self._running_count() >= queue.max_running:
                return
            job = self._jobs.get(self._pending.popleft())
            if job is None or job.state != "PENDING":
                continue  # cancelled or deleted while queued
            self._begin(job)
            self._audit(job, "started")

    def _begin(self, job: _Job) -> None:
        """Under `_cond`: RUNNING from now, DONE when its simulated duration is over."""
        job.state = "RUNNING"
        job.started = _now()
        job.due = time.monotonic() + job.duration_s
        heapq.heappush(self._heap, (job.due, next(self._seq), (job.project, job.job_id)))

    def _duration_for(self, job_id: str, labels: Mapping[str, str]) -> float:
        if job_id in self._durations:
            return self._durations.pop(job_id)
        if DURATION_LABEL in labels:
            try:
                return int(labels[DURATION_LABEL]) / 1000
            except ValueError as exc:
                raise _BadRequestError(f"label {DURATION_LABEL} must be an integer number of milliseconds") from exc
        if self.duration_fn is not None:
            chosen = self.duration_fn(job_id, labels)
            if chosen is not None:
                return chosen
        return self.default_duration_s

    # --- jobs.get / list / cancel / delete -----------------------------------------------------

    def _on_get(self, request: Request, project: str, job_id: str) -> Response:
        caller = caller_of(request.headers.get("User-Agent", ""))
        with self._cond:
            job = self._find(project, job_id, request.args.get("location"))
            self.stats.count("jobs.get", caller, before_done=job is not None and job.state != "DONE")
        refusal = self._faulted("jobs.get", job_id=job_id, labels=job.labels if job else {}, identity=_identity(request))
        if refusal is not None:
            return refusal
        with self._cond:
            if job is not None:
                return _json(self._resource(job))
        return self._not_registered(request, project, job_id)

    def _on_list(self, request: Request, project: str) -> Response:
        self.stats.count("jobs.list", caller_of(request.headers.get("User-Agent", "")))
        if request.args.get("parentJobId"):
            return _json({"kind": "bigquery#jobList", "jobs": []})  # no child jobs: scripts run as one engine job
        wanted = {state.upper() for state in request.args.getlist("stateFilter")}
        max_results = int(request.args.get("maxResults") or 1000)
        offset = int(request.args.get("pageToken") or 0)
        newer = int(request.args.get("minCreationTime") or 0)
        older = int(request.args.get("maxCreationTime") or 2**62)

        def listed(job: _Job) -> bool:
            created = int(_millis(job.created))
            return job.project == project and (not wanted or job.state in wanted) and newer <= created <= older

        with self._cond:
            jobs = [job for job in self._jobs.values() if listed(job)]
            jobs.sort(key=lambda job: job.created, reverse=True)
            page = jobs[offset : offset + max_results]
            items = [{**self._resource(job), "state": job.state} for job in page]
        body: dict[str, Any] = {"kind": "bigquery#jobList", "etag": secrets.token_hex(8), "jobs": items}
        if offset + max_results < len(jobs):
            body["nextPageToken"] = str(offset + max_results)
        return _json(body)

    def _on_cancel(self, request: Request, project: str, job_id: str) -> Response:
        self.stats.count("jobs.cancel", caller_of(request.headers.get("User-Agent", "")))
        with self._cond:
            job = self._find(project, job_id, request.args.get("location"))
            if job is not None:
                if job.state != "DONE" and not job.executing:
                    # Not started on the engine yet: the query never runs, as a cancelled BigQuery job has no effects.
                    self._finish(job, _Outcome(error=dict(_STOPPED)))
                return _json({"kind": "bigquery#jobCancelResponse", "job": self._resource(job)})
        return self._not_registered(request, project, job_id)

    def _on_delete(self, request: Request, project: str, job_id: str) -> Response:
        with self._cond:
            job = self._find(project, job_id, request.args.get("location"))
            if job is not None:
                if job.state != "DONE":
                    return _error(400, f"Job {project}:{job.location}.{job_id} is not done and cannot be deleted", "invalid")
                del self._jobs[(project, job_id)]
                return Response(status=204)
        return self._not_registered(request, project, job_id)

    def _find(self, project: str, job_id: str, location: str | None) -> _Job | None:
        job = self._jobs.get((project, job_id))
        if job is None or (location and location.lower() != job.location.lower()):
            return None
        return job

    def _not_registered(self, request: Request, project: str, job_id: str) -> Response:
        """Jobs the façade never registered (load jobs, uploads) live in the engine under their own IDs."""
        with self._cond:
            known = (project, job_id) in self._jobs  # known, but asked for in another location
        if known or job_id.startswith("facade_"):
            return self._missing(project, job_id, request.args.get("location"))
        return self._proxy(request)

    def _missing(self, project: str, job_id: str, location: str | None) -> Response:
        return _error(404, f"Not found: Job {project}:{location or self.default_location}.{job_id}", "notFound")

    # --- jobs.getQueryResults / jobs.query -----------------------------------------------------

    def _on_results(self, request: Request, project: str, job_id: str) -> Response:
        caller = caller_of(request.headers.get("User-Agent", ""))
        with self._cond:
            job = self._find(project, job_id, request.args.get("location"))
            self.stats.count("jobs.getQueryResults", caller, before_done=job is not None and job.state != "DONE")
        identity = _identity(request)
        refusal = self._faulted("jobs.getQueryResults", job_id=job_id, labels=job.labels if job else {}, identity=identity)
        if refusal is not None:
            return refusal
        if job is None:
            return self._not_registered(request, project, job_id)
        if self._hidden_from(job, identity):
            return self._access_denied(job, identity)
        timeout_ms = request.args.get("timeoutMs")
        wait_s = min(_LONG_POLL_CAP_S, int(timeout_ms) / 1000) if timeout_ms else _LONG_POLL_CAP_S
        return self._query_results(job, wait_s, request.args)

    def _on_query(self, request: Request, project: str) -> Response:
        body = _request_json(request)
        if body.get("dryRun"):
            return self._proxy(request)
        query_config = {
            key: body[key]
            for key in ("query", "queryParameters", "useLegacySql", "defaultDataset", "parameterMode", "useQueryCache")
            if key in body
        }
        job_id = f"job_{secrets.token_hex(12)}"
        insert_body = {
            "jobReference": {"projectId": project, "jobId": job_id, "location": body.get("location")},
            "configuration": {"query": query_config, **({"labels": body["labels"]} if body.get("labels") else {})},
        }
        inserted = self._insert_query_job(project, insert_body, request.headers.get("User-Agent", ""), _identity(request))
        if inserted.status_code != 200:
            return inserted
        with self._cond:
            job = self._jobs[(project, job_id)]
        timeout_ms = body.get("timeoutMs")
        wait_s = min(_LONG_POLL_CAP_S, int(timeout_ms) / 1000) if timeout_ms else _LONG_POLL_CAP_S
        args = {"maxResults": str(body["maxResults"])} if "maxResults" in body else {}
        response = self._query_results(job, wait_s, args)
        if response.status_code == 200:
            result = json.loads(response.get_data())
            result["kind"] = "bigquery#queryResponse"
            return _json(result)
        return response

    def _query_results(self, job: _Job, wait_s: float, args: Mapping[str, str]) -> Response:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while job.state != "DONE" and not self._stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            reference = {"projectId": job.project, "jobId": job.job_id, "location": job.location}
            base = {"kind": "bigquery#getQueryResultsResponse", "jobReference": reference, "etag": job.etag}
            if job.state != "DONE" or job.outcome is None:
                return _json({**base, "jobComplete": False})
            outcome = job.outcome
        if outcome.error is not None:
            # The job's error lives in jobs.get; the client re-reads the job and raises from errorResult.
            return _json({**base, "jobComplete": True, "errors": [outcome.error]})
        params = {key: value for key, value in args.items() if key not in ("timeoutMs", "location")}
        path = f"/bigquery/v2/projects/{job.project}/queries/{outcome.results_id}"
        engine = self._engine_call("GET", path, params=params)
        if engine.status_code != 200:
            return Response(engine.content, status=engine.status_code, mimetype="application/json")
        result = engine.json()
        result.update(base)
        result["jobComplete"] = True
        result["cacheHit"] = False
        for key in ("totalBytesProcessed", "numDmlAffectedRows"):
            if key in outcome.query_stats:
                result[key] = outcome.query_stats[key]
        if args.get("maxResults") == "0":
            result.pop("rows", None)  # BigQuery sends no rows (nor a page token) when asked for none
            result.pop("pageToken", None)
        return _json(result)

    def _hidden_from(self, job: _Job, identity: str) -> bool:
        """Whether `identity` may not read `job`'s results: only its anonymous result table is private."""
        private = self.faults.settings.owner_only_results and not job.query_config.get("destinationTable")
        return private and identity != job.identity

    def _access_denied(self, job: _Job, identity: str) -> Response:
        table = f"{job.project}:_anonymous.anon_{job.job_id}"
        if job.outcome is not None and job.outcome.destination is not None:
            table = _table_text(job.outcome.destination)
        message = f"Access Denied: Table {table}: User {identity} does not have permission to read the results of {job.job_id}"
        return _error(403, message, "accessDenied")

    def _on_tabledata(self, request: Request, project: str, dataset: str, table: str) -> Response:
        with self._cond:
            job = self._anonymous_tables.get((project, dataset, table))
        identity = _identity(request)
        if job is not None and self._hidden_from(job, identity):
            return self._access_denied(job, identity)
        return self._proxy(request)

    # --- fault control and debug endpoints -----------------------------------------------------

    def _on_faults(self, request: Request) -> Response:
        """The control surface of devstack.faults: POST adds rules and settings, DELETE clears, GET shows."""
        if request.method == "POST":
            try:
                self.faults.apply(_request_json(request))
            except FaultDocumentError as exc:
                raise _BadRequestError(str(exc)) from exc
        elif request.method == "DELETE":
            self.faults.clear()
        with self._cond:
            self._start_queued()  # a lifted or raised cap lets queued jobs run
            self._cond.notify_all()
        return _json(self.faults.state())

    def _on_stats(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.stats.reset()
        return _json(self.stats.snapshot())

    def _on_jobs(self, request: Request) -> Response:
        with self._cond:
            jobs = [
                {
                    "projectId": job.project,
                    "jobId": job.job_id,
                    "location": job.location,
                    "state": job.state,
                    "labels": job.labels,
                    "engineJobId": job.internal_id,
                    "errorResult": job.outcome.error if job.outcome else None,
                    # When it was inserted, started and ended here (ISO 8601), so tests can measure concurrency.
                    "creationTime": job.created.isoformat(),
                    "startTime": job.started.isoformat() if job.started else None,
                    "endTime": job.ended.isoformat() if job.ended else None,
                }
                for job in self._jobs.values()
            ]
        return _json({"jobs": jobs})

    # --- running jobs --------------------------------------------------------------------------

    def _schedule_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, key = heapq.heappop(self._heap)
                job = self._jobs.get(key)
                if job is None or job.state == "DONE":
                    continue  # cancelled or deleted meanwhile
                fault = next((fault for fault in self._faults if fault.take(job.job_id, job.labels)), None)
                if fault is not None:
                    self._finish(job, _Outcome(error={"reason": fault.reason, "message": fault.message}))
                    continue
                job.executing = True
            try:
                outcome = self._execute_metered(job)
            except Exception as exc:  # the engine misbehaving must fail the job, not the scheduler
                outcome = _Outcome(error={"reason": "backendError", "message": f"local engine failure: {exc!r}"})
            with self._cond:
                job.executing = False
                self._finish(job, outcome)

    def _finish(self, job: _Job, outcome: _Outcome) -> None:
        """DONE, under `_cond`: record, wake waiters, write the audit entry (in state-change order)."""
        job.state = "DONE"
        job.ended = _now()
        job.outcome = outcome
        job.etag = secrets.token_hex(8)
        if outcome.destination is not None and not job.query_config.get("destinationTable"):
            ref = outcome.destination
            self._anonymous_tables[(ref["projectId"], ref["datasetId"], ref["tableId"])] = job
        self._audit(job, "done")
        self._start_queued()  # a slot is free
        self._cond.notify_all()

    def _audit(self, job: _Job, change: str) -> None:
        """Hand a state change to the audit-log bridge; a bridge failure must not break the jobs API."""
        if self.bridge is None:
            return
        try:
            entry = self._audit_job(job)
            if change == "done":
                if self.faults.take("auditlog.jobDone", job_id=job.job_id, labels=job.labels, identity=job.identity):
                    entry = dataclasses.replace(entry, **_TRUNCATED_STATS)
                self.bridge.job_done(entry)
            elif change == "queued":
                self.bridge.job_queued(entry)
            elif change == "started":
                self.bridge.job_started(entry)
            else:
                self.bridge.job_inserted(entry)
        except Exception:
            _log.exception("audit-log bridge failed for job %s", job.job_id)

    def _execute_metered(self, job: _Job) -> _Outcome:
        """Run the job, then report what it read and what that costs (bigquery_metering.py): the engine says 0."""
        query = str(job.query_config.get("query", ""))
        reads = []
        for table in referenced_tables(query, job.project):
            size = table_bytes(self._engine_call, table)
            if size is not None:  # an existing table: `FROM a.b` may also be EXTRACT(x FROM alias.column)
                reads.append((table, size))
        outcome = self._execute(job)
        if outcome.error is None:
            processed = sum(size for _, size in reads)
            outcome.query_stats["totalBytesProcessed"] = str(processed)
            outcome.query_stats["totalBytesBilled"] = str(billed_bytes([size for _, size in reads]))
            outcome.query_stats["referencedTables"] = [table for table, _ in reads]
        return outcome

    def _on_table(self, request: Request, project: str, dataset: str, table: str) -> Response:
        """tables.get, with the logical size the engine leaves at 0."""
        response = self._proxy(request)
        if response.status_code != 200:
            return response
        resource = json.loads(response.get_data())
        if int(resource.get("numRows") or 0) > 0 and int(resource.get("numBytes") or 0) == 0:
            size = table_bytes(self._engine_call, {"projectId": project, "datasetId": dataset, "tableId": table})
            if size is not None:
                resource["numBytes"] = resource["numTotalLogicalBytes"] = resource["numActiveLogicalBytes"] = str(size)
        return _json(resource)

    def _execute(self, job: _Job) -> _Outcome:
        """Run the job's query on the engine under an internal job ID (called by the scheduler only)."""
        if transfer_kind(job.configuration):
            return self._execute_transfer(job)
        configuration = copy.deepcopy(job.configuration)
        query_config = configuration["query"]
        destination = query_config.get("destinationTable")
        if query_config.get("queryParameters") and _statement_shape(str(query_config.get("query", "")))[1]:
            query_config["query"] = _script_with_declared_params(query_config["query"], query_config.pop("queryParameters"))
            query_config.pop("parameterMode", None)
        if not destination:
            return self._run_engine_job(job, job.internal_id, configuration)
        destination = {"projectId": job.project, **destination}
        keyword, is_script, sql = _statement_shape(str(query_config.get("query", "")))
        if is_script:
            return _Outcome(error=_invalid("configuration.query.destinationTable cannot be set for scripts"))
        if keyword not in ("SELECT", "WITH"):
            return _Outcome(error=_invalid("Cannot set destination table in jobs with DML or DDL statements"))
        project, dataset, table = destination["projectId"], destination["datasetId"], destination["tableId"]
        table_path = f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}"
        existing = self._engine_call("GET", table_path + "/data", params={"maxResults": "1"})
        exists = existing.status_code == 200
        write = query_config.get("writeDisposition") or "WRITE_EMPTY"
        create = query_config.get("createDisposition") or "CREATE_IF_NEEDED"
        if not exists and create == "CREATE_NEVER":
            return _Outcome(error={"reason": "notFound", "message": f"Not found: Table {_table_text(destination)}"})
        if exists and write == "WRITE_EMPTY" and int(existing.json().get("totalRows") or 0) > 0:
            return _Outcome(error={"reason": "duplicate", "message": f"Already Exists: Table {_table_text(destination)}"})
        if exists and write == "WRITE_APPEND":
            statement = f"INSERT INTO {_table_sql(destination)}\n{sql}"
        else:
            statement = f"CREATE OR REPLACE TABLE {_table_sql(destination)} AS\n{sql}"
        rewritten = {**query_config, "query": statement}
        rewritten.pop("destinationTable", None)
        rewritten.pop("writeDisposition", None)
        rewritten.pop("createDisposition", None)
        outcome = self._run_engine_job(job, job.internal_id, {**configuration, "query": rewritten})
        if outcome.error is not None:
            return outcome
        # getQueryResults serves the destination's rows, read back once the write is done.
        readback = {"query": {"query": f"SELECT * FROM {_table_sql(destination)}", "useLegacySql": False}}
        read = self._run_engine_job(job, f"{job.internal_id}_result", readback)
        if read.error is not None:
            return read
        outcome.results_id = read.results_id
        outcome.destination = destination
        outcome.output_rows = read.output_rows
        outcome.query_stats.pop("ddlOperationPerformed", None)
        outcome.query_stats.pop("numDmlAffectedRows", None)
        outcome.query_stats["statementType"] = "SELECT"
        return outcome

    def _execute_transfer(self, job: _Job) -> _Outcome:
        """A load, copy or extract job, done on the engine and the Cloud Storage emulator."""
        result = self._transfers.run(job.project, job.location, job.internal_id, job.configuration)
        if result.error is not None:
            return _Outcome(error=result.error, transfer=result)
        return _Outcome(destination=result.destination, output_rows=result.output_rows, transfer=result)

    def _run_engine_job(self, job: _Job, engine_job_id: str, configuration: dict[str, Any]) -> _Outcome:
        body = {
            "jobReference": {"projectId": job.project, "jobId": engine_job_id, "location": job.location},
            "configuration": configuration,
        }
        try:
            response = self._engine_call("POST", f"/bigquery/v2/projects/{job.project}/jobs", json_body=body)
        except requests.RequestException as exc:
            return _Outcome(error={"reason": "backendError", "message": f"local engine unreachable: {exc}"})
        if response.status_code != 200:
            return _Outcome(error=engine_job_error(response, job.location))
        resource = response.json()
        status = resource.get("status") or {}
        if status.get("errorResult"):
            return _Outcome(error=in_bigquery_words(dict(status["errorResult"]), job.location))
        query_stats = dict((resource.get("statistics") or {}).get("query") or {})
        total_rows = query_stats.pop("totalRows", None)
        destination = ((resource.get("configuration") or {}).get("query") or {}).get("destinationTable")
        statement = query_stats.get("statementType")
        if not statement:  # the engine leaves some SELECTs (e.g. UNION ALL) unclassified
            keyword, is_script, _ = _statement_shape(str(configuration.get("query", {}).get("query", "")))
            statement = "SCRIPT" if is_script else ("SELECT" if keyword in ("SELECT", "WITH") else None)
            if statement:
                query_stats["statementType"] = statement
        if statement in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            rows = query_stats.get("numDmlAffectedRows")
        else:
            rows = total_rows if statement == "SELECT" else None
        return _Outcome(
            query_stats=query_stats,
            results_id=engine_job_id,
            destination=destination if statement == "SELECT" else None,
            output_rows=int(rows) if rows is not None else None,
        )

    def _engine_call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json_body: Any = None
    ) -> requests.Response:
        with self._engine_lock:
            return self._session.request(method, self.engine_endpoint + path, params=params, json=json_body, timeout=120)

    def _proxy(self, request: Request) -> Response:
        forwarded = ("content-type", "user-agent", "accept")
        headers = {key: value for key, value in request.headers.items() if key.lower() in forwarded}
        url = self.engine_endpoint + request.path
        try:
            with self._engine_lock:
                upstream = self._session.request(
                    request.method,
                    url,
                    params=list(request.args.items(multi=True)),
                    data=request.get_data(),
                    headers=headers,
                    timeout=120,
                )
        except requests.RequestException as exc:
            return _error(503, f"local engine unreachable: {exc}", "backendError")
        dropped = {"content-encoding", "transfer-encoding", "connection", "content-length", "server", "date"}
        return Response(
            rewrite_not_found_body(upstream.content) if upstream.status_code == 404 else upstream.content,
            status=upstream.status_code,
            headers=[(key, value) for key, value in upstream.headers.items() if key.lower() not in dropped],
        )

    # --- rendering -----------------------------------------------------------------------------

    def _resource(self, job: _Job) -> dict[str, Any]:
        """The BigQuery Job resource as jobs.insert/get return it."""
        configuration = copy.deepcopy(job.configuration)
        configuration.setdefault("jobType", job_type(configuration))
        statistics: dict[str, Any] = {"creationTime": _millis(job.created)}
        if job.started is not None:  # a queued (PENDING) job has not started
            statistics["startTime"] = _millis(job.started)
        status: dict[str, Any] = {"state": job.state}
        outcome = job.outcome
        if job.state == "DONE" and outcome is not None and job.ended is not None and outcome.transfer is not None:
            statistics["endTime"] = _millis(job.ended)
            if outcome.error is not None:
                status["errorResult"] = outcome.error
                status["errors"] = [outcome.error]
            else:
                statistics.update(resource_statistics(configuration, outcome.transfer))
                statistics["totalSlotMs"] = str(self._slot_ms(job))
        elif job.state == "DONE" and outcome is not None and job.ended is not None:
            statistics["endTime"] = _millis(job.ended)
            if outcome.error is not None:
                status["errorResult"] = outcome.error
                status["errors"] = [outcome.error]
            else:
                slot_ms = str(self._slot_ms(job))
                query_stats = {
                    "totalBytesProcessed": "0",
                    "totalBytesBilled": "0",
                    "cacheHit": False,
                    **outcome.query_stats,
                    "totalSlotMs": slot_ms,
                }
                statistics["query"] = query_stats
                statistics["totalBytesProcessed"] = query_stats["totalBytesProcessed"]
                statistics["totalSlotMs"] = slot_ms
                if outcome.destination is not None:
                    configuration["query"].setdefault("destinationTable", outcome.destination)
        return {
            "kind": "bigquery#job",
            "etag": job.etag,
            "id": f"{job.project}:{job.location}.{job.job_id}",
            "selfLink": f"/bigquery/v2/projects/{job.project}/jobs/{job.job_id}?location={job.location}",
            "user_email": job.identity,
            "principal_subject": f"{'serviceAccount' if job.identity.endswith('gserviceaccount.com') else 'user'}:{job.identity}",
            "jobReference": {"projectId": job.project, "jobId": job.job_id, "location": job.location},
            "configuration": configuration,
            "status": status,
            "statistics": statistics,
        }

    @staticmethod
    def _slot_ms(job: _Job) -> int:
        end = job.ended or _now()
        return max(1, int((end - job.created).total_seconds() * 1000))

    def _audit_job(self, job: _Job) -> AuditJob:
        query_config = job.query_config
        outcome = job.outcome
        error = JobErrorInfo(outcome.error["reason"], outcome.error["message"]) if outcome and outcome.error else None
        succeeded = job.state == "DONE" and outcome is not None and outcome.error is None
        destination = query_config.get("destinationTable")
        if destination:
            destination = {"projectId": job.project, **destination}
        elif succeeded and outcome is not None:
            destination = outcome.destination
        query_stats = outcome.query_stats if outcome is not None else {}
        return AuditJob(
            project=job.project,
            job_id=job.job_id,
            location=job.location,
            query=str(query_config.get("query", "")),
            labels=job.labels,
            create_time=job.created,
            start_time=job.started,
            end_time=job.ended,
            principal_email=job.identity,
            user_agent=job.user_agent,
            destination_table=destination,
            default_dataset=query_config.get("defaultDataset"),
            create_disposition=query_config.get("createDisposition") or ("CREATE_IF_NEEDED" if destination else None),
            write_disposition=query_config.get("writeDisposition")
            or (("WRITE_EMPTY" if query_config.get("destinationTable") else "WRITE_TRUNCATE") if destination else None),
            priority=query_config.get("priority"),
            statement_type=query_stats.get("statementType"),
            error=error,
            errors=(error,) if error else (),
            total_slot_ms=self._slot_ms(job) if succeeded else None,
            total_processed_bytes=int(query_stats.get("totalBytesProcessed", 0)) if succeeded else None,
            total_billed_bytes=int(query_stats.get("totalBytesBilled", 0)) if succeeded else None,
            output_row_count=outcome.output_rows if succeeded and outcome is not None else None,
            referenced_tables=tuple(query_stats.get("referencedTables") or ()) if succeeded else (),
            cache_hit=False if succeeded else None,
            transfer=audit(job.configuration, job.project, outcome.transfer if outcome else None)
            if transfer_kind(job.configuration)
            else None,
        )


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: tests and the demo would drown in jobs.get lines."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _identity(request: Request) -> str:
    """Who calls (set from the IDENTITY_PREFIX path by `wsgi_app`)."""
    return str(request.environ["baton.identity"])


class _BadRequestError(ValueError):
    """The request is malformed; answered as 400 invalid."""


def _request_json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError as exc:
        raise _BadRequestError(f"Invalid JSON payload: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequestError("the request body must be a JSON object")
    return body


def _invalid(message: str) -> dict[str, Any]:
    return {"reason": "invalid", "message": message}


# --- composition --------------------------------------------------------------------------------


class LocalBigQuery:
    """Engine + façade + audit-log bridge, started together; a context manager.

    `publish` receives each routed LogEntry (dict); None keeps them only in
    `bridge.published`. Point google-cloud-bigquery at `endpoint`.
    """

    def __init__(self, engine: BigQueryEngine | None, facade: BigQueryFacade, bridge: AuditLogBridge) -> None:
        self.engine = engine
        self.facade = facade
        self.bridge = bridge

    @classmethod
    def start(
        cls,
        workdir: Path | str,
        sink_filter: str = "",
        publish: Publish | None = None,
        default_duration_s: float = 0.2,
        *,
        port: int = 0,
        policy: DeliveryPolicy | None = None,
        duration_fn: Callable[[str, Mapping[str, str]], float | None] | None = None,
        engine_endpoint: str | None = None,
        supervisor: ProcessSupervisor | None = None,
        location: str = "US",
        faults: FaultBoard | None = None,
        storage_endpoint: str | None = None,
    ) -> LocalBigQuery:
        """Start everything; `engine_endpoint` reuses a running engine (which then is not stopped here)."""
        engine = None if engine_endpoint else BigQueryEngine.start(Path(workdir), supervisor=supervisor)
        bridge = AuditLogBridge(sink_filter, publish or (lambda entry: None), policy=policy)
        facade = BigQueryFacade(
            engine_endpoint or (engine.endpoint if engine else ""),
            bridge,
            default_duration_s=default_duration_s,
            duration_fn=duration_fn,
            default_location=location,
            faults=faults,
            storage=StorageClient(storage_endpoint) if storage_endpoint else None,
            staging_dir=Path(workdir) / "staging",
        )
        try:
            facade.start(port=port)
        except Exception:
            facade.stop()
            bridge.close()
            if engine is not None:
                engine.stop()
            raise
        return cls(engine, facade, bridge)

    @property
    def endpoint(self) -> str:
        return self.facade.endpoint

    def stats(self) -> CallStats:
        return self.facade.stats

    def stop(self) -> None:
        self.facade.stop()
        self.bridge.flush(timeout_s=5)
        self.bridge.close()
        if self.engine is not None:
            self.engine.stop()

    def __enter__(self) -> LocalBigQuery:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local BigQuery (bqemulator engine + jobs façade + audit-log bridge).")
    parser.add_argument("--workdir", default=".devstack/bigquery", help="engine HOME and log (default: %(default)s)")
    parser.add_argument("--port", type=int, default=9050, help="façade port (default: %(default)s)")
    parser.add_argument("--duration", type=float, default=0.2, help="default simulated job duration in seconds")
    parser.add_argument("--location", default="US")
    parser.add_argument("--sink-filter", default="", help="Logging filter of the audit-log sink")
    parser.add_argument("--sink-filter-file", help="read the sink filter from this file instead")
    parser.add_argument("--topic", help="publish routed entries to this Pub/Sub topic (projects/P/topics/T)")
    parser.add_argument("--pubsub-emulator-host", help="host:port of the Pub/Sub emulator (else PUBSUB_EMULATOR_HOST)")
    args = parser.parse_args(argv)
    sink_filter = Path(args.sink_filter_file).read_text() if args.sink_filter_file else args.sink_filter
    publisher = None
    if args.topic:
        project = args.topic.split("/")[1] if args.topic.startswith("projects/") else "local-project"
        publisher = PubSubPublisher(project, args.topic, emulator_host=args.pubsub_emulator_host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    local = LocalBigQuery.start(args.workdir, sink_filter, publisher, args.duration, port=args.port, location=args.location)
    with local:
        print(json.dumps({"endpoint": local.endpoint, "engine": local.engine.endpoint if local.engine else None}), flush=True)
        stop.wait()
    if publisher is not None:
        publisher.close()


if __name__ == "__main__":
    main()
