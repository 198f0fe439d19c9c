"""Creating a referral: idempotency, duplicate patients, triage and the first decision, first
offers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import (
    Session,
)
from sqlalchemy.orm.attributes import set_committed_value

from core.errors import Conflict
from facilities.models import Facility
from referral import decision, limits
from referral.access import Actor, check_origin_scope
from referral.locking import ReferralError, _event, _locked, _locking
from referral.models import (
    OPEN_STATUSES,
    Referral,
    ReferralStatus,
    conditions_key,
)
from referral.offers import offer_next
from referral.placement import Placement
from referral.triage import Case, need_as_dict, triage

log = logging.getLogger(__name__)


CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B: read over a phone


CODE_LENGTH = 4


def new_code(session: Session) -> str:
    for _ in range(50):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(Referral.id).where(Referral.open_code == code)) is None:
            return code
    raise ReferralError("could not find a free case code; too many open cases")


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
        risk_colour=case.risk_colour or "",
        conditions_key=conditions_key(case.conditions),
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
