"""`baton ui`: the run pages served on localhost, read-only, straight from the run store.

Starlette routes (GET only) and uvicorn as the server. Every request reads Spanner afresh;
a live run's page reloads itself, so nothing here polls BigQuery or keeps state of its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from baton.domain.cost import Pricing
from baton.domain.records import RunStatus
from baton.service.ports import RunStore
from baton_cli.render import run_duration
from baton_cli.report.page import STATUS_INK, TEMPLATES, render_run_page, utc

StoreFactory = Callable[[], RunStore]
Clock = Callable[[], dt.datetime]

DEFAULT_HOST = "127.0.0.1"  # only this machine: the pages show SQL, params and errors
DEFAULT_PORT = 8765
REFRESH_SECONDS = 5
RUNS_SHOWN = 100


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _LazyStore:
    """Connects on the first request, once: the app starts at once even when Spanner is slow to answer."""

    def __init__(self, factory: StoreFactory) -> None:
        self._factory = factory
        self._store: RunStore | None = None
        self._lock = threading.Lock()

    def __call__(self) -> RunStore:
        with self._lock:
            if self._store is None:
                self._store = self._factory()
            return self._store


def create_app(
    store_factory: StoreFactory,
    *,
    project: str | None = None,
    location: str = "US",
    refresh_seconds: int = REFRESH_SECONDS,
    clock: Clock = _utc_now,
    pricing: Pricing | None = None,
) -> Starlette:
    """The web app over the store `store_factory` builds. `project` and `location` make BigQuery console links."""
    store = _LazyStore(store_factory)

    def runs_page(request: Request) -> HTMLResponse:
        manifest = request.query_params.get("manifest") or None
        status_text = (request.query_params.get("status") or "").upper() or None
        if status_text is not None and status_text not in RunStatus.__members__:
            raise HTTPException(400, f"unknown status '{status_text}'; one of {', '.join(RunStatus.__members__)}")
        status = RunStatus(status_text) if status_text else None
        runs = store().list_runs(limit=RUNS_SHOWN, manifest=manifest, status=status)
        now = clock()
        rows = [
            {
                "run": run,
                "status": str(run.status),
                "ink": STATUS_INK.get(run.status, "#333333"),
                "created": utc(run.created_at),
                "took": run_duration(run, now),
            }
            for run in runs
        ]
        live = any(not run.status.terminal for run in runs)
        html = TEMPLATES.get_template("runs.html").render(
            rows=rows,
            manifest=manifest,
            status=status_text,
            statuses=list(RunStatus.__members__),
            refresh_seconds=refresh_seconds if live else None,
            generated=utc(now),
            limit=RUNS_SHOWN,
        )
        return HTMLResponse(html)

    def run_page(request: Request) -> HTMLResponse:
        run_id = request.path_params["run_id"]
        current = store()
        run = current.get_run(run_id)
        if run is None:
            raise HTTPException(404, f"no run '{run_id}'")
        html = render_run_page(
            run,
            current.list_jobs(run_id),
            current.list_checks(run_id),
            clock(),
            project=project,
            location=location,
            refresh_seconds=refresh_seconds,
            runs_link="/",
            pricing=pricing,
        )
        return HTMLResponse(html)

    async def error_page(request: Request, exc: Exception) -> HTMLResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        html = TEMPLATES.get_template("error.html").render(status=status, detail=detail)
        return HTMLResponse(html, status_code=status)

    routes = [Route("/", runs_page, name="runs"), Route("/runs/{run_id}", run_page, name="run")]
    return Starlette(routes=routes, exception_handlers={HTTPException: error_page})


def serve(
    host: str,
    port: int,
    store_factory: StoreFactory,
    *,
    project: str | None = None,
    location: str = "US",
    pricing: Pricing | None = None,
) -> None:
    """Serve until interrupted. Bind `DEFAULT_HOST` unless the operator chose otherwise."""
    import uvicorn

    app = create_app(store_factory, project=project, location=location, pricing=pricing)
    uvicorn.run(app, host=host, port=port, log_level="info")
