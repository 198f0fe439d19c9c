"""The worker process: one APScheduler interval job that calls :func:`tick`.

Timers live in the database, not in the scheduler (docs/conventions.md): the scheduler only sets the
pace. ``max_instances=1`` and ``coalesce=True`` keep one process from overlapping itself; the
conditional UPDATEs in ``tick`` keep several processes from stepping on each other.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from alerts import capacity, escalation
from alerts.calls import CallPlacer
from alerts.handlers import Handlers
from alerts.outbox import SessionFactory, deliver_due
from alerts.timers import WorkerSettings, default_worker_id, run_due_timers
from alerts.transports import SmsTransport
from core.db import utcnow

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    timers_run: int = 0
    timers_failed: int = 0
    capacity_reminders: int = 0
    messages_sent: int = 0
    calls_placed: int = 0


def tick(
    session_factory: SessionFactory,
    *,
    now: dt.datetime,
    transport: SmsTransport,
    handlers: Handlers,
    worker_id: str | None = None,
    status_callback_url: str | None = None,
    settings: WorkerSettings | None = None,
    voice: CallPlacer | None = None,
) -> TickReport:
    """One pass of the worker: due timers (by the handler table), the capacity sweep, then the
    outbox (a message that will never arrive moves its alert's escalation on; one that leaves
    late restarts its alert's clocks, through the table's ``late`` handler, before it goes),
    then the calls due (``voice``; none when calls are off)."""
    settings = settings or WorkerSettings()
    worker_id = worker_id or default_worker_id()
    report = TickReport()
    report.timers_run, report.timers_failed = run_due_timers(
        session_factory,
        now=now,
        worker_id=worker_id,
        settings=settings,
        handlers=handlers.timers,
    )
    if settings.capacity_grace is not None:
        report.capacity_reminders = capacity.sweep(
            session_factory,
            now=now,
            grace=settings.capacity_grace,
            second_grace=settings.capacity_second_grace,
        )
    report.messages_sent = deliver_due(
        session_factory,
        transport=transport,
        now=now,
        worker_id=worker_id,
        status_callback_url=status_callback_url,
        policy=settings.delivery,
        on_failed=escalation.on_message_failed,
        on_late=functools.partial(escalation.on_message_late, handler=handlers.late),
    )
    if voice is not None:
        report.calls_placed = voice.place_due(
            session_factory, now=now, worker_id=worker_id, handlers=handlers
        )
    return report


STATUS_PATH = "/webhooks/twilio/status"


def status_callback_url(public_base_url: str | None) -> str | None:
    """Where Twilio should post delivery statuses; ``None`` without a public URL."""
    if not public_base_url:
        return None
    return public_base_url.rstrip("/") + STATUS_PATH


def _add_job(
    scheduler: BaseScheduler,
    *,
    session_factory: SessionFactory,
    transport: SmsTransport,
    handlers: Handlers,
    public_base_url: str | None,
    settings: WorkerSettings | None,
    interval_seconds: float,
    voice: CallPlacer | None = None,
) -> None:
    worker_id = default_worker_id()
    callback = status_callback_url(public_base_url)

    def run_tick() -> TickReport:
        report = tick(
            session_factory,
            now=utcnow(),
            transport=transport,
            handlers=handlers,
            worker_id=worker_id,
            status_callback_url=callback,
            settings=settings,
            voice=voice,
        )
        if report.timers_run or report.messages_sent or report.timers_failed or report.calls_placed:
            log.info("tick: %s", report)
        return report

    scheduler.add_job(
        run_tick,
        "interval",
        seconds=interval_seconds,
        id="greenchannel-tick",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )


def run_worker(
    *,
    session_factory: SessionFactory,
    transport: SmsTransport,
    handlers: Handlers,
    public_base_url: str | None,
    settings: WorkerSettings | None = None,
    interval_seconds: float = 5.0,
    voice: CallPlacer | None = None,
) -> None:
    """Run the worker in this process until interrupted (``greenchannel worker``)."""
    scheduler = BlockingScheduler(timezone="UTC")
    _add_job(
        scheduler,
        session_factory=session_factory,
        transport=transport,
        handlers=handlers,
        public_base_url=public_base_url,
        settings=settings,
        interval_seconds=interval_seconds,
        voice=voice,
    )
    log.info("worker started, tick every %s s", interval_seconds)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("worker stopped")


def start_background_worker(
    *,
    session_factory: SessionFactory,
    transport: SmsTransport,
    handlers: Handlers,
    public_base_url: str | None,
    settings: WorkerSettings | None = None,
    interval_seconds: float = 5.0,
    voice: CallPlacer | None = None,
) -> BackgroundScheduler:
    """Start the worker in a thread of this process (``greenchannel demo``); call
    ``.shutdown()`` on the result to stop it. Web workers in production never do this."""
    scheduler = BackgroundScheduler(timezone="UTC")
    _add_job(
        scheduler,
        session_factory=session_factory,
        transport=transport,
        handlers=handlers,
        public_base_url=public_base_url,
        settings=settings,
        interval_seconds=interval_seconds,
        voice=voice,
    )
    scheduler.start()
    return scheduler
