"""Rate limits (API tokens, inbound SMS) counted in the database, security headers on every
page, and the session cookie's flags."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from core.settings import ConfigError, load_config
from facilities.models import RateCounter
from greenchannel.web import health
from greenchannel.web.app import SECURITY_HEADERS, create_app
from greenchannel.web.db import db
from greenchannel.web.ratelimit import hit, limits_from_env
from tests.world import PPH_REQUEST, build_world

TWILIO_TOKEN = "twilio-test-token"


def test_an_api_token_over_its_limit_gets_429_with_retry_after_until_the_minute_is_over(
    app: Flask, client: FlaskClient
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 5
    world = build_world(app, client)
    world.clock.now = world.clock.now.replace(second=20)
    for _ in range(5):
        assert world.get("clinic", "/api/v1/facilities").status_code == 200
    refused = world.get("clinic", "/api/v1/facilities")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "40"
    assert refused.get_json()["error"] == "too_many_requests"
    # Another token has its own count.
    assert world.get("coordinator", "/api/v1/facilities").status_code == 200
    world.clock.advance(seconds=40)
    assert world.get("clinic", "/api/v1/facilities").status_code == 200


def test_the_fhir_endpoint_shares_the_token_count_and_answers_429_as_an_operation_outcome(
    app: Flask, client: FlaskClient
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 4
    world = build_world(app, client)
    world.clock.now = world.clock.now.replace(second=30)
    for path in ("/api/v1/facilities", "/api/v1/facilities", "/fhir/Task", "/fhir/Task"):
        assert world.get("clinic", path).status_code == 200, path
    refused = world.get("clinic", "/fhir/Task")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.get_json()["resourceType"] == "OperationOutcome"
    assert world.get("clinic", "/api/v1/facilities").status_code == 429


def test_the_count_is_shared_by_every_web_process(
    app: Flask, client: FlaskClient, database_url: str, tmp_path: Path
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 4
    world = build_world(app, client)
    second = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "SMS_BACKEND": "recording",
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
            "GREENCHANNEL_RATE_LIMIT_TOKEN": 4,
        }
    )
    second.extensions["greenchannel.clock"] = world.clock
    other = second.test_client()
    headers = world.headers("clinic")
    answers = [
        (client if i % 2 else other).get("/api/v1/facilities", headers=headers).status_code
        for i in range(6)
    ]
    assert answers == [200, 200, 200, 200, 429, 429]
    with second.app_context():
        db.engine.dispose()


def test_concurrent_hits_are_all_counted(engine: Engine) -> None:
    now = dt.datetime(2026, 11, 24, 8, 0, 30, tzinfo=dt.UTC)
    counts: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            value = hit(engine, key="token:race", now=now)
            with lock:
                counts.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every hit got its own number: no lost update, no double count.
    assert sorted(counts) == list(range(1, 81))
    with engine.begin() as conn:
        conn.execute(RateCounter.__table__.delete())


def _signed_sms(client: FlaskClient, phone: str, body: str) -> int:
    form = {"From": phone, "Body": body, "MessageSid": f"SM{threading.get_ident()}{body}"}
    url = "https://gc.test/webhooks/twilio/sms"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    return client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    ).status_code


def test_a_phone_flooding_the_sms_webhook_is_slowed_down_and_others_are_not(
    app: Flask, client: FlaskClient
) -> None:
    app.config.update(TWILIO_AUTH_TOKEN=TWILIO_TOKEN, GREENCHANNEL_RATE_LIMIT_SMS=3)
    world = build_world(app, client)
    statuses = [_signed_sms(client, "+8613900000001", f"hello {i}") for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert _signed_sms(client, "+8613900000002", "hello") == 200
    world.clock.advance(minutes=1)
    assert _signed_sms(client, "+8613900000001", "again") == 200


def test_unsigned_posts_naming_a_hospitals_phone_do_not_silence_its_signed_answer(
    app: Flask, client: FlaskClient
) -> None:
    app.config.update(TWILIO_AUTH_TOKEN=TWILIO_TOKEN, GREENCHANNEL_RATE_LIMIT_SMS=30)
    world = build_world(app, client)
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    hospital = world.phones["H-A:obstetrics"]
    forged = {"From": hospital, "Body": f"{case['code']} N FULL", "MessageSid": "SMforged"}
    refused = [
        client.post(
            "/webhooks/twilio/sms",
            data=forged,
            headers={"X-Twilio-Signature": "forged"} if attempt % 2 else {},
        ).status_code
        for attempt in range(40)
    ]
    assert _signed_sms(client, hospital, f"{case['code']} Y") == 200  # not 429
    assert refused == [403] * 40
    with app.app_context():
        counted = db.session.scalars(select(RateCounter.key)).all()
        assert [key for key in counted if key.startswith("sms:")] == [f"sms:{hospital}"]
    after = world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()
    assert after["status"] == "accepted" and after["destination"] == "H-A"


def test_made_up_api_tokens_are_refused_as_unknown_and_never_counted(
    app: Flask, client: FlaskClient
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 3
    world = build_world(app, client)
    made_up = {"Authorization": "Bearer gc_made-up"}
    statuses = [client.get("/api/v1/facilities", headers=made_up).status_code for _ in range(5)]
    assert statuses == [401] * 5
    for number in range(20):
        other = {"Authorization": f"Bearer gc_guess-{number}"}
        assert client.get("/api/v1/facilities", headers=other).status_code == 401
    with app.app_context():
        assert db.session.scalars(select(RateCounter)).all() == []
    # A real token is counted as before.
    answers = [world.get("clinic", "/api/v1/facilities").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_limits_come_from_the_environment_and_nonsense_stops_the_service() -> None:
    assert limits_from_env({}) == {
        "GREENCHANNEL_RATE_LIMIT_TOKEN": 600,
        "GREENCHANNEL_RATE_LIMIT_SMS": 30,
    }
    assert limits_from_env({"GREENCHANNEL_RATE_LIMIT_SMS": "0"})["GREENCHANNEL_RATE_LIMIT_SMS"] == 0
    with pytest.raises(ConfigError, match="GREENCHANNEL_RATE_LIMIT_TOKEN"):
        limits_from_env({"GREENCHANNEL_RATE_LIMIT_TOKEN": "lots"})


def test_every_page_and_error_carries_the_security_headers(app: Flask, client: FlaskClient) -> None:
    world = build_world(app, client)
    pages = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set()) and not rule.arguments
    }
    pages.add(health.PATH)  # answered in front of Flask (greenchannel.web.health)
    paths = [*sorted(pages), "/no/such/page", "/api/v1/referrals/999999", "/api/v1/facilities/NOPE"]
    assert "/metrics" in paths and "/healthz" in paths
    for path in paths:
        for headers in ({}, world.headers("admin")):
            response = client.get(path, headers=headers)
            assert response.status_code < 500, path
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (path, name)
            assert response.headers.get("X-Request-Id"), path
            if path.startswith("/api/"):
                assert response.headers["Cache-Control"] == "no-store", path


def test_the_session_cookie_is_http_only_same_site_and_secure_on_https(
    database_url: str, tmp_path: Path
) -> None:
    https = load_config(str(tmp_path), {"PUBLIC_BASE_URL": "https://gc.example", "SECRET_KEY": "k"})
    plain = load_config(str(tmp_path), {"PUBLIC_BASE_URL": "http://localhost:5000"})
    assert https["SESSION_COOKIE_SECURE"] is True and plain["SESSION_COOKIE_SECURE"] is False
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "k",
            "SESSION_COOKIE_SECURE": True,
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
        }
    )

    @app.get("/_test/session")
    def set_session() -> str:
        session["user_id"] = 1
        return "ok"

    response = app.test_client().get("/_test/session")
    cookie = response.headers["Set-Cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    with pytest.raises(ConfigError, match="SESSION_COOKIE_SECURE"):
        load_config(str(tmp_path), {"SESSION_COOKIE_SECURE": "maybe"})
    with app.app_context():
        assert db.session.scalars(select(RateCounter)).all() == []
        db.engine.dispose()
