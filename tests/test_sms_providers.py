"""The SMS conversation through each provider's real SDK against its fake on loopback:
Twilio, Alibaba Cloud SMS and Tencent Cloud SMS. The pre-alert goes out, one hospital declines
by SMS, the other accepts, the clinic is told; receipts and replies come back through each
provider's push; a failing provider hands over to the fallback; a wrong push token changes
nothing; the providers' documented error codes are retried or not."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.models import InboundMessage, MessageStatus, OutboundMessage, SmsProviderHealth
from alerts.outbox import DeliveryPolicy, deliver_due, queue_sms
from alerts.sms_templates import DEFAULT_FILE, filing_list, load_templates
from alerts.transports import (
    PermanentSmsError,
    SmsConfigError,
    SmsTransport,
    TransientSmsError,
    transport_from_config,
)
from greenchannel.web.db import db
from tests.fake_aliyun import FakeAliyun, running_fake_aliyun
from tests.fake_tencent import FakeTencent, running_fake_tencent
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.test_sms_end_to_end import BASE, sms_from, worker_tick
from tests.world import PPH_REQUEST, World, build_world, login

TOKEN = "push-token-0123456789abcdef"
SIGN = "绿色通道"


@pytest.fixture
def templates_file(tmp_path: Path) -> Path:
    """The shipped templates with the codes a region gets back after approval."""
    raw = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    for number, template in enumerate(raw["templates"].values()):
        template["codes"] = {"aliyun": f"SMS_4700{number}", "tencent": str(190000 + number)}
    path = tmp_path / "sms_templates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def aliyun_templates(path: Path) -> dict[str, str]:
    return {t.codes["aliyun"]: t.text for t in load_templates(path).templates.values()}


def tencent_templates(path: Path) -> dict[str, str]:
    return {t.codes["tencent"]: t.tencent_text() for t in load_templates(path).templates.values()}


def aliyun_settings(fake: FakeAliyun) -> dict[str, Any]:
    return {
        "ALIYUN_ACCESS_KEY_ID": fake.access_key_id,
        "ALIYUN_ACCESS_KEY_SECRET": fake.access_key_secret,
        "ALIYUN_SMS_SIGN_NAME": SIGN,
        "ALIYUN_SMS_ENDPOINT": fake.endpoint,
        "ALIYUN_SMS_TIMEOUT": 10,
    }


def tencent_settings(fake: FakeTencent) -> dict[str, Any]:
    return {
        "TENCENT_SECRET_ID": fake.secret_id,
        "TENCENT_SECRET_KEY": fake.secret_key,
        "TENCENT_SMS_SDK_APP_ID": fake.sdk_app_id,
        "TENCENT_SMS_SIGN_NAME": SIGN,
        "TENCENT_SMS_ENDPOINT": fake.endpoint,
        "TENCENT_SMS_TIMEOUT": 10,
    }


@dataclass
class Provider:
    """One provider seen from a test: what reached a phone, how a phone replies, receipts."""

    name: str
    texts_to: Callable[[str], list[str]]
    reply: Callable[[World, str, str], str]  # returns the answer the sender sees at once
    deliver_receipts: Callable[[World], None]


def _post_json(world: World, path: str, payload: Any) -> Any:
    response = world.client.post(path, json=payload)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


@pytest.fixture(params=["twilio", "aliyun", "tencent"])
def provider(
    request: pytest.FixtureRequest, world: World, templates_file: Path
) -> Iterator[Provider]:
    world.app.config.update(PUBLIC_BASE_URL=BASE, SMS_PUSH_TOKEN=TOKEN)
    if request.param == "twilio":
        with running_fake_twilio() as twilio:
            world.app.config.update(
                SMS_BACKEND="twilio",
                TWILIO_ACCOUNT_SID=twilio.account_sid,
                TWILIO_AUTH_TOKEN=twilio.auth_token,
                TWILIO_FROM="+8610690000",
                TWILIO_API_BASE=twilio.base_url,
                TWILIO_TIMEOUT=10,
            )
            yield _twilio(twilio)
        return
    world.app.config.update(SMS_BACKEND=request.param, SMS_TEMPLATES_FILE=str(templates_file))
    if request.param == "aliyun":
        with running_fake_aliyun(aliyun_templates(templates_file)) as aliyun:
            world.app.config.update(aliyun_settings(aliyun))
            yield _aliyun(aliyun)
            assert aliyun.refused == []  # every request the SDK signed was verified
        return
    with running_fake_tencent(tencent_templates(templates_file)) as tencent:
        world.app.config.update(tencent_settings(tencent))
        yield _tencent(tencent)
        assert tencent.refused == []


def _twilio(fake: FakeTwilio) -> Provider:
    def reply(world: World, phone: str, text: str) -> str:
        status, twiml = sms_from(world, phone, text)
        assert status == 200
        return twiml

    return Provider(
        "twilio",
        texts_to=lambda phone: [m["Body"] for m in fake.messages if m["To"] == phone],
        reply=reply,
        deliver_receipts=lambda world: None,
    )


def _aliyun(fake: FakeAliyun) -> Provider:
    sequence = iter(range(1000, 2000))

    def reply(world: World, phone: str, text: str) -> str:
        payload = fake.reply(phone, text, sequence_id=next(sequence))
        assert _post_json(world, f"/webhooks/aliyun/{TOKEN}/reply", payload) == {
            "code": 0,
            "msg": "成功",
        }
        return ""

    def receipts(world: World) -> None:
        for sms in list(fake.messages):
            _post_json(world, f"/webhooks/aliyun/{TOKEN}/report", fake.report(sms))

    return Provider(
        "aliyun",
        texts_to=lambda phone: [m.content for m in fake.to(phone)],
        reply=reply,
        deliver_receipts=receipts,
    )


def _tencent(fake: FakeTencent) -> Provider:
    clock = iter(range(1_796_000_000, 1_796_100_000, 7))

    def reply(world: World, phone: str, text: str) -> str:
        payload = fake.reply(phone, text, at=next(clock))
        assert _post_json(world, f"/webhooks/tencent/{TOKEN}/reply", payload) == {
            "result": 0,
            "errmsg": "OK",
        }
        return ""

    def receipts(world: World) -> None:
        for sms in list(fake.messages):
            _post_json(world, f"/webhooks/tencent/{TOKEN}/status", fake.report(sms))

    return Provider(
        "tencent",
        texts_to=lambda phone: [m.content for m in fake.to(phone)],
        reply=reply,
        deliver_receipts=receipts,
    )


def _rows(world: World) -> list[OutboundMessage]:
    with world.app.app_context():
        return list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def _inbound(world: World) -> list[tuple[str, str, str, str]]:
    with world.app.app_context():
        rows = db.session.scalars(select(InboundMessage).order_by(InboundMessage.id))
        return [(m.from_phone, m.body, m.outcome, m.answer) for m in rows]


def _offers(world: World, rid: int) -> dict[str, str]:
    case = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
    return {o["facility"]: o["status"] for o in case["offers"]}


# --- the referral, end to end, with each provider -------------------------------------------------


def test_a_referral_is_placed_by_sms_replies_with_every_provider(
    world: World, provider: Provider
) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    code = case["code"]
    worker_tick(world)
    a_team, b_team = world.phones["H-A:obstetrics"], world.phones["H-B:obstetrics"]
    clinic = world.phones["T-1:obstetrics"]
    for phone in (a_team, b_team):
        prealerts = provider.texts_to(phone)
        assert len(prealerts) == 1 and code in prealerts[0]
        if provider.name != "twilio":  # the approved template, under the signature
            assert prealerts[0].startswith(f"【{SIGN}】危重孕产妇新生儿转诊预警：")
            assert "【绿色通道】" not in prealerts[0][len(SIGN) + 2 :]
            assert "http" not in prealerts[0]  # no link in a variable: providers refuse them

    provider.deliver_receipts(world)
    sent = [m for m in _rows(world) if m.to_phone in (a_team, b_team)]
    if provider.name != "twilio":
        assert {m.status for m in sent} == {MessageStatus.DELIVERED}
        provider.deliver_receipts(world)  # a repeated push changes nothing
        assert {m.status for m in _rows(world) if m in sent} <= {MessageStatus.DELIVERED}

    world.clock.advance(minutes=1)
    provider.reply(world, a_team, f"{code} N FULL")
    assert _offers(world, case["id"])["H-A"] == "declined", _inbound(world)
    world.clock.advance(minutes=1)
    provider.reply(world, b_team, f"{code} Y 20")
    after = world.get("coordinator", f"/api/v1/referrals/{case['id']}").get_json()
    assert after["status"] == "accepted" and after["destination"] == "H-B"
    accepted = next(e for e in after["timeline"] if e["kind"] == "accepted")
    assert accepted["channel"] == "sms" and accepted["detail"]["minutes"] == 20

    worker_tick(world)
    to_clinic = provider.texts_to(clinic)
    assert len(to_clinic) == 1 and code in to_clinic[0]
    if provider.name != "twilio":
        # No TwiML answer: the confirmation of each reply went back as an SMS of its own.
        assert any(code in text for text in provider.texts_to(b_team)[1:])
        assert any(code in text for text in provider.texts_to(a_team)[1:])
    # Nobody got the same message twice.
    everything = [(p, t) for p in world.phones.values() for t in provider.texts_to(p)]
    assert len(everything) == len(set(everything))


# --- push verification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/aliyun/{token}/report",
        "/webhooks/aliyun/{token}/reply",
        "/webhooks/tencent/{token}/status",
        "/webhooks/tencent/{token}/reply",
    ],
)
def test_a_push_with_a_wrong_token_is_refused_and_changes_nothing(world: World, path: str) -> None:
    world.app.config.update(SMS_PUSH_TOKEN=TOKEN)
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.tick()
    with world.app.app_context():
        message = db.session.scalars(select(OutboundMessage)).first()
        assert message is not None and message.provider_id
        provider_id, status = message.provider_id, message.status
    phone = world.phones["H-A:obstetrics"]
    payloads = {
        "aliyun/{token}/report": [{"out_id": provider_id, "success": True, "biz_id": "1^0"}],
        "aliyun/{token}/reply": [
            {"phone_number": phone[3:], "content": f"{case['code']} Y", "sequence_id": 7}
        ],
        "tencent/{token}/status": [{"sid": provider_id, "report_status": "SUCCESS"}],
        "tencent/{token}/reply": {
            "mobile": phone[3:],
            "nationcode": "86",
            "text": f"{case['code']} Y",
            "time": 1,
        },
    }
    payload = payloads[path.removeprefix("/webhooks/")]
    for token in ("wrong-token", TOKEN[:-1], ""):
        response = world.client.post(path.format(token=token), json=payload)
        assert response.status_code in (403, 404, 405)
    world.app.config.update(SMS_PUSH_TOKEN="")  # not configured: every push is refused
    assert world.client.post(path.format(token=""), json=payload).status_code in (403, 404, 405)
    assert world.client.post(path.format(token=TOKEN), json=payload).status_code == 403
    with world.app.app_context():
        assert db.session.get_one(OutboundMessage, message.id).status == status
        assert db.session.scalars(select(InboundMessage)).all() == []
    assert _offers(world, case["id"]) == {"H-A": "pending", "H-B": "pending"}


def test_a_malformed_push_is_a_400_naming_the_field(world: World) -> None:
    world.app.config.update(SMS_PUSH_TOKEN=TOKEN)
    response = world.client.post(f"/webhooks/tencent/{TOKEN}/reply", json={"text": "hi"})
    assert response.status_code == 400 and response.get_json()["field"] == "mobile"
    response = world.client.post(f"/webhooks/aliyun/{TOKEN}/report", data="not json")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid"
    too_many = [{"sid": "x", "report_status": "SUCCESS"}] * 201
    response = world.client.post(f"/webhooks/tencent/{TOKEN}/status", json=too_many)
    assert response.status_code == 400


def test_a_phone_flooding_a_domestic_providers_push_is_slowed_and_others_are_not(
    world: World,
) -> None:
    """The per-phone limit of Twilio's webhook holds for the pushes too: a push carries many
    phones, so it is accepted, and only the flooding phone's extra replies are left unhandled."""
    world.app.config.update(SMS_PUSH_TOKEN=TOKEN, GREENCHANNEL_RATE_LIMIT_SMS=3)
    flood, other = "+8613900000077", "+8613900000078"
    aliyun = [
        {"phone_number": phone.removeprefix("+86"), "content": f"hi {n}", "sequence_id": n}
        for n, phone in enumerate([flood] * 4 + [other])
    ]
    assert _post_json(world, f"/webhooks/aliyun/{TOKEN}/reply", aliyun)["code"] == 0
    tencent = {"mobile": flood.removeprefix("+86"), "nationcode": "86", "text": "again"}
    assert _post_json(world, f"/webhooks/tencent/{TOKEN}/reply", {**tencent, "time": 1})
    handled = [(phone, body) for phone, body, _, _ in _inbound(world)]
    assert handled == [(flood, "hi 0"), (flood, "hi 1"), (flood, "hi 2"), (other, "hi 4")]
    world.clock.advance(minutes=1)  # the next minute: the phone is heard again, by either
    assert _post_json(world, f"/webhooks/tencent/{TOKEN}/reply", {**tencent, "time": 2})
    assert [phone for phone, *_ in _inbound(world)].count(flood) == 4


def test_a_reply_pushed_twice_in_one_push_or_again_later_is_handled_once(world: World) -> None:
    world.app.config.update(SMS_PUSH_TOKEN=TOKEN)
    item = {"phone_number": "13900000077", "content": "hello", "sequence_id": 42}
    other = {**item, "sequence_id": 43, "content": "second"}
    assert _post_json(world, f"/webhooks/aliyun/{TOKEN}/reply", [item, item, other])["code"] == 0
    assert _post_json(world, f"/webhooks/aliyun/{TOKEN}/reply", [item])["code"] == 0
    assert [body for _, body, _, _ in _inbound(world)] == ["hello", "second"]
    answers = [m for m in _rows(world) if m.purpose == "reply"]
    assert len(answers) == 2  # each reply answered once


def test_the_push_token_never_reaches_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The push URLs carry the secret that authenticates them: a log reader must not learn it
    (with it, anyone could post a hospital's "Y")."""
    world.app.config.update(SMS_PUSH_TOKEN=TOKEN)
    reply = [{"phone_number": "13900000077", "content": "hi", "sequence_id": 1}]
    with caplog.at_level(logging.DEBUG):
        _post_json(world, f"/webhooks/aliyun/{TOKEN}/reply", reply)
        _post_json(world, f"/webhooks/tencent/{TOKEN}/status", [{"sid": "x"}])
        world.client.post(f"/webhooks/aliyun/{TOKEN[:-1]}x/reply", json=reply)  # refused
        world.client.post(f"/webhooks/tencent/{TOKEN}/reply", json={"text": "hi"})  # a 400
    assert len(caplog.records) >= 4
    for record in caplog.records:
        assert TOKEN[:-1] not in f"{record.getMessage()} {vars(record)}"
    assert any(
        getattr(record, "path", "") == "/webhooks/aliyun/<token>/reply" for record in caplog.records
    )


def test_a_failed_receipt_moves_the_escalation_on(world: World, templates_file: Path) -> None:
    with running_fake_tencent(tencent_templates(templates_file)) as fake:
        world.app.config.update(
            SMS_BACKEND="tencent",
            SMS_TEMPLATES_FILE=str(templates_file),
            SMS_PUSH_TOKEN=TOKEN,
            PUBLIC_BASE_URL=BASE,
            **tencent_settings(fake),
        )
        world.post("clinic", "/api/v1/referrals", PPH_REQUEST)
        worker_tick(world)
        obstetrician = world.phones["H-A:obstetrics"]
        (sms,) = fake.to(obstetrician)
        _post_json(world, f"/webhooks/tencent/{TOKEN}/status", fake.report(sms, ok=False))
        row = next(m for m in _rows(world) if m.provider_id == sms.serial_no)
        assert row.status == MessageStatus.UNDELIVERED
        # A later "success" for the same message does not move it backwards.
        _post_json(world, f"/webhooks/tencent/{TOKEN}/status", fake.report(sms, ok=True))
        assert next(m for m in _rows(world) if m.id == row.id).status == MessageStatus.UNDELIVERED
        worker_tick(world)
        # Undelivered to the obstetrician: the switchboard is asked at once, not after the timeout.
        assert fake.to("+862300000010")


# --- failover ------------------------------------------------------------------------------------


@pytest.fixture
def pair(app: Flask, templates_file: Path) -> Iterator[tuple[FakeAliyun, FakeTencent]]:
    with (
        running_fake_aliyun(aliyun_templates(templates_file)) as aliyun,
        running_fake_tencent(tencent_templates(templates_file)) as tencent,
    ):
        app.config.update(
            SMS_BACKEND="aliyun",
            SMS_FALLBACK_BACKEND="tencent",
            SMS_TEMPLATES_FILE=str(templates_file),
            SMS_PUSH_TOKEN=TOKEN,
            PUBLIC_BASE_URL=BASE,
            **aliyun_settings(aliyun),
            **tencent_settings(tencent),
        )
        yield aliyun, tencent


def test_a_failing_primary_is_marked_down_and_the_fallback_carries_every_pre_alert(
    world: World, pair: tuple[FakeAliyun, FakeTencent]
) -> None:
    aliyun, tencent = pair
    aliyun.fail_next(10_000, code="isv.BUSINESS_LIMIT_CONTROL")
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    worker_tick(world)  # every pre-alert fails at Aliyun: three failures mark it down
    assert aliyun.messages == [] and tencent.messages == []
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert 'greenchannel_sms_provider_up{provider="aliyun"} 0' in metrics
    assert 'greenchannel_sms_provider_up{provider="tencent"} 1' in metrics

    world.clock.advance(seconds=31)  # past the first backoff
    worker_tick(world)
    prealerted = {m.phone for m in tencent.messages}
    for team in ("H-A:obstetrics", "H-B:obstetrics", "H-A:anaesthesia"):
        assert world.phones[team] in prealerted
    assert all(case["code"] in m.content for m in tencent.messages)
    assert len(tencent.messages) == len({(m.phone, m.content) for m in tencent.messages})
    with world.app.app_context():
        health = db.session.get_one(SmsProviderHealth, "aliyun")
        assert health.down_until is not None and health.failures >= 3
        assert "BUSINESS_LIMIT_CONTROL" in health.last_error

    # Ten minutes later Aliyun is tried again; it has recovered, and takes the traffic back.
    aliyun.recover()
    world.clock.advance(minutes=11)
    world.post("clinic", "/api/v1/referrals", PPH_REQUEST)
    worker_tick(world)
    assert aliyun.messages
    metrics = world.client.get("/metrics").get_data(as_text=True)
    assert 'greenchannel_sms_provider_up{provider="aliyun"} 1' in metrics


@pytest.fixture
def web(app: Flask, client: FlaskClient) -> World:
    world = build_world(app, client, web_logins=True)
    login(client, "w-coord", lang="en")
    return world


def test_the_board_tells_the_coordinator_when_the_primary_is_down(
    web: World, pair: tuple[FakeAliyun, FakeTencent]
) -> None:
    now = web.clock.now
    with web.app.app_context():
        db.session.add(
            SmsProviderHealth(
                provider="aliyun",
                failures=3,
                window_started_at=now,
                down_until=now + dt.timedelta(minutes=10),
                last_error="isv.BUSINESS_LIMIT_CONTROL",
                updated_at=now,
            )
        )
        db.session.commit()
    page = web.client.get("/board/live").get_data(as_text=True)
    assert "SMS provider aliyun is failing; messages go through tencent" in page
    web.app.config.update(SMS_FALLBACK_BACKEND="")
    page = web.client.get("/board/live").get_data(as_text=True)
    assert "no working fallback" in page and "Phone the hospitals" in page


def test_a_healthy_board_shows_no_provider_banner(
    web: World, pair: tuple[FakeAliyun, FakeTencent]
) -> None:
    assert "SMS provider" not in web.client.get("/board/live").get_data(as_text=True)


# --- reconcile before resend ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["aliyun", "tencent"])
def test_a_dead_workers_message_already_with_the_provider_is_not_sent_again(
    session_factory: sessionmaker[Session], templates_file: Path, name: str
) -> None:
    factory = session_factory
    now = dt.datetime(2026, 12, 3, 13, 0, tzinfo=dt.UTC)
    running = running_fake_aliyun if name == "aliyun" else running_fake_tencent
    texts = aliyun_templates if name == "aliyun" else tencent_templates
    with running(texts(templates_file)) as fake:  # type: ignore[operator]
        settings = aliyun_settings(fake) if name == "aliyun" else tencent_settings(fake)
        transport = transport_from_config(
            {"SMS_BACKEND": name, "SMS_TEMPLATES_FILE": str(templates_file), **settings}
        )
        with factory() as s, s.begin():
            message = queue_sms(
                s, to="+8613900001234", body="【绿色通道】GC-7 预警", purpose="prealert", now=now
            )
            message_id = message.id
            # The dead worker: claimed, handed to the provider, died before recording it.
            message.status = MessageStatus.SENDING
            message.claimed_by, message.claimed_until = "dead", now + dt.timedelta(minutes=2)
        _hand_over(transport, to="+8613900001234", body="【绿色通道】GC-7 预警")
        assert len(fake.messages) == 1
        later = now + dt.timedelta(minutes=3)
        deliver_due(
            factory,
            transport=transport,
            now=later,
            worker_id="w2",
            status_callback_url=None,
            policy=DeliveryPolicy(parallel_sends=1),
        )
        assert len(fake.messages) == 1
        with factory() as s:
            row = s.get_one(OutboundMessage, message_id)
            assert row.status == MessageStatus.SENT and row.provider_id


def _hand_over(transport: SmsTransport, *, to: str, body: str) -> None:
    from alerts.providers.base import TemplatedTransport

    assert isinstance(transport, TemplatedTransport)
    transport.send_message(to=to, body=body, purpose="prealert", status_callback=None)


# --- error mapping through the real SDKs ------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", TransientSmsError),
        ("isv.AMOUNT_NOT_ENOUGH", TransientSmsError),
        ("isp.SYSTEM_ERROR", TransientSmsError),
        ("isv.MOBILE_NUMBER_ILLEGAL", PermanentSmsError),
        ("isv.BLACK_KEY_CONTROL_LIMIT", PermanentSmsError),
        ("isv.SOMETHING_NEW", TransientSmsError),
    ],
)
def test_aliyun_codes_are_retried_or_not_as_documented(
    templates_file: Path, code: str, error: type[Exception]
) -> None:
    with running_fake_aliyun(aliyun_templates(templates_file)) as fake:
        transport = _domestic("aliyun", templates_file, aliyun_settings(fake))
        fake.fail_next(1, code=code)
        with pytest.raises(error, match=code.replace(".", r"\.")):
            _hand_over(transport, to="+8613900001234", body="x")
        assert fake.messages == []


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", TransientSmsError),
        ("LimitExceeded.PhoneNumberThirtySecondLimit", TransientSmsError),
        ("FailedOperation.InsufficientBalanceInSmsPackage", TransientSmsError),
        ("InvalidParameterValue.IncorrectPhoneNumber", PermanentSmsError),
        ("FailedOperation.PhoneNumberInBlacklist", PermanentSmsError),
    ],
)
def test_tencent_codes_are_retried_or_not_as_documented(
    templates_file: Path, code: str, error: type[Exception]
) -> None:
    with running_fake_tencent(tencent_templates(templates_file)) as fake:
        transport = _domestic("tencent", templates_file, tencent_settings(fake))
        fake.fail_next(1, code=code)
        with pytest.raises(error, match=code.replace(".", r"\.")):
            _hand_over(transport, to="+8613900001234", body="x")
        fake.fail_requests(1, code="InternalError.Timeout")  # the whole request fails
        with pytest.raises(TransientSmsError):
            _hand_over(transport, to="+8613900001234", body="x")
        assert fake.messages == []


def test_a_wrong_secret_fails_the_fakes_signature_check_and_is_retried(
    templates_file: Path,
) -> None:
    with (
        running_fake_aliyun(aliyun_templates(templates_file)) as aliyun,
        running_fake_tencent(tencent_templates(templates_file)) as tencent,
    ):
        bad_aliyun = _domestic(
            "aliyun", templates_file, {**aliyun_settings(aliyun), "ALIYUN_ACCESS_KEY_SECRET": "x"}
        )
        bad_tencent = _domestic(
            "tencent", templates_file, {**tencent_settings(tencent), "TENCENT_SECRET_KEY": "x"}
        )
        with pytest.raises(TransientSmsError, match="SignatureDoesNotMatch"):
            _hand_over(bad_aliyun, to="+8613900001234", body="x")
        with pytest.raises(TransientSmsError, match="AuthFailure"):
            _hand_over(bad_tencent, to="+8613900001234", body="x")
        assert aliyun.refused == ["signature does not match"]
        assert tencent.refused == ["signature does not match"]
        assert aliyun.messages == [] and tencent.messages == []


def test_an_unreachable_provider_is_a_transient_error(templates_file: Path) -> None:
    for name, settings in (
        ("aliyun", {**aliyun_settings(FakeAliyun()), "ALIYUN_SMS_ENDPOINT": "http://127.0.0.1:9"}),
        (
            "tencent",
            {**tencent_settings(FakeTencent()), "TENCENT_SMS_ENDPOINT": "http://127.0.0.1:9"},
        ),
    ):
        started = time.monotonic()
        with pytest.raises(TransientSmsError, match=r"unreachable|NetworkError"):
            _hand_over(_domestic(name, templates_file, settings), to="+8613900001234", body="x")
        assert time.monotonic() - started < 5


def _domestic(name: str, templates_file: Path, settings: dict[str, Any]) -> SmsTransport:
    return transport_from_config(
        {"SMS_BACKEND": name, "SMS_TEMPLATES_FILE": str(templates_file), **settings}
    )


# --- templates -------------------------------------------------------------------------------


def test_the_shipped_templates_fit_both_providers_and_list_what_to_file() -> None:
    book = load_templates()
    listing = filing_list(book)
    assert "危重孕产妇新生儿转诊预警：${content}" in listing
    assert "危重孕产妇新生儿转诊预警：{1}" in listing
    assert book.for_purpose("prealert").kind == "prealert"
    assert book.for_purpose("escalation").kind == "prealert"
    assert book.for_purpose("something_new").kind == "notice"


def test_templates_without_codes_stop_the_start_with_the_kinds_named(
    templates_file: Path,
) -> None:
    with pytest.raises(SmsConfigError, match="no aliyun template code for prealert"):
        transport_from_config(
            {"SMS_BACKEND": "aliyun", **aliyun_settings(FakeAliyun())}  # the shipped file
        )
    with pytest.raises(SmsConfigError, match="TENCENT_SMS_SDK_APP_ID"):
        transport_from_config(
            {
                "SMS_BACKEND": "tencent",
                "SMS_TEMPLATES_FILE": str(templates_file),
                **{**tencent_settings(FakeTencent()), "TENCENT_SMS_SDK_APP_ID": ""},
            }
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw["providers"]["tencent"].update(variable_max=12), "tencent allows 12"),
        (lambda raw: raw["providers"]["aliyun"].update(total_max=100), "aliyun allows 100"),
        (lambda raw: raw["templates"]["prealert"].update(text="${content}"), "only variables"),
        (lambda raw: raw["templates"]["reply"].update(text="【x】${content}"), "signature"),
        (lambda raw: raw["templates"]["capacity"].update(text="床位${beds}"), "params declare"),
        (lambda raw: raw["templates"]["reply"].update(purposes=["prealert"]), "also in prealert"),
    ],
)
def test_a_template_outside_the_providers_limits_is_refused_at_start(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(SmsConfigError, match=message):
        load_templates(path)


def test_a_message_too_long_for_its_template_fails_for_good(templates_file: Path) -> None:
    with running_fake_aliyun(aliyun_templates(templates_file)) as fake:
        transport = _domestic("aliyun", templates_file, aliyun_settings(fake))
        with pytest.raises(PermanentSmsError, match="at most 200"):
            _hand_over(transport, to="+8613900001234", body="长" * 201)
        assert fake.messages == []


def test_the_push_urls_are_in_the_openapi_description(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in (
        "/webhooks/aliyun/{token}/report",
        "/webhooks/aliyun/{token}/reply",
        "/webhooks/tencent/{token}/status",
        "/webhooks/tencent/{token}/reply",
    ):
        assert "403" in paths[path]["post"]["responses"]


def test_without_a_fallback_the_coordinators_are_told_within_the_escalation_time(
    world: World, templates_file: Path
) -> None:
    from alerts.models import Alert, AttentionItem

    with running_fake_aliyun(aliyun_templates(templates_file)) as aliyun:
        world.app.config.update(
            SMS_BACKEND="aliyun",
            SMS_TEMPLATES_FILE=str(templates_file),
            PUBLIC_BASE_URL=BASE,
            **aliyun_settings(aliyun),
        )
        aliyun.down_for(10_000)  # HTTP 503 until further notice
        case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
        with world.app.app_context():
            alerts = db.session.scalars(select(Alert)).all()
            deadline = min(a.opened_at + dt.timedelta(seconds=a.step_after_seconds) for a in alerts)
        told_at = None
        for _ in range(40):
            worker_tick(world)
            with world.app.app_context():
                items = db.session.scalars(select(AttentionItem)).all()
            if items:
                told_at = world.clock.now
                break
            world.clock.advance(seconds=30)
        assert told_at is not None and told_at <= deadline + dt.timedelta(seconds=30)
        assert {i.reason for i in items} == {"late_alerts"}
        assert {i.subject for i in items} == {f"referral:{case['id']}"}
        assert aliyun.messages == []
        metrics = world.client.get("/metrics").get_data(as_text=True)
        assert 'greenchannel_sms_provider_up{provider="aliyun"} 0' in metrics


def test_the_case_link_leaves_the_variable_and_goes_into_a_token_variable_when_filed(
    tmp_path: Path,
) -> None:
    body = "【绿色通道】K7P2：产后出血。请14:05前回复K7P2 Y 接收。https://gc.test/l/Ab3dE6gH9jK"
    shipped = load_templates()
    template = shipped.for_purpose("prealert")
    assert shipped.params_for(template, body) == {
        "content": "K7P2：产后出血。请14:05前回复K7P2 Y 接收"
    }
    raw = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    raw["templates"]["prealert"].update(
        text="危重孕产妇新生儿转诊预警：${content} 病例页 https://gc.example.cn/l/${token}",
        params={"content": 200, "token": 16},
    )
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    book = load_templates(path)
    template = book.for_purpose("prealert")
    params = book.params_for(template, body)
    assert params == {"content": "K7P2：产后出血。请14:05前回复K7P2 Y 接收", "token": "Ab3dE6gH9jK"}
    assert template.tencent_text().endswith("病例页 https://gc.example.cn/l/{2}")
    english = "GREEN CHANNEL pre-alert K7P2: PPH. Reply K7P2 Y. Case: https://gc.test/l/Ab3dE6gH9jK"
    assert (
        book.params_for(template, english)["content"]
        == "GREEN CHANNEL pre-alert K7P2: PPH. Reply K7P2 Y"
    )


def test_the_settings_accept_the_domestic_backends_and_refuse_a_fallback_like_the_primary(
    tmp_path: Path,
) -> None:
    from core.settings import ConfigError, load_config

    env = {"SMS_BACKEND": "aliyun", "SMS_FALLBACK_BACKEND": "tencent", "SMS_PUSH_TOKEN": " t "}
    config = load_config(str(tmp_path), env)
    assert config["SMS_BACKEND"] == "aliyun" and config["SMS_FALLBACK_BACKEND"] == "tencent"
    assert config["SMS_PUSH_TOKEN"] == "t" and config["TENCENT_SMS_SDK_APP_ID"] == ""
    for bad in (
        {"SMS_BACKEND": "aliyun", "SMS_FALLBACK_BACKEND": "aliyun"},
        {"SMS_BACKEND": "aliyun", "SMS_FALLBACK_BACKEND": "pigeon"},
        {"SMS_BACKEND": "huawei"},
    ):
        with pytest.raises(ConfigError, match="SMS_"):
            load_config(str(tmp_path), bad)
