"""The demo's console transport after a restart: every SMS is printed once, never again.

A restarted process has a new transport. Its provider ids must not meet the ones the outbox
already recorded (a unique column): if they did, recording "sent" would fail, the claim would
run out and the message would be printed again and again."""

from __future__ import annotations

import io

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts.models import MessageStatus, OutboundMessage
from alerts.outbox import DeliveryPolicy, deliver_due, queue_sms
from alerts.transports import ConsoleTransport, SendResult
from tests.world import T0, minutes

POLICY = DeliveryPolicy(parallel_sends=1)


def _deliver(factory: sessionmaker[Session], transport: object, at_minutes: float) -> int:
    return deliver_due(
        factory,
        transport=transport,  # type: ignore[arg-type]
        now=T0 + minutes(at_minutes),
        worker_id="demo",
        status_callback_url=None,
        policy=POLICY,
    )


def _queue(session: Session, count: int, *, first: int, at_minutes: float) -> None:
    for n in range(first, first + count):
        queue_sms(
            session,
            to=f"+861390000{n:04d}",
            body=f"message {n}",
            purpose="prealert",
            now=T0 + minutes(at_minutes),
        )
    session.commit()


def test_a_restarted_console_prints_each_message_once(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    first_run = io.StringIO()
    _queue(session, 3, first=1, at_minutes=0)
    assert _deliver(session_factory, ConsoleTransport(first_run), 0) == 3

    # The process restarts: a new transport, with messages queued meanwhile.
    second_run = io.StringIO()
    restarted = ConsoleTransport(second_run)
    _queue(session, 3, first=4, at_minutes=1)
    for at in (1, 4, 7, 10, 13):  # well past every claim's lease
        _deliver(session_factory, restarted, at)

    printed = first_run.getvalue() + second_run.getvalue()
    for n in range(1, 7):
        assert printed.count(f"message {n}\n") == 1, (n, printed)
    rows = list(session_factory().scalars(select(OutboundMessage)))
    assert {row.status for row in rows} == {MessageStatus.SENT}
    assert len({row.provider_id for row in rows}) == 6


class ReusingTransport:
    """A provider that hands out an id it has used before (a restarted console, a sandbox)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        self.sent.append(body)
        return SendResult(provider_id="SAME-ID", status="sent")


def test_a_provider_id_seen_before_does_not_make_the_outbox_send_again(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    transport = ReusingTransport()
    _queue(session, 2, first=1, at_minutes=0)
    for at in (0, 3, 6, 9):
        _deliver(session_factory, transport, at)
    assert sorted(transport.sent) == ["message 1", "message 2"]
    rows = list(session_factory().scalars(select(OutboundMessage)))
    assert {row.status for row in rows} == {MessageStatus.SENT}
