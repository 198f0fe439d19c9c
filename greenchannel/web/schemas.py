"""Request and response schemas; the OpenAPI description is generated from these."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.vocabulary import CAPABILITIES
from facilities.models import Diversion, FacilityKind, Team
from referral.limits import MAX_CAPABILITIES

E164 = r"^\+[1-9][0-9]{6,14}$"
capability = fields.String(validate=validate.OneOf(CAPABILITIES))


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True, metadata={"description": "what went wrong, for people"})
    field = fields.String(metadata={"description": "the request field at fault, when one is"})
    errors = fields.List(
        fields.Dict(),
        metadata={"description": "imports: every bad row, each with row, field and message"},
    )


class BedsSchema(Schema):
    obstetric = fields.Integer(allow_none=True, validate=validate.Range(0, 10000))
    maternal_icu = fields.Integer(allow_none=True, validate=validate.Range(0, 10000))
    nicu = fields.Integer(allow_none=True, validate=validate.Range(0, 10000))


class StatusInSchema(Schema):
    beds = fields.Nested(BedsSchema, metadata={"description": "available beds by type"})
    diversion = fields.String(validate=validate.OneOf([d.value for d in Diversion]))
    diversion_reason = fields.String(validate=validate.Length(max=500))
    unavailable = fields.List(
        capability,
        validate=validate.Length(max=MAX_CAPABILITIES),
        metadata={"description": "capabilities temporarily unavailable"},
    )


class FacilityFieldsSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    name_en = fields.String(validate=validate.Length(max=200))
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in FacilityKind]))
    province = fields.String(validate=validate.Length(max=100))
    city = fields.String(validate=validate.Length(max=100))
    county = fields.String(validate=validate.Length(max=100))
    township = fields.String(validate=validate.Length(max=100))
    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lon = fields.Float(required=True, validate=validate.Range(-180, 180))
    maternal_level = fields.String(required=True, validate=validate.Regexp(r"^M[0-4]$"))
    neonatal_level = fields.String(required=True, validate=validate.Regexp(r"^N[0-4]$"))
    capabilities = fields.List(
        capability, load_default=list, validate=validate.Length(max=MAX_CAPABILITIES)
    )
    phone = fields.String(validate=validate.Regexp(E164))
    address = fields.String(
        validate=validate.Length(max=200),
        metadata={"description": "street address, for the driver and the map apps"},
    )
    department = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "the receiving department, e.g. 产科急诊"},
    )
    department_en = fields.String(validate=validate.Length(max=100))
    entrance = fields.String(
        validate=validate.Length(max=100),
        metadata={"description": "the way in, e.g. 急诊楼东门，2楼"},
    )
    entrance_en = fields.String(validate=validate.Length(max=100))
    active = fields.Boolean(load_default=True)


class FacilityInSchema(FacilityFieldsSchema):
    code = fields.String(
        required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    )


class FacilityOutSchema(FacilityInSchema):
    # A facility imported from CSV may have no switchboard number: "" on the way out.
    phone = fields.String(validate=validate.Regexp(r"^(\+[1-9][0-9]{6,14})?$"))
    beds = fields.Nested(BedsSchema, required=True)
    diversion = fields.String(required=True)
    diversion_reason = fields.String()
    unavailable = fields.List(fields.String(), required=True)
    reported_at = fields.AwareDateTime(allow_none=True, required=True)
    reported_by = fields.String()
    channel = fields.String(allow_none=True)
    beds_reported_at = fields.AwareDateTime(allow_none=True)
    stale = fields.Boolean(
        required=True,
        metadata={"description": "true when figures are missing or older than the grace period"},
    )
    stale_fields = fields.List(fields.String())


class FacilityListSchema(Schema):
    facilities = fields.List(fields.Nested(FacilityOutSchema), required=True)


class FacilityQuerySchema(Schema):
    active = fields.Boolean(metadata={"description": "only active facilities (default: all)"})
    stale = fields.Boolean(metadata={"description": "only stale (true) or fresh (false) ones"})


class StatusReportSchema(Schema):
    reported_at = fields.AwareDateTime(required=True)
    reported_by = fields.String(required=True)
    channel = fields.String(required=True)
    values = fields.Dict(required=True)


class StatusHistorySchema(Schema):
    reports = fields.List(fields.Nested(StatusReportSchema), required=True)


class ContactSchema(Schema):
    name = fields.String(required=True)
    team = fields.String(required=True, validate=validate.OneOf([t.value for t in Team]))
    phone = fields.String(required=True, validate=validate.Regexp(E164))
    language = fields.String(validate=validate.OneOf(["zh", "en"]))
    priority = fields.Integer(validate=validate.Range(1, 99))
    active = fields.Boolean()


class ContactListSchema(Schema):
    contacts = fields.List(fields.Nested(ContactSchema), required=True)


class ImportSummarySchema(Schema):
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    codes = fields.List(fields.String(), required=True)
