"""Cloud Run's front door for one local function: what stands between a caller (Pub/Sub push, Cloud
Scheduler, the CLI) and the functions-framework process.

A deployed function serves at most `max_instance_count x max_instance_request_concurrency` requests at
once (both read from the synthesized handlers stack); a request beyond that waits up to 30 s for a free
instance, then Cloud Run answers 429, and Pub/Sub counts that 429 as a delivery attempt like any NACK.
Locally one functions-framework process serves everything, so this front counts requests in flight
and, when the `instance_limits` fault setting is on, makes the excess wait `instance_wait_s`, then
refuses it. Off (the default) it only forwards. `function.invoke` fault rules can hold a request (a
slow instance) or answer an error in Cloud Run's place.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.faults import FaultBoard
from devstack.topology import FunctionSpec

__all__ = ["NO_INSTANCE_MESSAGE", "FunctionFront"]

NO_INSTANCE_MESSAGE = "The request was aborted because there was no available instance."
"""Cloud Run's 429 text when every instance is busy at max instances."""

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection", "content-length", "host"}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FunctionFront:
    """Serves on its own port and forwards to `upstream` (a functions-framework URL); `start()` returns its URL."""

    def __init__(self, spec: FunctionSpec, upstream: str, faults: FaultBoard) -> None:
        self.spec = spec
        self.faults = faults
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._slots = threading.Condition()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def capacity(self) -> int | None:
        """Requests served at once, or None while the instance_limits fault setting is off."""
        settings = self.faults.settings
        if not settings.instance_limits:
            return None
        return settings.instance_overrides.get(self.spec.entry_point, self.spec.capacity)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._server = make_server(host, port, self.wsgi_app, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"front-{self.spec.entry_point}", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the front is not serving; call start()")
        return f"http://{self._server.host}:{self._server.server_port}/"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        name = self.spec.entry_point
        with self._slots:
            deadline = time.monotonic() + self.faults.settings.instance_wait_s
            while (capacity := self.capacity()) is not None and self.in_flight >= capacity:
                if not self._slots.wait(deadline - time.monotonic()):
                    break
            refused = capacity is not None and self.in_flight >= capacity
            if not refused:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        if refused:
            self.faults.count(f"function.invoke.refused.{name}")
            return Response(NO_INSTANCE_MESSAGE, status=429, mimetype="text/plain")(environ, start_response)
        try:
            self.faults.count(f"function.invoke.accepted.{name}")
            rule = self.faults.take("function.invoke", function=name)
            if rule is not None and rule.delay_s:
                time.sleep(rule.delay_s)  # a slow instance: it keeps its slot meanwhile
            if rule is not None and rule.status:
                response = Response(rule.error_message, status=rule.status, mimetype="text/plain")
            else:
                response = self._forward(request)
        finally:
            with self._slots:
                self.in_flight -= 1
                self._slots.notify()
        return response(environ, start_response)

    def _forward(self, request: Request) -> Response:
        """One request to the function; an instance that dies mid-request is Cloud Run's 503."""
        headers = {key: value for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP}
        path = request.full_path if request.query_string else request.path
        connection = http.client.HTTPConnection(*self._upstream, timeout=self.spec.timeout_seconds)
        try:
            connection.request(request.method, path, body=request.get_data(), headers=headers)
            upstream = connection.getresponse()
            body = upstream.read()
            kept = [(key, value) for key, value in upstream.getheaders() if key.lower() not in _HOP_BY_HOP]
            return Response(body, status=upstream.status, headers=kept)
        except TimeoutError:
            return Response("upstream request timeout", status=504, mimetype="text/plain")
        except (OSError, http.client.HTTPException) as exc:
            return Response(f"The request failed because the instance failed: {exc!r}", status=503, mimetype="text/plain")
        finally:
            connection.close()
