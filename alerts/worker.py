"""The worker process: one APScheduler interval job that calls :func:`alerts.timers.tick`.

Timers live in the database, not in the scheduler (docs/conventions.md): the scheduler only sets the
pace. ``max_instances=1`` and ``coalesce=True`` keep one process from overlapping itself; the
conditional UPDATEs in ``tick`` keep several processes from stepping on each other.
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from alerts.outbox import SessionFactory
from alerts.timers import TickReport, WorkerSettings, default_worker_id, tick
from alerts.transports import SmsTransport
from facilities.db import utcnow

log = logging.getLogger(__name__)

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
    public_base_url: str | None,
    settings: WorkerSettings | None,
    interval_seconds: float,
) -> None:
    worker_id = default_worker_id()
    callback = status_callback_url(public_base_url)

    def run_tick() -> TickReport:
        report = tick(
            session_factory,
            now=utcnow(),
            transport=transport,
            worker_id=worker_id,
            status_callback_url=callback,
            settings=settings,
        )
        if report.timers_run or report.messages_sent or report.timers_failed:
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
    public_base_url: str | None,
    settings: WorkerSettings | None = None,
    interval_seconds: float = 5.0,
) -> None:
    """Run the worker in this process until interrupted (``greenchannel worker``)."""
    scheduler = BlockingScheduler(timezone="UTC")
    _add_job(
        scheduler,
        session_factory=session_factory,
        transport=transport,
        public_base_url=public_base_url,
        settings=settings,
        interval_seconds=interval_seconds,
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
    public_base_url: str | None,
    settings: WorkerSettings | None = None,
    interval_seconds: float = 5.0,
) -> BackgroundScheduler:
    """Start the worker in a thread of this process (``greenchannel demo``); call
    ``.shutdown()`` on the result to stop it. Web workers in production never do this."""
    scheduler = BackgroundScheduler(timezone="UTC")
    _add_job(
        scheduler,
        session_factory=session_factory,
        transport=transport,
        public_base_url=public_base_url,
        settings=settings,
        interval_seconds=interval_seconds,
    )
    scheduler.start()
    return scheduler
