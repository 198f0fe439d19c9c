"""The journey after acceptance: depart, arrive, complete; and cancellation."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.orm import (
    Session,
)

from alerts import messages
from core.errors import ServiceError
from facilities.models import Role
from referral.access import Actor, _check_role
from referral.locking import StateConflict, _event, _swap_referral, lock_case
from referral.models import (
    CancelReason,
    Referral,
    ReferralStatus,
)
from referral.notices import _text_clinic, local_name
from referral.offering import _release_offers, _stop_all_alerts

log = logging.getLogger(__name__)


def depart(session: Session, *, referral: Referral, actor: Actor, now: dt.datetime) -> Referral:
    """The referring clinic says the patient has left, escorted, for the accepted destination."""
    lock_case(session, referral)
    _check_role(
        actor,
        {Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR},
        referral.origin_facility_id,
        "mark the departure of",
        origin=referral.origin,
    )
    if not _swap_referral(
        session,
        referral,
        expected=[ReferralStatus.ACCEPTED],
        status=ReferralStatus.IN_TRANSIT,
        departed_at=now,
        updated_at=now,
    ):
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: it can depart only once "
            "accepted (the referring facility confirms the destination first)",
            field="id",
        )
    _event(session, referral, "departed", actor=actor, now=now)
    return referral


def arrive(session: Session, *, referral: Referral, actor: Actor, now: dt.datetime) -> Referral:
    """The receiving hospital says the patient is here (a missed departure is tolerated)."""
    lock_case(session, referral)
    _check_role(
        actor,
        {Role.HOSPITAL, Role.COORDINATOR},
        referral.destination_facility_id,
        "mark the arrival of",
        origin=referral.origin,
    )
    if not _swap_referral(
        session,
        referral,
        expected=[ReferralStatus.IN_TRANSIT, ReferralStatus.ACCEPTED],
        status=ReferralStatus.ARRIVED,
        arrived_at=now,
        updated_at=now,
    ):
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: only an accepted or travelling "
            "case can arrive",
            field="id",
        )
    _event(session, referral, "arrived", actor=actor, now=now)
    destination = referral.destination
    assert destination is not None
    _text_clinic(
        session,
        referral,
        purpose="patient_arrived",
        body=lambda language: messages.patient_arrived(
            language, code=referral.code, destination=local_name(destination, language)
        ),
        now=now,
    )
    return referral


def complete(
    session: Session, *, referral: Referral, actor: Actor, outcome: str, now: dt.datetime
) -> Referral:
    lock_case(session, referral)
    _check_role(
        actor,
        {Role.HOSPITAL, Role.COORDINATOR},
        referral.destination_facility_id,
        "complete",
        origin=referral.origin,
    )
    text = outcome.strip()
    if not text:
        raise ServiceError("outcome: say how the case ended", field="outcome")
    if not _swap_referral(
        session,
        referral,
        expected=[ReferralStatus.ARRIVED],
        status=ReferralStatus.COMPLETED,
        outcome=text[:2000],
        completed_at=now,
        closed_at=now,
        open_code=None,
        open_patient_ref=None,
        updated_at=now,
    ):
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: only an arrived case completes",
            field="id",
        )
    _event(session, referral, "completed", actor=actor, now=now, outcome=text[:2000])
    return referral


def cancel(
    session: Session,
    *,
    referral: Referral,
    actor: Actor,
    reason: str,
    note: str = "",
    now: dt.datetime,
) -> Referral:
    lock_case(session, referral)
    _check_role(
        actor,
        {Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR},
        referral.origin_facility_id,
        "cancel",
        origin=referral.origin,
    )
    try:
        clean = CancelReason(reason.strip().lower())
    except ValueError:
        raise ServiceError(
            f"reason: expected one of {', '.join(r.value for r in CancelReason)}",
            field="reason",
        ) from None
    if not _swap_referral(
        session,
        referral,
        expected=[
            ReferralStatus.REQUESTED,
            ReferralStatus.OFFERED,
            ReferralStatus.ACCEPTED,
            ReferralStatus.IN_TRANSIT,
            ReferralStatus.UNPLACED,
        ],
        status=ReferralStatus.CANCELLED,
        cancel_reason=clean.value,
        note=note.strip()[:2000],
        closed_at=now,
        open_code=None,
        open_patient_ref=None,
        updated_at=now,
    ):
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: it can no longer be cancelled",
            field="id",
        )
    _stop_all_alerts(
        session,
        referral,
        now=now,
        stand_down=_release_offers(session, referral, now=now),
        reason="cancelled",
    )
    _event(
        session,
        referral,
        "cancelled",
        actor=actor,
        now=now,
        reason=clean.value,
        note=note.strip()[:2000],
    )
    return referral
