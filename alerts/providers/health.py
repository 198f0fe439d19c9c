"""Provider health and failover: a provider that keeps failing is set aside for a while.

Health is a row per provider (:class:`alerts.models.SmsProviderHealth`), so every worker
process sees the same picture. ``threshold`` transient failures within ``window`` mark the
provider down for ``down_for``; meanwhile the fallback sends. When ``down_for`` has passed the
primary is tried again; one success clears its count. A permanent error (a bad number) says
nothing about the provider and is not counted.

:func:`send` and :func:`find_sent` are what the outbox calls for any transport: a plain one
(Twilio, console), a templated one (Aliyun, Tencent) or a :class:`FailoverTransport` pair. A
dead worker's message is looked for at every provider of the pair before it is sent again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts._sql import rowcount
from alerts.models import SmsProviderHealth
from alerts.providers.base import TemplatedTransport
from alerts.sms_types import (
    ReconcilingTransport,
    SendResult,
    SmsTransport,
    TransientSmsError,
)

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]

#: The providers whose health is recorded (the console and the tests' recorder are not).
TRACKED = frozenset({"twilio", "aliyun", "tencent"})


@dataclass(frozen=True)
class HealthPolicy:
    threshold: int = 3
    window: dt.timedelta = dt.timedelta(minutes=5)
    down_for: dt.timedelta = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class FailoverTransport:
    """A primary provider and the fallback that carries messages while the primary is down."""

    primary_name: str
    primary: SmsTransport
    fallback_name: str
    fallback: SmsTransport
    policy: HealthPolicy = HealthPolicy()

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """Through the primary, without the health record: the outbox calls :func:`send`."""
        return _send_plain(
            self.primary, to=to, body=body, purpose="", status_callback=status_callback
        )


def transport_name(transport: SmsTransport) -> str:
    if isinstance(transport, FailoverTransport):
        return transport.primary_name
    if isinstance(transport, TemplatedTransport):
        return transport.name
    return type(transport).__name__.removesuffix("Transport").lower()


def is_down(session: Session, *, provider: str, now: dt.datetime) -> bool:
    row = session.get(SmsProviderHealth, provider)
    return row is not None and row.down_until is not None and row.down_until > now


def provider_states(session: Session, *, now: dt.datetime) -> dict[str, bool]:
    """Every provider with a health row: ``True`` when up (for /metrics and the board)."""
    rows = session.scalars(select(SmsProviderHealth).order_by(SmsProviderHealth.provider))
    return {row.provider: not (row.down_until and row.down_until > now) for row in rows}


def record_failure(
    session_factory: SessionFactory,
    *,
    provider: str,
    error: str,
    now: dt.datetime,
    policy: HealthPolicy,
) -> bool:
    """Count one transient failure; ``True`` when this one marked the provider down.

    Each step is one conditional UPDATE, so workers (and a worker's parallel sends) failing at
    the same moment all count, and only one of them marks the provider down."""
    _ensure_row(session_factory, provider=provider, now=now)
    table = SmsProviderHealth
    new_window = or_(
        table.window_started_at.is_(None), table.window_started_at < now - policy.window
    )
    with session_factory() as session, session.begin():
        session.execute(
            update(table)
            .where(table.provider == provider)
            .values(
                failures=case((new_window, 1), else_=table.failures + 1),
                window_started_at=case((new_window, now), else_=table.window_started_at),
                last_error=error[:500],
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        marked = rowcount(
            session,
            update(table)
            .where(
                table.provider == provider,
                table.failures >= policy.threshold,
                or_(table.down_until.is_(None), table.down_until <= now),
            )
            .values(down_until=now + policy.down_for)
            .execution_options(synchronize_session=False),
        )
    if marked:
        log.warning(
            "sms provider %s marked down until %s", provider, (now + policy.down_for).isoformat()
        )
    return marked == 1


def _ensure_row(session_factory: SessionFactory, *, provider: str, now: dt.datetime) -> None:
    with session_factory() as session:
        if session.get(SmsProviderHealth, provider) is not None:
            return
    try:
        with session_factory() as session, session.begin():
            session.add(
                SmsProviderHealth(provider=provider, failures=0, last_error="", updated_at=now)
            )
    except IntegrityError:
        pass  # another worker made it first


def record_success(session_factory: SessionFactory, *, provider: str, now: dt.datetime) -> None:
    """One success: the provider is up and its count starts again."""
    table = SmsProviderHealth
    with session_factory() as session, session.begin():
        cleared = rowcount(
            session,
            update(table)
            .where(
                table.provider == provider,
                or_(table.failures > 0, table.down_until.is_not(None)),
            )
            .values(failures=0, window_started_at=None, down_until=None, updated_at=now)
            .execution_options(synchronize_session=False),
        )
    if cleared:
        log.info("sms provider %s is up", provider)


def _send_plain(
    transport: SmsTransport, *, to: str, body: str, purpose: str, status_callback: str | None
) -> SendResult:
    if isinstance(transport, TemplatedTransport):
        return transport.send_message(
            to=to, body=body, purpose=purpose, status_callback=status_callback
        )
    return transport.send(to=to, body=body, status_callback=status_callback)


def send(
    transport: SmsTransport,
    *,
    to: str,
    body: str,
    purpose: str,
    status_callback: str | None,
    session_factory: SessionFactory,
    now: dt.datetime,
) -> SendResult:
    """Send through ``transport``; for a pair, through the primary unless it is down."""
    if not isinstance(transport, FailoverTransport):
        name = transport_name(transport)
        if name not in TRACKED:
            return _send_plain(
                transport, to=to, body=body, purpose=purpose, status_callback=status_callback
            )
        # Alone, a provider is still watched: the board and /metrics say when it is down.
        return _tracked(
            name,
            transport,
            HealthPolicy(),
            to=to,
            body=body,
            purpose=purpose,
            status_callback=status_callback,
            session_factory=session_factory,
            now=now,
        )
    with session_factory() as session:
        primary_down = is_down(session, provider=transport.primary_name, now=now)
    name, chosen = (
        (transport.fallback_name, transport.fallback)
        if primary_down
        else (transport.primary_name, transport.primary)
    )
    return _tracked(
        name,
        chosen,
        transport.policy,
        to=to,
        body=body,
        purpose=purpose,
        status_callback=status_callback,
        session_factory=session_factory,
        now=now,
    )


def _tracked(
    name: str,
    transport: SmsTransport,
    policy: HealthPolicy,
    *,
    to: str,
    body: str,
    purpose: str,
    status_callback: str | None,
    session_factory: SessionFactory,
    now: dt.datetime,
) -> SendResult:
    try:
        result = _send_plain(
            transport, to=to, body=body, purpose=purpose, status_callback=status_callback
        )
    except TransientSmsError as exc:
        record_failure(session_factory, provider=name, error=str(exc), now=now, policy=policy)
        raise
    record_success(session_factory, provider=name, now=now)
    return result


def _find_one(
    transport: SmsTransport, *, to: str, body: str, purpose: str, now: dt.datetime
) -> str | None:
    if isinstance(transport, TemplatedTransport):
        return transport.find_message(to=to, body=body, purpose=purpose, now=now)
    if isinstance(transport, ReconcilingTransport):
        return transport.find_sent(to=to, body=body)
    return None


def can_reconcile(transport: SmsTransport) -> bool:
    if isinstance(transport, FailoverTransport):
        return can_reconcile(transport.primary) or can_reconcile(transport.fallback)
    return isinstance(transport, TemplatedTransport | ReconcilingTransport)


def find_sent(
    transport: SmsTransport,
    *,
    to: str,
    body: str,
    purpose: str,
    session_factory: SessionFactory,
    now: dt.datetime,
) -> str | None:
    """The provider id of this message if a provider already has it (both of a pair are
    asked: the dead worker may have used either). Raises :class:`TransientSmsError` when a
    provider cannot be asked, so the caller waits rather than risk a second pre-alert; but a
    primary marked down is not waited for (a duplicate is cheaper than a lost pre-alert)."""
    if not isinstance(transport, FailoverTransport):
        return _find_one(transport, to=to, body=body, purpose=purpose, now=now)
    with session_factory() as session:
        primary_down = is_down(session, provider=transport.primary_name, now=now)
    for member, down in ((transport.primary, primary_down), (transport.fallback, False)):
        try:
            found = _find_one(member, to=to, body=body, purpose=purpose, now=now)
        except TransientSmsError:
            if not down:
                raise
            continue
        if found is not None:
            return found
    return None
