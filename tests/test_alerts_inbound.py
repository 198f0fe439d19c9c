"""Inbound SMS: who wrote, about which alert, and what the registered handler is given."""

from __future__ import annotations

import datetime as dt
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation import close_alert, open_alert
from alerts.handlers import Command, Handlers
from alerts.inbound import ReplyRejected, first_word, handle_inbound
from alerts.models import Alert, AlertStatus, InboundMessage
from alerts.replies import DeclineReason, OfferReply
from facilities.models import Contact, Facility, Team
from tests.world import T0, make_contact, make_facility, minutes, render_for

OBS1, OTHER_HOSPITAL, STRANGER = "+8613900000001", "+8613900000099", "+8613911112222"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, OfferReply]] = []
        self.refuse: str | None = None

    def __call__(
        self,
        session: Session,
        *,
        alert: Alert,
        contact: Contact,
        reply: OfferReply,
        now: dt.datetime,
    ) -> str:
        if self.refuse:
            alert.close_reason = "must be undone"
            session.flush()
            raise ReplyRejected(self.refuse)
        self.calls.append((alert.subject, contact.id, reply))
        return f"ok {alert.code}"


# The handler table each test hands to the inbound reader (nothing is registered globally).
TABLE: dict[str, Handlers] = {"now": Handlers()}


@pytest.fixture
def handler() -> Iterator[Recorder]:
    recorder = Recorder()
    TABLE["now"] = Handlers(reply=recorder)
    yield recorder
    TABLE["now"] = Handlers()


@pytest.fixture
def hospital(session: Session) -> Facility:
    facility = make_facility(session)
    make_contact(session, facility, OBS1)
    other = make_facility(session, "H2", name="别的医院", phone="+867710000002")
    make_contact(session, other, OTHER_HOSPITAL)
    session.commit()
    return facility


def alert(session: Session, facility: Facility, code: str, subject: str) -> Alert:
    opened = open_alert(
        session,
        subject=subject,
        code=code,
        facility=facility,
        teams=[Team.OBSTETRICS],
        render=render_for(code),
        step_after=minutes(10),
        now=T0,
    )
    session.commit()
    return opened


def reply(session: Session, phone: str, body: str, sid: str | None = None) -> str:
    answer = handle_inbound(
        session, from_phone=phone, body=body, provider_id=sid, now=T0, handlers=TABLE["now"]
    )
    session.commit()
    return answer


def last_outcome(session: Session) -> str:
    row = session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()
    assert row is not None
    return row.outcome


def test_an_accept_reaches_the_handler_and_closes_the_alert(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    opened = alert(session, hospital, "A7K2", "offer:1")
    assert reply(session, OBS1, "a7k2 y 20", sid="SM1") == "ok A7K2"
    assert handler.calls[0][0] == "offer:1"
    assert handler.calls[0][2] == OfferReply("A7K2", True, minutes=20)
    session.refresh(opened)
    assert opened.status == AlertStatus.CLOSED and opened.close_reason == "answered"
    assert last_outcome(session) == "accepted"


def test_the_code_may_be_left_out_with_exactly_one_open_alert(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    alert(session, hospital, "A7K2", "offer:1")
    assert reply(session, OBS1, "否 满床") == "ok A7K2"
    assert handler.calls[0][2] == OfferReply(None, False, reason=DeclineReason.FULL)
    assert last_outcome(session) == "declined"


def test_the_code_is_required_when_two_alerts_are_open(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    alert(session, hospital, "A7K2", "offer:1")
    alert(session, hospital, "B3X9", "offer:2")
    answer = reply(session, OBS1, "Y")
    assert "A7K2" in answer and "B3X9" in answer
    assert handler.calls == []
    assert reply(session, OBS1, "B3X9 Y") == "ok B3X9"
    assert handler.calls[0][0] == "offer:2"


def test_a_reply_from_an_unknown_number_changes_nothing(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    opened = alert(session, hospital, "A7K2", "offer:1")
    answer = reply(session, STRANGER, "A7K2 Y")
    assert "not a registered contact" in answer
    assert handler.calls == []
    session.refresh(opened)
    assert opened.status == AlertStatus.OPEN
    row = session.scalars(select(InboundMessage)).one()
    assert (row.outcome, row.from_phone, row.alert_id) == ("unknown_sender", STRANGER, None)


def test_a_contact_of_another_hospital_cannot_answer_for_this_one(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    opened = alert(session, hospital, "A7K2", "offer:1")
    assert "A7K2" in reply(session, OTHER_HOSPITAL, "A7K2 Y")
    assert reply(session, OTHER_HOSPITAL, "Y") == "您医院目前没有待回复的转诊请求。"
    assert handler.calls == []
    session.refresh(opened)
    assert opened.status == AlertStatus.OPEN


def test_a_reply_to_a_closed_alert_gets_a_polite_explanation(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    alert(session, hospital, "A7K2", "offer:1")
    close_alert(session, subject="offer:1", now=T0)
    session.commit()
    assert "已结束" in reply(session, OBS1, "A7K2 Y")
    assert handler.calls == [] and last_outcome(session) == "not_open"


def test_a_decline_without_a_reason_is_asked_for_one(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    opened = alert(session, hospital, "A7K2", "offer:1")
    answer = reply(session, OBS1, "A7K2 N")
    assert "拒绝须说明原因" in answer and "A7K2 N" in answer
    session.refresh(opened)
    assert opened.status == AlertStatus.OPEN and handler.calls == []


def test_a_handler_refusal_is_sent_back_and_its_work_undone(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    opened = alert(session, hospital, "A7K2", "offer:1")
    handler.refuse = "该病例已由其他医院接收。"
    assert reply(session, OBS1, "A7K2 Y") == "该病例已由其他医院接收。"
    session.refresh(opened)
    assert opened.status == AlertStatus.OPEN and opened.close_reason == ""
    assert last_outcome(session) == "rejected"


def test_a_repeated_webhook_is_answered_again_but_handled_once(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    alert(session, hospital, "A7K2", "offer:1")
    first = reply(session, OBS1, "A7K2 Y", sid="SM123")
    assert reply(session, OBS1, "A7K2 Y", sid="SM123") == first
    assert len(handler.calls) == 1


def test_commands_are_handed_to_their_registered_handler(
    session: Session, hospital: Facility, handler: Recorder
) -> None:
    seen: list[tuple[str, str]] = []

    def referral_command(session: Session, *, from_phone: str, body: str, now: dt.datetime) -> str:
        seen.append((from_phone, body))
        return "referral R1 created"

    TABLE["now"] = Handlers(
        reply=handler, commands=(Command("REF", first_word("REF"), referral_command),)
    )
    assert reply(session, "+86 139 1111 2222", "ＲＥＦ，PPH 34w") == "referral R1 created"
    assert seen == [(STRANGER, "ＲＥＦ，PPH 34w")]
    assert last_outcome(session) == "command"


@pytest.fixture
def fake_status(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for facilities.status.report_status, recording its keyword arguments."""
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("facilities.status")

    def report_status(session: Session, **kwargs: Any) -> None:
        calls.append(kwargs)

    module.report_status = report_status  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "facilities.status", module)
    return calls


def test_a_capacity_reply_reports_beds_for_the_senders_facility(
    session: Session, hospital: Facility, fake_status: list[dict[str, Any]]
) -> None:
    assert (
        reply(session, OBS1, "CAP OB 3 ICU 1 NICU 0")
        == "已更新空床：产科 3 重症 1 新生儿 0。谢谢！"
    )
    (call,) = fake_status
    assert call["facility"].id == hospital.id
    assert call["beds"] == {"obstetric": 3, "maternal_icu": 1, "nicu": 0}
    assert call["channel"].value == "sms" and call["user_id"] is None
    assert call["diversion"] is None and call["unavailable"] is None and call["now"] == T0
    assert "床位回复格式" in reply(session, OBS1, "CAP OB lots")
    assert "not a registered contact" in reply(session, STRANGER, "CAP OB 1")
    assert len(fake_status) == 1


def test_a_capacity_reply_updates_the_live_status(session: Session, hospital: Facility) -> None:
    """Against the real facilities.status service, once it exists."""
    pytest.importorskip("facilities.status")
    reply(session, OBS1, "床位 产科 2 新生儿 1")
    session.refresh(hospital)
    assert hospital.status is not None
    assert (hospital.status.beds_obstetric, hospital.status.beds_nicu) == (2, 1)
    assert hospital.status.beds_reported_at == T0
