"""Timers as rows: run once, never after cancellation, retried after a handler error."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts import timers
from alerts.handlers import Handlers
from alerts.models import Timer, TimerStatus
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import TickReport, tick
from tests.world import T0, minutes

SETTINGS = WorkerSettings(capacity_grace=None, timer_max_attempts=2)


@pytest.fixture
def ran() -> Iterator[list[tuple[str, dt.datetime]]]:
    calls: list[tuple[str, dt.datetime]] = []
    lock = threading.Lock()

    def handler(session: Session, timer: Timer, now: dt.datetime) -> None:
        if timer.payload.get("explode"):
            raise RuntimeError("boom")
        if timer.payload.get("cancel_siblings"):
            timers.cancel(session, subject=timer.subject, now=now)
            timers.schedule(session, kind="test.follow", subject="x", due_at=now)
        with lock:
            calls.append((timer.subject, now))

    TABLE["now"] = Handlers(timers={"test.kind": handler, "test.follow": handler})
    yield calls
    TABLE["now"] = Handlers()


# The handler table each test hands to the worker (nothing is registered globally).
TABLE: dict[str, Handlers] = {"now": Handlers()}


def run(factory: sessionmaker[Session], at: dt.datetime) -> TickReport:
    return tick(
        factory,
        now=at,
        transport=RecordingTransport(),
        settings=SETTINGS,
        handlers=TABLE["now"],
    )


def test_a_timer_runs_once_when_due(
    session: Session, session_factory: sessionmaker[Session], ran: list[tuple[str, dt.datetime]]
) -> None:
    timers.schedule(session, kind="test.kind", subject="s1", due_at=T0 + minutes(5))
    session.commit()
    assert run(session_factory, T0).timers_run == 0
    assert run(session_factory, T0 + minutes(5)).timers_run == 1
    assert run(session_factory, T0 + minutes(6)).timers_run == 0
    assert ran == [("s1", T0 + minutes(5))]


def test_a_cancelled_timer_never_runs(
    session: Session, session_factory: sessionmaker[Session], ran: list[tuple[str, dt.datetime]]
) -> None:
    timers.schedule(session, kind="test.kind", subject="s1", due_at=T0)
    timers.schedule(session, kind="other", subject="s1", due_at=T0)
    assert timers.cancel(session, subject="s1", now=T0, kinds=["test.kind"]) == 1
    assert timers.cancel(session, subject="s1", now=T0) == 1
    session.commit()
    run(session_factory, T0 + minutes(1))
    assert ran == []


def test_a_handler_that_cancels_its_subject_keeps_its_own_work(
    session: Session, session_factory: sessionmaker[Session], ran: list[tuple[str, dt.datetime]]
) -> None:
    timers.schedule(
        session, kind="test.kind", subject="s1", due_at=T0, payload={"cancel_siblings": True}
    )
    timers.schedule(session, kind="test.kind", subject="s1", due_at=T0 + minutes(5))
    session.commit()
    run(session_factory, T0)
    run(session_factory, T0)  # the follow-up timer scheduled by the handler
    statuses = session.scalars(select(Timer.status).order_by(Timer.id)).all()
    assert statuses == [TimerStatus.DONE, TimerStatus.CANCELLED, TimerStatus.DONE]
    assert [subject for subject, _ in ran] == ["s1", "x"]


def test_a_failing_handler_is_retried_then_given_up(
    session: Session, session_factory: sessionmaker[Session], ran: list[tuple[str, dt.datetime]]
) -> None:
    timer = timers.schedule(
        session, kind="test.kind", subject="s1", due_at=T0, payload={"explode": True}
    )
    timers.schedule(session, kind="test.kind", subject="s2", due_at=T0)
    timers.schedule(session, kind="unknown.kind", subject="s3", due_at=T0)
    session.commit()
    report = run(session_factory, T0)
    assert (report.timers_run, report.timers_failed) == (1, 2)
    session.refresh(timer)
    assert (timer.status, timer.due_at) == (TimerStatus.PENDING, T0 + minutes(1))
    assert "boom" in timer.last_error
    run(session_factory, T0 + minutes(1))
    session.refresh(timer)
    assert timer.status == TimerStatus.FAILED


def test_racing_ticks_run_each_timer_once(
    session: Session, session_factory: sessionmaker[Session], ran: list[tuple[str, dt.datetime]]
) -> None:
    for n in range(30):
        timers.schedule(session, kind="test.kind", subject=f"s{n}", due_at=T0)
    session.commit()
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        run(session_factory, T0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(subject for subject, _ in ran) == sorted(f"s{n}" for n in range(30))
