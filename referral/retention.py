"""Retention: closed cases lose their patient fields after ``GREENCHANNEL_RETENTION_DAYS``.

What goes: everything a person typed that can name the patient or a phone. On the referral the
patient block (age, sex, the clinic's register number), the case note, the outcome and the
cancel note; on its offers the decline notes and a coordinator's redirect reason (kept in the
offer's reasons too); on its timeline every free-text detail (notes, outcome, the redirect's
reason); and the raw text of the SMS answers to its pre-alerts (a decline note names whoever
the sender likes). Inbound SMS older than the period lose their raw text whatever case they
were about (a ``REF`` text, an answer to nothing). What stays: the case (conditions, colour,
gestation), the offers, every timestamp and the timeline's steps, so the intervals and monthly
reports still add up; what the service itself wrote (reason codes, the SMS it sent, which
carry no free text by rule). Each scrub is an audit row (action ``scrub``), which is also how a
case is known to be done: the next run skips it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from alerts._sql import rowcount
from alerts.models import Alert, InboundMessage
from core.settings import ConfigError
from referral import audit, service
from referral.locking import subject
from referral.models import AuditEntry, Referral, ReferralStatus

DEFAULT_RETENTION_DAYS = 365
CLOSED = (ReferralStatus.COMPLETED, ReferralStatus.CANCELLED)
# Timeline detail keys that hold free text written by people.
FREE_TEXT_KEYS = frozenset({"note", "outcome"})
SCRUBBED = "[removed after the retention period]"
# How a redirected offer's first reason starts (``referral.coordination.redirect``): the
# coordinator's own words follow the colon.
CHOSEN_BY_COORDINATOR = "chosen by coordinator "


def retention_days(environ: Mapping[str, str] | None = None) -> int:
    """``GREENCHANNEL_RETENTION_DAYS`` (default 365); a value that is not a whole number ≥ 1
    stops the service with a message naming the variable."""
    env = os.environ if environ is None else environ
    raw = env.get("GREENCHANNEL_RETENTION_DAYS", "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    if not raw.isdecimal() or int(raw) < 1:
        raise ConfigError(
            f"GREENCHANNEL_RETENTION_DAYS: expected a whole number of days ≥ 1, got {raw!r}"
        )
    return int(raw)


def _scrub_detail(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: (SCRUBBED if k in FREE_TEXT_KEYS and v else v) for k, v in detail.items()}
    if kind == "redirected" and cleaned.get("reason"):
        cleaned["reason"] = SCRUBBED  # a coordinator's free-text reason
    return cleaned


def scrub_referral(session: Session, referral: Referral) -> None:
    # The case's lock first, as every change of a case takes it (``service.lock_case``): a
    # scrub writes its offers and timeline too, and each of those writes touches the case row.
    service.lock_case(session, referral)
    referral.patient = {}
    referral.patient_ref = None
    referral.open_patient_ref = None
    if referral.outcome:
        referral.outcome = SCRUBBED
    if referral.note:
        referral.note = SCRUBBED
    if referral.case.get("note"):
        referral.case = {**referral.case, "note": SCRUBBED}
    for offer in referral.offers:
        if offer.decline_note:
            offer.decline_note = SCRUBBED
        reasons = [_scrub_reason(reason) for reason in offer.reasons]
        if reasons != offer.reasons:
            offer.reasons = reasons
    for event in referral.events:
        cleaned = _scrub_detail(event.kind, event.detail)
        if cleaned != event.detail:
            event.detail = cleaned
    alert_ids = select(Alert.id).where(
        Alert.subject.in_([subject(offer) for offer in referral.offers])
    )
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.alert_id.in_(alert_ids), InboundMessage.body != SCRUBBED)
        .values(body=SCRUBBED)
        .execution_options(synchronize_session=False)
    )


def _scrub_reason(reason: str) -> str:
    """A redirected offer's "chosen by coordinator NAME: their words" loses the words."""
    if reason.startswith(CHOSEN_BY_COORDINATOR) and ":" in reason:
        return reason.split(":", 1)[0] + ": " + SCRUBBED
    return reason


def scrub_old_inbound(session: Session, *, now: dt.datetime, days: int) -> int:
    """The raw text of every inbound SMS received more than ``days`` ago; returns how many."""
    cutoff = now - dt.timedelta(days=days)
    return rowcount(
        session,
        update(InboundMessage)
        .where(InboundMessage.received_at < cutoff, InboundMessage.body != SCRUBBED)
        .values(body=SCRUBBED)
        .execution_options(synchronize_session=False),
    )


def due_for_scrub(
    session: Session, *, now: dt.datetime, days: int, limit: int = 500
) -> list[Referral]:
    cutoff = now - dt.timedelta(days=days)
    already = exists().where(AuditEntry.referral_id == Referral.id, AuditEntry.action == "scrub")
    return list(
        session.scalars(
            select(Referral)
            .where(Referral.status.in_(CLOSED), Referral.closed_at < cutoff, ~already)
            .order_by(Referral.closed_at, Referral.id)
            .limit(limit)
        )
    )


def scrub_closed_cases(session: Session, *, now: dt.datetime, days: int, batch: int = 500) -> int:
    """Scrub every closed case older than ``days``, and the raw text of older inbound SMS;
    returns how many cases. Commits per batch, so a large first run does not hold one long
    transaction."""
    total = 0
    scrub_old_inbound(session, now=now, days=days)
    session.commit()
    while True:
        referrals = due_for_scrub(session, now=now, days=days, limit=batch)
        if not referrals:
            return total
        for referral in referrals:
            scrub_referral(session, referral)
            audit.record(
                session,
                action="scrub",
                actor="system",
                channel="system",
                referral_id=referral.id,
                now=now,
                retention_days=days,
            )
        session.commit()
        total += len(referrals)
