"""Escalation, outbox and timers, driven by tick(now=...) with a recording transport."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts import escalation, timers
from alerts.escalation import STEP_KIND, close_alert, open_alert
from alerts.models import Alert, AlertStatus, MessageStatus, OutboundMessage, Timer, TimerStatus
from alerts.outbox import DeliveryPolicy, apply_status, queue_sms
from alerts.recipients import area_coordinators
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import tick
from facilities.models import Facility, Team
from tests.world import (
    ALERTS_ONLY,
    T0,
    make_contact,
    make_coordinator,
    make_facility,
    minutes,
    outbox,
    render_for,
)

OBS1, OBS2, NEO1 = "+8613900000001", "+8613900000002", "+8613900000011"
COORD_USER, COORD_FAR, COORD_CONTACT = "+8613700000001", "+8613700000009", "+8613700000002"
STEP = minutes(10)
NO_CAPACITY = WorkerSettings(capacity_grace=None)


@pytest.fixture
def hospital(session: Session) -> Facility:
    facility = make_facility(session)
    make_contact(session, facility, OBS2, priority=2)
    make_contact(session, facility, OBS1, priority=1)
    make_contact(session, facility, "+8613900000003", priority=3, active=False)
    make_contact(session, facility, NEO1, team=Team.NEONATOLOGY, language="en")
    make_contact(session, facility, COORD_CONTACT, team=Team.COORDINATOR)
    make_coordinator(session, "coord-nanning", area="广西/南宁", phone=COORD_USER)
    make_coordinator(session, "coord-guangdong", area="广东", phone=COORD_FAR)
    make_coordinator(session, "coord-nophone", area="", phone="")
    session.commit()
    return facility


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


def run(
    factory: sessionmaker[Session], transport: RecordingTransport, at: dt.datetime
) -> timers.TickReport:
    return tick(
        factory,
        handlers=ALERTS_ONLY,
        now=at,
        transport=transport,
        worker_id="w1",
        settings=NO_CAPACITY,
    )


def open_obstetric_alert(
    session: Session, facility: Facility, *, subject: str = "offer:1", code: str = "A7K2"
) -> Alert:
    alert = open_alert(
        session,
        subject=subject,
        code=code,
        facility=facility,
        teams=[Team.OBSTETRICS],
        render=render_for(code),
        step_after=STEP,
        now=T0,
    )
    session.commit()
    return alert


def test_the_pre_alert_goes_to_the_first_active_contact_of_each_team(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_alert(
        session,
        subject="offer:1",
        code="A7K2",
        facility=hospital,
        teams=["obstetrics", Team.NEONATOLOGY],
        render=render_for("A7K2"),
        step_after=STEP,
        now=T0,
    )
    session.commit()
    report = run(session_factory, transport, T0)
    assert report.messages_sent == 2
    assert sorted(sms.to for sms in transport.sent) == [OBS1, NEO1]
    assert transport.to(OBS1)[0].body.startswith("【绿色通道】A7K2")
    assert transport.to(NEO1)[0].body.startswith("GREEN CHANNEL pre-alert A7K2")
    rows = outbox(session)
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert all(row.provider_id and row.sent_at == T0 for row in rows)


def test_a_rolled_back_transaction_sends_nothing(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_alert(
        session,
        subject="offer:1",
        code="A7K2",
        facility=hospital,
        teams=[Team.OBSTETRICS],
        render=render_for("A7K2"),
        step_after=STEP,
        now=T0,
    )
    session.rollback()
    run(session_factory, transport, T0 + minutes(30))
    assert transport.sent == []


def test_a_silent_hospital_is_escalated_contact_by_contact_then_to_switchboard_and_coordinators(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_obstetric_alert(session, hospital)
    run(session_factory, transport, T0)
    assert [sms.to for sms in transport.sent] == [OBS1]

    run(session_factory, transport, T0 + minutes(9))
    assert len(transport.sent) == 1

    run(session_factory, transport, T0 + minutes(10))
    assert [sms.to for sms in transport.sent] == [OBS1, OBS2]
    assert transport.sent[1].body.startswith("【升级】【绿色通道】A7K2")

    run(session_factory, transport, T0 + minutes(20))
    later = {sms.to for sms in transport.sent[2:]}
    assert later == {hospital.phone, COORD_USER, COORD_CONTACT}
    assert "请总机转产科值班" in transport.to(hospital.phone)[0].body
    assert "20分钟未回复" in transport.to(COORD_USER)[0].body

    run(session_factory, transport, T0 + minutes(60))
    assert len(transport.sent) == 5
    pending = session.scalars(select(Timer).where(Timer.status == TimerStatus.PENDING)).all()
    assert pending == []


def test_a_team_without_contacts_goes_to_the_switchboard_at_once(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_alert(
        session,
        subject="offer:9",
        code="Q1",
        facility=hospital,
        teams=[Team.OBSTETRICS, Team.BLOOD_BANK],
        render={"zh": "预警 Q1"},
        step_after=STEP,
        now=T0,
    )
    session.commit()
    run(session_factory, transport, T0)
    assert {sms.to for sms in transport.sent} == {OBS1, hospital.phone, COORD_USER, COORD_CONTACT}


def test_an_invalid_number_moves_on_to_the_next_contact_at_once(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_obstetric_alert(session, hospital)
    transport.fail_next(1, permanent=True, code=21211)
    run(session_factory, transport, T0)
    assert [sms.to for sms in transport.sent] == [OBS2]
    first, second = outbox(session)
    assert (first.to_phone, first.status, first.error_code) == (OBS1, MessageStatus.FAILED, 21211)
    assert (second.to_phone, second.status) == (OBS2, MessageStatus.SENT)
    # The silence timer restarts for the contact just reached.
    run(session_factory, transport, T0 + minutes(9))
    assert len(transport.sent) == 1
    run(session_factory, transport, T0 + minutes(10))
    assert hospital.phone in {sms.to for sms in transport.sent}


def test_an_undelivered_status_moves_on_at_once(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_obstetric_alert(session, hospital)
    run(session_factory, transport, T0)
    apply_status(
        session,
        provider_id=transport.sent[0].provider_id,
        provider_status="undelivered",
        error_code=30003,
        now=T0 + minutes(1),
        on_failed=escalation.on_message_failed,
    )
    session.commit()
    run(session_factory, transport, T0 + minutes(1))
    assert [sms.to for sms in transport.sent] == [OBS1, OBS2]


def test_transient_failures_are_retried_with_backoff_and_sent_once(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_obstetric_alert(session, hospital)
    transport.fail_next(2)
    run(session_factory, transport, T0)
    (row,) = outbox(session)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        MessageStatus.QUEUED,
        1,
        T0 + dt.timedelta(seconds=30),
    )
    run(session_factory, transport, T0 + dt.timedelta(seconds=29))
    assert outbox(session)[0].attempts == 1
    run(session_factory, transport, T0 + dt.timedelta(seconds=30))
    assert outbox(session)[0].next_attempt_at == T0 + dt.timedelta(seconds=90)
    run(session_factory, transport, T0 + dt.timedelta(seconds=90))
    (row,) = [m for m in outbox(session) if m.purpose == "prealert"]
    assert (row.status, row.attempts) == (MessageStatus.SENT, 3)
    assert [sms.to for sms in transport.sent if sms.to == OBS1] == [OBS1]
    # It left 90 s after it was queued: the coordinators hear that the alert was late.
    assert {m.purpose for m in outbox(session) if m.purpose != "prealert"} <= {"coordinator_late"}


def test_a_message_that_keeps_failing_transiently_fails_and_the_escalation_moves_on(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    open_obstetric_alert(session, hospital)
    transport.fail_next(2)
    settings = WorkerSettings(capacity_grace=None, delivery=DeliveryPolicy(max_attempts=2))
    tick(session_factory, handlers=ALERTS_ONLY, now=T0, transport=transport, settings=settings)
    tick(
        session_factory,
        handlers=ALERTS_ONLY,
        now=T0 + minutes(1),
        transport=transport,
        settings=settings,
    )
    rows = outbox(session)
    assert rows[0].status == MessageStatus.FAILED
    assert [sms.to for sms in transport.sent] == [OBS2]


def test_closing_an_alert_cancels_its_timers_and_unsent_messages(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    alert = open_obstetric_alert(session, hospital)
    close_alert(session, subject="offer:1", now=T0 + minutes(1), reason="accepted")
    close_alert(session, subject="offer:1", now=T0 + minutes(2))  # idempotent
    session.commit()
    run(session_factory, transport, T0 + minutes(60))
    assert transport.sent == []
    assert outbox(session)[0].status == MessageStatus.CANCELLED
    statuses = session.scalars(select(Timer.status).where(Timer.subject == "offer:1")).all()
    assert statuses == [TimerStatus.CANCELLED]
    session.refresh(alert)
    assert (alert.status, alert.closed_at, alert.close_reason) == (
        AlertStatus.CLOSED,
        T0 + minutes(1),
        "accepted",
    )


def test_a_step_timer_for_a_closed_alert_does_nothing(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    alert = open_obstetric_alert(session, hospital)
    run(session_factory, transport, T0)
    close_alert(session, subject="offer:1", now=T0 + minutes(1))
    # A duplicate timer, as a bug or a race might leave behind.
    timers.schedule(
        session,
        kind=STEP_KIND,
        subject="offer:1",
        due_at=T0 + minutes(10),
        payload={"alert_id": alert.id, "step": 0},
    )
    session.commit()
    report = run(session_factory, transport, T0 + minutes(10))
    assert report.timers_run == 1
    assert len(transport.sent) == 1


def test_an_alert_subject_is_used_once(session: Session, hospital: Facility) -> None:
    open_obstetric_alert(session, hospital)
    with pytest.raises(ValueError, match="already exists"):
        open_obstetric_alert(session, hospital)


def test_coordinators_are_chosen_by_whole_area_parts(session: Session, hospital: Facility) -> None:
    make_coordinator(session, "coord-all", area="", phone="+8613700000003")
    make_coordinator(session, "coord-prefix", area="广西/南", phone="+8613700000004")
    make_coordinator(session, "coord-county", area="广西/南宁/武鸣/", phone="+8613700000005")
    phones = {r.phone for r in area_coordinators(session, hospital)}
    assert phones == {COORD_USER, COORD_CONTACT, "+8613700000003", "+8613700000005"}


def test_a_dead_workers_claim_expires_and_another_worker_sends(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    message = queue_sms(session, to=OBS1, body="hello", purpose="test", now=T0)
    session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == message.id)
        .values(status=MessageStatus.SENDING, claimed_by="dead", claimed_until=T0 + minutes(2))
    )
    session.commit()
    run(session_factory, transport, T0 + minutes(1))
    assert transport.sent == []
    run(session_factory, transport, T0 + minutes(3))
    run(session_factory, transport, T0 + minutes(4))
    assert [sms.body for sms in transport.sent] == ["hello"]


def _race(factory: sessionmaker[Session], transport: RecordingTransport, at: dt.datetime) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            tick(
                factory,
                handlers=ALERTS_ONLY,
                now=at,
                transport=transport,
                worker_id=f"w{n}",
                settings=NO_CAPACITY,
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_concurrent_ticks_never_send_a_message_twice_nor_run_a_timer_twice(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    transport: RecordingTransport,
) -> None:
    for n in range(8):
        open_obstetric_alert(session, hospital, subject=f"offer:{n}", code=f"C{n}")
    for n in range(20):
        queue_sms(session, to=f"+86135000000{n:02d}", body=f"note {n}", purpose="test", now=T0)
    session.commit()

    _race(session_factory, transport, T0)
    assert len(transport.sent) == 28
    _race(session_factory, transport, T0 + minutes(10))  # every alert's second contact
    counts = Counter((sms.to, sms.body) for sms in transport.sent)
    assert max(counts.values()) == 1
    assert len(transport.sent) == 36
    assert all(row.status == MessageStatus.SENT for row in outbox(session))
    done = session.scalars(select(Timer).where(Timer.status == TimerStatus.DONE)).all()
    assert len(done) == 8
