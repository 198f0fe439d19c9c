"""Referrals over HTTP: thin handlers that parse, call the referral service, commit, serialise."""

from __future__ import annotations

from typing import Any, TypeVarTuple

from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy.exc import IntegrityError

from core.errors import Forbidden, NotFoundError
from facilities import registry
from facilities.models import Role, User
from greenchannel.web import case_history, clock, observability, responses
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.auth import channel, require_user
from greenchannel.web.context import current_placement, current_rules
from greenchannel.web.db import db
from greenchannel.web.schemas import E164
from referral import audit, commands, documents, history, limits, service, triage
from referral.models import Offer, Referral
from referral.triage import Case, Vitals

Columns = TypeVarTuple("Columns")

blp = Blueprint(
    "referrals",
    __name__,
    url_prefix="/api/v1/referrals",
    description="Referrals: the case, its offers to hospitals and its timeline",
)


def _range(bounds: tuple[float, float]) -> validate.Range:
    return validate.Range(bounds[0], bounds[1])


class VitalsSchema(Schema):
    sbp = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["sbp"]))
    dbp = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["dbp"]))
    hr = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["hr"]))
    spo2 = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["spo2"]))
    rr = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["rr"]))
    temp_c = fields.Float(allow_none=True, validate=_range(triage.VITAL_RANGES["temp_c"]))
    avpu = fields.String(allow_none=True, validate=validate.OneOf(triage.AVPU))


def distinct_codes(codes: list[str]) -> None:
    """Each condition once (compared as the service reads them: trimmed, upper case)."""
    if len(codes) > limits.MAX_CONDITIONS:
        return  # the length check says so; no list of thousands of repeats in the answer
    repeated = limits.duplicates([code.strip().upper() for code in codes])
    if repeated:
        raise ValidationError(f"{', '.join(repeated)} given more than once")


class CaseSchema(Schema):
    conditions = fields.List(
        fields.String(validate=validate.Length(1, limits.CONDITION_CODE_LENGTH)),
        load_default=list,
        validate=[validate.Length(max=limits.MAX_CONDITIONS), distinct_codes],
        metadata={
            "description": "condition codes from the region rules, e.g. PPH, NB_ASPHYXIA; "
            f"at most {limits.MAX_CONDITIONS}, each once"
        },
    )
    risk_colour = fields.String(
        allow_none=True,
        validate=validate.OneOf(["green", "yellow", "orange", "red", "purple"]),
        metadata={"description": "five-colour pregnancy risk (the mother)"},
    )
    purple = fields.Boolean(
        load_default=False, metadata={"description": "infectious (purple) besides the colour"}
    )
    gestation_weeks = fields.Float(
        allow_none=True, validate=_range(triage.GESTATION_WEEKS), metadata={"description": "weeks"}
    )
    birth_weight_g = fields.Float(allow_none=True, validate=_range(triage.BIRTH_WEIGHT_G))
    in_shock = fields.Boolean(load_default=False)
    ventilated = fields.Boolean(load_default=False)
    do_not_move = fields.Boolean(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "true: too ill to move, ask the team to come; false: move her even "
            "where the rules say not to (maternal collapse); absent: the rules decide"
        },
    )
    delivered = fields.Boolean(
        allow_none=True,
        metadata={"description": "has the mother delivered? absent: unknown, read as not yet"},
    )
    estimated_fetal_weight_g = fields.Float(allow_none=True, validate=_range(triage.FETAL_WEIGHT_G))
    onset_at = fields.AwareDateTime(allow_none=True, metadata={"description": "time of onset"})
    born_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "time of birth (newborns, delivered mothers)"}
    )
    placenta_delivered = fields.Boolean(allow_none=True)
    vitals = fields.Nested(VitalsSchema, load_default=dict)
    blood_loss_ml = fields.Float(allow_none=True, validate=_range(triage.BLOOD_LOSS_ML))
    treatments = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=list,
        validate=validate.Length(max=triage.MAX_TREATMENTS),
        metadata={"description": "codes from the rules' treatments, e.g. oxytocin"},
    )
    note = fields.String(load_default="", validate=validate.Length(max=triage.NOTE_LENGTH))


class PatientSchema(Schema):
    ref = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "the clinic's own register number; no name or ID number"},
    )
    age_years = fields.Integer(validate=validate.Range(0, 70), allow_none=True)
    sex = fields.String(validate=validate.OneOf(["female", "male", "unknown"]))


class ReferralInSchema(Schema):
    origin_facility = fields.String(
        required=True, validate=validate.Length(1, limits.FACILITY_CODE_LENGTH)
    )
    case = fields.Nested(CaseSchema, required=True)
    patient = fields.Nested(PatientSchema, load_default=dict)
    callback_phone = fields.String(validate=validate.Regexp(E164))


class OfferOutSchema(Schema):
    id = fields.Integer(required=True)
    facility = fields.String(required=True)
    facility_name = fields.String()
    status = fields.String(required=True)
    kind = fields.String()
    rank = fields.Integer(allow_none=True)
    eta_minutes = fields.Float(allow_none=True)
    distance_km = fields.Float(allow_none=True)
    estimate = fields.Boolean()
    reasons = fields.List(fields.String())
    offered_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime()
    answered_at = fields.AwareDateTime(allow_none=True)
    answered_by = fields.String()
    answer_minutes = fields.Integer(allow_none=True)
    decline_reason = fields.String(allow_none=True)
    decline_note = fields.String()


class EventOutSchema(Schema):
    at = fields.AwareDateTime(required=True)
    kind = fields.String(required=True)
    actor = fields.String(required=True)
    channel = fields.String(required=True)
    offer_id = fields.Integer(allow_none=True)
    detail = fields.Dict()


class ReferralOutSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    status = fields.String(required=True)
    urgency = fields.String(required=True)
    patient_kind = fields.String()
    outreach = fields.Boolean()
    origin_facility = fields.String(required=True)
    origin_name = fields.String()
    destination = fields.String(allow_none=True)
    destination_name = fields.String(allow_none=True)
    case = fields.Dict()
    requirements = fields.Dict(required=True)
    reasons = fields.List(fields.String())
    advice = fields.Dict(metadata={"description": "stabilisation advice by language"})
    window_minutes = fields.Integer(allow_none=True)
    offers = fields.List(fields.Nested(OfferOutSchema), required=True)
    timeline = fields.List(fields.Nested(EventOutSchema), required=True)
    intervals = fields.Dict()
    created_at = fields.AwareDateTime()
    accepted_at = fields.AwareDateTime(allow_none=True)
    departed_at = fields.AwareDateTime(allow_none=True)
    arrived_at = fields.AwareDateTime(allow_none=True)
    completed_at = fields.AwareDateTime(allow_none=True)
    outcome = fields.String()
    cancel_reason = fields.String()


class ReferralListSchema(Schema):
    referrals = fields.List(fields.Nested(ReferralOutSchema), required=True)
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "the next page's `cursor`; null: the last page"}
    )


class AcceptSchema(Schema):
    eta_minutes = fields.Integer(
        allow_none=True,
        validate=validate.Range(0, 24 * 60),
        metadata={"description": "minutes until the team is ready"},
    )


class DeclineSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.OneOf(["FULL", "THEATRE", "BLOOD", "STAFF", "NICU", "OTHER"]),
    )
    note = fields.String(load_default="", validate=validate.Length(max=500))


class CompleteSchema(Schema):
    outcome = fields.String(required=True, validate=validate.Length(1, 2000))


class CancelSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            ["stabilised", "outreach", "died", "family_refused", "duplicate", "other"]
        ),
    )
    note = fields.String(load_default="", validate=validate.Length(max=2000))


class RedirectSchema(Schema):
    facility = fields.String(
        required=True, validate=validate.Length(1, limits.FACILITY_CODE_LENGTH)
    )
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class EmptySchema(Schema):
    pass


def actor_for(user: User) -> service.Actor:
    return service.Actor(
        name=user.username,
        channel=channel(),
        role=user.role,
        user_id=user.id,
        facility_id=user.facility_id,
        area=user.area,
    )


def audited(action: str, actor: service.Actor, referral_id: int | None, **detail: Any) -> None:
    """One audit row in this request's transaction (who, when, what, which case); the web
    pages use it too."""
    audit.by(
        db.session,
        actor,
        action=action,
        referral_id=referral_id,
        request_id=observability.request_id(),
        now=clock.now(),
        **detail,
    )


def create_committed(arguments: dict[str, Any]) -> tuple[Referral, bool]:
    """``service.create_referral(**arguments)``, audited and committed (the API and the web
    form both start cases here). Returns ``(referral, created)``."""
    try:
        return _create_and_commit(arguments)
    except IntegrityError:
        # Two requests raced: the same Idempotency-Key (the other one won: answer with its
        # result) or, very rarely, the same new case code (try again with a fresh one).
        db.session.rollback()
        return _create_and_commit(arguments)


def _create_and_commit(arguments: dict[str, Any]) -> tuple[Referral, bool]:
    referral, created = service.create_referral(db.session, **arguments)
    audited("create" if created else "create_repeat", arguments["actor"], referral.id)
    db.session.commit()
    return referral, created


def answer(referral_id: int, status: int = 200) -> Response:
    """The case's document (read after the change committed), as the JSON answer."""
    (case,) = documents.load(db.session, [referral_id])
    return responses.json_response(documents.document(case, current_rules()), status)


def load_visible(referral_id: int, actor: service.Actor, *, lock: bool = False) -> Referral:
    """The case if ``actor`` may see it (404 otherwise, as if it did not exist); with ``lock``,
    read under its row lock, as every change of a case starts."""
    referral = service.get_referral(db.session, referral_id, lock=lock)
    if not service.can_view(actor, referral):
        raise NotFoundError(f"no referral {referral_id}", field="id")
    return referral


def case_from(body: dict[str, Any]) -> Case:
    vitals = body.get("vitals") or {}
    return Case(
        conditions=tuple(c.strip().upper() for c in body.get("conditions", [])),
        risk_colour=body.get("risk_colour"),
        purple=body.get("purple", False),
        gestation_weeks=body.get("gestation_weeks"),
        birth_weight_g=body.get("birth_weight_g"),
        in_shock=body.get("in_shock", False),
        ventilated=body.get("ventilated", False),
        do_not_move=body.get("do_not_move"),
        delivered=body.get("delivered"),
        estimated_fetal_weight_g=body.get("estimated_fetal_weight_g"),
        onset_at=body.get("onset_at"),
        born_at=body.get("born_at"),
        placenta_delivered=body.get("placenta_delivered"),
        vitals=Vitals(**{k: vitals.get(k) for k in Vitals.__dataclass_fields__}),
        blood_loss_ml=body.get("blood_loss_ml"),
        treatments=tuple(body.get("treatments", [])),
        note=body.get("note", ""),
    )


@blp.route("")
class Referrals(MethodView):
    @blp.arguments(case_history.HistoryQuerySchema, location="query")
    @blp.response(200, ReferralListSchema)
    @blp.doc(responses=case_history.EXPORT_RESPONSES)
    def get(self, query: dict[str, Any]) -> Response:
        """The cases this user may see, filtered, newest first, a page at a time.

        Follow `next_cursor` for the next page. `status=active` for every open case.
        `format=csv` or `xlsx` downloads every matching case instead (docs/reports.md).
        """
        user = require_user()
        actor = actor_for(user)
        filters = case_history.filters_from(query)
        fmt = case_history.check_format(query.get("format"))
        sort = history.parse_sort(query.get("sort"))
        if fmt != "json":
            lines, truncated = case_history.export_lines(actor, filters, sort=sort)
            audited("export", actor, None, format=fmt, rows=len(lines), filters=filters.given)
            db.session.commit()
            return case_history.export_response(actor, lines, fmt=fmt, truncated=truncated)
        page = history.search_cases(
            db.session,
            actor=actor,
            filters=filters,
            cursor=query.get("cursor"),
            limit=query["limit"],
            sort=sort,
        )
        ids = [line.id for line in page.lines]
        found = {
            row.id: row for row in db.session.execute(documents.HEADS.where(Referral.id.in_(ids)))
        }
        heads = [found[i] for i in ids if i in found]
        cases = documents.cached(db.session, heads, current_rules(), responses.current_cache())
        # A case rebuilt just now may have moved on since the filter read it: filter it again.
        statuses = history.statuses_for(filters.status)
        cases = [case for case in cases if case.status in statuses and case.visible_to(actor)]
        audited(
            "list",
            actor,
            None,
            referral_ids=[c.id for c in cases],
            status=filters.status or "",
            filters=filters.given,
        )
        db.session.commit()
        return responses.list_response(cases, next_cursor=page.next_cursor)

    @blp.arguments(ReferralInSchema)
    @blp.response(201, ReferralOutSchema)
    @blp.alt_response(
        200,
        schema=ReferralOutSchema,
        description="the first referral of a repeated Idempotency-Key",
    )
    @blp.doc(
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "retries with the same key return the first result",
            }
        ]
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Start a referral: triage, rank, and offer to the best hospitals at once.

        Clinic and hospital users for their own facility; coordinators in their area.
        """
        user = require_user(Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)
        key = (request.headers.get("Idempotency-Key") or "").strip()[:200] or None
        origin = registry.get_facility(db.session, body["origin_facility"], field="origin_facility")
        case_body = body["case"]
        arguments = {
            "place": current_placement(),
            "actor": actor_for(user),
            "origin": origin,
            "case": case_from(case_body),
            "patient": body.get("patient", {}),
            "callback_phone": body.get("callback_phone", ""),
            "idempotency_key": key,
            "now": clock.now(),
        }
        referral, created = create_committed(arguments)
        return answer(referral.id, 201 if created else 200)


@blp.route("/<int:referral_id>")
class ReferralItem(MethodView):
    @blp.response(200, ReferralOutSchema)
    def get(self, referral_id: int) -> Response:
        """One case with its offers, timeline and intervals."""
        actor = actor_for(require_user())
        found = documents.load(db.session, [referral_id])
        if not found or not found[0].visible_to(actor):
            raise NotFoundError(f"no referral {referral_id}", field="id")
        audited("view", actor, referral_id)
        db.session.commit()
        return responses.json_response(documents.document(found[0], current_rules()))


def _offer_action(referral_id: int, offer_id: int) -> tuple[service.Actor, Referral, Offer]:
    user = require_user(Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)
    actor = actor_for(user)
    referral = load_visible(referral_id, actor, lock=True)
    return actor, referral, service.get_offer(db.session, referral, offer_id)


@blp.route("/<int:referral_id>/offers/<int:offer_id>/accept", methods=["POST"])
@blp.arguments(AcceptSchema)
@blp.response(200, ReferralOutSchema)
def accept(body: dict[str, Any], referral_id: int, offer_id: int) -> Response:
    """The offered hospital (or a coordinator) accepts. 409 when the offer is not pending."""
    actor, referral, offer = _offer_action(referral_id, offer_id)
    _act("accept", actor, referral, offer=offer, minutes=body.get("eta_minutes"))
    return answer(referral.id)


@blp.route("/<int:referral_id>/offers/<int:offer_id>/decline", methods=["POST"])
@blp.arguments(DeclineSchema)
@blp.response(200, ReferralOutSchema)
def decline(body: dict[str, Any], referral_id: int, offer_id: int) -> Response:
    """The offered hospital declines with a reason; the case moves on by itself."""
    actor, referral, offer = _offer_action(referral_id, offer_id)
    _act("decline", actor, referral, offer=offer, reason=body["reason"], note=body["note"])
    return answer(referral.id)


def _act(action: str, actor: service.Actor, referral: Referral, **arguments: Any) -> None:
    """Run one command on the case (with its audit row) and commit."""
    commands.act(
        db.session,
        action,
        place=current_placement(),
        referral=referral,
        actor=actor,
        now=clock.now(),
        request_id=observability.request_id(),
        **arguments,
    )
    db.session.commit()


def _journey(referral_id: int) -> tuple[service.Actor, Referral]:
    actor = actor_for(require_user())
    return actor, load_visible(referral_id, actor, lock=True)


@blp.route("/<int:referral_id>/depart", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, ReferralOutSchema)
def depart(_body: dict[str, Any], referral_id: int) -> Response:
    """The referring facility: the patient has left with an escort."""
    actor, referral = _journey(referral_id)
    _act("depart", actor, referral)
    return answer(referral.id)


@blp.route("/<int:referral_id>/arrive", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, ReferralOutSchema)
def arrive(_body: dict[str, Any], referral_id: int) -> Response:
    """The receiving hospital: the patient is here."""
    actor, referral = _journey(referral_id)
    _act("arrive", actor, referral)
    return answer(referral.id)


@blp.route("/<int:referral_id>/complete", methods=["POST"])
@blp.arguments(CompleteSchema)
@blp.response(200, ReferralOutSchema)
def complete(body: dict[str, Any], referral_id: int) -> Response:
    """The receiving hospital records the outcome and closes the case."""
    actor, referral = _journey(referral_id)
    _act("complete", actor, referral, outcome=body["outcome"])
    return answer(referral.id)


@blp.route("/<int:referral_id>/cancel", methods=["POST"])
@blp.arguments(CancelSchema)
@blp.response(200, ReferralOutSchema)
def cancel(body: dict[str, Any], referral_id: int) -> Response:
    """Cancel with a reason; pending offers are withdrawn and every timer stops."""
    actor, referral = _journey(referral_id)
    _act("cancel", actor, referral, reason=body["reason"], note=body["note"])
    return answer(referral.id)


@blp.route("/<int:referral_id>/redirect", methods=["POST"])
@blp.arguments(RedirectSchema)
@blp.response(200, ReferralOutSchema)
def redirect_case(body: dict[str, Any], referral_id: int) -> Response:
    """A coordinator sends the case to a facility of their choice, with a reason."""
    actor, referral = _journey(referral_id)
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise Forbidden("only a coordinator may redirect a case", field="facility")
    facility = registry.get_facility(db.session, body["facility"], field="facility")
    _act("redirect", actor, referral, facility=facility, reason=body["reason"])
    return answer(referral.id)


@blp.route("/<int:referral_id>/reopen", methods=["POST"])
@blp.arguments(EmptySchema)
@blp.response(200, ReferralOutSchema)
def reopen(_body: dict[str, Any], referral_id: int) -> Response:
    """A coordinator asks every capable hospital again for an unplaced case."""
    actor, referral = _journey(referral_id)
    _act("reopen", actor, referral)
    return answer(referral.id)
