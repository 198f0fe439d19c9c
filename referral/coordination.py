"""What a coordinator does to a case by hand: redirect it (confirming a partial match), re-open
it."""

from __future__ import annotations

import datetime as dt
import logging
import math

from sqlalchemy.orm import (
    Session,
)

from core.errors import Forbidden, ServiceError
from facilities.models import Facility, Role
from referral import placement
from referral.access import Actor, check_case_area
from referral.locking import StateConflict, _event, _swap_referral, lock_case
from referral.models import (
    Offer,
    Referral,
    ReferralStatus,
)
from referral.offering import _make_offer, _release_offers, _stop_all_alerts
from referral.offers import accept_offer, offer_next
from referral.placement import Placement, need_of

log = logging.getLogger(__name__)


def redirect(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    actor: Actor,
    facility: Facility,
    reason: str,
    now: dt.datetime,
    agreed_by_phone: bool = False,
) -> Offer:
    """A coordinator sends the case to a facility of their choice (the reason is recorded).

    Pending offers are withdrawn; an accepted destination is released. If the chosen facility
    lacks a requirement, the timeline says so: the coordinator decides, the record shows it.
    ``agreed_by_phone``: the coordinator has already agreed it with that hospital by phone, so
    the offer is recorded as accepted at once (the hospital still gets the pre-alert text).
    """
    lock_case(session, referral)
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("only a coordinator may redirect a case", field="facility")
    check_case_area(actor, referral.origin, "redirect")
    if not reason.strip():
        raise ServiceError("reason: say why the case is redirected", field="reason")
    if not facility.active:
        raise StateConflict(
            f"facility {facility.code} is deactivated: it cannot receive a case",
            field="facility",
        )
    if referral.status not in (
        ReferralStatus.REQUESTED,
        ReferralStatus.OFFERED,
        ReferralStatus.UNPLACED,
        ReferralStatus.ACCEPTED,
    ):
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: it can no longer be redirected",
            field="id",
        )
    _stop_all_alerts(
        session,
        referral,
        now=now,
        stand_down=_release_offers(session, referral, now=now),
        reason="redirected",
    )
    _swap_referral(
        session,
        referral,
        expected=[referral.status],
        status=ReferralStatus.OFFERED,
        accepted_offer_id=None,
        destination_facility_id=None,
        accepted_at=None,
        updated_at=now,
    )
    missing = placement.missing_requirements(need_of(referral), facility)
    route = place.router.route(
        (referral.origin_lat, referral.origin_lon),
        (facility.lat, facility.lon),
        closures=placement.active_closures(session),
        policy=placement.policy(place.rules, window_minutes=None),
    )
    reachable = math.isfinite(route.eta_minutes)
    _event(
        session,
        referral,
        "redirected",
        actor=actor,
        now=now,
        facility=facility.code,
        reason=reason.strip()[:500],
        missing=missing,
        agreed_by_phone=agreed_by_phone,
    )
    offer = _make_offer(
        session,
        place=place,
        referral=referral,
        facility=facility,
        rank=None,
        eta_minutes=route.eta_minutes if reachable else None,
        distance_km=route.distance_km if reachable else None,
        estimate=route.estimate,
        reasons=[f"chosen by coordinator {actor.name}: {reason.strip()[:200]}", *missing],
        actor=actor,
        now=now,
    )
    if agreed_by_phone:
        accept_offer(session, place=place, referral=referral, offer=offer, actor=actor, now=now)
    return offer


def reopen(
    session: Session, *, place: Placement, referral: Referral, actor: Actor, now: dt.datetime
) -> list[Offer]:
    """A coordinator re-opens offers for an unplaced case, asking everyone capable again."""
    lock_case(session, referral)
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("only a coordinator may re-open offers", field="id")
    check_case_area(actor, referral.origin, "re-open")
    if referral.status is not ReferralStatus.UNPLACED:
        raise StateConflict(
            f"case {referral.code} is {referral.status.value}: only unplaced cases re-open",
            field="id",
        )
    _event(session, referral, "reopened", actor=actor, now=now)
    made = offer_next(
        session, place=place, referral=referral, actor=actor, now=now, include_tried=True
    )
    return made
