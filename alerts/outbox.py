"""The SMS outbox: services queue rows, the worker claims and sends them.

Queueing only inserts a row, so a transaction that rolls back never sends anything. The worker
claims a row with a conditional UPDATE (``status='queued'`` and no live lease) and checks the
row count, so two workers never send the same row. A claim is a lease: if a worker dies after
claiming, the row becomes claimable again when ``claimed_until`` passes.

Delivery is at-least-once, not exactly-once. If a worker crashes (or its database commit fails)
after Twilio accepted a message but before the provider id was recorded, the lease expires and
another worker sends the message again. The window is one HTTP round trip plus one commit; a
duplicate pre-alert is far cheaper than a lost one. A client-side timeout has the same effect
when the provider did accept the request.

A delivery status callback that arrives before the worker has recorded the provider id (Twilio
can be that fast) finds no row and is acknowledged without effect; the message then stays
``sent`` rather than ``delivered``. Failures are not lost that way in practice, because Twilio
reports ``undelivered``/``failed`` well after accepting.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts._sql import rowcount
from alerts.models import MessageStatus, OutboundMessage
from alerts.providers import health
from alerts.segments import sms_segments
from alerts.transports import (
    PermanentSmsError,
    SendResult,
    SmsTransport,
    TransientSmsError,
    mask_phone,
)

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]


@dataclass(frozen=True)
class DeliveryPolicy:
    lease: dt.timedelta = dt.timedelta(minutes=2)
    max_attempts: int = 6
    backoff_base: dt.timedelta = dt.timedelta(seconds=30)
    backoff_max: dt.timedelta = dt.timedelta(minutes=15)
    parallel_sends: int = 8
    # A message of an alert that leaves later than this after it was queued is late: the
    # ``on_late`` callback of :func:`deliver_due` restarts the alert's clocks first.
    late_after: dt.timedelta = dt.timedelta(minutes=1)

    def backoff(self, attempts: int) -> dt.timedelta:
        """Wait after the ``attempts``-th failed try: 30 s, 1 min, 2 min, ... capped."""
        delay: dt.timedelta = self.backoff_base * (2 ** max(attempts - 1, 0))
        return min(delay, self.backoff_max)


# Housekeeping messages that may wait behind anything about a patient on the move.
ROUTINE_PURPOSES = frozenset({"capacity_reminder", "coordinator_capacity"})
ROUTINE_PRIORITY = 5


def queue_sms(
    session: Session,
    *,
    to: str,
    body: str,
    purpose: str,
    subject: str | None = None,
    contact_id: int | None = None,
    facility_id: int | None = None,
    user_id: int | None = None,
    alert_id: int | None = None,
    language: str = "zh",
    now: dt.datetime,
    flush: bool = True,
) -> OutboundMessage:
    """Add one SMS to the outbox; the worker sends it after the caller's transaction commits.

    ``flush=False`` leaves the INSERT to the caller's next flush (several messages then go in
    one statement); the caller logs them with :func:`log_queued` once they have ids."""
    info = sms_segments(body)
    message = OutboundMessage(
        to_phone=to,
        body=body,
        purpose=purpose,
        priority=ROUTINE_PRIORITY if purpose in ROUTINE_PURPOSES else 0,
        subject=subject,
        contact_id=contact_id,
        facility_id=facility_id,
        user_id=user_id,
        alert_id=alert_id,
        language=language,
        segments=info.segments,
        encoding=info.encoding,
        status=MessageStatus.QUEUED,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    if flush:
        session.flush()
        log_queued(message)
    return message


def log_queued(message: OutboundMessage) -> None:
    log.info("sms %s queued (%s) to %s", message.id, message.purpose, mask_phone(message.to_phone))


def cancel_queued(session: Session, *, alert_id: int, now: dt.datetime) -> int:
    """Cancel the alert's messages not yet handed to a worker; in-flight ones still go."""
    result = rowcount(
        session,
        update(OutboundMessage)
        .where(
            OutboundMessage.alert_id == alert_id,
            OutboundMessage.status == MessageStatus.QUEUED,
        )
        .values(status=MessageStatus.CANCELLED, updated_at=now)
        .execution_options(synchronize_session=False),
    )
    return result


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    lease_free = or_(OutboundMessage.claimed_until.is_(None), OutboundMessage.claimed_until < now)
    return or_(
        and_(
            OutboundMessage.status == MessageStatus.QUEUED,
            OutboundMessage.next_attempt_at <= now,
            lease_free,
        ),
        # A worker died between claiming and recording the outcome: its lease has run out.
        and_(OutboundMessage.status == MessageStatus.SENDING, OutboundMessage.claimed_until < now),
    )


def _claim(
    session_factory: SessionFactory,
    *,
    message_id: int,
    worker_id: str,
    now: dt.datetime,
    lease: dt.timedelta,
) -> str | None:
    """Claim one row: ``"fresh"``, ``"abandoned"`` (a dead worker's claim, which may already
    have reached the provider), or ``None`` when another worker has it."""
    values = {
        "status": MessageStatus.SENDING,
        "claimed_by": worker_id,
        "claimed_until": now + lease,
        "attempts": OutboundMessage.attempts + 1,
        "updated_at": now,
    }
    abandoned = and_(
        OutboundMessage.status == MessageStatus.SENDING, OutboundMessage.claimed_until < now
    )
    with session_factory() as session, session.begin():
        for kind, condition in (("abandoned", abandoned), ("fresh", _claimable(now))):
            claimed = rowcount(
                session,
                update(OutboundMessage)
                .where(OutboundMessage.id == message_id, condition)
                .values(**values)
                .execution_options(synchronize_session=False),
            )
            if claimed == 1:
                return kind
    return None


class OnFailed(Protocol):
    """What to do, in the same transaction, about an alert's message that will never arrive."""

    def __call__(self, session: Session, *, message: OutboundMessage, now: dt.datetime) -> None: ...


class OnLate(Protocol):
    """What to do, in one transaction before it goes, about an alert's message that leaves
    late: restart the clocks that assumed it had left when it was queued (it may rewrite the
    message's body, which is then what is sent)."""

    def __call__(self, session: Session, *, message: OutboundMessage, now: dt.datetime) -> None: ...


def deliver_due(
    session_factory: SessionFactory,
    *,
    transport: SmsTransport,
    now: dt.datetime,
    worker_id: str,
    status_callback_url: str | None,
    policy: DeliveryPolicy | None = None,
    on_failed: OnFailed | None = None,
    on_late: OnLate | None = None,
    limit: int = 100,
) -> int:
    """Send every due outbox row this worker manages to claim; returns how many were sent.

    ``on_failed`` runs, in the same transaction, for a message that will never arrive (the
    escalation moves on at once); messages it queues (the next contact) are sent in this call.
    ``on_late`` runs, in a transaction of its own just before the send, for an alert's message
    that leaves more than ``policy.late_after`` after it was queued (the worker or the provider
    was down): the hospital's clock starts when its pre-alert is handed over, not before.
    """
    policy = policy or DeliveryPolicy()
    tried: set[int] = set()
    sent = 0
    for _round in range(20):  # bounded: each round only picks rows not tried yet
        with session_factory() as session:
            ids = session.scalars(
                select(OutboundMessage.id)
                .where(_claimable(now))
                .order_by(
                    OutboundMessage.priority, OutboundMessage.next_attempt_at, OutboundMessage.id
                )
                .limit(limit)
            ).all()
        fresh = [message_id for message_id in ids if message_id not in tried]
        if not fresh:
            break
        tried.update(fresh)

        def claim_and_send(message_id: int) -> bool:
            claim = _claim(
                session_factory,
                message_id=message_id,
                worker_id=worker_id,
                now=now,
                lease=policy.lease,
            )
            if claim is None:
                return False  # another worker has it
            return _send_one(
                session_factory,
                message_id=message_id,
                abandoned=claim == "abandoned",
                transport=transport,
                now=now,
                worker_id=worker_id,
                status_callback_url=status_callback_url,
                policy=policy,
                on_failed=on_failed,
                on_late=on_late,
            )

        # The provider answers in tens to hundreds of milliseconds: send several at once so a
        # burst of pre-alerts is not queued behind each other's round trips. Each message is
        # still claimed on its own, so the guarantees do not change.
        if policy.parallel_sends <= 1 or len(fresh) == 1:
            sent += sum(claim_and_send(message_id) for message_id in fresh)
        else:
            with ThreadPoolExecutor(min(policy.parallel_sends, len(fresh))) as pool:
                sent += sum(pool.map(claim_and_send, fresh))
    return sent


def _send_one(
    session_factory: SessionFactory,
    *,
    message_id: int,
    abandoned: bool = False,
    transport: SmsTransport,
    now: dt.datetime,
    worker_id: str,
    status_callback_url: str | None,
    policy: DeliveryPolicy,
    on_failed: OnFailed | None,
    on_late: OnLate | None = None,
) -> bool:
    with session_factory() as session:
        message = session.get_one(OutboundMessage, message_id)
        to, body, purpose = message.to_phone, message.body, message.purpose
        late = (
            on_late is not None
            and not abandoned  # a dead worker's claim may have gone as it stands: keep it
            and message.alert_id is not None
            and now - message.created_at > policy.late_after
        )
    if late:
        assert on_late is not None
        with session_factory() as session, session.begin():
            message = session.get_one(OutboundMessage, message_id)
            if message.status != MessageStatus.SENDING or message.claimed_by != worker_id:
                return False  # our lease ran out meanwhile: the new holder sends it
            on_late(session, message=message, now=now)
            body = message.body

    # No transaction is open while we wait on the provider.
    error: TransientSmsError | PermanentSmsError | None = None
    result: SendResult | None = None
    try:
        if abandoned and health.can_reconcile(transport):
            # The worker that claimed this row died without recording the outcome: it may
            # have handed the message over already. Ask before sending it a second time.
            found = health.find_sent(
                transport,
                to=to,
                body=body,
                purpose=purpose,
                session_factory=session_factory,
                now=now,
            )
            if found is not None:
                log.info("sms %s: already with the provider as %s, not resent", message_id, found)
                result = SendResult(provider_id=found, status="sent")
        if result is None:
            # A domestic provider needs the purpose (its template); a pair picks a provider.
            result = health.send(
                transport,
                to=to,
                body=body,
                purpose=purpose,
                status_callback=status_callback_url,
                session_factory=session_factory,
                now=now,
            )
    except (TransientSmsError, PermanentSmsError) as exc:
        error = exc

    if error is None:
        assert result is not None  # no error means the provider took it (or had it)
        try:
            return _record_sent(
                session_factory,
                message_id=message_id,
                provider_id=result.provider_id,
                worker_id=worker_id,
                now=now,
            )
        except IntegrityError:
            # The provider gave an id already recorded for another row (a restarted console,
            # a sandbox that reuses ids). The message is with the provider all the same:
            # record it sent without the id rather than let the claim run out and send it
            # again. Status callbacks for it are then ignored.
            log.warning("sms %s: provider id already recorded; kept sent without it", message_id)
            return _record_sent(
                session_factory,
                message_id=message_id,
                provider_id=None,
                worker_id=worker_id,
                now=now,
            )
    assert error is not None
    with session_factory() as session, session.begin():
        message = session.get_one(OutboundMessage, message_id)
        if message.status != MessageStatus.SENDING or message.claimed_by != worker_id:
            # Our lease ran out and another worker took the row over: its outcome stands.
            log.warning("sms %s: claim lost before the outcome was recorded", message_id)
            return False
        message.claimed_by = None
        message.claimed_until = None
        message.updated_at = now
        message.error_code = error.code
        message.error_message = str(error)[:500]
        if isinstance(error, TransientSmsError) and message.attempts < policy.max_attempts:
            message.status = MessageStatus.QUEUED
            message.next_attempt_at = now + policy.backoff(message.attempts)
            log.warning(
                "sms %s: transient failure (attempt %s, code %s), retry at %s",
                message_id,
                message.attempts,
                error.code,
                message.next_attempt_at.isoformat(),
            )
            return False
        message.status = MessageStatus.FAILED
        log.warning(
            "sms %s to %s failed for good (code %s, %s attempts)",
            message_id,
            mask_phone(to),
            error.code,
            message.attempts,
        )
        _after_failure(session, message=message, now=now, on_failed=on_failed)
        return False


def _record_sent(
    session_factory: SessionFactory,
    *,
    message_id: int,
    provider_id: str | None,
    worker_id: str,
    now: dt.datetime,
) -> bool:
    """The provider has the message: mark it sent, in one transaction. ``True`` in any case
    (another worker that took the row over after our lease ran out records its own outcome)."""
    with session_factory() as session, session.begin():
        message = session.get_one(OutboundMessage, message_id)
        if message.status != MessageStatus.SENDING or message.claimed_by != worker_id:
            log.warning("sms %s: claim lost before the outcome was recorded", message_id)
            return True
        message.claimed_by = None
        message.claimed_until = None
        message.updated_at = now
        message.status = MessageStatus.SENT
        message.provider_id = provider_id
        message.sent_at = now
        message.error_code = None
        message.error_message = ""
        log.info("sms %s sent to %s as %s", message_id, mask_phone(message.to_phone), provider_id)
    return True


# Twilio's statuses mapped onto ours; anything else (accepted, scheduled, ...) is ignored.
_PROVIDER_STATUS = {
    "queued": MessageStatus.QUEUED,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
_ORDER = [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED]


def _earlier_than(status: MessageStatus) -> list[MessageStatus]:
    """The states a message may move to ``status`` from: never backwards, never out of an end."""
    if status in (MessageStatus.UNDELIVERED, MessageStatus.FAILED):
        return list(_ORDER[:-1])
    return list(_ORDER[: _ORDER.index(status)])


def apply_status(
    session: Session,
    *,
    provider_id: str,
    provider_status: str,
    error_code: int | None,
    now: dt.datetime,
    on_failed: OnFailed | None = None,
) -> OutboundMessage | None:
    """Record a delivery status callback. Idempotent; ``None`` when the id is not ours.
    ``on_failed`` runs for an ``undelivered`` or ``failed`` status, as in :func:`deliver_due`."""
    message = session.scalars(
        select(OutboundMessage).where(OutboundMessage.provider_id == provider_id)
    ).one_or_none()
    if message is None:
        return None
    new = _PROVIDER_STATUS.get(provider_status.strip().lower())
    if new is None:
        return message
    values: dict[str, object] = {"status": new, "updated_at": now}
    if new == MessageStatus.DELIVERED:
        values["delivered_at"] = now
    if error_code is not None:
        values["error_code"] = error_code
    # Conditional, so that two copies of one callback racing each other apply once.
    result = rowcount(
        session,
        update(OutboundMessage)
        .where(OutboundMessage.id == message.id, OutboundMessage.status.in_(_earlier_than(new)))
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    session.refresh(message)
    if result == 1:
        log.info("sms %s status %s", message.id, new.value)
        if new in (MessageStatus.UNDELIVERED, MessageStatus.FAILED):
            _after_failure(session, message=message, now=now, on_failed=on_failed)
    return message


def _after_failure(
    session: Session, *, message: OutboundMessage, now: dt.datetime, on_failed: OnFailed | None
) -> None:
    """A message that will never arrive: the caller's callback (the escalation) moves on."""
    if message.alert_id is None or on_failed is None:
        return
    on_failed(session, message=message, now=now)
