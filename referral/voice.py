"""The referral side of the call step (:mod:`alerts.calls`): what the call says about an offer,
when it is scheduled, and the call in the case's timeline.

The spoken pre-alert follows the SMS pre-alert's content rules (:func:`referral.offering.
_prealert`): code, condition, shock and massive bleeding as triage counted them, gestation or
weight, origin, ETA (marked when a straight-line guess), the time by which to answer; never a
name or an ID number (the case holds none it could say).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from alerts import calls
from alerts.models import Alert, VoiceCall
from alerts.voice_texts import prealert_speech
from core.vocabulary import LANGUAGES
from facilities.models import Contact
from referral.access import Actor
from referral.locking import _event
from referral.models import Offer, Referral
from referral.notices import condition_text, local_name
from referral.placement import Placement

#: The timeline's kinds for a call: it left for the provider; it is over (``outcome``).
CALL_PLACED = "call_placed"
CALL_ENDED = "call_ended"


def speech(
    place: Placement,
    referral: Referral,
    offer: Offer,
    language: str,
    *,
    shock: bool,
    bleeding_ml: int | None,
) -> str:
    """The spoken pre-alert of ``offer`` in ``language``; ``shock`` and ``bleeding_ml`` as the
    SMS pre-alert counts them (:func:`referral.offering.shock_flags`)."""
    case = referral.case
    return prealert_speech(
        language,
        code=referral.code,
        condition=condition_text(place.rules, referral, language),
        origin=local_name(referral.origin, language),
        eta_minutes=round(offer.eta_minutes) if offer.eta_minutes is not None else None,
        eta_estimate=offer.estimate,
        answer_by=place.rules.clock_time(offer.expires_at),
        gestation_weeks=int(case["gestation_weeks"]) if case.get("gestation_weeks") else None,
        weight_g=int(case["birth_weight_g"]) if case.get("birth_weight_g") else None,
        shock=shock,
        massive_bleeding_ml=bleeding_ml,
    )


def schedule(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    offer: Offer,
    alert: Alert,
    shock: tuple[bool, int | None],
    now: dt.datetime,
) -> None:
    """Schedule the call step of ``offer``'s alert when its urgency has one (rules file:
    ``urgency.<class>.voice_call``)."""
    after = place.rules.urgency[referral.urgency].call_after
    if after is None:
        return
    calls.schedule_call(
        session,
        alert=alert,
        after=after,
        speech={
            language: speech(place, referral, offer, language, shock=shock[0], bleeding_ml=shock[1])
            for language in LANGUAGES
        },
        now=now,
    )


def on_call(session: Session, *, alert: Alert, call: VoiceCall, now: dt.datetime) -> None:
    """The table's call handler: a placed or ended call in the case's timeline."""
    if not alert.subject.startswith("offer:"):
        return
    offer = session.get(Offer, int(alert.subject.split(":", 1)[1]))
    if offer is None:
        return
    contact = session.get(Contact, call.contact_id) if call.contact_id is not None else None
    placed = call.ended_at is None  # a callback may have moved it on to ringing already
    detail: dict[str, object] = {
        "facility": offer.facility.code,
        "team": contact.team.value if contact is not None else "",
        "call_id": call.id,
    }
    if not placed:
        detail.update(outcome=call.status.value, answer=call.answer)
        if call.error_code is not None:
            detail["error_code"] = call.error_code
    _event(
        session,
        offer.referral,
        CALL_PLACED if placed else CALL_ENDED,
        actor=Actor(name="system", channel="voice"),
        now=now,
        offer=offer,
        **detail,
    )
