"""Attention: the one record of "a human must act on this case now".

A coordinator is texted about a case exactly when an item is raised here, in the same
transaction as the text is queued, and the board lists exactly the items not yet cleared: the
texts and the board cannot disagree, and their words are the same (``words``, by language, go
into the text and onto the board). The reasons are :data:`core.vocabulary.ATTENTION_REASONS`.

At most one open item per case and reason: the insert does nothing when one is open (a partial
unique index, so two workers racing on one case cannot both text). An item clears when the case
finds a destination or closes, when a coordinator acts on it (redirect, re-open), or when a
coordinator marks it seen; the same reason may then be raised again by a new event (a re-opened
case that nobody accepts again texts again).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from alerts._sql import rowcount
from alerts.models import OPEN_ATTENTION, AttentionItem
from alerts.outbox import queue_sms
from alerts.recipients import Recipient, area_coordinators
from core.vocabulary import ATTENTION_REASONS, LANGUAGES
from facilities.models import Facility

log = logging.getLogger(__name__)


def raise_item(
    session: Session,
    *,
    subject: str,
    code: str,
    reason: str,
    area_of: Facility,
    words: Callable[[str], str],
    render: Callable[[str], str],
    clinic_phone: str,
    purpose: str,
    now: dt.datetime,
    facility_id: int | None = None,
    alert_id: int | None = None,
) -> AttentionItem | None:
    """Raise ``reason`` for the case ``subject`` and text the coordinators covering
    ``area_of`` (``render(language)``), once: with an item for that case and reason already
    open, nothing happens and ``None`` is returned."""
    if reason not in ATTENTION_REASONS:
        raise ValueError(f"unknown attention reason {reason!r}")
    values = {
        "subject": subject,
        "code": code,
        "reason": reason,
        "facility_id": facility_id,
        "words": {language: words(language) for language in LANGUAGES},
        "clinic_phone": clinic_phone,
        "raised_at": now,
        "cleared_by": "",
        "clear_reason": "",
    }
    item_id = session.execute(_insert_once(session, values)).scalar_one_or_none()
    if item_id is None:
        log.info("attention %s for %s already open: no second text", reason, subject)
        return None
    item = session.get_one(AttentionItem, item_id)
    for recipient in area_coordinators(session, area_of):
        queue_sms(
            session,
            to=recipient.phone,
            body=render(recipient.language),
            purpose=purpose,
            subject=subject,
            facility_id=facility_id if facility_id is not None else area_of.id,
            contact_id=recipient.contact_id,
            user_id=recipient.user_id,
            alert_id=alert_id,
            language=recipient.language,
            now=now,
        )
    log.info("attention %s raised for %s (item %s)", reason, subject, item.id)
    return item


def _insert_once(session: Session, values: Mapping[str, Any]) -> ReturningInsert[tuple[int]]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, against the open-item index (a second
    writer waits for the first to commit, then inserts nothing)."""
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(AttentionItem).values(values)
        return pg.on_conflict_do_nothing(
            index_elements=["subject", "reason"], index_where=OPEN_ATTENTION
        ).returning(AttentionItem.id)
    lite = sqlite.insert(AttentionItem).values(values)
    return lite.on_conflict_do_nothing(
        index_elements=["subject", "reason"], index_where=OPEN_ATTENTION
    ).returning(AttentionItem.id)


def clear(
    session: Session,
    *,
    subject: str,
    by: str,
    why: str,
    now: dt.datetime,
    reasons: Iterable[str] | None = None,
) -> int:
    """Clear the case's open items (of ``reasons``, else all); returns how many."""
    statement = (
        update(AttentionItem)
        .where(AttentionItem.subject == subject, AttentionItem.cleared_at.is_(None))
        .values(cleared_at=now, cleared_by=by[:100], clear_reason=why[:32])
        .execution_options(synchronize_session=False)
    )
    if reasons is not None:
        statement = statement.where(AttentionItem.reason.in_(list(reasons)))
    return rowcount(session, statement)


def mark_seen(session: Session, *, item_id: int, by: str, now: dt.datetime) -> bool:
    """A coordinator has seen the item and is acting on it: the board stops showing it."""
    return (
        rowcount(
            session,
            update(AttentionItem)
            .where(AttentionItem.id == item_id, AttentionItem.cleared_at.is_(None))
            .values(cleared_at=now, cleared_by=by[:100], clear_reason="seen")
            .execution_options(synchronize_session=False),
        )
        == 1
    )


def open_items(session: Session, subjects: Sequence[str]) -> list[AttentionItem]:
    """The open items of these cases, oldest first (one statement)."""
    return list(
        session.scalars(
            select(AttentionItem)
            .where(AttentionItem.subject.in_(list(subjects)), AttentionItem.cleared_at.is_(None))
            .order_by(AttentionItem.raised_at, AttentionItem.id)
        )
    )


def first_coordinator_phone(session: Session, facility: Facility) -> str:
    """The number a clinic is given to call: the first coordinator covering it ('' if none)."""
    found: list[Recipient] = area_coordinators(session, facility)
    return found[0].phone if found else ""
