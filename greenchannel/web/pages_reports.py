"""The monthly report page: the answers a coordinator is asked for, each chart with the table
behind it and its download (the same report as ``GET /api/v1/reports/monthly``), phone-readable
and printable; ECharts (``static/vendor/echarts``) draws from the report's own tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from core.errors import ServiceError
from facilities.models import Role
from greenchannel.web import clock
from greenchannel.web.api_reports import REPORT_ROLES, report_for
from greenchannel.web.context import current_rules
from greenchannel.web.labels import CANCEL, COLOURS, DECLINE, STATUS, URGENCY
from greenchannel.web.pages import language, number, page_error, page_for, page_user
from referral.reports import MonthlyReport

bp = Blueprint("report_pages", __name__)
bp.register_error_handler(HTTPException, page_error)

#: Column headings of the report's tables, in the reader's language.
COLUMNS: dict[str, Any] = {
    "day": _l("Day"),
    "cases": _l("Cases"),
    "critical": _l("Critical"),
    "median_decision_to_accepted_min": _l("Median decision → accepted (min)"),
    "p90_decision_to_accepted_min": _l("90th percentile decision → accepted (min)"),
    "urgency": _l("Urgency"),
    "condition": _l("Condition"),
    "colour": _l("Colour"),
    "county": _l("County"),
    "facility": _l("Facility"),
    "name": _l("Name"),
    "outcome": _l("Outcome"),
    "interval": _l("Interval"),
    "median_min": _l("Median (min)"),
    "p90_min": _l("90th percentile (min)"),
    "target_min": _l("Target (min)"),
    "missed_target": _l("Missed the target"),
    "case": _l("Case"),
    "decided_at": _l("Decided at"),
    "decision_to_accepted_min": _l("Decision → accepted (min)"),
    "destination": _l("Destination"),
    "offers": _l("Offers"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "silent_expiries": _l("Silent (expired)"),
    "withdrawn": _l("Withdrawn"),
    "pending": _l("Pending"),
    "median_answer_min": _l("Median answer (min)"),
    "p90_answer_min": _l("90th percentile answer (min)"),
    "reason": _l("Reason"),
    "declines": _l("Declines"),
    "status_now": _l("Status now"),
    "reports": _l("Reports"),
    "stale_hours": _l("Hours stale"),
    "stale_share": _l("Share of the month stale"),
    "stale_spells": _l("Stale spells"),
    "diversion_closed_hours": _l("Hours closed"),
    "diversion_advisory_hours": _l("Hours on advisory"),
    "township": _l("Township"),
    "nearest": _l("Nearest capable facility"),
    "minutes": _l("Minutes"),
    "band": _l("Band"),
    "estimate": _l("Estimate"),
    "origin": _l("Origin"),
    "origin_lat": _l("Origin latitude"),
    "origin_lon": _l("Origin longitude"),
    "dest_lat": _l("Destination latitude"),
    "dest_lon": _l("Destination longitude"),
}

#: The tables' titles, in the order the page shows them.
TABLES: dict[str, Any] = {
    "cases_by_day": _l("Cases by day"),
    "cases_by_urgency": _l("Cases by urgency"),
    "cases_by_condition": _l("Cases by condition"),
    "cases_by_colour": _l("Cases by colour"),
    "cases_by_origin_county": _l("Cases by origin county"),
    "cases_by_destination": _l("Cases by destination"),
    "cases_by_outcome": _l("Cases by outcome"),
    "intervals": _l("The interval report card"),
    "intervals_by_facility": _l("Intervals by receiving hospital"),
    "missed_targets": _l("Cases that missed the target"),
    "offers_by_hospital": _l("Offers and answers by hospital"),
    "declines_by_reason": _l("Declines by reason"),
    "declines_by_hospital": _l("Declines by hospital and reason"),
    "unplaced_cases": _l("Unplaced cases"),
    "capacity": _l("Capacity reports: staleness and diversion"),
    "coverage": _l("Coverage: minutes from each township to a capable facility"),
    "flows": _l("Where cases come from and go to"),
}

INTERVAL_NAMES: dict[str, Any] = {
    "decision_to_first_alert": _l("Decision → first pre-alert sent"),
    "decision_to_first_answer": _l("Decision → first answer"),
    "decision_to_accepted": _l("Decision → accepted"),
    "accepted_to_departed": _l("Accepted → departed"),
    "departed_to_arrived": _l("Departed → arrived"),
    "decision_to_arrived": _l("Decision → arrived"),
}


def this_month(now: dt.datetime) -> str:
    return now.astimezone(current_rules().zone).strftime("%Y-%m")


def headline(report: MonthlyReport) -> dict[str, Any]:
    """The four answers the page must give at a glance (docs/reports.md)."""
    declines = report.tables["declines_by_hospital"].rows
    per_hospital: dict[str, int] = {}
    for code, _name, _reason, n in declines:
        per_hospital[code] = per_hospital.get(code, 0) + int(n)
    worst = max(sorted(per_hospital), key=lambda c: per_hospital[c], default=None)
    reasons = [(r, n) for c, _nm, r, n in declines if c == worst]
    names = {c: nm for c, nm, _r, _n in declines}
    coverage = report.tables.get("coverage")
    beyond_hour = [r for r in coverage.rows if r[3] is None or r[3] > 60] if coverage else None
    return {
        "worst": worst,
        "worst_name": names.get(worst or "", ""),
        "worst_total": per_hospital.get(worst or "", 0),
        "worst_reasons": reasons,
        "beyond_hour": beyond_hour,
    }


def download(report: MonthlyReport, table: str | None, fmt: str) -> str:
    args: dict[str, Any] = {"month": report.month, "format": fmt}
    if report.area and page_user().role is not Role.HOSPITAL:
        args["area"] = report.area
    if table:
        args["table"] = table
    return url_for("reports.monthly", **args)


@bp.get("/reports")
@page_for(*REPORT_ROLES)
def page() -> tuple[str, int]:
    user = page_user()
    month = request.args.get("month") or this_month(clock.now())
    area = request.args.get("area") if user.role is not Role.HOSPITAL else None
    try:
        report = report_for(user, month=month, area=area)
    except ServiceError as exc:
        return render_template(
            "reports.html", report=None, error=exc, month=month, area=area or ""
        ), exc.status
    return render_template(
        "reports.html",
        report=report,
        error=None,
        month=month,
        area=report.area or "",
        head=headline(report),
        data=report.as_dict(),
        COLUMNS=COLUMNS,
        TABLES=TABLES,
        INTERVAL_NAMES=INTERVAL_NAMES,
        download=download,
        cell=cell,
        reason_names={k: str(v) for k, v in DECLINE.items()},
    ), 200


def cell(column: str, value: Any) -> str:
    """A table cell for people: codes named in the reader's language, numbers as numbers."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "✓" if value else ""
    if isinstance(value, float):
        return number(value, 3 if column == "stale_share" else 1)
    named: dict[str, Any] = {
        "urgency": {**URGENCY, "all": _l("All urgencies")},
        "colour": COLOURS,
        "reason": DECLINE,
        "interval": INTERVAL_NAMES,
        "status_now": STATUS,
    }
    if column in named:
        return str(named[column].get(value, value))
    if column == "outcome":
        kind, _, why = str(value).partition(":")
        return f"{STATUS.get(kind, kind)}" + (f" · {CANCEL.get(why, why)}" if why else "")
    if column == "condition":
        found = current_rules().conditions.get(str(value))
        return f"{found.name[language()]} ({value})" if found is not None else str(value)
    return str(value)
