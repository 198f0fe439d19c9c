"""What people are told about a case, and in whose language: the clinic, the coordinators, the
receiving teams.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy.orm import (
    Session,
)

from alerts import messages, recipients
from alerts.outbox import queue_sms
from facilities.models import Facility, Team
from referral.models import (
    Offer,
    Referral,
)
from referral.rules import Rules

log = logging.getLogger(__name__)


def teams_for(referral: Referral) -> list[Team]:
    if referral.patient_kind == "newborn":
        return [Team.NEONATOLOGY]
    teams = [Team.OBSTETRICS]
    if referral.requirements.get("neonatal_level", "N0") not in ("N0", "N1"):
        teams.append(Team.NEONATOLOGY)
    caps = set(referral.requirements.get("capabilities", []))
    if referral.urgency == "critical":
        teams.append(Team.ANAESTHESIA)
    if caps & {"massive_transfusion", "blood_transfusion"} and referral.urgency == "critical":
        teams.append(Team.BLOOD_BANK)
    return teams


def condition_text(rules: Rules, referral: Referral, language: str) -> str:
    names = [
        rules.conditions[c].name[language]
        for c in referral.case.get("conditions", [])
        if c in rules.conditions
    ]
    if names:
        return "、".join(names) if language == "zh" else ", ".join(names)
    colour = referral.case.get("risk_colour") or ""
    return f"{colour} risk" if language == "en" else f"{colour}风险"


def local_name(facility: Facility, language: str) -> str:
    """The facility's name as a reader of ``language`` knows it."""
    return facility.name if language == "zh" else (facility.name_en or facility.name)


def _text_clinic(
    session: Session,
    referral: Referral,
    *,
    purpose: str,
    body: Callable[[str], str],
    now: dt.datetime,
) -> None:
    """Queue an SMS to the referring side in each recipient's language."""
    for phone, language in _clinic_recipients(session, referral):
        queue_sms(
            session,
            to=phone,
            purpose=purpose,
            subject=f"referral:{referral.id}",
            facility_id=referral.origin_facility_id,
            language=language,
            body=body(language),
            now=now,
        )


def _text_coordinators(
    session: Session,
    referral: Referral,
    *,
    purpose: str,
    body: Callable[[str], str],
    now: dt.datetime,
) -> list[recipients.Recipient]:
    """Queue an SMS to every coordinator covering the referring facility, in their language;
    returns them (the first one's number is the one the clinic is given)."""
    origin = referral.origin
    found = recipients.area_coordinators(session, origin)
    for recipient in found:
        queue_sms(
            session,
            to=recipient.phone,
            purpose=purpose,
            subject=f"referral:{referral.id}",
            facility_id=origin.id,
            language=recipient.language,
            body=body(recipient.language),
            now=now,
        )
    return found


def _clinic_recipients(session: Session, referral: Referral) -> list[tuple[str, str]]:
    """The referring side: the call-back phone, else the origin's obstetrics contacts."""
    if referral.callback_phone and referral.callback_phone != referral.origin.phone:
        return [(referral.callback_phone, "zh")]
    contacts = [
        c
        for c in referral.origin.contacts
        if c.active and c.team in (Team.OBSTETRICS, Team.NEONATOLOGY)
    ]
    if contacts:
        first = min(contacts, key=lambda c: c.priority)
        return [(first.phone, first.language)]
    return [(referral.origin.phone, "zh")] if referral.origin.phone else []


def _tell_clinic_accepted(
    session: Session, *, referral: Referral, offer: Offer, now: dt.datetime
) -> None:
    destination = offer.facility
    _text_clinic(
        session,
        referral,
        purpose="case_accepted",
        body=lambda language: messages.case_accepted(
            language,
            code=referral.code,
            destination=local_name(destination, language),
            eta_minutes=round(offer.eta_minutes or 0),
            destination_phone=destination.phone,
        ),
        now=now,
    )
