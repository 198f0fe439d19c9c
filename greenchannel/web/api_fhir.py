# mypy: disable-error-code="untyped-decorator"
# flask-smorest ships no type information (as for the other API modules in setup.cfg).
"""The read-only FHIR R4 endpoint: referrals as Tasks (``referral.fhir``), the server's
CapabilityStatement, and every error as an OperationOutcome.

The same users and scopes as ``GET /api/v1/referrals/{id}`` (``referral.access``): a case the
user may not see is a 404, as if it did not exist; each read is audited like the API's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Response, request
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from core.errors import NotFoundError, ServiceError
from core.fhir import FHIR_JSON, FHIR_VERSION, instant, pruned
from greenchannel.web import clock, input_guard
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.api_referrals import actor_for, audited
from greenchannel.web.auth import require_user
from greenchannel.web.context import current_rules
from greenchannel.web.db import db
from referral import fhir, service
from referral.models import Referral

FHIR_PREFIX = "/fhir"
blp = Blueprint(
    "fhir",
    __name__,
    url_prefix=FHIR_PREFIX,
    description="FHIR R4 (read only): referrals as Task resources; errors as OperationOutcome",
)

MAX_TEXT = 200  # a search value's length
YEARS = range(1900, 3000)
MAX_DATES = 2  # _lastUpdated: a bound or a range
DEFAULT_COUNT = 50
MAX_COUNT = 100
SEARCH_PARAMETERS = frozenset({"status", "_lastUpdated", "_count", "_cursor", "_format"})
_PREFIXED = re.compile(r"^(ge|gt|le|lt)(.+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    406: "not-supported",
    429: "throttled",
}


def _resource_schema(resource_type: str) -> dict[str, Any]:
    """The OpenAPI content of a FHIR answer: a JSON object of that resourceType."""
    return {
        "application/fhir+json": {
            "schema": {
                "type": "object",
                "required": ["resourceType"],
                "properties": {"resourceType": {"type": "string", "enum": [resource_type]}},
            }
        }
    }


ERRORS = {
    str(status): {"description": text, "content": _resource_schema("OperationOutcome")}
    for status, text in (
        (400, "a search parameter is not understood (OperationOutcome)"),
        (401, "no or a wrong token (OperationOutcome)"),
        (403, "not allowed (OperationOutcome)"),
        (404, "no such case, or not one this user may see (OperationOutcome)"),
    )
}


def fhir_response(body: dict[str, Any] | bytes, status: int = 200) -> Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    response = Response(data, status=status, content_type=FHIR_JSON)
    response.headers["Cache-Control"] = "no-store"  # cases: no copy in a shared cache
    return response


def operation_outcome(status: int, message: str, *, field: str | None = None) -> Response:
    """The FHIR error: an OperationOutcome with one issue (``expression``: the parameter)."""
    issue = {
        "severity": "error",
        "code": ISSUE_CODE.get(status, "processing"),
        "diagnostics": message,
        "expression": [field] if field else [],
    }
    body = pruned({"resourceType": "OperationOutcome", "issue": [issue]})
    return fhir_response(body, status)


@blp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    db.session.rollback()
    return operation_outcome(exc.status, str(exc), field=exc.field)


@blp.errorhandler(input_guard.BadInput)
def _bad_input(exc: input_guard.BadInput) -> Response:
    return operation_outcome(400, str(exc.description), field=exc.field)


@blp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return operation_outcome(exc.code or 500, exc.description or exc.name or "error")


def _base() -> str:
    """The FHIR base URL of this server, as the client reached it."""
    return request.url_root.rstrip("/") + FHIR_PREFIX


def _fail(message: str, field: str) -> ServiceError:
    return ServiceError(message, field=field)


def _check_format() -> None:
    wanted = request.args.get("_format")
    if wanted is not None and wanted not in ("json", "application/fhir+json", "application/json"):
        raise _fail("_format: only json is served", "_format")


@blp.route("/metadata", methods=["GET"])
@blp.doc(
    security=[],
    responses={
        "200": {
            "description": "the CapabilityStatement",
            "content": _resource_schema("CapabilityStatement"),
        },
        "400": ERRORS["400"],
    },
    parameters=[{"in": "query", "name": "_format", "schema": {"type": "string", "maxLength": 40}}],
)
def metadata() -> Response:
    """The server's CapabilityStatement (public, as FHIR servers publish theirs)."""
    _check_format()
    search = [
        {
            "name": "status",
            "type": "token",
            "documentation": "Task.status; several separated by commas",
        },
        {
            "name": "_lastUpdated",
            "type": "date",
            "documentation": "prefixes ge, gt, le, lt; a date or a dateTime with its offset",
        },
        {"name": "_count", "type": "number", "documentation": f"page size, at most {MAX_COUNT}"},
    ]
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(clock.now()),
        "publisher": "greenchannel",
        "kind": "instance",
        "software": {"name": "greenchannel"},
        "implementation": {"description": "greenchannel referrals", "url": _base()},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Send 'Authorization: Bearer <token>' (a greenchannel API "
                "token); a user sees the cases the API shows them.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "Basic",
                                }
                            ],
                            "text": "bearer token",
                        }
                    ]
                },
                "resource": [
                    {
                        "type": "Task",
                        "profile": "http://hl7.org/fhir/StructureDefinition/Task",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "versioning": "no-version",
                        "readHistory": False,
                        "searchParam": search,
                    }
                ],
            }
        ],
    }
    return fhir_response(pruned(body))


@blp.route("/Task/<referral_id>", methods=["GET"])
@blp.doc(
    parameters=[{"in": "query", "name": "_format", "schema": {"type": "string", "maxLength": 40}}],
    responses={
        "200": {"description": "the Task of the case", "content": _resource_schema("Task")},
        **ERRORS,
    },
)
def read_task(referral_id: str) -> Response:
    """One case as a FHIR Task (ServiceRequest and Patient contained); 404 when the user may
    not see it, as ``GET /api/v1/referrals/{id}``."""
    actor = actor_for(require_user())
    _check_format()
    if not referral_id.isdigit() or len(referral_id) > 10 or int(referral_id) > 2**31 - 1:
        raise NotFoundError(f"no Task {referral_id[:20]}", field="id")
    found = fhir.load(db.session, [int(referral_id)])
    if not found or not found[0].rows.visible_to(actor):
        raise NotFoundError(f"no Task {referral_id}", field="id")
    audited("view", actor, found[0].id, via="fhir")
    db.session.commit()
    return fhir_response(fhir.task_json(found[0], current_rules()))


def _instant(text: str, field: str) -> tuple[dt.datetime, dt.datetime]:
    """The interval a FHIR date or dateTime stands for: [start, end)."""
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            end = moment + dt.timedelta(days=1) if day.year in YEARS else moment
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            end = moment
    except ValueError:
        raise _fail(f"{field}: {text[:40]!r} is not a FHIR date or dateTime", field) from None
    if moment.tzinfo is None:
        raise _fail(f"{field}: a dateTime needs its offset (Z or +08:00)", field)
    if moment.year not in YEARS:  # nor a time the database or UTC could not hold
        raise _fail(f"{field}: expected a year {YEARS.start}–{YEARS.stop - 1}", field)
    return moment, end


def _last_updated_filters(values: list[str]) -> list[Any]:
    if len(values) > MAX_DATES:
        raise _fail(f"_lastUpdated: at most {MAX_DATES} (a range)", "_lastUpdated")
    clauses = []
    for value in values:
        match = _PREFIXED.match(value)
        if not match:
            raise _fail(
                "_lastUpdated: expected a prefix ge, gt, le or lt and a date", "_lastUpdated"
            )
        prefix, text = match.groups()
        start, end = _instant(text, "_lastUpdated")
        exclusive_end = end != start
        if prefix == "ge":
            clauses.append(fhir.last_updated_clause("ge", start))
        elif prefix == "lt":
            clauses.append(fhir.last_updated_clause("lt", start))
        elif prefix == "gt":
            clauses.append(fhir.last_updated_clause("ge" if exclusive_end else "gt", end))
        else:  # le
            clauses.append(fhir.last_updated_clause("lt" if exclusive_end else "le", end))
    return clauses


def _statuses(values: list[str]) -> set[Any] | None:
    if not values:
        return None
    wanted: set[Any] = set()
    if len(values) > 1:
        raise _fail("status: give it once, several statuses separated by commas", "status")
    if len(values[0]) > MAX_TEXT:
        raise _fail(f"status: at most {MAX_TEXT} characters", "status")
    for value in values:
        for code in value.split(","):
            if code not in fhir.TASK_STATUSES:
                raise _fail(f"status: {code[:40]!r} is not a Task status", "status")
            wanted |= fhir.TASK_STATUSES[code]
    return wanted


def _whole(name: str, low: int, high: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 10 or not low <= int(text) <= high:
        raise _fail(f"{name}: expected a whole number {low}–{high}", name)
    return int(text)


@blp.route("/Task", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "status",
            "schema": {"type": "string", "maxLength": MAX_TEXT},
            "description": "Task.status, several separated by commas",
        },
        {
            "in": "query",
            "name": "_lastUpdated",
            "schema": {
                "type": "array",
                "items": {"type": "string", "maxLength": MAX_TEXT},
                "maxItems": MAX_DATES,
            },
            "style": "form",
            "explode": True,
            "description": "ge, gt, le or lt and a date or dateTime; repeat for a range",
        },
        {
            "in": "query",
            "name": "_count",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
        },
        {
            "in": "query",
            "name": "_cursor",
            "schema": {"type": "integer", "minimum": 1},
            "description": "from the previous page's next link",
        },
        {"in": "query", "name": "_format", "schema": {"type": "string", "maxLength": 40}},
    ],
    responses={
        "200": {
            "description": "a searchset Bundle of Tasks",
            "content": _resource_schema("Bundle"),
        },
        **ERRORS,
    },
)
def search_tasks() -> Response:
    """The cases this user may see as Tasks, newest first, ``_count`` a page (at most
    100) with a ``next`` link; unknown parameters are refused, not ignored."""
    actor = actor_for(require_user())
    _check_format()
    unknown = sorted(set(request.args) - SEARCH_PARAMETERS)
    if unknown:
        raise _fail(f"{unknown[0][:40]}: not a search parameter of Task here", unknown[0][:40])
    count = _whole("_count", 1, MAX_COUNT) or DEFAULT_COUNT
    cursor = _whole("_cursor", 1, 2**31 - 1)
    statement = select(Referral.id)
    statuses = _statuses(request.args.getlist("status"))
    if statuses is not None:
        statement = statement.where(Referral.status.in_(statuses))
    for clause in _last_updated_filters(request.args.getlist("_lastUpdated")):
        statement = statement.where(clause)
    if cursor is not None:
        statement = statement.where(Referral.id < cursor)
    statement = service.visible(statement, actor).order_by(Referral.id.desc())
    ids = list(db.session.scalars(statement.limit(count + 1)))
    more = len(ids) > count
    ids = ids[:count]
    cases = [case for case in fhir.load(db.session, ids) if case.rows.visible_to(actor)]
    next_url = None
    if more:
        query = [(k, v) for k, v in request.args.items(multi=True) if k != "_cursor"]
        query.append(("_cursor", str(ids[-1])))
        next_url = f"{_base()}/Task?{urlencode(query)}"
    audited("list", actor, None, referral_ids=[c.id for c in cases], via="fhir")
    db.session.commit()
    body = fhir.searchset(cases, current_rules(), base=_base(), now=clock.now(), next_url=next_url)
    return fhir_response(body)
