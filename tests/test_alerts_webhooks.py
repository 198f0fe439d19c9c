"""The Twilio webhooks: signatures, TwiML answers, idempotent status callbacks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from alerts.escalation import open_alert
from alerts.handlers import Handlers
from alerts.models import Alert, MessageStatus
from alerts.outbox import queue_sms
from alerts.replies import OfferReply
from core.db import make_engine
from facilities.models import Contact, Team
from greenchannel.web.db import db
from greenchannel.web.webhooks import webhooks
from tests.world import T0, make_contact, make_facility, minutes, outbox, render_for

TOKEN = "webhook-test-token"
BASE = "https://gc.example.org"
OBS1, OBS2 = "+8613900000001", "+8613900000002"


@pytest.fixture
def app(database_url: str) -> Flask:
    app = Flask(__name__)
    app.config.update(
        TESTING=True, DATABASE_URL=database_url, PUBLIC_BASE_URL=BASE, TWILIO_AUTH_TOKEN=TOKEN
    )
    engine = make_engine(database_url)
    db.init_app(app, engine=engine, factory=sessionmaker(engine, expire_on_commit=False))
    app.extensions["greenchannel.handlers"] = Handlers()
    app.register_blueprint(webhooks)
    return app


@pytest.fixture
def client(app: Flask, session: Session) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def answers(app: Flask) -> Iterator[list[OfferReply]]:
    seen: list[OfferReply] = []

    def on_reply(
        session: Session, *, alert: Alert, contact: Contact, reply: OfferReply, now: dt.datetime
    ) -> str:
        seen.append(reply)
        return f"收到 {alert.code}"

    app.extensions["greenchannel.handlers"] = Handlers(reply=on_reply)
    yield seen
    app.extensions["greenchannel.handlers"] = Handlers()


def post(
    client: FlaskClient,
    path: str,
    form: dict[str, str],
    *,
    sign_as: str | None = None,
    token: str = TOKEN,
) -> tuple[int, str]:
    url = (sign_as or BASE) + path
    signature = RequestValidator(token).compute_signature(url, form)
    response = client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return response.status_code, response.get_data(as_text=True)


def test_a_signed_reply_is_parsed_and_answered_in_twiml(
    client: FlaskClient, session: Session, answers: list[OfferReply]
) -> None:
    facility = make_facility(session)
    make_contact(session, facility, OBS1)
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
    status, body = post(
        client,
        "/webhooks/twilio/sms",
        {"From": OBS1, "Body": "A7K2 Y 15", "MessageSid": "SMin1", "To": "+15005550006"},
    )
    assert status == 200
    assert "<Response><Message>收到 A7K2</Message></Response>" in body
    assert answers == [OfferReply("A7K2", True, minutes=15)]


@pytest.mark.parametrize("path", ["/webhooks/twilio/sms", "/webhooks/twilio/status"])
def test_unsigned_or_wrongly_signed_webhooks_are_refused(
    client: FlaskClient, session: Session, answers: list[OfferReply], path: str
) -> None:
    form = {"From": OBS1, "Body": "Y", "MessageSid": "SM1", "MessageStatus": "delivered"}
    assert client.post(path, data=form).status_code == 403
    assert post(client, path, form, token="not-the-token")[0] == 403
    # Signed for the Host the request arrived on, not the configured public URL.
    assert post(client, path, form, sign_as="http://localhost")[0] == 403
    tampered = RequestValidator(TOKEN).compute_signature(BASE + path, {**form, "Body": "N"})
    response = client.post(path, data=form, headers={"X-Twilio-Signature": tampered})
    assert response.status_code == 403
    assert answers == []


def test_status_callbacks_are_idempotent_and_never_go_backwards(
    client: FlaskClient, session: Session
) -> None:
    message = queue_sms(session, to=OBS1, body="hi", purpose="test", now=T0)
    message.status, message.provider_id = MessageStatus.SENT, "SMout1"
    session.commit()

    def callback(state: str, **extra: str) -> int:
        form = {"MessageSid": "SMout1", "MessageStatus": state, **extra}
        return post(client, "/webhooks/twilio/status", form)[0]

    assert callback("delivered") == 200
    (row,) = outbox(session)
    assert row.status == MessageStatus.DELIVERED
    delivered_at = row.delivered_at
    assert delivered_at is not None
    for state in ("delivered", "sent", "queued", "undelivered", "failed"):
        assert callback(state, ErrorCode="30003") == 200
    (row,) = outbox(session)
    assert (row.status, row.delivered_at, row.error_code) == (
        MessageStatus.DELIVERED,
        delivered_at,
        None,
    )
    assert (
        post(
            client,
            "/webhooks/twilio/status",
            {"MessageSid": "SMunknown", "MessageStatus": "delivered"},
        )[0]
        == 200
    )


def test_an_undelivered_pre_alert_moves_the_alert_on_and_repeats_change_nothing(
    client: FlaskClient, session: Session
) -> None:
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
    first = outbox(session)[0]
    first.status, first.provider_id = MessageStatus.SENT, "SMout1"
    session.commit()
    form = {"MessageSid": "SMout1", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert post(client, "/webhooks/twilio/status", form)[0] == 200
    assert post(client, "/webhooks/twilio/status", form)[0] == 200
    rows = outbox(session)
    assert [(r.to_phone, r.status) for r in rows] == [
        (OBS1, MessageStatus.UNDELIVERED),
        (OBS2, MessageStatus.QUEUED),
    ]
    assert rows[0].error_code == 30003


def test_webhooks_are_refused_when_the_token_is_not_configured(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    app.config["TWILIO_AUTH_TOKEN"] = ""
    assert post(client, "/webhooks/twilio/status", {"MessageSid": "SM1"})[0] == 403
