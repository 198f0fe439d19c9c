"""The facility registry and live status over HTTP (thin handlers over facilities services)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from sqlalchemy import select

from core.errors import Conflict, ServiceError
from core.fhir import FHIR_JSON
from core.vocabulary import level_label
from facilities import export, registry
from facilities import status as status_service
from facilities.models import Channel, Facility, Role
from greenchannel.web import clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.api_referrals import actor_for, audited
from greenchannel.web.auth import channel, ensure_can_manage, require_user
from greenchannel.web.db import db
from greenchannel.web.schemas import (
    ContactListSchema,
    FacilityFieldsSchema,
    FacilityInSchema,
    FacilityListSchema,
    FacilityOutSchema,
    FacilityQuerySchema,
    ImportSummarySchema,
    StatusHistorySchema,
    StatusInSchema,
)

blp = Blueprint(
    "facilities",
    __name__,
    url_prefix="/api/v1/facilities",
    description="The facility registry with live capacity",
)


def stale_grace() -> dt.timedelta:
    return current_app.extensions["greenchannel.rules"].stale_grace  # type: ignore[no-any-return]


def facility_out(facility: Facility, *, now: dt.datetime) -> dict[str, Any]:
    view = status_service.status_view(facility, now=now, grace=stale_grace())
    return {
        "code": facility.code,
        "name": facility.name,
        "name_en": facility.name_en,
        "kind": facility.kind.value,
        "province": facility.province,
        "city": facility.city,
        "county": facility.county,
        "township": facility.township,
        "lat": facility.lat,
        "lon": facility.lon,
        "maternal_level": level_label("M", facility.maternal_level),
        "neonatal_level": level_label("N", facility.neonatal_level),
        "capabilities": list(facility.capabilities),
        "phone": facility.phone,
        "address": facility.address,
        "department": facility.department,
        "department_en": facility.department_en,
        "entrance": facility.entrance,
        "entrance_en": facility.entrance_en,
        "active": facility.active,
        **view.as_dict(),
    }


def load_facility(code: str) -> Facility:
    return registry.get_facility(db.session, code)


@blp.route("")
class Facilities(MethodView):
    @blp.arguments(FacilityQuerySchema, location="query")
    @blp.response(200, FacilityListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The registry with each facility's live status. Any logged-in user."""
        require_user()
        now = clock.now()
        rows = [
            facility_out(f, now=now)
            for f in registry.list_facilities(db.session, active_only=query.get("active", False))
        ]
        if "stale" in query:
            rows = [row for row in rows if row["stale"] is query["stale"]]
        return {"facilities": rows}

    @blp.arguments(FacilityInSchema)
    @blp.response(201, FacilityOutSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add a facility to the registry. Administrators."""
        user = require_user(Role.ADMIN)
        values = registry.validate_facility(body)
        if db.session.scalar(select(Facility.id).where(Facility.code == values["code"])):
            raise Conflict(f"a facility with code {values['code']} exists", field="code")
        now = clock.now()
        facility = Facility(**values, created_at=now, updated_at=now)
        db.session.add(facility)
        audited("facility_created", actor_for(user), None, code=values["code"])
        db.session.commit()
        return facility_out(facility, now=now)


@blp.route("/<code>")
class FacilityItem(MethodView):
    @blp.response(200, FacilityOutSchema)
    def get(self, code: str) -> dict[str, Any]:
        """One facility with its live status. Any logged-in user."""
        require_user()
        return facility_out(load_facility(code), now=clock.now())

    @blp.arguments(FacilityFieldsSchema)
    @blp.response(200, FacilityOutSchema)
    def put(self, body: dict[str, Any], code: str) -> dict[str, Any]:
        """Replace a facility's registry fields (not its live status). Administrators."""
        user = require_user(Role.ADMIN)
        facility = load_facility(code)
        values = registry.validate_facility({**body, "code": code})
        now = clock.now()
        changed = sorted(k for k, v in values.items() if getattr(facility, k) != v)
        for key, value in values.items():
            setattr(facility, key, value)
        facility.updated_at = now
        audited("facility_updated", actor_for(user), None, code=code, fields=changed)
        db.session.commit()
        return facility_out(facility, now=now)


@blp.route("/<code>/status")
class FacilityStatusItem(MethodView):
    @blp.arguments(StatusInSchema)
    @blp.response(200, FacilityOutSchema)
    def put(self, body: dict[str, Any], code: str) -> dict[str, Any]:
        """Report live status: beds, diversion, unavailable capabilities.

        The hospital's own users and the coordinators of its area. Values left out keep their
        current value and report time.
        """
        user = require_user(Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)
        facility = load_facility(code)
        ensure_can_manage(user, facility)
        now = clock.now()
        beds = body.get("beds")
        status_service.report_status(
            db.session,
            facility=facility,
            beds={k: v for k, v in beds.items() if v is not None} if beds is not None else None,
            diversion=body.get("diversion"),
            diversion_reason=body.get("diversion_reason"),
            unavailable=body.get("unavailable"),
            reported_by=user.username,
            user_id=user.id,
            channel=Channel(channel()),
            now=now,
        )
        audited("facility_status", actor_for(user), None, code=facility.code)
        db.session.commit()
        return facility_out(facility, now=now)


@blp.route("/<code>/status/history")
class FacilityStatusHistory(MethodView):
    @blp.response(200, StatusHistorySchema)
    def get(self, code: str) -> dict[str, Any]:
        """The latest status reports, newest first. The hospital's users and coordinators."""
        user = require_user()
        facility = load_facility(code)
        ensure_can_manage(user, facility)
        reports = status_service.status_history(db.session, facility=facility)
        return {
            "reports": [
                {
                    "reported_at": r.reported_at,
                    "reported_by": r.reported_by,
                    "channel": r.channel.value,
                    "values": r.values,
                }
                for r in reports
            ]
        }


@blp.route("/<code>/contacts")
class FacilityContacts(MethodView):
    @blp.response(200, ContactListSchema)
    def get(self, code: str) -> dict[str, Any]:
        """The facility's teams and phones. The hospital's users and coordinators."""
        user = require_user()
        facility = load_facility(code)
        ensure_can_manage(user, facility)
        return {
            "contacts": [
                {
                    "name": c.name,
                    "team": c.team.value,
                    "phone": c.phone,
                    "language": c.language,
                    "priority": c.priority,
                    "active": c.active,
                }
                for c in facility.contacts
            ]
        }


@blp.route("/import", methods=["POST"])
@blp.doc(
    requestBody={
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/geo+json": {"schema": {"type": "object"}},
        },
    }
)
@blp.response(200, ImportSummarySchema)
def import_facilities() -> dict[str, Any]:
    """Create or update facilities from a CSV or GeoJSON body; all rows or none. Administrators."""
    user = require_user(Role.ADMIN)
    data = request.get_data(cache=False)
    mimetype = request.mimetype or ""
    fmt = (
        "geojson"
        if "json" in mimetype
        else "csv"
        if "csv" in mimetype
        else (registry.detect_format("", data))
    )
    summary = registry.import_facilities(db.session, data=data, fmt=fmt, now=clock.now())
    audited(
        "facilities_imported",
        actor_for(user),
        None,
        created=summary.created,
        updated=summary.updated,
        codes=summary.codes[:1000],
    )
    db.session.commit()
    return {"created": summary.created, "updated": summary.updated, "codes": summary.codes}


@blp.route("/export", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "format",
            "schema": {"type": "string", "enum": ["csv", "geojson", "fhir"]},
        },
        {
            "in": "query",
            "name": "bundle",
            "schema": {"type": "string", "enum": list(export.BUNDLE_TYPES)},
            "description": "FHIR only: collection (default) or transaction (PUT by identifier)",
        },
    ],
    responses={"200": {"description": "the registry in the asked format"}},
)
def export_facilities() -> Response:
    """The registry as CSV, GeoJSON or a FHIR R4 Bundle. Any logged-in user."""
    require_user()
    fmt = request.args.get("format", "csv")
    facilities = registry.list_facilities(db.session)
    if fmt == "csv":
        return Response(export.export_csv(facilities), mimetype="text/csv")
    if fmt == "geojson":
        return Response(export.export_geojson(facilities), mimetype="application/geo+json")
    if fmt == "fhir":
        bundle = request.args.get("bundle", "collection")
        body = export.export_fhir(facilities, now=clock.now(), grace=stale_grace(), bundle=bundle)
        return Response(body, content_type=FHIR_JSON)
    raise ServiceError("format: expected csv, geojson or fhir", field="format")
