"""When nobody is left to ask: the region's safety net, or the case is unplaced and people are
told (docs/domain.md, "The safety net").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import (
    Session,
)

import routing
from alerts import attention, escalation, messages
from alerts.outbox import queue_sms
from facilities import registry
from facilities.models import Team
from referral import decision
from referral.access import Actor
from referral.locking import StateConflict, _event, _swap_referral, case_subject, subject
from referral.models import (
    Offer,
    OfferStatus,
    Referral,
    ReferralStatus,
)
from referral.notices import (
    _clinic_recipients,
    condition_text,
    local_name,
    teams_for,
)
from referral.offering import _make_offer
from referral.placement import Placement, need_of

log = logging.getLogger(__name__)


def _partial_detail(partial: Sequence[routing.Partial]) -> list[dict[str, Any]]:
    return [
        {
            "facility": p.facility,
            "eta_minutes": round(p.eta_minutes, 1),
            "lacks": [r.text for r in p.lacks],
        }
        for p in partial
    ]


def _safety_net(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    now: dt.datetime,
    partial: Sequence[routing.Partial] = (),
) -> bool:
    """The region's safety net (兜底) for a case nobody will take; True when it acted.

    ``assign``: the designated centre receives the patient (an accepted offer of kind
    ``safety_net``), its teams, the clinic and the coordinators are told. ``offer``: a final offer
    to the centre that cannot be declined for FULL. A centre that already had its safety-net
    offer is not asked again: the case is then unplaced and a coordinator must act."""
    origin = referral.origin
    net = decision.safety_net_for(
        session,
        rules=place.rules,
        urgency=referral.urgency,
        patient=referral.patient_kind,
        need=need_of(referral),
        origin=origin,
    )
    if net is None:
        return False
    centre = registry.get_facility(session, net.facility)
    if any(o.facility_id == centre.id and o.kind == "safety_net" for o in referral.offers):
        return False
    asked = [o for o in referral.offers if o.kind != "safety_net"]
    why_en = "nobody accepted" if asked else "no hospital meets every need"
    why_zh = "无医院接收" if asked else "无医院满足全部需要"
    earlier = next((o for o in referral.offers if o.facility_id == centre.id), None)
    eta = earlier.eta_minutes if earlier is not None else net.eta_minutes
    lacks = [r.text for r in net.lacks]
    detail = {
        "facility": centre.code,
        "rule": net.rule,
        "why": why_en,
        "lacks": lacks,
        "partial": _partial_detail(partial),
    }
    if net.rule == "offer":
        offer = _make_offer(
            session,
            place=place,
            referral=referral,
            facility=centre,
            rank=None,
            eta_minutes=eta,
            distance_km=earlier.distance_km if earlier is not None else None,
            estimate=earlier.estimate if earlier is not None else eta is None,
            reasons=[f"safety net: {why_en}", *lacks],
            actor=Actor.system(),
            now=now,
            kind="safety_net",
        )
        if referral.status is not ReferralStatus.OFFERED:
            _swap_referral(
                session,
                referral,
                expected=[referral.status],
                status=ReferralStatus.OFFERED,
                updated_at=now,
            )
        _event(
            session,
            referral,
            "safety_net_offered",
            actor=Actor.system(),
            now=now,
            offer=offer,
            **detail,
        )
    else:
        offer = Offer(
            referral=referral,
            facility=centre,
            status=OfferStatus.ACCEPTED,
            kind="safety_net",
            rank=None,
            eta_minutes=eta,
            distance_km=earlier.distance_km if earlier is not None else None,
            estimate=earlier.estimate if earlier is not None else eta is None,
            reasons=[f"safety net: {why_en}", *lacks],
            offered_by="safety net",
            offered_at=now,
            expires_at=now,
            answered_at=now,
            answered_by="safety net rule",
            answer_channel="system",
        )
        session.add(offer)
        session.flush()
        if not _swap_referral(
            session,
            referral,
            expected=[ReferralStatus.REQUESTED, ReferralStatus.OFFERED, ReferralStatus.UNPLACED],
            status=ReferralStatus.ACCEPTED,
            accepted_offer_id=offer.id,
            destination_facility_id=centre.id,
            accepted_at=now,
            updated_at=now,
        ):
            raise StateConflict(f"case {referral.code} moved on meanwhile", field="id")
        _event(
            session,
            referral,
            "safety_net_assigned",
            actor=Actor.system(),
            now=now,
            offer=offer,
            **detail,
        )
        escalation.tell_teams(
            session,
            facility=centre,
            teams=[t.value for t in teams_for(referral)],
            render=lambda language: messages.safety_net_assigned(
                language,
                code=referral.code,
                condition=condition_text(place.rules, referral, language),
                origin=local_name(origin, language),
                eta_minutes=round(eta) if eta is not None else None,
                callback_phone=referral.callback_phone,
                why=why_zh if language == "zh" else why_en,
            ),
            purpose="safety_net_assigned",
            subject=subject(offer),
            now=now,
        )
        coordinator_phone = attention.first_coordinator_phone(session, origin)
        _text_clinic_at_once(
            session,
            referral,
            purpose="clinic_safety_net",
            body=lambda language: messages.clinic_safety_net(
                language,
                code=referral.code,
                centre=local_name(centre, language),
                eta_minutes=round(eta) if eta is not None else None,
                centre_phone=centre.phone,
                coordinator_phone=coordinator_phone,
            ),
            now=now,
        )
    attention.raise_item(
        session,
        subject=case_subject(referral),
        code=referral.code,
        reason="safety_net",
        area_of=origin,
        facility_id=centre.id,
        words=lambda language: messages.safety_net_words(
            language, centre=local_name(centre, language), rule=net.rule
        ),
        render=lambda language: messages.safety_net_to_coordinator(
            language,
            code=referral.code,
            condition=condition_text(place.rules, referral, language),
            origin=local_name(origin, language),
            centre=local_name(centre, language),
            rule=net.rule,
            clinic_phone=clinic_phone(referral),
        ),
        clinic_phone=clinic_phone(referral),
        purpose="coordinator_safety_net",
        now=now,
    )
    return True


def _mark_unplaced(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    now: dt.datetime,
    partial: Sequence[routing.Partial] = (),
) -> None:
    if not _swap_referral(
        session,
        referral,
        expected=[ReferralStatus.REQUESTED, ReferralStatus.OFFERED],
        status=ReferralStatus.UNPLACED,
        updated_at=now,
    ):
        return
    _event(
        session,
        referral,
        "unplaced",
        actor=Actor.system(),
        now=now,
        note="no capable facility left to ask: a coordinator must act"
        + ("; partial matches need a coordinator's confirmation" if partial else ""),
        partial=_partial_detail(partial),
    )
    origin = referral.origin
    asked = len({o.facility_id for o in referral.offers})
    attention.raise_item(
        session,
        subject=case_subject(referral),
        code=referral.code,
        reason="unplaced",
        area_of=origin,
        words=lambda language: messages.unplaced_words(language, asked=asked),
        render=lambda language: messages.coordinator_unplaced(
            language,
            code=referral.code,
            condition=condition_text(place.rules, referral, language),
            origin=local_name(origin, language),
            asked=asked,
            clinic_phone=clinic_phone(referral),
        ),
        clinic_phone=clinic_phone(referral),
        purpose="coordinator_unplaced",
        now=now,
    )
    # The clinic is told at once what happens next and whom to call, even when the
    # coordinators were told before (a re-opened case): the clinic waits for every answer.
    coordinator_phone = attention.first_coordinator_phone(session, origin)
    _text_clinic_at_once(
        session,
        referral,
        purpose="clinic_unplaced",
        body=lambda language: messages.clinic_unplaced(
            language, code=referral.code, coordinator_phone=coordinator_phone
        ),
        now=now,
    )


def clinic_phone(referral: Referral) -> str:
    """The number the clinic is called back on: the referring clinician's, else the clinic's."""
    return referral.callback_phone or referral.origin.phone


def _text_clinic_at_once(
    session: Session,
    referral: Referral,
    *,
    purpose: str,
    body: Callable[[str], str],
    now: dt.datetime,
) -> None:
    """The hard news reaches the referring side twice over: the clinician's call-back phone and
    the clinic's first obstetric (or neonatal) contact, each number once, in its language."""
    phones = dict(_clinic_recipients(session, referral))
    team = Team.NEONATOLOGY if referral.patient_kind == "newborn" else Team.OBSTETRICS
    contacts = sorted(
        (c for c in referral.origin.contacts if c.active and c.team in (team, Team.OBSTETRICS)),
        key=lambda c: (c.team != team, c.priority, c.id),
    )
    if contacts:
        phones.setdefault(contacts[0].phone, contacts[0].language)
    for phone, language in phones.items():
        queue_sms(
            session,
            to=phone,
            purpose=purpose,
            subject=case_subject(referral),
            facility_id=referral.origin_facility_id,
            language=language,
            body=body(language),
            now=now,
        )
