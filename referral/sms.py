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
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import messages
from alerts.handlers import Command, Handlers
from alerts.inbound import ReplyRejected
from alerts.models import Alert, Timer
from alerts.replies import OfferReply
from core.errors import ServiceError
from facilities.models import Contact, Facility, Role, Team, User
from referral import audit, commands, service
from referral.models import Offer, OfferStatus, Referral
from referral.rules import Rules
from referral.triage import Case, TriageError, Vitals

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
    channel = "voice" if reply.channel == "voice" else "sms"
    actor = service.Actor(
        name=f"{channel} contact {contact.id}", channel=channel, facility_id=contact.facility_id
    )
    language = _language(contact.language)
    try:
        if reply.accept:
            arguments: dict[str, Any] = {"offer": offer, "minutes": reply.minutes}
        else:
            reason = reply.reason.value if reply.reason else ""
            arguments = {"offer": offer, "reason": reason, "note": reply.note or channel.upper()}
        commands.act(
            session,
            "accept" if reply.accept else "decline",
            place=place,
            referral=referral,
            actor=actor,
            now=now,
            **arguments,
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
    try:
        case = parse_ref(place.rules, match.group(2) if match else "", now=now)
    except TriageError as exc:
        example = "REF PPH BP 80/50 HR 130 EBL 1500 / REF NB_ASPHYXIA BORN 2H / 转诊 产后出血"
        return f"{exc} 格式：{example}" if language == "zh" else f"{exc} Format: {example}"
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
    return _ref_answer(referral, language)


def _ref_answer(referral: Referral, language: str) -> str:
    """What the clinic reads back: where to go, who is asked, or what happens now."""
    zh = language == "zh"
    decided = referral.requirements.get("decision") or {}
    accepted = next((o for o in referral.offers if o.status is OfferStatus.ACCEPTED), None)
    if accepted is not None:  # the safety net assigned the designated centre
        name = (
            accepted.facility.name if zh else (accepted.facility.name_en or accepted.facility.name)
        )
        eta = "" if accepted.eta_minutes is None else f"{round(accepted.eta_minutes)}"
        if zh:
            return (
                f"病例{referral.code}：无医院满足全部需要，按兜底规则由指定中心{name}接收"
                f"{f'（约{eta}分钟）' if eta else ''}。请医生护送出发。"
            )
        return (
            f"Case {referral.code}: no hospital meets every need; under the safety net the "
            f"designated centre {name} receives her{f' (about {eta} min)' if eta else ''}. "
            "Leave with a doctor escort."
        )
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    if not pending:
        stabilise = decided.get("stabilise_at")
        where = f" {stabilise['name']}" if stabilise else ""
        return (
            f"病例{referral.code}：暂无医院满足全部需要，协调员已收到通知并将联系您。"
            + (f"可先到{where.strip()}稳定病情。" if where else "请就地稳定病情。")
            if zh
            else f"Case {referral.code}: no hospital meets every need; the coordinator has been "
            "told and will call you. "
            + (f"Stabilise at{where} meanwhile." if where else "Stabilise where you are.")
        )
    names = [
        f"{o.facility.name if zh else (o.facility.name_en or o.facility.name)}"
        f"({round(o.eta_minutes or 0)}{'分钟' if zh else ' min'})"
        for o in pending
    ]
    if referral.outreach:
        return (
            f"病例{referral.code}：不宜转运，已请{'、'.join(names)}派团队前来。请就地抢救。"
            if zh
            else f"Case {referral.code}: do not move her; asked {', '.join(names)} to send its "
            "team. Resuscitate where she is."
        )
    if zh:
        return (
            f"病例{referral.code}已发出：正在联系{'、'.join(names)}。"
            f"接收后将短信通知您。请勿自行出发。"
        )
    return (
        f"Case {referral.code} sent: asking {', '.join(names)}. "
        "You will get an SMS when one accepts. Do not leave yet."
    )


_GRAMS = re.compile(r"^(\d{3,4})(G|克)$")
_WEEKS = re.compile(r"^(\d{2}(?:\.\d)?)(W|周)$")
_SINCE = re.compile(r"^(\d{1,3})(H|M|小时|分钟|分)$")


def parse_ref(rules: Rules, text: str, *, now: dt.datetime) -> Case:
    """``REF <conditions> [flags]`` → a case. Flags: ``32W`` gestation, ``1400G`` weight (the
    newborn's, or the baby inside's estimate), ``SHOCK``, ``VENT``, ``STAY``/``MOVE``,
    ``DEL``/``UNDEL`` (delivered or not), ``BORN 2H``/``出生30分钟``, ``BP 80/50``, ``HR 130``,
    ``EBL 1500``/``出血1500``. At most 40 words are read."""
    words = [w for w in re.split(r"[\s,，、]+", text.strip()) if w][:40]
    gestation = grams = None
    flags: set[str] = set()
    numbers: dict[str, float] = {}
    delivered: bool | None = None
    born_at: dt.datetime | None = None
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        upper = word.upper()
        following = words[index + 1].upper() if index + 1 < len(words) else ""
        for prefix in ("出血", "心率", "出生"):
            if upper.startswith(prefix) and len(upper) > len(prefix):
                upper, following = prefix, upper[len(prefix) :]
                words.insert(index + 1, following)
                break
        if _WEEKS.match(upper):
            gestation = float(_WEEKS.match(upper).group(1))  # type: ignore[union-attr]
        elif _GRAMS.match(upper):
            grams = float(_GRAMS.match(upper).group(1))  # type: ignore[union-attr]
        elif upper in ("SHOCK", "休克"):
            flags.add("shock")
        elif upper in ("VENT", "上机", "插管"):
            flags.add("vent")
        elif upper in ("STAY", "DNM", "不宜转运"):
            flags.add("stay")
        elif upper in ("MOVE", "坚持转运"):
            flags.add("move")
        elif upper in ("DEL", "DELIVERED", "已分娩", "产后"):
            delivered = True
        elif upper in ("UNDEL", "UNDELIVERED", "未分娩", "产前"):
            delivered = False
        elif upper in ("BORN", "出生") and _SINCE.match(following):
            amount, unit = _SINCE.match(following).groups()  # type: ignore[union-attr]
            minutes = float(amount) * (60 if unit in ("H", "小时") else 1)
            born_at = now - dt.timedelta(minutes=minutes)
            index += 1
        elif upper == "BP" and re.fullmatch(r"\d{2,3}/\d{2,3}", following):
            sbp, dbp = following.split("/")
            numbers["sbp"], numbers["dbp"] = float(sbp), float(dbp)
            index += 1
        elif upper in ("HR", "心率", "EBL", "出血") and re.fullmatch(r"\d{1,5}", following):
            key = {"HR": "hr", "心率": "hr", "EBL": "ebl", "出血": "ebl"}[upper]
            numbers[key] = float(following)
            index += 1
        else:
            rest.append(word)
        index += 1
    codes, unknown = _conditions(rules, rest)
    codes = list(dict.fromkeys(codes))  # "REF PPH 产后出血" names one condition twice
    if unknown or not codes:
        what = "、".join(w[:20] for w in unknown[:3]) if unknown else ""
        raise TriageError(f"unknown condition {what}".strip(), field="conditions")
    newborn = any(rules.conditions[c].patient == "newborn" for c in codes)
    return Case(
        conditions=tuple(codes),
        gestation_weeks=gestation,
        birth_weight_g=grams if newborn else None,
        estimated_fetal_weight_g=None if newborn else grams,
        in_shock="shock" in flags,
        ventilated="vent" in flags,
        do_not_move=True if "stay" in flags else (False if "move" in flags else None),
        delivered=delivered,
        born_at=born_at,
        vitals=Vitals(hr=numbers.get("hr"), sbp=numbers.get("sbp"), dbp=numbers.get("dbp")),
        blood_loss_ml=numbers.get("ebl"),
    )


def handlers(place_factory: PlaceFactory) -> Handlers:
    """The referral's part of the handler table: the offer expiry timer, answers to
    pre-alerts, and ``REF`` from clinic phones. ``place_factory`` gives the rules and the
    current road network at each call (a re-imported network is picked up)."""

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

    return Handlers(
        timers={service.OFFER_EXPIRY: on_expiry},
        reply=on_reply,
        commands=(Command("REF", lambda body: bool(_REF.match(body)), on_ref),),
    )
