"""The coordinator board's open cases, read as plain rows: two statements whatever their number.

The board renders every open case of an area on each change and on every first load. Loading
them as ORM objects (each case with its origin, destination and offers, each offer with its
facility, every JSON column decoded) cost a third of a hundred-case render; the board shows
a dozen columns of each, so it reads those columns as tuples, and only the pending offers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, aliased

from facilities.models import Facility
from referral.access import visible
from referral.live_state import BOARD_LIMIT
from referral.models import OPEN_STATUSES, Offer, OfferStatus, Referral, ReferralStatus
from referral.service import Actor


class Place(NamedTuple):
    """What the board shows of a facility: its names (``facility_name``) and its phone."""

    id: int
    name: str
    name_en: str | None
    phone: str


class PendingOffer(NamedTuple):
    facility: Place
    expires_at: dt.datetime


@dataclass(slots=True)
class BoardCase:
    """One open case as the board shows it. The attribute names are the :class:`Referral`'s, so
    the shared macros (``case_summary``) and rules (``past_target``, ``board_order``) read it
    as they read a case."""

    id: int
    code: str
    status: ReferralStatus
    urgency: str
    patient_kind: str
    outreach: bool
    created_at: dt.datetime
    callback_phone: str
    case: dict[str, Any]
    requirements: dict[str, Any]  # only ``in_shock``, when the case's requirements say
    origin: Place
    destination: Place | None
    pending: list[PendingOffer] = field(default_factory=list)  # by offer id, as the case page


_ORIGIN, _DESTINATION = aliased(Facility, name="origin"), aliased(Facility, name="destination")


@cache
def _cases() -> Select[*tuple[Any, ...]]:
    """The open cases' columns with their origin's and destination's (built once: building it
    cost more than running it)."""
    origin, destination = _ORIGIN, _DESTINATION
    return (
        select(
            Referral.id,
            Referral.code,
            Referral.status,
            Referral.urgency,
            Referral.patient_kind,
            Referral.outreach,
            Referral.created_at,
            Referral.callback_phone,
            Referral.case,
            # The board reads one key of the requirements (a kilobyte each, with the decision):
            # ``case_summary`` shows whether she is in shock.
            Referral.requirements["in_shock"],
            origin.id,
            origin.name,
            origin.name_en,
            origin.phone,
            destination.id,
            destination.name,
            destination.name_en,
            destination.phone,
        )
        .join(origin, Referral.origin_facility_id == origin.id)
        .outerjoin(destination, Referral.destination_facility_id == destination.id)
        .where(Referral.status.in_(OPEN_STATUSES))
        .order_by(Referral.created_at)
    )


@cache
def _pending() -> Select[*tuple[Any, ...]]:
    """The pending offers of the cases named by the expanding parameter ``ids``."""
    return (
        select(
            Offer.referral_id,
            Offer.expires_at,
            Facility.id,
            Facility.name,
            Facility.name_en,
            Facility.phone,
        )
        .join(Facility, Offer.facility_id == Facility.id)
        .where(
            Offer.referral_id.in_(bindparam("ids", expanding=True)),
            Offer.status == OfferStatus.PENDING,
        )
        .order_by(Offer.id)
    )


def open_cases(session: Session, actor: Actor, *, limit: int = BOARD_LIMIT) -> list[BoardCase]:
    """The open cases ``actor`` may see, oldest first (visibility in SQL), with their pending
    offers: two statements."""
    statement = visible(_cases(), actor).limit(limit)
    cases = [
        BoardCase(
            id=row[0],
            code=row[1],
            status=row[2],
            urgency=row[3],
            patient_kind=row[4],
            outreach=row[5],
            created_at=row[6],
            callback_phone=row[7],
            case=row[8] or {},
            requirements={} if row[9] is None else {"in_shock": row[9]},
            origin=Place(*row[10:14]),
            destination=Place(*row[14:18]) if row[14] is not None else None,
        )
        for row in session.execute(statement)
    ]
    if not cases:
        return cases
    pending: dict[int, list[PendingOffer]] = defaultdict(list)
    for row in session.execute(_pending(), {"ids": [c.id for c in cases]}):
        pending[row[0]].append(PendingOffer(Place(*row[2:6]), row[1]))
    for case in cases:
        case.pending = pending.get(case.id, [])
    return cases
