# mypy: disable-error-code="untyped-decorator"
# flask-smorest ships no type information (as for the other API modules in setup.cfg).
"""A facility's live status as EDXL-HAVE 2.0 XML (``facilities.have``), for regional dashboards."""

from __future__ import annotations

from flask import Response, current_app

from facilities import have, registry
from greenchannel.web import clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.auth import require_user
from greenchannel.web.db import db

blp = Blueprint(
    "have",
    __name__,
    url_prefix="/api/v1/facilities",
    description="Hospital status as EDXL-HAVE 2.0 (OASIS Hospital AVailability Exchange)",
)


@blp.route("/<code>/have.xml", methods=["GET"])
@blp.doc(
    responses={
        "200": {
            "description": "the EDXL-HAVE 2.0 ``HAVE`` document, one ``facility``",
            "content": {have.HAVE_XML: {"schema": {"type": "string"}}},
        },
        "404": {"description": "no such facility"},
    }
)
def have_xml(code: str) -> Response:
    """The facility's beds, EMS traffic status and services as EDXL-HAVE 2.0. Any logged-in user,
    as ``GET /api/v1/facilities/{code}``."""
    require_user()
    facility = registry.get_facility(db.session, code)
    grace = current_app.extensions["greenchannel.rules"].stale_grace
    body = have.have_document(facility, now=clock.now(), grace=grace)
    return Response(body, content_type=f"{have.HAVE_XML}; charset=utf-8")
