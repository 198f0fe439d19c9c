"""Making an offer to one facility (pre-alert, escalation, expiry timer) and releasing offers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy.orm import (
    Session,
)

from alerts import escalation, messages, timers
from facilities.models import Facility
from referral.access import Actor
from referral.locking import _event, _swap_offer, case_subject, subject
from referral.models import (
    Offer,
    OfferStatus,
    Referral,
)
from referral.notices import condition_text, local_name, teams_for
from referral.placement import Placement

log = logging.getLogger(__name__)


OFFER_EXPIRY = "offer.expiry"


def _make_offer(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    facility: Facility,
    rank: int | None,
    eta_minutes: float | None,
    distance_km: float | None,
    estimate: bool,
    reasons: list[str],
    actor: Actor,
    now: dt.datetime,
    kind: str | None = None,
) -> Offer:
    policy = place.rules.urgency[referral.urgency]
    offer = Offer(
        referral=referral,
        facility=facility,
        status=OfferStatus.PENDING,
        kind=kind or ("outreach" if referral.outreach else "transfer"),
        rank=rank,
        eta_minutes=eta_minutes,
        distance_km=distance_km,
        estimate=estimate,
        reasons=reasons,
        offered_by=actor.name,
        offered_at=now,
        expires_at=now + policy.answer_timeout,
    )
    session.add(offer)
    session.flush()
    eta = round(offer.eta_minutes) if offer.eta_minutes is not None else 0
    case = referral.case
    origin = referral.origin

    def render(language: str) -> str:
        return messages.prealert(
            language,
            code=referral.code,
            condition=(
                ("【下沉会诊】" if language == "zh" else "OUTREACH ") if referral.outreach else ""
            )
            + (
                (
                    "【兜底·不得以满床拒绝】"
                    if language == "zh"
                    else "SAFETY NET, FULL not accepted: "
                )
                if kind == "safety_net"
                else ""
            )
            + condition_text(place.rules, referral, language),
            colour=case.get("risk_colour") or "",
            origin=local_name(origin, language),
            eta_minutes=eta,
            callback_phone=referral.callback_phone,
            gestation_weeks=int(case["gestation_weeks"]) if case.get("gestation_weeks") else None,
            weight_g=int(case["birth_weight_g"]) if case.get("birth_weight_g") else None,
        )

    escalation.open_alert(
        session,
        subject=subject(offer),
        code=referral.code,
        facility=facility,
        teams=teams_for(referral),
        render=render,
        step_after=policy.escalate_after,
        now=now,
        case_subject=case_subject(referral),
        callback_phone=referral.callback_phone or origin.phone,
    )
    timers.schedule(
        session,
        kind=OFFER_EXPIRY,
        subject=subject(offer),
        due_at=offer.expires_at,
        payload={"offer_id": offer.id},
    )
    if referral.first_alert_at is None:
        referral.first_alert_at = now
    _event(
        session,
        referral,
        "offered",
        actor=actor,
        now=now,
        offer=offer,
        facility=facility.code,
        rank=rank,
        eta_minutes=offer.eta_minutes,
        expires_at=offer.expires_at.isoformat(),
        offer_kind=offer.kind,
    )
    return offer


def _stop_all_alerts(
    session: Session,
    referral: Referral,
    *,
    now: dt.datetime,
    stand_down: Sequence[Offer] = (),
    reason: str = "placed",
) -> None:
    """Close every alert and timer of the case; tell the teams of ``stand_down`` offers, which
    were told a patient is coming, that she is not (messages not yet sent are simply dropped)."""
    for offer in referral.offers:
        escalation.close_alert(session, subject=subject(offer), now=now, reason="case settled")
        timers.cancel(session, subject=subject(offer), now=now)
    for offer in stand_down:
        escalation.stand_down(session, subject=subject(offer), reason=reason, now=now)


def _release_offers(session: Session, referral: Referral, *, now: dt.datetime) -> list[Offer]:
    """Withdraw the pending offers; return them with the accepted one (its team was expecting
    the patient too)."""
    released = []
    for offer in referral.offers:
        if offer.status is OfferStatus.PENDING:
            if _swap_offer(session, offer, status=OfferStatus.WITHDRAWN, answered_at=now):
                released.append(offer)
        elif offer.status is OfferStatus.ACCEPTED and offer.id == referral.accepted_offer_id:
            released.append(offer)
    return released


def _tried_facilities(referral: Referral) -> set[int]:
    return {offer.facility_id for offer in referral.offers}
