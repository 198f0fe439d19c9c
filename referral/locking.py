"""The case row lock, compare-and-swap on every transition, and the timeline writer.

Every change of a case takes its row lock first (:func:`lock_case`), then moves its state with a
conditional UPDATE (:func:`_swap_referral`, :func:`_swap_offer`), so two answers racing for the
same case cannot both win; every milestone is written to the timeline (:func:`_event`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import (
    Session,
    SessionTransaction,
    joinedload,
    object_mapper,
    selectinload,
)
from sqlalchemy.orm.attributes import set_committed_value

from alerts import attention
from core.errors import Conflict, NotFoundError, ServiceError
from referral.access import Actor
from referral.models import (
    Offer,
    OfferStatus,
    Referral,
    ReferralEvent,
    ReferralStatus,
)

log = logging.getLogger(__name__)


class ReferralError(ServiceError):
    pass


class StateConflict(Conflict):
    code = "conflict"


#: Timeline events after which nobody needs to be called about the case any more: it has a
#: destination or is closed, or a coordinator acted on it. They clear its attention items.
SETTLES_ATTENTION = frozenset(
    {
        "accepted",
        "safety_net_assigned",
        "redirected",
        "reopened",
        "departed",
        "arrived",
        "completed",
        "cancelled",
    }
)


def _event(
    session: Session,
    referral: Referral,
    kind: str,
    *,
    actor: Actor,
    now: dt.datetime,
    offer: Offer | None = None,
    **detail: Any,
) -> None:
    session.add(
        ReferralEvent(
            referral_id=referral.id,
            at=now,
            kind=kind,
            actor=actor.name,
            channel=actor.channel,
            offer_id=offer.id if offer else None,
            detail=detail,
        )
    )
    if kind in SETTLES_ATTENTION:
        attention.clear(session, subject=case_subject(referral), by=actor.name, why=kind, now=now)


def _swap_referral(
    session: Session, referral: Referral, *, expected: Sequence[ReferralStatus], **values: Any
) -> bool:
    """Move the referral only if it is still in one of the expected states (a CAS)."""
    return _swap(session, referral, Referral.status.in_(list(expected)), values)


def _swap_offer(session: Session, offer: Offer, **values: Any) -> bool:
    """Answer or withdraw the offer only if it is still pending (a CAS)."""
    return _swap(session, offer, Offer.status == OfferStatus.PENDING, values)


def _swap(session: Session, obj: Referral | Offer, condition: Any, values: dict[str, Any]) -> bool:
    """Write ``values`` to the object's row only while ``condition`` holds. On success the object
    takes the values without reading its row back (a relationship whose key changed is read
    again when next used); on failure it is refreshed to what the row holds instead."""
    model = type(obj)
    result = session.execute(
        update(model)
        .where(model.id == obj.id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(obj)
        return False
    for key, value in values.items():
        set_committed_value(obj, key, value)
    stale = [
        relationship.key
        for relationship in object_mapper(obj).relationships
        if any(column.key in values for column in relationship.local_columns)
    ]
    if stale:
        session.expire(obj, stale)
    return True


_LOCKED = "greenchannel.locked_cases"


def _locked(session: Session) -> set[int]:
    """The cases whose row lock this session's transaction holds (PostgreSQL)."""
    held: set[int] = session.info.setdefault(_LOCKED, set())
    return held


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction ended, and its row locks with it
        session.info.pop(_LOCKED, None)


def _locking(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_case(session: Session, referral: Referral) -> None:
    """Take the case's row lock before changing anything about it, then read it again.

    Every change of a case (an answer, an expiry, a move-on, a cancellation, a redirect, a
    journey step) starts here, so on PostgreSQL they queue one behind another in one order: the
    case first, then its offers, alerts and timers. Without one order an accept (which holds the
    case while it withdraws the other offers) and a decline (which holds its offer while it
    updates the case) each waited for the other's lock until PostgreSQL aborted one. Two
    movers (both parallel offers declined in the same instant, a decline and an expiry) also
    never pick from the same snapshot, so they never ask the same next hospital twice.
    ``FOR NO KEY UPDATE`` is the lock an UPDATE takes. Every write to an offer or a timeline
    row also updates the case row (its ``revision``, by trigger), so no code may write either
    without taking this lock first: it would take the case's lock after its offer's and could
    deadlock with a change that holds the case. A case locked (or created) earlier in the same
    transaction is not read again. SQLite writes one transaction at a time already."""
    if not _locking(session) or referral.id in _locked(session):
        return
    session.flush()
    _load_case(session, referral.id, lock=True)


def _load_case(session: Session, referral_id: int, *, lock: bool) -> Referral | None:
    """The case with its places and offers, as the database has them now; with ``lock``, under
    the case's row lock (taken by the same statement, before the offers are read)."""
    statement = (
        select(Referral)
        .where(Referral.id == referral_id)
        .options(
            joinedload(Referral.origin),
            joinedload(Referral.destination),
            selectinload(Referral.offers).joinedload(Offer.facility),
        )
        .execution_options(populate_existing=True)
    )
    lock = lock and _locking(session)
    if lock:
        statement = statement.with_for_update(key_share=True, of=Referral)
    referral = session.scalars(statement).unique().one_or_none()
    if referral is not None and lock:
        _locked(session).add(referral.id)
    return referral


def get_referral(session: Session, referral_id: int, *, lock: bool = False) -> Referral:
    """The case; with ``lock``, read under its row lock (see :func:`lock_case`) for a change."""
    referral = (
        _load_case(session, referral_id, lock=True) if lock else session.get(Referral, referral_id)
    )
    if referral is None:
        raise NotFoundError(f"no referral {referral_id}", field="id")
    return referral


def get_offer(session: Session, referral: Referral, offer_id: int) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.referral_id != referral.id:
        raise NotFoundError(f"referral {referral.id} has no offer {offer_id}", field="offer_id")
    return offer


def _not_pending(offer: Offer) -> StateConflict:
    return StateConflict(
        f"offer {offer.id} is {offer.status.value}, no longer pending: nothing changed",
        field="offer_id",
    )


def subject(offer: Offer) -> str:
    return f"offer:{offer.id}"


def case_subject(referral: Referral) -> str:
    """The case's key in the alerts package (its texts, its attention items)."""
    return f"referral:{referral.id}"
