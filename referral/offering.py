"""Making an offer to one facility (pre-alert, escalation, expiry timer) and releasing offers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import (
    Session,
)

from alerts import escalation, messages, recipients, timers
from facilities.models import Contact, Facility, Team
from referral import links, voice
from referral.access import Actor
from referral.locking import _event, _swap_offer, case_subject, subject
from referral.models import (
    CaseLink,
    Offer,
    OfferStatus,
    Referral,
)
from referral.notices import condition_text, local_name, teams_for
from referral.placement import Placement
from referral.rules import Rules
from referral.triage import Case, Vitals, shock_from

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
    teams = teams_for(referral)

    def render(language: str, link: str = "") -> str:
        return _prealert(place, referral, offer, language=language, kind=kind, link=link)

    # Each contact the alert may reach gets a link of their own (bound to them and this offer);
    # the switchboard, and a contact added after this moment, get the text without one.
    personal: dict[int, str] = {}
    if place.public_base_url:
        for contact in _contacts(session, facility, teams):
            token = links.mint(session, offer=offer, contact=contact, now=now)
            language = "en" if contact.language == "en" else "zh"
            personal[contact.id] = render(language, links.url(place.public_base_url, token))
        session.flush()

    alert = escalation.open_alert(
        session,
        subject=subject(offer),
        code=referral.code,
        facility=facility,
        teams=teams,
        render=render,
        step_after=policy.escalate_after,
        now=now,
        case_subject=case_subject(referral),
        callback_phone=referral.callback_phone or referral.origin.phone,
        personal=personal,
    )
    voice.schedule(
        session,
        place=place,
        referral=referral,
        offer=offer,
        alert=alert,
        shock=shock_flags(place.rules, referral),
        now=now,
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


def _push_deadline(
    session: Session, offer: Offer, *, until: dt.datetime, own_timer: bool = False
) -> None:
    """Move the pending offer's deadline, its expiry timer and its unused links to ``until``
    (only ever later). ``own_timer``: called from the expiry timer itself, which is done once
    its handler returns, so a new one is armed instead of moving it."""
    if until <= offer.expires_at or not _swap_offer(session, offer, expires_at=until):
        return
    if own_timer:
        timers.schedule(
            session,
            kind=OFFER_EXPIRY,
            subject=subject(offer),
            due_at=until,
            payload={"offer_id": offer.id},
        )
    else:
        timers.postpone(session, subject=subject(offer), kinds=[OFFER_EXPIRY], until=until)
    for link in session.scalars(
        select(CaseLink).where(
            CaseLink.offer_id == offer.id, CaseLink.used_at.is_(None), CaseLink.revoked_at.is_(None)
        )
    ):
        link.expires_at = max(link.expires_at, min(until, link.created_at + links.MAX_LIFETIME))


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


def _contacts(session: Session, facility: Facility, teams: Sequence[Team]) -> list[Contact]:
    found = recipients.contacts_of(session, facility.id, [team.value for team in teams])
    return [contact for team_contacts in found.values() for contact in team_contacts]


def _prealert(
    place: Placement,
    referral: Referral,
    offer: Offer,
    *,
    language: str,
    kind: str | None,
    link: str,
) -> str:
    """The pre-alert of ``offer`` in ``language`` (docs/domain.md, "The pre-alert")."""
    case = referral.case
    zh = language == "zh"
    heading = ""
    if referral.outreach:
        heading += "【下沉会诊】" if zh else "OUTREACH "
    if kind == "safety_net":
        heading += "【兜底·不得以满床拒绝】" if zh else "SAFETY NET, FULL not accepted: "
    shock, bleeding_ml = shock_flags(place.rules, referral)
    return messages.prealert(
        language,
        code=referral.code,
        condition=heading + condition_text(place.rules, referral, language),
        colour=case.get("risk_colour") or "",
        origin=local_name(referral.origin, language),
        eta_minutes=round(offer.eta_minutes) if offer.eta_minutes is not None else None,
        eta_estimate=offer.estimate,
        callback_phone=callback_for_reading(referral.callback_phone),
        gestation_weeks=int(case["gestation_weeks"]) if case.get("gestation_weeks") else None,
        weight_g=int(case["birth_weight_g"]) if case.get("birth_weight_g") else None,
        shock=shock,
        massive_bleeding_ml=bleeding_ml,
        delivered=case.get("delivered") if referral.patient_kind == "mother" else None,
        answer_by=place.rules.clock_time(offer.expires_at),
        link=link,
    )


def callback_for_reading(phone: str) -> str:
    """The referring clinician's number as a pre-alert shows it: unbroken (E.164), because every
    phone turns an unbroken number into a call button and a pre-alert has no characters to spare;
    the pages group numbers for reading (:func:`core.phones.display`)."""
    return phone


def shock_flags(rules: Rules, referral: Referral) -> tuple[bool, int | None]:
    """(shock, massive blood loss in ml or None) for the pre-alert, as the clinical decision
    counted them: only when triage found the case in shock, and then by its own rule
    (:func:`referral.triage.shock_from`: the clinician's tick or the shock index; the estimated
    blood loss at the region's threshold), never by thresholds of our own."""
    if not referral.requirements.get("in_shock"):
        return False, None
    case = referral.case
    vitals = case.get("vitals") or {}
    shock = (
        shock_from(
            rules,
            Case(
                in_shock=bool(case.get("in_shock")),
                vitals=Vitals(hr=vitals.get("hr"), sbp=vitals.get("sbp")),
            ),
        )
        is not None
    )
    raw = case.get("blood_loss_ml")
    blood_loss = float(raw) if raw is not None else None
    massive = (
        blood_loss is not None and shock_from(rules, Case(blood_loss_ml=blood_loss)) is not None
    )
    if not (shock or massive):
        shock = True  # decided under other thresholds than today's: the decision stands
    return shock, round(blood_loss) if massive and blood_loss is not None else None
