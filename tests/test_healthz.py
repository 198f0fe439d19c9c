"""GET /healthz, answered in front of Flask (greenchannel/web/health.py): the database checked
on every call, the same headers and log line as every other answer."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from werkzeug.test import Client

from greenchannel.web.app import SECURITY_HEADERS
from greenchannel.web.health import HealthCheck


def _behind(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app"]


def test_an_unreachable_database_makes_healthz_503_with_a_retry_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'db.sqlite'}")
    client = Client(HealthCheck(_behind, engine, SECURITY_HEADERS))
    with caplog.at_level(logging.INFO, logger="greenchannel.access"):
        response = client.get("/healthz", headers={"X-Request-Id": "lb-1"})
    assert response.status_code == 503
    assert response.json == {"status": "unhealthy", "database": "unreachable"}
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Request-Id"] == "lb-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    (line,) = [r for r in caplog.records if r.name == "greenchannel.access"]
    assert line.getMessage() == "GET /healthz 503" and line.__dict__["request_id"] == "lb-1"


@pytest.mark.postgres
def test_healthz_sees_the_database_go_and_come_back(engine: Engine) -> None:
    """On a database of its own: its kept connection killed, the check connects again and says
    200; connections refused, 503; allowed again, 200."""
    if engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL (GREENCHANNEL_TEST_DATABASE_URL)")
    name = f"gc_healthz_{os.getpid()}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")

    def run(sql: str) -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)

    run(f"DROP DATABASE IF EXISTS {name}")
    run(f"CREATE DATABASE {name}")
    probed = create_engine(engine.url.set(database=name))
    kill = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    try:
        client = Client(HealthCheck(_behind, probed, SECURITY_HEADERS))
        assert client.get("/healthz").status_code == 200
        run(kill)  # the check's kept connection is gone: it opens a new one
        assert client.get("/healthz").status_code == 200
        run(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        run(kill)
        down = client.get("/healthz")
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"
        run(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        assert client.get("/healthz").status_code == 200
    finally:
        probed.dispose()
        run(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_other_methods_are_refused_and_other_paths_reach_the_app(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    client = Client(HealthCheck(_behind, engine, SECURITY_HEADERS))
    refused = client.post("/healthz")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    assert client.head("/healthz").status_code == 200
    assert client.get("/healthz/more").get_data() == b"the app"
    assert client.get("/").get_data() == b"the app"
