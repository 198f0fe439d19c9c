"""``GET /healthz``: liveness and the database, answered in front of the Flask app.

Every load balancer asks every web process every few seconds. Through Flask (request context,
the guards, the session, the hooks) the answer cost about five times the server's own cost of a
request; here it is a ``SELECT 1`` on a connection the check keeps for itself (autocommit,
outside the request pool's checkout and reset: one connection per web process, opened on first
use, dropped and opened again after a failure, so a database that comes back is seen on the next
call). It keeps what every answer of the service carries: the request id (honoured or made,
``observability``), ``Server-Timing``, the security headers, one access log line and the latency
histogram behind ``/metrics``.

``200 {"status": "ok", "database": "ok"}``, or ``503 {"status": "unhealthy", "database":
"unreachable"}`` with ``Retry-After`` when the database does not answer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from greenchannel.web import observability

PATH = "/healthz"
_OK = b'{"status": "ok", "database": "ok"}'
_DOWN = b'{"status": "unhealthy", "database": "unreachable"}'
log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HealthCheck:
    """WSGI middleware: ``GET``/``HEAD`` :data:`PATH` answered here, all else by ``app``."""

    def __init__(self, app: WsgiApp, engine: Engine, headers: Mapping[str, str]) -> None:
        self.app = app
        self.probe = _Probe(engine)
        self.headers = list(headers.items())

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            start_response(
                "405 METHOD NOT ALLOWED",
                [("Content-Type", "application/json"), ("Allow", "GET, HEAD"), *self.headers],
            )
            return [b'{"error": "method_not_allowed", "message": "/healthz: GET or HEAD"}']
        started = time.perf_counter()
        rid = observability.given_or_new_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        try:
            self.probe.select_1()
            status, body, extra = 200, _OK, []
        except DBAPIError as exc:
            log.warning(
                "database unavailable: %s",
                type(exc.orig).__name__,
                extra={"request_id": rid},
            )
            status, body, extra = 503, _DOWN, [("Retry-After", "5")]
        seconds = time.perf_counter() - started
        observability.finished(method, PATH, PATH, status, seconds, rid)
        start_response(
            "200 OK" if status == 200 else "503 SERVICE UNAVAILABLE",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                (observability.REQUEST_ID_HEADER, rid),
                ("Server-Timing", f"app;dur={seconds * 1000:.1f}"),
                *extra,
                *self.headers,
            ],
        )
        return [] if method == "HEAD" else [body]


class _Probe:
    """The health check's own connection: autocommit, kept between calls, one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._pid = 0

    def select_1(self) -> None:
        """``SELECT 1``; :class:`~sqlalchemy.exc.DBAPIError` when the database does not answer.

        A kept connection that fails (the server restarted, a proxy closed it while idle) is
        dropped and the check tried once more on a new one: only a database that cannot be
        reached now makes the check fail."""
        with self._lock:
            for attempt in (1, 2):
                fresh = self._connection is None or self._pid != os.getpid()  # never across a fork
                try:
                    if fresh:
                        self._connection = self.engine.connect().execution_options(
                            isolation_level="AUTOCOMMIT"
                        )
                        self._pid = os.getpid()
                    assert self._connection is not None
                    self._connection.exec_driver_sql("SELECT 1")
                    return
                except DBAPIError:
                    self._drop()
                    if fresh or attempt == 2:
                        raise

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except DBAPIError:
                pass
