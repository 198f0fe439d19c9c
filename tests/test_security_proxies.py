"""Behind reverse proxies the client is the forwarded address, and only as many hops as the
region trusts: login throttling counts each ward computer, never the proxy for all."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, request
from sqlalchemy import Engine

from core.settings import ConfigError, env_count
from greenchannel.web.app import create_app


def _app(database_url: str, tmp_path: Path, proxies: int) -> Flask:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "SMS_BACKEND": "recording",
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
            "TRUSTED_PROXIES": proxies,
        }
    )

    @app.get("/_whoami")
    def whoami() -> str:
        return request.remote_addr or ""

    return app


def test_the_client_is_the_forwarded_address_only_behind_a_trusted_proxy(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9, 10.1.1.5"}
    plain = _app(database_url, tmp_path, 0).test_client()
    assert plain.get("/_whoami", headers=forged).get_data(as_text=True) == "127.0.0.1"
    one = _app(database_url, tmp_path, 1).test_client()
    # One trusted proxy: its hop (the last) is believed, the client's own claim before it not.
    assert one.get("/_whoami", headers=forged).get_data(as_text=True) == "10.1.1.5"


def test_the_number_of_trusted_proxies_is_a_checked_setting() -> None:
    assert env_count({}, "GREENCHANNEL_TRUSTED_PROXIES", 0) == 0
    assert env_count({"GREENCHANNEL_TRUSTED_PROXIES": "2"}, "GREENCHANNEL_TRUSTED_PROXIES", 0) == 2
    with pytest.raises(ConfigError, match="GREENCHANNEL_TRUSTED_PROXIES"):
        env_count({"GREENCHANNEL_TRUSTED_PROXIES": "-1"}, "GREENCHANNEL_TRUSTED_PROXIES", 0)
