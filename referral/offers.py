"""The offer state machine: offer to the next capable candidates, accept, decline, expire."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import (
    Session,
)

import routing
from alerts import escalation, timers
from alerts.models import Alert, OutboundMessage
from core.errors import ServiceError
from facilities.models import Facility
from referral import placement
from referral.access import Actor, _check_answerer
from referral.locking import (
    StateConflict,
    _event,
    _not_pending,
    _swap_offer,
    _swap_referral,
    lock_case,
    subject,
)
from referral.models import (
    DeclineReason,
    Offer,
    OfferStatus,
    Referral,
    ReferralStatus,
)
from referral.notices import _tell_clinic_accepted
from referral.offering import _make_offer, _push_deadline, _stop_all_alerts, _tried_facilities
from referral.placement import Placement
from referral.unplaced import _mark_unplaced, _safety_net

log = logging.getLogger(__name__)


def offer_next(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    actor: Actor,
    now: dt.datetime,
    include_tried: bool = False,
    ranking: routing.Ranking | None = None,
) -> list[Offer]:
    """Offer the case to the next candidates until the urgency's parallel count is pending.

    Only facilities that meet every requirement are offered. Nobody left → the region's safety
    net (:func:`_safety_net`), else the case is ``unplaced``: the area coordinators and the clinic
    are told, and the partial matches wait for a coordinator's confirmation (a redirect).
    ``ranking`` is the decision just made for a new case (not made again).
    """
    lock_case(session, referral)
    if referral.status not in (
        ReferralStatus.REQUESTED,
        ReferralStatus.OFFERED,
        ReferralStatus.UNPLACED,
    ):
        return []
    policy = place.rules.urgency[referral.urgency]
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    wanted = (1 if referral.outreach else policy.parallel_offers) - len(pending)
    made: list[Offer] = []
    ranking_partial: tuple[routing.Partial, ...] = ()
    if wanted > 0:
        skip = set() if include_tried else _tried_facilities(referral)
        skip |= {o.facility_id for o in pending}
        if ranking is None:
            ranking = placement.rank_referral(session, place=place, referral=referral, now=now)
        ranking_partial = ranking.partial
        codes = {
            f.code: f
            for f in session.scalars(
                select(Facility).where(Facility.code.in_([c.facility for c in ranking.candidates]))
            )
        }
        for index, candidate in enumerate(ranking.candidates):
            facility = codes[candidate.facility]
            if facility.id in skip or facility.id == referral.origin_facility_id:
                continue
            made.append(
                _make_offer(
                    session,
                    place=place,
                    referral=referral,
                    facility=facility,
                    rank=index + 1,
                    eta_minutes=candidate.eta_minutes,
                    distance_km=candidate.distance_km,
                    estimate=candidate.estimate,
                    reasons=[r.text for r in candidate.reasons],
                    actor=actor,
                    now=now,
                )
            )
            if len(made) >= wanted:
                break
    if made or pending:
        if referral.status is not ReferralStatus.OFFERED:
            _swap_referral(
                session,
                referral,
                expected=[referral.status],
                status=ReferralStatus.OFFERED,
                updated_at=now,
            )
        return made
    if _safety_net(session, place=place, referral=referral, now=now, partial=ranking_partial):
        return made
    _mark_unplaced(session, place=place, referral=referral, now=now, partial=ranking_partial)
    return made


def accept_offer(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    offer: Offer,
    actor: Actor,
    minutes: int | None = None,
    now: dt.datetime,
) -> Referral:
    """The hospital accepts: exactly one acceptance wins; every other offer is withdrawn."""
    lock_case(session, referral)
    _check_answerer(actor, offer)
    if offer.status is not OfferStatus.PENDING:
        raise _not_pending(offer)
    if not _swap_referral(
        session,
        referral,
        expected=[ReferralStatus.OFFERED, ReferralStatus.UNPLACED],
        status=ReferralStatus.ACCEPTED,
        accepted_offer_id=offer.id,
        destination_facility_id=offer.facility_id,
        accepted_at=now,
        first_answer_at=referral.first_answer_at or now,
        updated_at=now,
    ):
        raise StateConflict(
            f"case {referral.code} is already {referral.status.value}: nothing changed",
            field="offer_id",
        )
    if not _swap_offer(
        session,
        offer,
        status=OfferStatus.ACCEPTED,
        answered_at=now,
        answered_by=actor.name,
        answer_channel=actor.channel,
        answer_minutes=minutes,
    ):
        raise _not_pending(offer)  # rolls back the referral swap with the transaction
    if referral.first_answer_at is None:
        referral.first_answer_at = now
    _event(
        session,
        referral,
        "accepted",
        actor=actor,
        now=now,
        offer=offer,
        facility=offer.facility.code,
        minutes=minutes,
    )
    withdrawn: list[Offer] = []
    for other in referral.offers:
        if (
            other.id != offer.id
            and other.status is OfferStatus.PENDING
            and _swap_offer(session, other, status=OfferStatus.WITHDRAWN, answered_at=now)
        ):
            withdrawn.append(other)
            _event(
                session,
                referral,
                "withdrawn",
                actor=Actor.system(),
                now=now,
                offer=other,
                facility=other.facility.code,
                note="another hospital accepted",
            )
    _stop_all_alerts(session, referral, now=now, stand_down=withdrawn, reason="placed")
    _tell_clinic_accepted(session, referral=referral, offer=offer, now=now)
    return referral


def decline_offer(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    offer: Offer,
    actor: Actor,
    reason: str,
    note: str = "",
    now: dt.datetime,
) -> Referral:
    """The hospital declines with a reason (首诊负责制: refusal must be justified)."""
    lock_case(session, referral)
    _check_answerer(actor, offer)
    try:
        clean = DeclineReason(reason.strip().upper())
    except ValueError:
        raise ServiceError(
            f"reason: expected one of {', '.join(r.value for r in DeclineReason)}",
            field="reason",
        ) from None
    if clean is DeclineReason.OTHER and not note.strip():
        raise ServiceError("note: say why when the reason is OTHER", field="note")
    if offer.kind == "safety_net" and clean is DeclineReason.FULL:
        raise ServiceError(
            "reason: a safety-net offer to the designated centre cannot be declined for FULL "
            "(不得推诿拒诊); accept, or give another reason",
            field="reason",
        )
    if not _swap_offer(
        session,
        offer,
        status=OfferStatus.DECLINED,
        answered_at=now,
        answered_by=actor.name,
        answer_channel=actor.channel,
        decline_reason=clean,
        decline_note=note.strip()[:500],
    ):
        raise _not_pending(offer)
    if referral.first_answer_at is None:
        referral.first_answer_at = now
    escalation.close_alert(session, subject=subject(offer), now=now, reason="declined")
    timers.cancel(session, subject=subject(offer), now=now)
    _event(
        session,
        referral,
        "declined",
        actor=actor,
        now=now,
        offer=offer,
        facility=offer.facility.code,
        reason=clean.value,
        note=note.strip()[:500],
    )
    offer_next(session, place=place, referral=referral, actor=Actor.system(), now=now)
    return referral


def expire_offer(session: Session, *, place: Placement, offer_id: int, now: dt.datetime) -> None:
    """The answer timeout passed in silence: expire the offer and move on (a timer handler)."""
    offer = session.get(Offer, offer_id)
    if offer is None or offer.status is not OfferStatus.PENDING:
        return  # answered or withdrawn meanwhile: a stale timer is a no-op
    lock_case(session, offer.referral)
    if offer.status is not OfferStatus.PENDING or now < offer.expires_at:
        return
    alert = escalation.get_alert(session, subject=subject(offer))
    if alert is not None and escalation.not_left_yet(session, alert):
        # Its pre-alert has not reached the provider (the worker or the provider was down):
        # the hospital has not been asked, so its clock has not started. Give it the whole
        # timeout again; the pre-alert, when it leaves, restarts it from then
        # (:func:`restart_clock`). The coordinators are told the alerts are late.
        policy = place.rules.urgency[offer.referral.urgency]
        _push_deadline(session, offer, until=now + policy.answer_timeout, own_timer=True)
        escalation.report_late(session, alert, now=now)
        return
    if not _swap_offer(session, offer, status=OfferStatus.EXPIRED, answered_at=now):
        return
    referral = offer.referral
    escalation.close_alert(session, subject=subject(offer), now=now, reason="expired")
    _event(
        session,
        referral,
        "expired",
        actor=Actor.system(),
        now=now,
        offer=offer,
        facility=offer.facility.code,
    )
    offer_next(session, place=place, referral=referral, actor=Actor.system(), now=now)


def restart_clock(
    session: Session,
    *,
    place: Placement,
    alert: Alert,
    message: OutboundMessage,
    now: dt.datetime,
) -> None:
    """The table's ``late`` handler: a message of the offer's alert leaves late, so the
    hospital's answer clock starts now (never earlier than it stands), and the message shows
    the deadline it really has."""
    offer_id = alert.subject.removeprefix("offer:")
    offer = session.get(Offer, int(offer_id)) if offer_id.isdecimal() else None
    if offer is None or offer.status is not OfferStatus.PENDING:
        return
    lock_case(session, offer.referral)
    if offer.status is not OfferStatus.PENDING:
        return
    policy = place.rules.urgency[offer.referral.urgency]
    _push_deadline(session, offer, until=now + policy.answer_timeout)
    # The text was written with the deadline of the moment the offer was made.
    written = place.rules.clock_time(offer.offered_at + policy.answer_timeout)
    due = place.rules.clock_time(offer.expires_at)
    if written != due:
        message.body = message.body.replace(f"请{written}前回复", f"请{due}前回复").replace(
            f"Reply by {written}:", f"Reply by {due}:"
        )
