"""Timers are rows (docs/conventions.md): services schedule them, the worker runs them.

A timer is claimed with a conditional UPDATE and a row-count check, then its handler runs in
a transaction of its own that also marks the timer done, again conditionally: if the timer was
cancelled meanwhile, the handler's work is rolled back. Two racing ticks therefore never run
one timer twice; a worker that dies holding a claim loses it when the lease runs out.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from alerts._sql import rowcount
from alerts.handlers import TimerHandler
from alerts.models import Timer, TimerStatus
from alerts.outbox import DeliveryPolicy, SessionFactory

log = logging.getLogger(__name__)

# The timer whose handler is running in this thread: cancel() from inside a handler must not
# cancel that very timer, or the worker would undo the handler's work.
_running: contextvars.ContextVar[int | None] = contextvars.ContextVar("running_timer", default=None)


def schedule(
    session: Session,
    *,
    kind: str,
    subject: str,
    due_at: dt.datetime,
    payload: dict[str, Any] | None = None,
) -> Timer:
    timer = Timer(
        kind=kind,
        subject=subject,
        due_at=due_at,
        payload=dict(payload or {}),
        status=TimerStatus.PENDING,
        attempts=0,
    )
    session.add(timer)
    session.flush()
    return timer


def cancel(
    session: Session,
    *,
    subject: str,
    now: dt.datetime,
    kinds: Iterable[str] | None = None,
    include_running: bool = True,
) -> int:
    """Cancel the subject's pending timers; returns how many.

    With ``include_running`` (the default) a timer another worker is running right now is
    cancelled too, and that worker undoes its handler's work. Called from inside a handler, it
    never cancels the timer being handled.
    """
    statuses = [TimerStatus.PENDING]
    if include_running:
        statuses.append(TimerStatus.CLAIMED)
    statement = update(Timer).where(Timer.subject == subject, Timer.status.in_(statuses))
    running = _running.get()
    if running is not None:
        statement = statement.where(Timer.id != running)
    if kinds is not None:
        statement = statement.where(Timer.kind.in_(list(kinds)))
    result = rowcount(
        session,
        statement.values(status=TimerStatus.CANCELLED, done_at=now).execution_options(
            synchronize_session=False
        ),
    )
    return result


def postpone(
    session: Session,
    *,
    subject: str,
    kinds: Iterable[str],
    until: dt.datetime,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Move the subject's pending timers of ``kinds`` (and with ``payload`` among their
    payload's items, if given) that are due before ``until`` to ``until``; returns how many.
    Never earlier: a clock that restarts only ever gives more time. Called from inside a
    handler, the timer being handled stays as it is (it is being done)."""
    conditions: list[ColumnElement[bool]] = [
        Timer.subject == subject,
        Timer.kind.in_(list(kinds)),
        Timer.status == TimerStatus.PENDING,
        Timer.due_at < until,
    ]
    running = _running.get()
    if running is not None:
        conditions.append(Timer.id != running)
    if payload:
        wanted = [
            timer.id
            for timer in session.scalars(select(Timer).where(*conditions))
            if all(timer.payload.get(key) == value for key, value in payload.items())
        ]
        conditions.append(Timer.id.in_(wanted))
    return rowcount(
        session,
        update(Timer)
        .where(*conditions)
        .values(due_at=until)
        .execution_options(synchronize_session=False),
    )


@dataclass(frozen=True)
class WorkerSettings:
    """Timings of the worker; the defaults suit production."""

    timer_lease: dt.timedelta = dt.timedelta(minutes=5)
    timer_max_attempts: int = 5
    timer_retry: dt.timedelta = dt.timedelta(minutes=1)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # Capacity reminders: a bed report older than this gets a reminder; None turns them off.
    capacity_grace: dt.timedelta | None = dt.timedelta(hours=12)
    # Still stale this long after the reminder: the area coordinators are told (None: grace).
    capacity_second_grace: dt.timedelta | None = None


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        and_(Timer.status == TimerStatus.PENDING, Timer.due_at <= now),
        and_(Timer.status == TimerStatus.CLAIMED, Timer.claimed_until < now),
    )


def run_due_timers(
    session_factory: SessionFactory,
    *,
    now: dt.datetime,
    worker_id: str,
    settings: WorkerSettings,
    handlers: Mapping[str, TimerHandler],
    limit: int = 200,
) -> tuple[int, int]:
    """Claim and run due timers, each in its own transaction; returns (run, failed)."""
    with session_factory() as session:
        ids = session.scalars(
            select(Timer.id).where(_claimable(now)).order_by(Timer.due_at, Timer.id).limit(limit)
        ).all()
    run = failed = 0
    for timer_id in ids:
        with session_factory() as session, session.begin():
            claimed = rowcount(
                session,
                update(Timer)
                .where(Timer.id == timer_id, _claimable(now))
                .values(
                    status=TimerStatus.CLAIMED,
                    claimed_by=worker_id,
                    claimed_until=now + settings.timer_lease,
                    attempts=Timer.attempts + 1,
                )
                .execution_options(synchronize_session=False),
            )
            if claimed != 1:
                continue  # another worker has it, or it was cancelled
        outcome = _run_one(
            session_factory, timer_id=timer_id, now=now, worker_id=worker_id, handlers=handlers
        )
        if outcome is None:
            run += 1
        elif outcome:
            failed += 1
            _after_error(
                session_factory,
                timer_id=timer_id,
                now=now,
                worker_id=worker_id,
                error=outcome,
                settings=settings,
            )
    return run, failed


def _run_one(
    session_factory: SessionFactory,
    *,
    timer_id: int,
    now: dt.datetime,
    worker_id: str,
    handlers: Mapping[str, TimerHandler],
) -> str | None:
    """Run the handler; ``None`` when done (or found stale), else the error text."""
    session = session_factory()
    token = _running.set(timer_id)
    try:
        timer = session.get_one(Timer, timer_id)
        handler = handlers.get(timer.kind)
        if handler is None:
            return f"no handler registered for timer kind {timer.kind!r}"
        handler(session, timer, now)
        done = rowcount(
            session,
            update(Timer)
            .where(
                Timer.id == timer_id,
                Timer.status == TimerStatus.CLAIMED,
                Timer.claimed_by == worker_id,
            )
            .values(status=TimerStatus.DONE, done_at=now, claimed_until=None)
            .execution_options(synchronize_session=False),
        )
        if done == 1:
            session.commit()
        else:
            # Cancelled (or re-claimed after our lease ran out) while we ran: undo our work.
            session.rollback()
            log.info("timer %s cancelled while running; its work was undone", timer_id)
        return None
    # A faulty handler must not stop the worker or the other timers: log it, retry later.
    except Exception as exc:
        session.rollback()
        log.exception("timer %s failed", timer_id)
        return f"{type(exc).__name__}: {exc}"[:500]
    finally:
        _running.reset(token)
        session.close()


def _after_error(
    session_factory: SessionFactory,
    *,
    timer_id: int,
    now: dt.datetime,
    worker_id: str,
    error: str,
    settings: WorkerSettings,
) -> None:
    with session_factory() as session, session.begin():
        timer = session.get_one(Timer, timer_id)
        if timer.status != TimerStatus.CLAIMED or timer.claimed_by != worker_id:
            return
        timer.last_error = error
        timer.claimed_until = None
        if timer.attempts >= settings.timer_max_attempts:
            timer.status = TimerStatus.FAILED
            timer.done_at = now
        else:
            timer.status = TimerStatus.PENDING
            timer.due_at = now + settings.timer_retry * timer.attempts
