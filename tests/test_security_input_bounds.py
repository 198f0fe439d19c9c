"""Every list and string a caller sends has a bound, checked before any work starts (issue 22:
one case with 10,000 conditions held the database's write lock for more than 12 minutes)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

from core.errors import ServiceError
from facilities.models import Facility, Role
from greenchannel.web.db import db
from referral import creation, service
from referral.limits import MAX_CONDITIONS
from referral.models import Referral
from referral.triage import Case
from tests.world import PPH_REQUEST, World, build_world, login, post_form, web_world

TWILIO_TOKEN = "twilio-test-token"
# Eleven conditions of the mother, all in the region's rules.
ELEVEN = [
    "PPH",
    "APH",
    "UTERINE_RUPTURE",
    "ECLAMPSIA",
    "SEVERE_PE",
    "SEPSIS",
    "CARDIAC",
    "AFE_ARREST",
    "PAS",
    "PRETERM_LABOUR",
    "SEVERE_ANAEMIA",
]


@pytest.fixture
def no_triage_of_long_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop at once (instead of working for minutes) if a long case reaches triage."""
    triage = creation.triage

    def guarded(rules: Any, case: Case, **options: Any) -> Any:
        assert len(case.conditions) <= MAX_CONDITIONS, (
            f"triage started on {len(case.conditions)} conditions"
        )
        return triage(rules, case, **options)

    monkeypatch.setattr(creation, "triage", guarded)


def _case(conditions: list[str]) -> dict[str, Any]:
    return {**PPH_REQUEST, "case": {**PPH_REQUEST["case"], "conditions": conditions}}


def _referrals(app: Flask) -> list[Referral]:
    with app.app_context():
        return list(db.session.query(Referral))


@pytest.mark.usefixtures("no_triage_of_long_cases")
def test_a_case_with_thousands_of_conditions_is_refused_at_once_naming_the_field(
    app: Flask, client: FlaskClient
) -> None:
    world = build_world(app, client)
    started = time.perf_counter()
    for conditions in (["PPH"] * 10_000, [f"X{i}" for i in range(10_000)], ELEVEN):
        refused = world.post("clinic", "/api/v1/referrals", _case(conditions))
        assert refused.status_code == 422, refused.get_json()
        body = refused.get_json()
        assert body["error"] == "invalid" and body["field"] == "case.conditions"
        assert str(MAX_CONDITIONS) in body["message"]
        assert len(body["message"]) < 200
        routed = world.post(
            "clinic",
            "/api/v1/route",
            {"origin": {"facility": "T-1"}, "case": {"conditions": conditions}},
        )
        assert routed.status_code == 422 and routed.get_json()["field"] == "case.conditions"
    assert time.perf_counter() - started < 10  # refused before any work: well under a second
    assert _referrals(app) == []
    # Ten are still a case (if an odd one).
    assert world.post("clinic", "/api/v1/referrals", _case(ELEVEN[:10])).status_code == 201


def test_a_case_naming_a_condition_twice_is_refused_naming_the_field(
    app: Flask, client: FlaskClient
) -> None:
    world = build_world(app, client)
    refused = world.post("clinic", "/api/v1/referrals", _case(["PPH", "APH", " pph"]))
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["field"] == "case.conditions" and "PPH given more than once" in body["message"]
    assert _referrals(app) == []


def test_a_condition_code_is_at_most_32_characters(app: Flask, client: FlaskClient) -> None:
    world = build_world(app, client)
    refused = world.post("clinic", "/api/v1/referrals", _case(["P" * 33]))
    assert refused.status_code == 422
    assert refused.get_json()["field"] == "case.conditions.0"


@pytest.mark.usefixtures("no_triage_of_long_cases")
def test_the_service_refuses_a_long_or_repeated_condition_list_however_it_comes(
    app: Flask, client: FlaskClient
) -> None:
    world = build_world(app, client)
    with app.app_context():
        place = app.extensions["greenchannel.place"]()
        origin = db.session.query(Facility).filter_by(code="T-1").one()
        admin = service.Actor(name="admin", channel="cli", role=Role.ADMIN)
        for conditions in (tuple(ELEVEN), ("PPH",) * 10_000, ("PPH", "APH", "PPH")):
            with pytest.raises(ServiceError) as refused:
                service.create_referral(
                    db.session,
                    place=place,
                    actor=admin,
                    origin=origin,
                    case=Case(conditions=conditions),
                    patient={},
                    now=world.clock.now,
                )
            assert refused.value.field == "conditions"
        db.session.rollback()
    assert _referrals(app) == []


def _sms(world: World, phone: str, body: str) -> str:
    form = {"From": phone, "Body": body, "MessageSid": f"SM{abs(hash(body))}"}
    url = "https://gc.test/webhooks/twilio/sms"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    response = world.client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_referral_by_sms_counts_a_repeated_condition_once_and_refuses_too_many(
    app: Flask, client: FlaskClient
) -> None:
    app.config["TWILIO_AUTH_TOKEN"] = TWILIO_TOKEN
    world = build_world(app, client)
    clinic = world.phones["T-1:obstetrics"]
    answer = _sms(world, clinic, "REF " + " ".join(ELEVEN))
    assert f"at most {MAX_CONDITIONS} conditions" in answer
    assert _referrals(app) == []
    _sms(world, clinic, "REF PPH pph 产后出血 PPH")
    (case,) = _referrals(app)
    assert case.case["conditions"] == ["PPH"]


def test_the_referral_form_counts_a_repeated_condition_once(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    post_form(
        client,
        "/clinic",
        "/clinic/referrals",
        {"conditions": ["PPH"] * 500 + ["APH"] * 500, "gestation_weeks": "39"},
    )
    (case,) = _referrals(app)
    assert case.case["conditions"] == ["PPH", "APH"]


def _unbounded(spec: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    """Every string without maxLength, enum, an anchored pattern or a date format, and every
    array without maxItems, in ``schema``, following references."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _unbounded(spec, spec["components"]["schemas"][name], path)
    found: list[str] = []
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            found += _unbounded(spec, part, path)
    kind = schema.get("type")
    if kind == "string" and not (
        "maxLength" in schema
        or "enum" in schema
        or schema.get("pattern", "").endswith("$")
        or schema.get("format") in ("date", "date-time")
    ):
        found.append(path)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(path)
        found += _unbounded(spec, schema.get("items", {}), path + "[]")
    for name, field in schema.get("properties", {}).items():
        found += _unbounded(spec, field, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _unbounded(spec, schema["additionalProperties"], path + ".*")
    return found


def test_every_string_and_list_a_client_sends_to_the_api_has_a_bound(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    unbounded: list[str] = []
    for route, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            where = f"{method.upper()} {route}"
            for parameter in operation.get("parameters", []):
                # (Headers are bounded by the server's header size limit.)
                if parameter.get("in") == "query" and "schema" in parameter:
                    unbounded += _unbounded(
                        spec, parameter["schema"], f"{where} {parameter['name']}"
                    )
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                if media == "application/json":
                    unbounded += _unbounded(spec, content.get("schema", {}), f"{where} body")
    assert unbounded == [], unbounded
