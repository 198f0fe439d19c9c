"""The call step end to end: a critical pre-alert left unanswered rings the on-call contact
through the real Twilio SDK (against a fake Twilio Voice on loopback); the callee hears the
TwiML and answers with keys, exactly as an SMS reply would; no answer moves the team on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from alerts import calls
from alerts.calls import CALL_KIND, CallPlacer
from alerts.models import CallStatus, OutboundMessage, VoiceCall
from alerts.timers import WorkerSettings
from alerts.voice import voice_transport_from_config
from alerts.worker import TickReport, tick
from greenchannel.web.db import db
from referral import audit
from tests.conftest import _wipe
from tests.fake_twilio_voice import FakeCall, FakeTwilioVoice, running_fake_twilio_voice
from tests.world import PPH_REQUEST, World

BASE = "https://gc.test"
SWITCHBOARD_H_A = "+862300000010"


@pytest.fixture
def server() -> Iterator[FakeTwilioVoice]:
    with running_fake_twilio_voice() as fake:
        yield fake


@pytest.fixture
def app(
    engine: Engine, database_url: str, tmp_path: Path, server: FakeTwilioVoice
) -> Iterator[Flask]:
    """The suite's app with calls on: the real Twilio SDK, pointed at the fake on loopback."""
    from greenchannel.web.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "SMS_BACKEND": "recording",
            "PUBLIC_BASE_URL": BASE,
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
            "VOICE_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": server.account_sid,
            "TWILIO_AUTH_TOKEN": server.auth_token,
            "TWILIO_VOICE_FROM": "+8610690001",
            "TWILIO_API_BASE": server.base_url,
            "TWILIO_TIMEOUT": 2,
        }
    )
    yield app
    _wipe(engine)


@pytest.fixture
def fake(world: World, server: FakeTwilioVoice) -> FakeTwilioVoice:
    """The fake's phone side rings the app through the test client, on the world's clock."""
    server.now = world.clock

    def deliver(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        assert url.startswith(BASE), url
        response = world.client.post(url[len(BASE) :], data=form, headers=headers)
        return response.status_code, response.get_data(as_text=True)

    server.deliver = deliver
    return server


@pytest.fixture
def voice_world(world: World, fake: FakeTwilioVoice) -> World:
    return world


def test_with_calls_off_the_call_step_queues_nothing(tmp_path: Path) -> None:
    from greenchannel.runtime import build_runtime

    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'off.sqlite'}",
        "GREENCHANNEL_ROADS": str(tmp_path / "off.npz"),
        "VOICE_BACKEND": "off",
    }
    off = build_runtime(settings).handlers.timers[CALL_KIND]
    on = build_runtime({**settings, "VOICE_BACKEND": "twilio"}).handlers.timers[CALL_KIND]
    assert off is not calls.TIMER_HANDLERS[CALL_KIND]
    assert on is calls.TIMER_HANDLERS[CALL_KIND]


def worker_tick(world: World) -> TickReport:
    transport = voice_transport_from_config(world.app.config)
    assert transport is not None
    return tick(
        world.app.extensions["greenchannel.db"][1],
        now=world.clock.now,
        transport=world.transport,
        handlers=world.app.extensions["greenchannel.handlers"],
        worker_id="test",
        settings=WorkerSettings(capacity_grace=None),
        voice=CallPlacer(transport=transport, public_base_url=BASE),
    )


def case_of(world: World, case_id: int) -> dict[str, object]:
    found: dict[str, object] = world.get("coordinator", f"/api/v1/referrals/{case_id}").get_json()
    return found


def ring_after_silence(world: World, fake: FakeTwilioVoice) -> tuple[dict[str, object], FakeCall]:
    """A PPH case (critical), its pre-alerts out, a minute of silence: H-A's obstetrician is
    phoned."""
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    worker_tick(world)
    assert fake.calls == []  # a minute to read the text first
    world.clock.advance(seconds=59)
    assert worker_tick(world).calls_placed == 0
    world.clock.advance(seconds=2)
    assert worker_tick(world).calls_placed == 2  # both parallel offers' on-call obstetricians
    calls = fake.to(world.phones["H-A:obstetrics"])
    assert len(calls) == 1
    return case, calls[0]


def audit_actions(world: World, referral_id: int) -> list[tuple[str, str]]:
    with world.app.app_context():
        return [(r.action, r.channel) for r in audit.trail(db.session, referral_id=referral_id)]


def test_an_unanswered_critical_pre_alert_rings_and_key_1_accepts_like_an_sms_reply(
    voice_world: World, fake: FakeTwilioVoice
) -> None:
    world = voice_world
    case, call = ring_after_silence(world, fake)
    assert call.from_ == "+8610690001" and call.timeout == 25
    assert call.url.startswith(BASE + "/webhooks/twilio/voice?call=")
    assert {"initiated", "completed"} <= set(call.events)

    heard = fake.pick_up(call, press=["1"])
    assert heard[0].status == 200
    spoken = " ".join(heard[0].says)
    assert " ".join(str(case["code"])) in spoken  # the code, letter by letter
    assert "产后出血" in spoken and "接收请按1" in spoken and "拒绝请按2" in spoken
    assert heard[1].hangup and str(case["code"]) in heard[1].says[0]  # the SMS confirmation

    after = case_of(world, int(str(case["id"])))
    assert after["status"] == "accepted" and after["destination"] == "H-A"
    timeline = after["timeline"]
    assert isinstance(timeline, list)
    accepted = next(e for e in timeline if e["kind"] == "accepted")
    assert accepted["channel"] == "voice"
    kinds = [e["kind"] for e in timeline]
    assert kinds.index("call_placed") < kinds.index("accepted") < kinds.index("call_ended")
    ended = [e for e in timeline if e["kind"] == "call_ended" and e["detail"]["facility"] == "H-A"]
    assert ended[0]["detail"]["outcome"] == "completed"
    assert ended[0]["detail"]["answer"] == "accepted"
    assert ("accept", "voice") in audit_actions(world, int(str(case["id"])))

    worker_tick(world)
    to_clinic = world.transport.to(world.phones["T-1:obstetrics"])
    assert any(str(case["code"]) in sms.body for sms in to_clinic)
    # A second press on the finished call changes nothing.
    again = fake.post(heard[0].gather_action or "", {"CallSid": call.sid, "Digits": "1"})
    assert again[0] == 200
    assert [a for a in audit_actions(world, int(str(case["id"]))) if a[1] == "voice"] == [
        ("accept", "voice")
    ]


def test_key_2_then_a_reason_declines_with_that_reason(
    voice_world: World, fake: FakeTwilioVoice
) -> None:
    world = voice_world
    case, call = ring_after_silence(world, fake)
    heard = fake.pick_up(call, press=["2", "3"])
    assert "血源不足请按3" in " ".join(heard[1].says)  # the reasons' menu
    after = case_of(world, int(str(case["id"])))
    offers = {o["facility"]: o for o in after["offers"]}  # type: ignore[union-attr]
    assert offers["H-A"]["status"] == "declined"
    timeline = after["timeline"]
    assert isinstance(timeline, list)
    declined = next(e for e in timeline if e["kind"] == "declined")
    assert declined["channel"] == "voice" and declined["detail"]["reason"] == "BLOOD"


def test_a_key_that_means_nothing_asks_again_and_changes_nothing(
    voice_world: World, fake: FakeTwilioVoice
) -> None:
    world = voice_world
    case, call = ring_after_silence(world, fake)
    heard = fake.pick_up(call, press=["9", "2", "0"])
    assert heard[1].gather_action and "menu=main" in heard[1].gather_action
    assert heard[3].gather_action and "menu=reason" in heard[3].gather_action
    offers = {o["facility"]: o["status"] for o in case_of(world, int(str(case["id"])))["offers"]}  # type: ignore[union-attr]
    assert offers["H-A"] == "pending"


@pytest.mark.parametrize("ending", ["no_answer", "busy"])
def test_a_call_nobody_answers_moves_the_team_on_and_the_offer_keeps_its_clock(
    voice_world: World, fake: FakeTwilioVoice, ending: str
) -> None:
    world = voice_world
    case, call = ring_after_silence(world, fake)
    world.clock.advance(seconds=20)
    getattr(fake, ending)(call)
    worker_tick(world)
    # H-A's obstetrics has nobody else: its switchboard and the coordinators are told at once,
    # before the 1.5-minute step would have.
    assert any(sms.to == SWITCHBOARD_H_A for sms in world.transport.sent)
    after = case_of(world, int(str(case["id"])))
    offers = {o["facility"]: o["status"] for o in after["offers"]}  # type: ignore[union-attr]
    assert offers == {"H-A": "pending", "H-B": "pending"}
    timeline = after["timeline"]
    assert isinstance(timeline, list)
    ended = next(
        e for e in timeline if e["kind"] == "call_ended" and e["detail"]["facility"] == "H-A"
    )
    assert ended["detail"]["outcome"] == ending and ended["detail"]["answer"] == ""
    with world.app.app_context():
        row = db.session.scalars(select(VoiceCall).where(VoiceCall.provider_id == call.sid)).one()
        assert row.status == CallStatus(ending)


def test_a_wrongly_signed_key_press_is_refused_and_changes_nothing(
    voice_world: World, fake: FakeTwilioVoice
) -> None:
    world = voice_world
    case, call = ring_after_silence(world, fake)
    gather = call.url.replace("/voice?", "/voice/gather?") + "&menu=main"
    form = {"CallSid": call.sid, "Digits": "1", "CallStatus": "in-progress"}
    path = gather[len(BASE) :]
    unsigned = world.client.post(path, data=form)
    bogus = world.client.post(path, data=form, headers={"X-Twilio-Signature": "bogus"})
    # A signature Twilio gave for another call's URL does not carry over to this one: the
    # query (the call's marker) is signed too.
    other = gather.replace("call=", "call=9")
    signature = RequestValidator(fake.auth_token).compute_signature(other, form)
    moved = world.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    status = world.client.post(
        call.status_callback[len(BASE) :], data={"CallSid": call.sid, "CallStatus": "busy"}
    )
    assert [r.status_code for r in (unsigned, bogus, moved, status)] == [403, 403, 403, 403]

    after = case_of(world, int(str(case["id"])))
    offers = {o["facility"]: o["status"] for o in after["offers"]}  # type: ignore[union-attr]
    assert offers == {"H-A": "pending", "H-B": "pending"}
    with world.app.app_context():
        row = db.session.scalars(select(VoiceCall).where(VoiceCall.provider_id == call.sid)).one()
        assert (row.status, row.answer, row.digits) == (CallStatus.PLACED, "", "")


def test_the_words_of_a_call_carry_no_name_or_id_number(
    voice_world: World, fake: FakeTwilioVoice
) -> None:
    world = voice_world
    _case, call = ring_after_silence(world, fake)
    heard = fake.pick_up(call)
    words = heard[0].xml
    assert PPH_REQUEST["patient"]["ref"] not in words  # type: ignore[index]
    assert "T1-2026" not in words and world.phones["T-1:obstetrics"] not in words
    assert 'language="cmn-CN"' in words and 'numDigits="1"' in words
    with world.app.app_context():
        scripts = db.session.scalars(select(VoiceCall.script)).all()
        sent = db.session.scalars(select(OutboundMessage.body)).all()
    assert all("T1-2026" not in text for text in [*scripts, *sent])
