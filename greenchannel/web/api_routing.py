"""Routing over HTTP: rank destinations for a case, road closures, coverage."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.vocabulary import CAPABILITIES, parse_level
from facilities.models import Role
from greenchannel.web import clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.api_referrals import CaseSchema, actor_for, case_from
from greenchannel.web.auth import require_user
from greenchannel.web.context import current_placement
from greenchannel.web.db import db
from greenchannel.web.observability import request_id
from greenchannel.web.responses import json_response
from referral import closures, live
from referral.decision import condition_need, decide
from referral.limits import FACILITY_CODE_LENGTH, MAX_CAPABILITIES
from referral.models import RoadClosure
from referral.placement import rank_case, township_coverage
from referral.rules import Need
from referral.triage import need_as_dict

blp = Blueprint(
    "routing",
    __name__,
    url_prefix="/api/v1",
    description="Ranked destinations, road closures and coverage",
)


class OriginSchema(Schema):
    lat = fields.Float(validate=validate.Range(-90, 90))
    lon = fields.Float(validate=validate.Range(-180, 180))
    facility = fields.String(
        validate=validate.Length(1, FACILITY_CODE_LENGTH),
        metadata={"description": "a facility code instead of lat/lon"},
    )

    @validates_schema
    def one_kind(self, data: dict[str, Any], **_: Any) -> None:
        has_point = "lat" in data or "lon" in data
        if has_point == ("facility" in data) or (has_point and not {"lat", "lon"} <= set(data)):
            raise ValidationError("give either lat and lon, or facility", field_name="facility")


class NeedSchema(Schema):
    maternal_level = fields.String(load_default="M0", validate=validate.Regexp(r"^M[0-4]$"))
    neonatal_level = fields.String(load_default="N0", validate=validate.Regexp(r"^N[0-4]$"))
    capabilities = fields.List(
        fields.String(validate=validate.OneOf(CAPABILITIES)),
        load_default=list,
        validate=validate.Length(max=MAX_CAPABILITIES),
    )
    patient = fields.String(load_default="mother", validate=validate.OneOf(["mother", "newborn"]))


class RouteInSchema(Schema):
    origin = fields.Nested(OriginSchema, required=True)
    case = fields.Nested(CaseSchema, metadata={"description": "triaged by the region rules"})
    requirements = fields.Nested(NeedSchema, metadata={"description": "instead of a case"})

    @validates_schema
    def case_or_requirements(self, data: dict[str, Any], **_: Any) -> None:
        if ("case" in data) == ("requirements" in data):
            raise ValidationError("give either case or requirements", field_name="case")


class RouteOutSchema(Schema):
    requirements = fields.Dict(required=True)
    urgency = fields.String(allow_none=True)
    reasons = fields.List(fields.String())
    origin = fields.Dict()
    candidates = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "each: facility, name, eta_minutes, distance_km, estimate, confirmed, "
            "reasons"
        },
    )
    more_candidates = fields.Integer()
    excluded = fields.List(
        fields.Dict(),
        required=True,
        metadata={
            "description": "each: facility, name, eta_minutes, reasons; the nearest first "
            "(all of them with ?excluded=all)"
        },
    )
    more_excluded = fields.Integer(
        metadata={"description": "facilities that are out and not listed in excluded"}
    )
    warnings = fields.List(fields.String(), required=True)
    beyond_window = fields.Boolean()
    window_minutes = fields.Integer(allow_none=True)
    stabilise_at = fields.Dict(allow_none=True)
    outreach = fields.Dict(allow_none=True)
    # "partial" is a Schema attribute: the field keeps another name and the JSON name
    partial_matches = fields.List(
        fields.Dict(),
        attribute="partial",
        data_key="partial",
        metadata={
            "description": "when nobody meets every requirement: the best partial matches, each "
            "facility, name, eta_minutes, lacks ({code, text}), reasons; never offered "
            "automatically"
        },
    )
    safety_net = fields.Dict(
        allow_none=True,
        metadata={"description": "the designated centre that would take the case, with its rule"},
    )
    window = fields.Dict(
        allow_none=True,
        metadata={"description": "minutes, from, closes_at, reachable_in_time (null: no window)"},
    )
    decision = fields.Dict(metadata={"description": "kind and a one-sentence summary"})
    patient = fields.String()
    do_not_move = fields.Boolean()
    in_shock = fields.Boolean()
    advice = fields.List(fields.String())
    window_advice = fields.List(fields.String())
    language = fields.String()


class ClosureInSchema(Schema):
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    radius_m = fields.Float(load_default=100, validate=validate.Range(*closures.RADIUS_M))
    kind = fields.String(load_default="closed", validate=validate.OneOf(closures.KINDS))
    speed_factor = fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(*closures.SPEED_FACTOR),
        metadata={"description": "with kind slow: the share of the speed kept"},
    )
    reason = fields.String(load_default="", validate=validate.Length(max=closures.REASON_LENGTH))


class ClosureOutSchema(ClosureInSchema):
    id = fields.Integer(required=True)
    speed_factor = fields.Float(metadata={"description": "1.0 for a closure"})
    created_by = fields.String()
    created_at = fields.AwareDateTime()
    lifted_at = fields.AwareDateTime(allow_none=True)


class ClosureListSchema(Schema):
    closures = fields.List(fields.Nested(ClosureOutSchema), required=True)


class CoverageQuerySchema(Schema):
    maternal_level = fields.String(load_default="M0", validate=validate.Regexp(r"^M[0-4]$"))
    neonatal_level = fields.String(load_default="N0", validate=validate.Regexp(r"^N[0-4]$"))
    capabilities = fields.List(
        fields.String(validate=validate.OneOf(CAPABILITIES)),
        load_default=list,
        validate=validate.Length(max=MAX_CAPABILITIES),
    )


class CoverageOutSchema(Schema):
    requirements = fields.Dict(required=True)
    rows = fields.List(
        fields.Dict(),
        required=True,
        metadata={"description": "each: origin, facility, eta_minutes, distance_km, estimate"},
    )


#: How many facilities that are out the route answer lists by default, the nearest first.
EXCLUDED_SHOWN = 50


class RouteQuerySchema(Schema):
    lang = fields.String(
        validate=validate.OneOf(["zh", "en"]),
        metadata={"description": "language of the reasons (default: Accept-Language, else en)"},
    )
    excluded = fields.String(
        load_default="nearest",
        validate=validate.OneOf(["nearest", "all"]),
        metadata={
            "description": f"nearest (default): the {EXCLUDED_SHOWN} nearest facilities that "
            "are out, with more_excluded counting the rest; all: every one of them"
        },
    )


def answer_language(query: dict[str, Any]) -> str:
    wanted = query.get("lang")
    if wanted:
        return str(wanted)
    best = request.accept_languages.best_match(["zh", "en"])
    return best or "en"


# The answer's fields as RouteOutSchema would dump them; the answer is written by orjson
# straight from the decision's dict (the schema documents it), so marshmallow's per-field dump
# and the standard library's encoder are not on the path of the busiest request.
ROUTE_FIELDS: frozenset[str] = frozenset(
    field.data_key or name for name, field in RouteOutSchema().dump_fields.items()
)


def route_answer(answer: dict[str, Any]) -> Response:
    """The route answer as JSON: the schema's fields only, integers where it says so."""
    out = {key: value for key, value in answer.items() if key in ROUTE_FIELDS}
    for key in ("window_minutes", "more_candidates", "more_excluded"):
        value = out.get(key)
        if isinstance(value, float):
            out[key] = int(value)
    return json_response(out)


@blp.route("/route", methods=["POST"])
@blp.arguments(RouteInSchema)
@blp.arguments(RouteQuerySchema, location="query")
@blp.response(200, RouteOutSchema)
def route(body: dict[str, Any], query: dict[str, Any]) -> Response:
    """The ranked destinations for a case from an origin, with ETA and reasons.

    With a ``case`` the answer is the service's one clinical decision (the same as a referral's):
    never empty, with partial matches and what each lacks, the safety net, the window and the
    outreach request for a patient who must not be moved."""
    require_user()
    place = current_placement()
    origin = body["origin"]
    facility = None
    if "facility" in origin:
        # from the registry rows the process keeps under the routing revision (no query)
        state = live.live_state(db.session)
        facility = state.facility(origin["facility"], field="origin.facility")
        point = (facility.lat, facility.lon)
    else:
        point = (origin["lat"], origin["lon"])
    language = answer_language(query)
    limit = None if query["excluded"] == "all" else EXCLUDED_SHOWN
    if "case" in body:
        decision = decide(
            db.session,
            rules=place.rules,
            router=place.router,
            origin=point,
            case=case_from(body["case"]),
            now=clock.now(),
            origin_facility=facility,
            excluded_limit=limit,
        )
        return route_answer(decision.to_dict(language))
    given = body["requirements"]
    need = Need(
        maternal_level=parse_level(given["maternal_level"], prefix="M", field="maternal_level"),
        neonatal_level=parse_level(given["neonatal_level"], prefix="N", field="neonatal_level"),
        capabilities=frozenset(given["capabilities"]),
    )
    ranking = rank_case(
        db.session,
        rules=place.rules,
        router=place.router,
        origin=point,
        need=need,
        patient=given["patient"],
        window_minutes=None,
        stabilise=place.rules.clinical.stabilise_default[given["patient"]],
        now=clock.now(),
        partial_k=place.rules.clinical.partial_matches,
        excluded_limit=limit,
    )
    answer = ranking.to_dict()
    answer.update(
        requirements={**need_as_dict(need), "beds": answer["requirements"]["beds"]},
        urgency=None,
        reasons=[],
        window_minutes=None,
        window=None,
        safety_net=None,
        language="en",
    )
    return route_answer(answer)


def closure_out(row: RoadClosure) -> dict[str, Any]:
    return {
        "id": row.id,
        "lat": row.lat,
        "lon": row.lon,
        "radius_m": row.radius_m,
        "kind": row.kind,
        "speed_factor": row.speed_factor,
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "lifted_at": row.lifted_at,
    }


@blp.route("/roads/closures")
class Closures(MethodView):
    @blp.response(200, ClosureListSchema)
    def get(self) -> dict[str, Any]:
        """Road closures and slowdowns in effect."""
        require_user()
        return {"closures": [closure_out(r) for r in closures.active_closures(db.session)]}

    @blp.arguments(ClosureInSchema)
    @blp.response(201, ClosureOutSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Close or slow the roads around a point; the very next routing query reflects it."""
        user = require_user(Role.COORDINATOR, Role.ADMIN)
        row = closures.place_closure(
            db.session, **body, by=actor_for(user), now=clock.now(), request_id=request_id()
        )
        db.session.commit()
        return closure_out(row)


@blp.route("/roads/closures/<int:closure_id>", methods=["DELETE"])
@blp.response(200, ClosureOutSchema)
def lift_closure(closure_id: int) -> dict[str, Any]:
    """Lift a closure; routing returns to the old answer at once."""
    user = require_user(Role.COORDINATOR, Role.ADMIN)
    row = closures.lift_closure(
        db.session,
        closure_id=closure_id,
        by=actor_for(user),
        now=clock.now(),
        request_id=request_id(),
    )
    db.session.commit()
    return closure_out(row)


@blp.route("/coverage", methods=["GET"])
@blp.arguments(CoverageQuerySchema, location="query")
@blp.response(200, CoverageOutSchema)
def coverage(query: dict[str, Any]) -> dict[str, Any]:
    """From every township health centre, the travel time to the nearest facility that meets
    the requirement (the basis of planning maps)."""
    require_user(Role.COORDINATOR, Role.ADMIN)
    place = current_placement()
    need = Need(
        maternal_level=parse_level(query["maternal_level"], prefix="M", field="maternal_level"),
        neonatal_level=parse_level(query["neonatal_level"], prefix="N", field="neonatal_level"),
        capabilities=frozenset(query["capabilities"]),
    )
    if query.get("condition"):
        need = need.merge(
            condition_need(
                place.rules,
                condition=query["condition"],
                gestation_weeks=query.get("gestation_weeks"),
                now=clock.now(),
            )
        )
    return coverage_rows(place, need)


def coverage_rows(place: Any, need: Need) -> dict[str, Any]:
    rows = township_coverage(db.session, place=place, need=need, now=clock.now())
    return {
        "requirements": need_as_dict(need),
        "rows": [
            {
                "origin": r.origin,
                "facility": r.facility,
                "eta_minutes": round(r.eta_minutes, 1) if r.facility else None,
                "distance_km": round(r.distance_km, 2) if r.facility else None,
                "estimate": r.estimate,
            }
            for r in rows
        ],
    }
