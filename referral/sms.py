"""The referral side of the SMS conversation, plugged into ``alerts`` through its callbacks.

``alerts`` parses a hospital's ``<code> Y`` / ``<code> N FULL`` and matches it to an open alert;
the handler here turns it into an accept or a decline. ``REF PPH`` from a registered clinic phone
starts a referral for clinics without a data connection. Timers of kind ``offer.expiry`` expire
silent offers. Everything is registered once per process by :func:`register`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import inbound, messages, timers
from alerts.inbound import ReplyRejected
from alerts.models import Alert, Timer
from alerts.replies import OfferReply
from facilities.models import Contact, Facility, Role, Team, User
from referral import audit, service
from referral.errors import ServiceError
from referral.models import Offer, OfferStatus
from referral.rules import Rules
from referral.triage import Case, TriageError

PlaceFactory = Callable[[], service.Placement]

_REF = re.compile(r"^\s*(REF|转诊)\b\s*(.*)$", re.IGNORECASE | re.DOTALL)


def _language(contact_language: str | None) -> str:
    return "en" if contact_language == "en" else "zh"


def handle_offer_reply(
    session: Session,
    *,
    alert: Alert,
    contact: Contact,
    reply: OfferReply,
    now: dt.datetime,
    place: service.Placement,
) -> str:
    if not alert.subject.startswith("offer:"):
        raise ReplyRejected("this alert does not take answers")
    offer = session.get(Offer, int(alert.subject.split(":", 1)[1]))
    if offer is None:
        raise ReplyRejected("this case is no longer open")
    referral = offer.referral
    actor = service.Actor(
        name=f"sms contact {contact.id}", channel="sms", facility_id=contact.facility_id
    )
    language = _language(contact.language)
    try:
        if reply.accept:
            service.accept_offer(
                session,
                place=place,
                referral=referral,
                offer=offer,
                actor=actor,
                minutes=reply.minutes,
                now=now,
            )
        else:
            reason = reply.reason.value if reply.reason else ""
            service.decline_offer(
                session,
                place=place,
                referral=referral,
                offer=offer,
                actor=actor,
                reason=reason,
                note=reply.note or "SMS",
                now=now,
            )
        audit.by(
            session,
            actor,
            action="accept" if reply.accept else "decline",
            referral_id=referral.id,
            now=now,
        )
    except ServiceError as exc:
        if offer.status is not OfferStatus.PENDING or isinstance(exc, service.StateConflict):
            raise ReplyRejected(messages.not_open(language, code=referral.code)) from None
        raise ReplyRejected(str(exc)) from None
    return messages.reply_confirmation(
        language,
        code=referral.code,
        accepted=reply.accept,
        minutes=reply.minutes,
        reason=reply.reason.value if reply.reason else None,
    )


def _conditions(rules: Rules, words: list[str]) -> tuple[list[str], list[str]]:
    by_name: dict[str, str] = {}
    for key, condition in rules.conditions.items():
        by_name[key] = key
        by_name[condition.name["zh"]] = key
        by_name[condition.name["en"].upper()] = key
    found: list[str] = []
    unknown: list[str] = []
    for word in words:
        code: str | None = by_name.get(word.upper()) or by_name.get(word)
        if code is None:
            # Chinese names may carry a parenthesised detail: match on the leading part.
            code = next(
                (c for name, c in by_name.items() if len(word) >= 2 and name.startswith(word)), None
            )
        if code is None:
            unknown.append(word)
        else:
            found.append(code)
    return found, unknown


def handle_ref_command(
    session: Session,
    *,
    from_phone: str,
    body: str,
    now: dt.datetime,
    place: service.Placement,
) -> str:
    """``REF PPH [32W] [1500G] [SHOCK] [VENT] [STAY]`` from a clinic phone starts a referral."""
    user = session.scalar(select(User).where(User.phone == from_phone, User.active.is_(True)))
    contact = session.scalar(
        select(Contact).where(
            Contact.phone == from_phone,
            Contact.active.is_(True),
            Contact.team.in_([Team.OBSTETRICS, Team.NEONATOLOGY]),
        )
    )
    facility: Facility | None = None
    language = "zh"
    if user is not None and user.role in (Role.CLINIC, Role.HOSPITAL):
        facility = user.facility
        language = user.language
        actor = service.Actor(
            name=user.username,
            channel="sms",
            role=user.role,
            user_id=user.id,
            facility_id=user.facility_id,
        )
    elif contact is not None:
        facility = contact.facility
        language = _language(contact.language)
        actor = service.Actor(
            name=f"sms contact {contact.id}",
            channel="sms",
            role=Role.CLINIC,
            facility_id=contact.facility_id,
        )
    if facility is None:
        return (
            "此号码未登记为转诊机构，无法发起转诊。"
            if language == "zh"
            else "This number is not registered to a referring facility."
        )
    match = _REF.match(body)
    words = re.split(r"[\s,，、]+", match.group(2).strip()) if match else []
    words = [w for w in words if w]
    gestation = weight = None
    flags = set()
    rest = []
    for word in words:
        upper = word.upper()
        if re.fullmatch(r"\d{2}(\.\d)?(W|周)", upper):
            gestation = float(upper[:-1])
        elif re.fullmatch(r"\d{3,4}(G|克)", upper):
            weight = float(upper[:-1])
        elif upper in ("SHOCK", "休克"):
            flags.add("shock")
        elif upper in ("VENT", "上机", "插管"):
            flags.add("vent")
        elif upper in ("STAY", "DNM", "不宜转运"):
            flags.add("stay")
        else:
            rest.append(word)
    codes, unknown = _conditions(place.rules, rest)
    codes = list(dict.fromkeys(codes))  # "REF PPH 产后出血" names one condition twice
    if unknown or not codes:
        example = "REF PPH / REF NB_ASPHYXIA / 转诊 产后出血"
        what = "、".join(unknown) if unknown else ""
        return (
            f"无法识别病情{what}。格式：{example}"
            if language == "zh"
            else f"Unknown condition {what}. Format: {example}"
        )
    case = Case(
        conditions=tuple(codes),
        gestation_weeks=gestation,
        birth_weight_g=weight,
        in_shock="shock" in flags,
        ventilated="vent" in flags,
        do_not_move="stay" in flags,
    )
    try:
        referral, _ = service.create_referral(
            session,
            place=place,
            actor=actor,
            origin=facility,
            case=case,
            patient={},
            callback_phone=from_phone,
            now=now,
        )
    except (ServiceError, TriageError) as exc:
        return str(exc)
    audit.by(session, actor, action="create", referral_id=referral.id, now=now)
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    if not pending:
        return (
            f"病例{referral.code}：暂无可接收医院，协调员已收到通知。"
            if language == "zh"
            else f"Case {referral.code}: no hospital available; the coordinator has been told."
        )
    names = [
        f"{o.facility.name if language == 'zh' else (o.facility.name_en or o.facility.name)}"
        f"({round(o.eta_minutes or 0)}{'分钟' if language == 'zh' else ' min'})"
        for o in pending
    ]
    if language == "zh":
        return (
            f"病例{referral.code}已发出：正在联系{'、'.join(names)}。"
            f"接收后将短信通知您。请勿自行出发。"
        )
    return (
        f"Case {referral.code} sent: asking {', '.join(names)}. "
        "You will get an SMS when one accepts. Do not leave yet."
    )


def register(place_factory: PlaceFactory) -> None:
    """Plug the referral handlers into ``alerts`` (once per process)."""

    def on_reply(
        session: Session, *, alert: Alert, contact: Contact, reply: OfferReply, now: dt.datetime
    ) -> str:
        return handle_offer_reply(
            session, alert=alert, contact=contact, reply=reply, now=now, place=place_factory()
        )

    def on_ref(session: Session, *, from_phone: str, body: str, now: dt.datetime) -> str:
        return handle_ref_command(
            session, from_phone=from_phone, body=body, now=now, place=place_factory()
        )

    def on_expiry(session: Session, timer: Timer, now: dt.datetime) -> None:
        service.expire_offer(
            session, place=place_factory(), offer_id=int(timer.payload["offer_id"]), now=now
        )

    inbound.register_reply_handler(on_reply)
    inbound.register_command_handler(lambda body: bool(_REF.match(body)), on_ref)
    timers.register_handler(service.OFFER_EXPIRY, on_expiry)
