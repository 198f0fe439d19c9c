"""Request ids, JSON logs (masked) and the Prometheus metrics, counted from the database."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from greenchannel.web.observability import JsonFormatter, RequestIdFilter, configure_logging, scrub
from tests.world import PPH_REQUEST, build_world


def test_a_request_id_is_honoured_or_made_and_echoed(client: FlaskClient) -> None:
    given = client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42"})
    assert given.headers["X-Request-Id"] == "lb-7f3a.42"
    made = client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    # Something that could forge log lines or bloat them is replaced, not echoed.
    hostile = client.get("/healthz", headers={"X-Request-Id": 'x" {"level": "fake"}' + "9" * 80})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-Id"])


def test_every_answer_says_how_long_the_app_spent_on_it(client: FlaskClient) -> None:
    timing = client.get("/healthz").headers["Server-Timing"]
    match = re.fullmatch(r"app;dur=(\d+\.\d)", timing)
    assert match and float(match.group(1)) >= 0


def test_every_log_line_of_a_request_is_json_with_its_request_id(
    app: Flask, client: FlaskClient
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("referral.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    @app.get("/_test/log")
    def noisy() -> str:
        logger.info("first line for %s", "+8613912345678")
        logger.warning("second line", extra={"referral_id": 7})
        try:
            raise ValueError("token=gc_secretsecret")
        except ValueError:
            logger.exception("it broke")
        return "ok"

    try:
        response = client.get("/_test/log", headers={"X-Request-Id": "abc-123"})
    finally:
        logger.removeHandler(handler)
    assert response.headers["X-Request-Id"] == "abc-123"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["abc-123"] * 3
    assert lines[0]["message"] == "first line for +86139****5678"
    assert lines[1]["referral_id"] == 7 and lines[1]["level"] == "warning"
    assert "gc_secretsecret" not in lines[2]["exc"] and "ValueError" in lines[2]["exc"]
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    root.handlers = [h for h in root.handlers if not getattr(h, "_greenchannel_json", False)]
    outside = io.StringIO()
    try:
        handler = configure_logging(outside)
        assert configure_logging() is handler  # once per process
        logging.getLogger("referral.test").warning("outside a request")
        assert json.loads(outside.getvalue().splitlines()[-1])["request_id"] == "-"
    finally:
        root.handlers, root.level = saved


def test_secrets_and_phone_numbers_are_masked_in_logs() -> None:
    assert scrub("Authorization: Bearer gc_abcdef123") == "Authorization: Bearer ***"
    assert scrub("password=hunter22 next") == "password=*** next"
    assert scrub("sent to +8613912345678.") == "sent to +86139****5678."
    assert scrub("referral 42 offer 7") == "referral 42 offer 7"


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_referrals_offers_messages_from_the_database(
    app: Flask, client: FlaskClient
) -> None:
    world = build_world(app, client)
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.post(
        case["offers"][1]["facility"],
        f"/api/v1/referrals/{case['id']}/offers/{case['offers'][1]['id']}/decline",
        {"reason": "FULL"},
    )
    world.tick()
    world.get("coordinator", "/api/v1/referrals?status=active")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert _metric(text, "greenchannel_referrals", status="offered", urgency="critical") == 1
    assert _metric(text, "greenchannel_offers", status="declined") == 1
    assert _metric(text, "greenchannel_offers", status="pending") >= 1
    assert _metric(text, "greenchannel_sms_messages", purpose="prealert", status="sent") >= 3
    assert "# TYPE greenchannel_escalations gauge" in text
    assert (
        _metric(
            text,
            "greenchannel_http_request_seconds_count",
            method="POST",
            endpoint="/api/v1/referrals",
            status="2xx",
        )
        >= 1
    )
    # Computed at scrape time: a second process sees the same figures.
    assert "greenchannel_referrals{" in text and "Bearer" not in text
    world.clock.advance(minutes=10)
    world.tick()
    later = client.get("/metrics").get_data(as_text=True)
    assert _metric(later, "greenchannel_offers", status="expired") >= 1
    assert _metric(later, "greenchannel_escalations", level="next_contact") >= 0


def test_every_request_leaves_one_access_log_line_with_its_id_and_timing(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="greenchannel.access"):
        client.get("/healthz", headers={"X-Request-Id": "probe-9"})
    (record,) = [r for r in caplog.records if r.name == "greenchannel.access"]
    assert record.getMessage() == "GET /healthz 200"
    assert record.__dict__["status"] == 200 and record.__dict__["duration_ms"] >= 0


_PIECES = [
    "+86 138 0013 8000",
    "13800138000",
    "12-34-56-78",
    "Bearer ",
    "bearer\tx",
    "gc_",
    "abc",
    "token=",
    "TOKEN: ",
    "password:",
    "secret=",
    "auth_token:",
    "[parameters: (1, 'x')]",
    "Key (patient_ref)=(T1-0042) already exists",
    "Failing row contains (1, x)",
    " ",
    ",",
    "7",
    "GET /api/v1/referrals/42 200",
    "'",
    "\n",
    "é",
    "中文",
]


@given(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))
def test_the_quick_look_before_scrubbing_never_skips_a_line_that_needs_it(text: str) -> None:
    from greenchannel.web.observability import _scrub_every_pattern

    assert scrub(text) == _scrub_every_pattern(text)
