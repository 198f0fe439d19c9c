"""The real Twilio SDK transport against a fake Twilio REST server on loopback."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fake_twilio import FakeTwilio, running_fake_twilio
from sqlalchemy.orm import Session, sessionmaker

from alerts.escalation import open_alert
from alerts.models import MessageStatus, OutboundMessage
from alerts.timers import WorkerSettings
from alerts.transports import (
    ConsoleTransport,
    PermanentSmsError,
    SmsConfigError,
    TransientSmsError,
    TwilioTransport,
    transport_from_config,
)
from alerts.worker import tick
from facilities.models import Team
from tests.world import (
    ALERTS_ONLY,
    T0,
    make_contact,
    make_facility,
    minutes,
    outbox,
    render_for,
)

OBS1, OBS2 = "+8613900000001", "+8613900000002"
CALLBACK = "https://gc.example.org/webhooks/twilio/status"
SETTINGS = WorkerSettings(capacity_grace=None)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as server:
        yield server


def config(fake: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    return {
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM": "+15005550006",
        "TWILIO_API_BASE": fake.base_url,
        "TWILIO_TIMEOUT": 0.5,
        **overrides,
    }


@pytest.fixture
def transport(fake: FakeTwilio) -> TwilioTransport:
    sms = transport_from_config(config(fake))
    assert isinstance(sms, TwilioTransport)
    return sms


def test_the_sdk_sends_to_the_configured_api_base(
    fake: FakeTwilio, transport: TwilioTransport
) -> None:
    result = transport.send(to=OBS1, body="测试 test", status_callback=CALLBACK)
    assert result.provider_id.startswith("SM") and result.status == "queued"
    (request,) = fake.requests
    assert request.authorised and request.account_sid == fake.account_sid
    assert request.form == {
        "To": OBS1,
        "From": "+15005550006",
        "Body": "测试 test",
        "StatusCallback": CALLBACK,
    }


def test_a_messaging_service_replaces_the_from_number(fake: FakeTwilio) -> None:
    sms = transport_from_config(
        config(fake, TWILIO_FROM="", TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32)
    )
    sms.send(to=OBS1, body="hi", status_callback=None)
    assert fake.requests[0].form == {
        "To": OBS1,
        "MessagingServiceSid": "MG" + "1" * 32,
        "Body": "hi",
    }


def test_provider_errors_are_sorted_into_transient_and_permanent(
    fake: FakeTwilio, transport: TwilioTransport
) -> None:
    fake.fail_next(1)
    with pytest.raises(TransientSmsError):
        transport.send(to=OBS1, body="x", status_callback=None)
    fake.invalid_numbers.add("+861")
    with pytest.raises(PermanentSmsError) as caught:
        transport.send(to="+861", body="x", status_callback=None)
    assert caught.value.code == 21211
    fake.hang_next(1, seconds=5)
    with pytest.raises(TransientSmsError):
        transport.send(to=OBS1, body="x", status_callback=None)
    wrong = transport_from_config(config(fake, TWILIO_AUTH_TOKEN="wrong"))
    with pytest.raises(TransientSmsError):  # our credentials: retry while someone fixes them
        wrong.send(to=OBS1, body="x", status_callback=None)


def test_nothing_listening_is_a_transient_error(fake: FakeTwilio) -> None:
    sms = transport_from_config(config(fake, TWILIO_API_BASE="http://127.0.0.1:9"))
    with pytest.raises(TransientSmsError):
        sms.send(to=OBS1, body="x", status_callback=None)


@pytest.fixture
def alerted(session: Session) -> Session:
    facility = make_facility(session)
    make_contact(session, facility, OBS1, priority=1)
    make_contact(session, facility, OBS2, priority=2)
    open_alert(
        session,
        subject="offer:1",
        code="A7K2",
        facility=facility,
        teams=[Team.OBSTETRICS],
        render=render_for("A7K2"),
        step_after=minutes(10),
        now=T0,
    )
    session.commit()
    return session


def run(factory: sessionmaker[Session], transport: TwilioTransport, at: dt.datetime) -> int:
    report = tick(
        factory,
        handlers=ALERTS_ONLY,
        now=at,
        transport=transport,
        status_callback_url=CALLBACK,
        settings=SETTINGS,
    )
    return report.messages_sent


def test_a_pre_alert_reaches_twilio_and_records_its_sid(
    alerted: Session,
    session_factory: sessionmaker[Session],
    fake: FakeTwilio,
    transport: TwilioTransport,
) -> None:
    assert run(session_factory, transport, T0) == 1
    (sent,) = fake.messages
    assert sent["To"] == OBS1 and sent["Body"].startswith("【绿色通道】A7K2")
    assert sent["StatusCallback"] == CALLBACK
    (row,) = outbox(alerted)
    assert row.status == MessageStatus.SENT
    assert row.provider_id == f"SM{1:032x}"


def test_provider_outages_and_timeouts_are_retried_with_backoff_until_delivered(
    alerted: Session,
    session_factory: sessionmaker[Session],
    fake: FakeTwilio,
    transport: TwilioTransport,
) -> None:
    fake.fail_next(2)
    run(session_factory, transport, T0)
    run(session_factory, transport, T0 + dt.timedelta(seconds=30))
    fake.hang_next(1, seconds=5)
    run(session_factory, transport, T0 + dt.timedelta(seconds=90))
    (row,) = outbox(alerted)
    assert (row.status, row.attempts) == (MessageStatus.QUEUED, 3)
    assert row.next_attempt_at == T0 + dt.timedelta(seconds=90 + 120)
    assert run(session_factory, transport, T0 + dt.timedelta(seconds=209)) == 0
    assert run(session_factory, transport, T0 + dt.timedelta(seconds=210)) == 1
    (row,) = outbox(alerted)
    assert (row.status, row.attempts) == (MessageStatus.SENT, 4)
    assert [r.answered for r in fake.requests[:2]] == [500, 500]
    assert [m["To"] for m in fake.messages] == [OBS1]  # the hung request is still held


def test_an_invalid_number_at_twilio_moves_on_to_the_next_contact_in_the_same_tick(
    alerted: Session,
    session_factory: sessionmaker[Session],
    fake: FakeTwilio,
    transport: TwilioTransport,
) -> None:
    fake.invalid_numbers.add(OBS1)
    assert run(session_factory, transport, T0) == 1
    assert [r.answered for r in fake.requests] == [400, 201]
    assert fake.messages[0]["To"] == OBS2
    first, second = outbox(alerted)
    assert (first.status, first.error_code) == (MessageStatus.FAILED, 21211)
    assert second.status == MessageStatus.SENT


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"SMS_BACKEND": "pigeon"}, "SMS_BACKEND"),
        ({"SMS_BACKEND": "twilio"}, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        ({"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1"}, "TWILIO_AUTH_TOKEN"),
        (
            {"SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t"},
            "TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID",
        ),
        (
            {
                "SMS_BACKEND": "twilio",
                "TWILIO_ACCOUNT_SID": "AC1",
                "TWILIO_AUTH_TOKEN": "t",
                "TWILIO_FROM": "+1",
                "TWILIO_TIMEOUT": "soon",
            },
            "TWILIO_TIMEOUT",
        ),
    ],
)
def test_misconfiguration_names_the_setting(settings: dict[str, Any], needle: str) -> None:
    with pytest.raises(SmsConfigError, match=needle):
        transport_from_config(settings)


def test_the_console_transport_is_the_default_and_prints_a_readable_block() -> None:
    assert isinstance(transport_from_config({}), ConsoleTransport)
    stream = io.StringIO()
    result = ConsoleTransport(stream).send(to=OBS1, body="第一行\nline 2", status_callback=None)
    printed = stream.getvalue()
    assert OBS1 in printed and "第一行" in printed and "line 2" in printed
    assert "1 segment(s), UCS-2" in printed
    # Random, never a counter: a restarted demo must not meet the ids it recorded before.
    assert result.provider_id.startswith("CONSOLE-") and len(result.provider_id) <= 64


def test_a_message_a_dead_worker_handed_over_is_not_sent_again(
    session_factory: sessionmaker[Session],
) -> None:
    """A worker is killed after Twilio accepted the message but before it recorded the answer.
    When the claim runs out, the next worker finds the message at the provider instead of
    texting the obstetrician a second time."""
    from alerts.outbox import _claim, deliver_due, queue_sms
    from alerts.transports import TwilioTransport

    with running_fake_twilio() as fake:
        transport = TwilioTransport(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number="+8610690000",
            api_base=fake.base_url,
            timeout=2,
        )
        with session_factory() as session, session.begin():
            message = queue_sms(
                session,
                to="+8613900000001",
                body="【绿色通道】K7P2转诊",
                purpose="prealert",
                now=T0,
            )
            message_id = message.id
        # The first worker claims and sends, then dies before writing anything down.
        assert (
            _claim(
                session_factory,
                message_id=message_id,
                worker_id="dead",
                now=T0,
                lease=dt.timedelta(minutes=2),
            )
            == "fresh"
        )
        transport.send(to="+8613900000001", body="【绿色通道】K7P2转诊", status_callback=None)
        # Before the lease runs out nobody touches the row; after it, a live worker reconciles.
        assert (
            deliver_due(
                session_factory,
                transport=transport,
                now=T0 + dt.timedelta(minutes=1),
                worker_id="live",
                status_callback_url=None,
            )
            == 0
        )
        later = T0 + dt.timedelta(minutes=3)
        assert (
            deliver_due(
                session_factory,
                transport=transport,
                now=later,
                worker_id="live",
                status_callback_url=None,
            )
            == 1
        )
        assert len(fake.messages) == 1
        with session_factory() as session:
            row = session.get_one(OutboundMessage, message_id)
            assert row.status.value == "sent" and row.provider_id == fake.created[0]["sid"]


def test_an_abandoned_message_that_never_reached_the_provider_is_sent(
    session_factory: sessionmaker[Session],
) -> None:
    from alerts.outbox import _claim, deliver_due, queue_sms
    from alerts.transports import RecordingTransport

    transport = RecordingTransport()
    with session_factory() as session, session.begin():
        message_id = queue_sms(
            session, to="+8613900000002", body="pre-alert", purpose="prealert", now=T0
        ).id
    assert (
        _claim(
            session_factory,
            message_id=message_id,
            worker_id="dead",
            now=T0,
            lease=dt.timedelta(minutes=2),
        )
        == "fresh"
    )
    assert (
        deliver_due(
            session_factory,
            transport=transport,
            now=T0 + dt.timedelta(minutes=3),
            worker_id="live",
            status_callback_url=None,
        )
        == 1
    )
    assert [sms.body for sms in transport.sent] == ["pre-alert"]
