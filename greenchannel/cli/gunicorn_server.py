"""`greenchannel serve --workers N`: gunicorn with N processes, the heap settled after load.

The master builds the runtime and the app once (the one composition root), loads the road
network, compiles the routing kernels and freezes the heap (``gc.freeze``), then forks the
workers: the network's arrays, the compiled kernels, the app, its schemas and SQLAlchemy's
mappers are pages every worker shares with the master until one writes to them, and the frozen
objects are never written by the cyclic collector, so the pages stay shared.

The database engine is built in the master but no connection crosses the fork: each worker
starts with ``engine.dispose(close=False)`` (SQLAlchemy, "Using Connection Pools with
Multiprocessing"), which gives it a fresh pool and leaves any connection the master opened to
the master. Each worker serves with ``threads`` threads (gthread). SIGTERM or SIGINT stops
gracefully: the workers finish the requests in hand (up to ``graceful_timeout`` seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from greenchannel.runtime import Runtime


class GreenchannelServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving one preloaded app (no config file, no command line of its own)."""

    def __init__(self, app: Flask, options: Mapping[str, Any]) -> None:
        self.application = app
        self.options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Flask:
        return self.application


def after_fork(runtime: Runtime) -> Callable[[Any, Any], None]:
    """gunicorn's ``post_fork``: the worker's own connection pool."""

    def post_fork(_server: Any, _worker: Any) -> None:
        runtime.engine.dispose(close=False)

    return post_fork


def options(
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    connection_limit: int,
    runtime: Runtime,
    graceful_timeout: int = 30,
) -> dict[str, Any]:
    """gunicorn's settings for the service (see the module's note)."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        # gthread keeps idle keep-alive connections apart from its threads: phones and boards
        # polling on a kept connection do not hold a thread each.
        "worker_connections": connection_limit,
        "keepalive": 75,
        "timeout": 60,
        "graceful_timeout": graceful_timeout,
        "preload_app": True,
        "proc_name": "greenchannel",
        "post_fork": after_fork(runtime),
        # the app logs each request itself (JSON, request id): no second access log
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }


def run_gunicorn(app: Flask, runtime: Runtime, **settings: Any) -> None:
    """Serve ``app`` with gunicorn until SIGTERM/SIGINT (blocks)."""
    GreenchannelServer(app, options(runtime=runtime, **settings)).run()
