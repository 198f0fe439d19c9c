"""The referral's life (docs/domain.md): create, offer, answer, move on, travel, arrive, close.

Services are plain functions: they take a session and keyword arguments (``now`` included),
never commit, and raise :class:`ReferralError` subclasses. Every state change is a conditional
UPDATE on the current state, so two answers racing for the same case cannot both win.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event, select, update
from sqlalchemy.orm import (
    Session,
    SessionTransaction,
    joinedload,
    object_mapper,
    selectinload,
)
from sqlalchemy.orm.attributes import set_committed_value

import routing
from alerts import escalation, messages, recipients, timers
from alerts.outbox import queue_sms
from core.errors import Conflict, Forbidden, NotFoundError, ServiceError
from facilities import registry
from facilities.models import Facility, Role, Team
from facilities.registry import Placed, area_covers
from referral import decision, limits, placement
from referral.models import (
    OPEN_STATUSES,
    CancelReason,
    DeclineReason,
    Offer,
    OfferStatus,
    Referral,
    ReferralEvent,
    ReferralStatus,
)
from referral.rules import Rules
from referral.triage import Case, need_as_dict, triage

log = logging.getLogger(__name__)

OFFER_EXPIRY = "offer.expiry"
CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B: read over a phone
CODE_LENGTH = 4


class ReferralError(ServiceError):
    pass


class StateConflict(Conflict):
    code = "conflict"


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (web/API), a contact answering by SMS, or the system."""

    name: str
    channel: str
    role: Role | None = None
    user_id: int | None = None
    facility_id: int | None = None
    area: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system", channel="system")


@dataclass(frozen=True)
class Placement:
    """What a service needs besides the session: the rules and the router."""

    rules: Rules
    router: Any


# ---------------------------------------------------------------------------- helpers


def _event(
    session: Session,
    referral: Referral,
    kind: str,
    *,
    actor: Actor,
    now: dt.datetime,
    offer: Offer | None = None,
    **detail: Any,
) -> None:
    session.add(
        ReferralEvent(
            referral_id=referral.id,
            at=now,
            kind=kind,
            actor=actor.name,
            channel=actor.channel,
            offer_id=offer.id if offer else None,
            detail=detail,
        )
    )


def _swap_referral(
    session: Session, referral: Referral, *, expected: Sequence[ReferralStatus], **values: Any
) -> bool:
    """Move the referral only if it is still in one of the expected states (a CAS)."""
    return _swap(session, referral, Referral.status.in_(list(expected)), values)


def _swap_offer(session: Session, offer: Offer, **values: Any) -> bool:
    """Answer or withdraw the offer only if it is still pending (a CAS)."""
    return _swap(session, offer, Offer.status == OfferStatus.PENDING, values)


def _swap(session: Session, obj: Referral | Offer, condition: Any, values: dict[str, Any]) -> bool:
    """Write ``values`` to the object's row only while ``condition`` holds. On success the object
    takes the values without reading its row back (a relationship whose key changed is read
    again when next used); on failure it is refreshed to what the row holds instead."""
    model = type(obj)
    result = session.execute(
        update(model)
        .where(model.id == obj.id, condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(obj)
        return False
    for key, value in values.items():
        set_committed_value(obj, key, value)
    stale = [
        relationship.key
        for relationship in object_mapper(obj).relationships
        if any(column.key in values for column in relationship.local_columns)
    ]
    if stale:
        session.expire(obj, stale)
    return True


def new_code(session: Session) -> str:
    for _ in range(50):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(Referral.id).where(Referral.open_code == code)) is None:
            return code
    raise ReferralError("could not find a free case code; too many open cases")


def subject(offer: Offer) -> str:
    return f"offer:{offer.id}"


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


need_of = placement.need_of


def case_record(case: Case) -> dict[str, Any]:
    """The case as stored with the referral (times as ISO text, vitals given only)."""

    def when(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "conditions": list(case.conditions),
        "risk_colour": case.risk_colour,
        "purple": case.purple,
        "gestation_weeks": case.gestation_weeks,
        "birth_weight_g": case.birth_weight_g,
        "in_shock": case.in_shock,
        "ventilated": case.ventilated,
        "do_not_move": case.do_not_move,
        "delivered": case.delivered,
        "estimated_fetal_weight_g": case.estimated_fetal_weight_g,
        "onset_at": when(case.onset_at),
        "born_at": when(case.born_at),
        "placenta_delivered": case.placenta_delivered,
        "vitals": case.vitals.given(),
        "blood_loss_ml": case.blood_loss_ml,
        "treatments": list(case.treatments),
        "note": case.note,
    }


def _request_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def check_origin_scope(actor: Actor, origin: Facility) -> None:
    if actor.role is Role.ADMIN:
        return
    if actor.role is Role.COORDINATOR:
        if not area_covers(actor.area, origin):
            raise Forbidden(f"{origin.code} is outside your area", field="origin_facility")
        return
    if actor.role in (Role.CLINIC, Role.HOSPITAL) and actor.facility_id == origin.id:
        return
    raise Forbidden("you can refer only from your own facility", field="origin_facility")


# ---------------------------------------------------------------------------- creation


def create_referral(
    session: Session,
    *,
    place: Placement,
    actor: Actor,
    origin: Facility,
    case: Case,
    patient: dict[str, Any],
    callback_phone: str = "",
    idempotency_key: str | None = None,
    now: dt.datetime,
) -> tuple[Referral, bool]:
    """Create a referral and make its first offers. Returns ``(referral, created)``.

    A repeated ``idempotency_key`` from the same user returns the first referral unchanged
    (``created`` False); the same key with a different request is a conflict.
    """
    check_origin_scope(actor, origin)
    limits.check_conditions(case.conditions)  # before any work: triage loops over them
    request_hash = _request_hash({"origin": origin.code, "case": case.__dict__, "patient": patient})
    if idempotency_key:
        existing = session.scalar(
            select(Referral).where(
                Referral.created_by_id == actor.user_id,
                Referral.idempotency_key == idempotency_key,
            )
        )
        if existing is not None:
            if existing.patient.get("_request") != request_hash:
                raise Conflict(
                    "Idempotency-Key was already used for a different request",
                    field="Idempotency-Key",
                )
            return existing, False
    patient_ref = (patient.get("ref") or "").strip() or None
    if patient_ref:
        duplicate = session.scalar(
            select(Referral).where(
                Referral.origin_facility_id == origin.id,
                Referral.patient_ref == patient_ref,
                Referral.status.in_(OPEN_STATUSES),
            )
        )
        if duplicate is not None:
            raise Conflict(
                f"this patient already has open referral {duplicate.code} (id {duplicate.id})",
                field="patient.ref",
            )
    result = triage(place.rules, case, now=now)
    window = result.window
    code = new_code(session)
    referral = Referral(
        code=code,
        open_code=code,
        status=ReferralStatus.REQUESTED,
        urgency=result.urgency,
        patient_kind=result.patient,
        outreach=result.do_not_move,
        origin_facility_id=origin.id,
        origin_lat=origin.lat,
        origin_lon=origin.lon,
        created_by_id=actor.user_id,
        created_by=actor.name,
        created_channel=actor.channel,
        callback_phone=callback_phone or origin.phone,
        idempotency_key=idempotency_key,
        case=case_record(case),
        patient={**{k: v for k, v in patient.items() if k != "ref"}, "_request": request_hash},
        patient_ref=patient_ref,
        open_patient_ref=patient_ref,
        requirements={
            **need_as_dict(result.need),
            "stabilise": need_as_dict(result.stabilise),
            "in_shock": result.in_shock,
            "window": None
            if window is None
            else {
                "minutes": window.minutes,
                "from": window.start,
                "condition": window.condition,
                "closes_at": window.closes_at.isoformat(),
            },
        },
        reasons=result.reasons,
        window_minutes=result.window_minutes,
        created_at=now,
        updated_at=now,
    )
    origin_facility = origin
    first = decision.decide_for(
        session,
        rules=place.rules,
        router=place.router,
        origin=(origin.lat, origin.lon),
        result=result,
        now=now,
        origin_facility=origin,
    )
    referral.requirements = {**referral.requirements, "decision": first.record()}
    session.add(referral)
    session.flush()
    referral.origin = origin_facility
    set_committed_value(referral, "offers", [])  # a new case has none: no need to ask
    if _locking(session):
        _locked(session).add(referral.id)  # its new row is this transaction's alone until commit
    _event(
        session,
        referral,
        "created",
        actor=actor,
        now=now,
        urgency=result.urgency,
        requirements=referral.requirements,
        reasons=result.reasons,
        decision=first.kind,
    )
    offer_next(
        session,
        place=place,
        referral=referral,
        actor=Actor.system(),
        now=now,
        ranking=first.ranking,
    )
    return referral, True


# ---------------------------------------------------------------------------- offers


_LOCKED = "greenchannel.locked_cases"


def _locked(session: Session) -> set[int]:
    """The cases whose row lock this session's transaction holds (PostgreSQL)."""
    held: set[int] = session.info.setdefault(_LOCKED, set())
    return held


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction ended, and its row locks with it
        session.info.pop(_LOCKED, None)


def _locking(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_case(session: Session, referral: Referral) -> None:
    """Take the case's row lock before changing anything about it, then read it again.

    Every change of a case (an answer, an expiry, a move-on, a cancellation, a redirect, a
    journey step) starts here, so on PostgreSQL they queue one behind another in one order: the
    case first, then its offers, alerts and timers. Without one order an accept (which holds the
    case while it withdraws the other offers) and a decline (which holds its offer while it
    updates the case) each waited for the other's lock until PostgreSQL aborted one. Two
    movers (both parallel offers declined in the same instant, a decline and an expiry) also
    never pick from the same snapshot, so they never ask the same next hospital twice.
    ``FOR NO KEY UPDATE`` is the lock an UPDATE takes. Every write to an offer or a timeline
    row also updates the case row (its ``revision``, by trigger), so no code may write either
    without taking this lock first: it would take the case's lock after its offer's and could
    deadlock with a change that holds the case. A case locked (or created) earlier in the same
    transaction is not read again. SQLite writes one transaction at a time already."""
    if not _locking(session) or referral.id in _locked(session):
        return
    session.flush()
    _load_case(session, referral.id, lock=True)


def _load_case(session: Session, referral_id: int, *, lock: bool) -> Referral | None:
    """The case with its places and offers, as the database has them now; with ``lock``, under
    the case's row lock (taken by the same statement, before the offers are read)."""
    statement = (
        select(Referral)
        .where(Referral.id == referral_id)
        .options(
            joinedload(Referral.origin),
            joinedload(Referral.destination),
            selectinload(Referral.offers).joinedload(Offer.facility),
        )
        .execution_options(populate_existing=True)
    )
    lock = lock and _locking(session)
    if lock:
        statement = statement.with_for_update(key_share=True, of=Referral)
    referral = session.scalars(statement).unique().one_or_none()
    if referral is not None and lock:
        _locked(session).add(referral.id)
    return referral


def _tried_facilities(referral: Referral) -> set[int]:
    return {offer.facility_id for offer in referral.offers}


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
        _tell_clinic_accepted(session, referral=referral, offer=offer, now=now)
    _text_coordinators(
        session,
        referral,
        purpose="coordinator_safety_net",
        body=lambda language: messages.safety_net_to_coordinator(
            language,
            code=referral.code,
            condition=condition_text(place.rules, referral, language),
            origin=local_name(origin, language),
            centre=local_name(centre, language),
            rule=net.rule,
        ),
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
    coordinators = _text_coordinators(
        session,
        referral,
        purpose="coordinator_unplaced",
        body=lambda language: messages.coordinator_unplaced(
            language,
            code=referral.code,
            condition=condition_text(place.rules, referral, language),
            origin=local_name(origin, language),
        ),
        now=now,
    )
    phone = coordinators[0].phone if coordinators else ""
    _text_clinic(
        session,
        referral,
        purpose="clinic_unplaced",
        body=lambda language: messages.clinic_unplaced(
            language, code=referral.code, coordinator_phone=phone
        ),
        now=now,
    )


def get_offer(session: Session, referral: Referral, offer_id: int) -> Offer:
    offer = session.get(Offer, offer_id)
    if offer is None or offer.referral_id != referral.id:
        raise NotFoundError(f"referral {referral.id} has no offer {offer_id}", field="offer_id")
    return offer


def _check_answerer(actor: Actor, offer: Offer) -> None:
    if actor.channel == "sms" or actor.role is Role.ADMIN:
        return  # SMS answers are matched to the hospital's registered contacts by alerts
    if actor.role is Role.COORDINATOR:
        if not area_covers(actor.area, offer.facility):
            raise Forbidden("the offered hospital is outside your area", field="offer_id")
        return
    if actor.role is Role.HOSPITAL and actor.facility_id == offer.facility_id:
        return
    raise Forbidden("only the offered hospital or a coordinator may answer", field="offer_id")


def _not_pending(offer: Offer) -> StateConflict:
    return StateConflict(
        f"offer {offer.id} is {offer.status.value}, no longer pending: nothing changed",
        field="offer_id",
    )


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


# ---------------------------------------------------------------------------- journey


def _check_role(actor: Actor, allowed: set[Role], facility_id: int | None, what: str) -> None:
    if actor.role is Role.ADMIN or actor.channel == "system":
        return
    if actor.role is Role.COORDINATOR and Role.COORDINATOR in allowed:
        return
    if actor.role in allowed and actor.facility_id == facility_id:
        return
    raise Forbidden(f"you may not {what} this case", field="id")


def depart(session: Session, *, referral: Referral, actor: Actor, now: dt.datetime) -> Referral:
    """The referring clinic says the patient has left, escorted, for the accepted destination."""
    lock_case(session, referral)
    _check_role(
        actor,
        {Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR},
        referral.origin_facility_id,
        "mark the departure of",
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
        actor, {Role.HOSPITAL, Role.COORDINATOR}, referral.destination_facility_id, "complete"
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
        actor, {Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR}, referral.origin_facility_id, "cancel"
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


def redirect(
    session: Session,
    *,
    place: Placement,
    referral: Referral,
    actor: Actor,
    facility: Facility,
    reason: str,
    now: dt.datetime,
) -> Offer:
    """A coordinator sends the case to a facility of their choice (the reason is recorded).

    Pending offers are withdrawn; an accepted destination is released. If the chosen facility
    lacks a requirement, the timeline says so: the coordinator decides, the record shows it.
    """
    lock_case(session, referral)
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("only a coordinator may redirect a case", field="facility")
    if not reason.strip():
        raise ServiceError("reason: say why the case is redirected", field="reason")
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
    )
    return _make_offer(
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


def reopen(
    session: Session, *, place: Placement, referral: Referral, actor: Actor, now: dt.datetime
) -> list[Offer]:
    """A coordinator re-opens offers for an unplaced case, asking everyone capable again."""
    lock_case(session, referral)
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("only a coordinator may re-open offers", field="id")
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


# ---------------------------------------------------------------------------- reading


class Milestones(Protocol):
    """The times of a case's milestones (a Referral, or a row of one)."""

    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def first_alert_at(self) -> dt.datetime | None: ...
    @property
    def first_answer_at(self) -> dt.datetime | None: ...
    @property
    def accepted_at(self) -> dt.datetime | None: ...
    @property
    def departed_at(self) -> dt.datetime | None: ...
    @property
    def arrived_at(self) -> dt.datetime | None: ...
    @property
    def completed_at(self) -> dt.datetime | None: ...


def intervals(referral: Milestones) -> dict[str, float | None]:
    """The report card of docs/domain.md, in minutes (None while a milestone is missing)."""

    def minutes(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return round((end - start).total_seconds() / 60, 2)

    return {
        "decision_to_first_alert": minutes(referral.created_at, referral.first_alert_at),
        "decision_to_first_answer": minutes(referral.created_at, referral.first_answer_at),
        "decision_to_accepted": minutes(referral.created_at, referral.accepted_at),
        "accepted_to_departed": minutes(referral.accepted_at, referral.departed_at),
        "departed_to_arrived": minutes(referral.departed_at, referral.arrived_at),
        "decision_to_arrived": minutes(referral.created_at, referral.arrived_at),
        "arrived_to_completed": minutes(referral.arrived_at, referral.completed_at),
    }


def get_referral(session: Session, referral_id: int, *, lock: bool = False) -> Referral:
    """The case; with ``lock``, read under its row lock (see :func:`lock_case`) for a change."""
    referral = (
        _load_case(session, referral_id, lock=True) if lock else session.get(Referral, referral_id)
    )
    if referral is None:
        raise NotFoundError(f"no referral {referral_id}", field="id")
    return referral


class FacilityRef(Placed, Protocol):
    """A facility as far as seeing a case goes: its id and its place (a Facility or a row)."""

    @property
    def id(self) -> int: ...


def can_see(
    actor: Actor,
    *,
    origin: FacilityRef,
    destination: FacilityRef | None,
    offered: Sequence[FacilityRef],
) -> bool:
    """Who may see a case: admins; coordinators whose area holds the origin, the destination or
    an offered hospital; the referring facility's users; the offered hospitals' users."""
    if actor.role is Role.ADMIN:
        return True
    if actor.role is Role.COORDINATOR:
        return (
            area_covers(actor.area, origin)
            or (destination is not None and area_covers(actor.area, destination))
            or any(area_covers(actor.area, facility) for facility in offered)
        )
    if actor.facility_id == origin.id:
        return True
    return any(facility.id == actor.facility_id for facility in offered)


def can_view(actor: Actor, referral: Referral) -> bool:
    return can_see(
        actor,
        origin=referral.origin,
        destination=referral.destination,
        offered=[offer.facility for offer in referral.offers],
    )
