"""The whole SMS conversation through the real Twilio SDK, against a fake Twilio on loopback:
referral → pre-alert → signed reply → accepted → the clinic is told; and when the provider fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twilio.request_validator import RequestValidator

from alerts.timers import WorkerSettings
from alerts.transports import transport_from_config
from alerts.worker import TickReport, tick
from greenchannel.web.db import db
from referral import audit
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.world import PPH_REQUEST, World

BASE = "https://gc.test"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as server:
        yield server


@pytest.fixture
def world(world: World, fake: FakeTwilio) -> World:
    """The world sending its SMS through the real Twilio SDK to the fake on loopback."""
    world.app.config.update(
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_AUTH_TOKEN=fake.auth_token,
        TWILIO_FROM="+8610690000",
        TWILIO_API_BASE=fake.base_url,
        TWILIO_TIMEOUT=0.5,
        PUBLIC_BASE_URL=BASE,
    )
    return world


def worker_tick(world: World) -> TickReport:
    factory = world.app.extensions["greenchannel.db"][1]
    return tick(
        factory,
        now=world.clock.now,
        transport=transport_from_config(world.app.config),
        handlers=world.app.extensions["greenchannel.handlers"],
        worker_id="test",
        status_callback_url=BASE + "/webhooks/twilio/status",
        settings=WorkerSettings(capacity_grace=None),
    )


def sms_from(world: World, phone: str, body: str) -> tuple[int, str]:
    path = "/webhooks/twilio/sms"
    form = {"From": phone, "To": "+8610690000", "Body": body, "MessageSid": f"SM{abs(hash(body))}"}
    token = world.app.config["TWILIO_AUTH_TOKEN"]
    signature = RequestValidator(token).compute_signature(BASE + path, form)
    response = world.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code, response.get_data(as_text=True)


def audit_actions(world: World, referral_id: int) -> list[tuple[str, str]]:
    with world.app.app_context():
        return [(r.action, r.channel) for r in audit.trail(db.session, referral_id=referral_id)]


def test_a_pre_alert_answered_by_sms_places_the_case_and_tells_the_clinic(
    world: World, fake: FakeTwilio
) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    worker_tick(world)
    obstetrician = world.phones["H-A:obstetrics"]
    prealerts = [m for m in fake.messages if m["To"] == obstetrician]
    assert len(prealerts) == 1
    assert case["code"] in prealerts[0]["Body"]
    assert prealerts[0]["StatusCallback"] == BASE + "/webhooks/twilio/status"

    world.clock.advance(minutes=1)
    status, twiml = sms_from(world, obstetrician, f"{case['code']} Y 15")
    assert status == 200 and "<Message>" in twiml and case["code"] in twiml

    after = world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()
    assert after["status"] == "accepted" and after["destination"] == "H-A"
    accepted = next(e for e in after["timeline"] if e["kind"] == "accepted")
    assert accepted["channel"] == "sms" and accepted["detail"]["minutes"] == 15
    assert audit_actions(world, case["id"])[-2:] == [("accept", "sms"), ("view", "api")]

    worker_tick(world)
    to_clinic = [m for m in fake.messages if m["To"] == world.phones["T-1:obstetrics"]]
    assert len(to_clinic) == 1 and case["code"] in to_clinic[0]["Body"]

    # H-B answers too late: nothing changes and the reply says why.
    status, twiml = sms_from(world, world.phones["H-B:obstetrics"], f"{case['code']} Y")
    assert status == 200
    again = world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()
    assert again["destination"] == "H-A"
    assert case["code"] in twiml
    assert [a for a in audit_actions(world, case["id"]) if a[1] == "sms"] == [("accept", "sms")]


def test_a_reply_from_a_stranger_changes_nothing(world: World, fake: FakeTwilio) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    status, twiml = sms_from(world, "+8613800000000", f"{case['code']} Y")
    assert status == 200 and "<Message>" in twiml
    assert (
        world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()["status"]
        == "offered"
    )


def test_an_unsigned_or_wrongly_signed_webhook_is_refused(world: World) -> None:
    form = {"From": world.phones["H-A:obstetrics"], "Body": "X Y", "MessageSid": "SM1"}
    assert world.client.post("/webhooks/twilio/sms", data=form).status_code == 403
    response = world.client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": "bogus"}
    )
    assert response.status_code == 403


def test_provider_errors_are_retried_and_an_invalid_number_escalates_at_once(
    world: World, fake: FakeTwilio
) -> None:
    fake.invalid_numbers.add(world.phones["H-A:obstetrics"])
    fake.fail_next(2)  # the provider is down for the first two requests
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    worker_tick(world)
    worker_tick(world)  # the invalid number's failure moves the alert on (switchboard, etc.)
    world.clock.advance(seconds=31)  # past the first backoff
    worker_tick(world)
    world.clock.advance(minutes=1, seconds=1)
    worker_tick(world)
    delivered = {m["To"] for m in fake.messages}
    # The retried pre-alerts reached the teams once the provider recovered ...
    assert world.phones["H-B:obstetrics"] in delivered
    assert world.phones["H-A:anaesthesia"] in delivered
    # ... and H-A's obstetrician (an invalid number) was replaced by H-A's switchboard at once,
    # long before the silence timeout.
    assert "+862300000010" in delivered
    assert world.phones["H-A:obstetrics"] not in delivered
    # Nobody got the same message twice.
    pairs = [(m["To"], m["Body"]) for m in fake.messages]
    assert len(pairs) == len(set(pairs))
    # Escalating to the switchboard does not end H-A's offer: it still has its full timeout.
    now = world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()
    assert {o["facility"]: o["status"] for o in now["offers"]} == {
        "H-A": "pending",
        "H-B": "pending",
    }


@pytest.mark.parametrize("body", ["REF PPH", "转诊 产后出血", "ref pph shock"])
def test_a_clinic_without_data_starts_a_referral_by_sms(world: World, body: str) -> None:
    status, twiml = sms_from(world, world.phones["T-1:obstetrics"], body)
    assert status == 200
    cases = world.get("coordinator", "/api/v1/referrals?status=active").get_json()["referrals"]
    assert len(cases) == 1
    case = cases[0]
    assert case["case"]["conditions"] == ["PPH"] and case["origin_facility"] == "T-1"
    assert case["timeline"][0]["channel"] == "sms"
    assert audit_actions(world, case["id"])[0] == ("create", "sms")
    assert case["code"] in twiml and "H-A" in twiml  # destination(s) and ETA are in the answer
    if "shock" in body:
        assert case["requirements"]["maternal_level"] == "M3"


def test_an_unknown_condition_by_sms_gets_the_format_back(world: World) -> None:
    status, twiml = sms_from(world, world.phones["T-1:obstetrics"], "REF HEADACHE")
    assert status == 200 and "REF PPH" in twiml
    assert world.get("coordinator", "/api/v1/referrals").get_json()["referrals"] == []
