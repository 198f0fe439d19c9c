"""Capacity reminders and the worker entry points."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy.orm import Session, sessionmaker

from alerts.capacity import sweep
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import start_background_worker, status_callback_url, tick
from facilities.models import Facility, FacilityStatus, Team
from tests.world import ALERTS_ONLY, T0, make_contact, make_coordinator, make_facility

HOURS = dt.timedelta(hours=1)
GRACE = 12 * HOURS
CAP, OBS, COORD = "+8613900000021", "+8613900000001", "+8613700000001"
SETTINGS = WorkerSettings(capacity_grace=GRACE)


def reported(session: Session, facility: Facility, at: dt.datetime) -> None:
    if facility.status is None:
        facility.status = FacilityStatus(beds_obstetric=2)
    facility.status.beds_reported_at = at
    session.commit()


def test_a_stale_report_gets_one_reminder_then_the_coordinators_then_resets(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    facility = make_facility(session)
    make_contact(session, facility, OBS)
    make_contact(session, facility, CAP, team=Team.CAPACITY)
    make_contact(
        session,
        make_facility(session, "H9", province="广东"),
        "+8613900000999",
        team=Team.BLOOD_BANK,
    )  # no capacity/obstetrics contact: never reminded
    make_coordinator(session, "coord", area="广西", phone=COORD)
    reported(session, facility, T0)
    transport = RecordingTransport()

    def run(at: dt.datetime) -> list[str]:
        before = len(transport.sent)
        tick(session_factory, handlers=ALERTS_ONLY, now=at, transport=transport, settings=SETTINGS)
        return [sms.to for sms in transport.sent[before:]]

    assert run(T0 + 11 * HOURS) == []
    assert run(T0 + 13 * HOURS) == [CAP]
    assert "CAP OB 3 ICU 1 NICU 0" in transport.sent[-1].body
    assert run(T0 + 14 * HOURS) == []
    assert run(T0 + 25 * HOURS) == [COORD]
    assert "25小时未更新" in transport.sent[-1].body
    assert run(T0 + 40 * HOURS) == []

    reported(session, facility, T0 + 41 * HOURS)  # a fresh report resets the cycle
    assert run(T0 + 50 * HOURS) == []
    assert run(T0 + 54 * HOURS) == [CAP]
    assert run(T0 + 60 * HOURS) == []


def test_a_facility_that_never_reported_is_reminded_through_obstetrics(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    facility = make_facility(session)
    make_contact(session, facility, OBS)
    session.commit()
    transport = RecordingTransport()
    tick(session_factory, handlers=ALERTS_ONLY, now=T0, transport=transport, settings=SETTINGS)
    assert [sms.to for sms in transport.sent] == [OBS]


def test_concurrent_sweeps_remind_once(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    for n in range(5):
        make_contact(session, make_facility(session, f"H{n}"), f"+86139000001{n:02d}")
    session.commit()
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def worker() -> None:
        barrier.wait()
        counts.append(sweep(session_factory, now=T0, grace=GRACE))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 5


def test_the_background_worker_runs_one_non_overlapping_tick_job(
    session_factory: sessionmaker[Session],
) -> None:
    transport = RecordingTransport()
    scheduler = start_background_worker(
        session_factory=session_factory,
        transport=transport,
        handlers=ALERTS_ONLY,
        public_base_url="https://gc.example.org/",
        settings=SETTINGS,
        interval_seconds=3600,
    )
    try:
        (job,) = scheduler.get_jobs()
        assert (job.max_instances, job.coalesce) == (1, True)
        report = job.func()
        assert report.messages_sent == 0
    finally:
        scheduler.shutdown(wait=False)
    assert status_callback_url("https://gc.example.org/") == (
        "https://gc.example.org/webhooks/twilio/status"
    )
    assert status_callback_url(None) is None


def test_a_township_centre_that_only_refers_out_is_never_asked_for_beds(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session, session.begin():
        township = make_facility(session, "T1")
        township.maternal_level = 1
        township.neonatal_level = 1
        make_contact(session, township, "+8613900000999", team=Team.OBSTETRICS)
    assert sweep(session_factory, now=T0, grace=dt.timedelta(hours=12)) == 0
