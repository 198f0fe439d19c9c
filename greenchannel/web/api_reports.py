# mypy: disable-error-code="untyped-decorator"
# flask-smorest ships no type information (as for the other API modules in setup.cfg).
"""The monthly report over HTTP: JSON, or one table as CSV, or every table as an Excel workbook
(thin handlers over :mod:`referral.reports`; the page and ``greenchannel report`` do the same)."""

from __future__ import annotations

from typing import Any

from flask import Response, request

from core.errors import Invalid
from facilities.models import Role, User
from greenchannel.web import clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.auth import require_user
from greenchannel.web.context import current_placement
from greenchannel.web.db import db
from referral.reports import MonthlyReport, report_with_coverage
from referral.reports_export import FORMATS, pick_table, report_json, report_xlsx, table_csv
from referral.reports_scope import report_scope

blp = Blueprint(
    "reports", __name__, url_prefix="/api/v1", description="Monthly reports and their exports"
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT_ROLES = (Role.COORDINATOR, Role.HOSPITAL, Role.ADMIN)


def report_for(user: User, *, month: str | None, area: str | None) -> MonthlyReport:
    """The report this user may have for ``month`` (and ``area``): shared by the API and the
    page."""
    scope_area, facility = report_scope(
        db.session,
        role=user.role,
        own_area=user.area,
        own_facility_id=user.facility_id,
        area=area,
    )
    return report_with_coverage(
        db.session,
        place=current_placement(),
        month=month or "",
        area=scope_area,
        facility=facility,
        now=clock.now(),
    )


def export_response(report: MonthlyReport, fmt: str, table: str | None) -> Response:
    """``report`` as JSON, one table as CSV, or an Excel workbook, as a download."""
    stem = f"greenchannel-report-{report.month}"
    if fmt == "json":
        return Response(report_json(report), mimetype="application/json")
    if fmt == "csv":
        chosen = pick_table(report, table)
        return Response(
            "\ufeff" + table_csv(chosen),  # the BOM tells Excel the file is UTF-8 (Chinese names)
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{stem}-{chosen.name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            report_xlsx(report, only=table or None),
            mimetype=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'},
        )
    raise Invalid("format: expected " + ", ".join(FORMATS), field="format")


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "in": "query",
        "name": name,
        "description": description,
        "schema": {"type": "string", **schema},
    }


@blp.route("/reports/monthly", methods=["GET"])
@blp.doc(
    parameters=[
        {
            **_query(
                "month", "the month, YYYY-MM, on the region's clock", pattern=r"^\d{4}-\d{2}$"
            ),
            "required": True,
        },
        _query(
            "area",
            "Province/City/County; a coordinator's own area or a part of it (default: theirs); "
            "hospital users get their hospital's share and may not give one",
            maxLength=300,
        ),
        _query(
            "format",
            "json (default), csv (one table) or xlsx (a sheet per table)",
            enum=list(FORMATS),
        ),
        _query("table", "with csv (required) or xlsx (optional): the table's name", maxLength=64),
    ],
    responses={
        "200": {
            "description": "the report: month, area, facility, start, end, generated_at, "
            "summary (headline figures) and tables (each columns and rows); see docs/reports.md",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "400": {"description": "a bad month, area, format or table (the field is named)"},
        "403": {"description": "an area outside yours, or a role without reports"},
    },
)
def monthly() -> Response:
    """The monthly report of your area (coordinators), your hospital's share (hospital users) or
    any area (administrators). De-identified: case codes, no names, register numbers or free
    text."""
    user = require_user(*REPORT_ROLES)
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise Invalid("format: expected " + ", ".join(FORMATS), field="format")
    report = report_for(user, month=request.args.get("month"), area=request.args.get("area"))
    return export_response(report, fmt, request.args.get("table"))
