"""The case history page: every role's cases within its scope (the API's rule), filtered, a page
at a time, with CSV and Excel downloads of the same list (:mod:`referral.history`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import ServiceError
from facilities import registry
from facilities.models import Role
from greenchannel.web import case_history
from greenchannel.web.api_referrals import actor_for, audited
from greenchannel.web.context import current_rules
from greenchannel.web.db import db
from greenchannel.web.pages import area_facilities, language, page_error, page_for, page_user
from referral import history

bp = Blueprint("history", __name__)
bp.register_error_handler(HTTPException, page_error)
ALL_ROLES = (Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)

OUTCOME_NAMES = {
    "pending": _l("Waiting for a hospital"),
    "accepted": _l("Accepted by a hospital"),
    "arrived": _l("Arrived"),
    "safety_net": _l("Placed by the safety net"),
    "unplaced": _l("Unplaced"),
    "cancelled": _l("Cancelled"),
}
STATUS_GROUPS = {"active": _l("Open (any state)"), "closed": _l("Closed (any state)")}
SORT_NAMES = {"newest": _l("Newest first"), "oldest": _l("Oldest first")}
FIELD_NAMES = {
    "from": _l("From date"),
    "to": _l("To date"),
    "condition": _l("Condition"),
    "colour": _l("Colour"),
    "urgency": _l("Urgency"),
    "status": _l("State"),
    "origin": _l("From facility"),
    "destination": _l("Receiving facility"),
    "outcome": _l("Outcome"),
    "q": _l("Case code"),
    "sort": _l("Order"),
    "cursor": _l("Page"),
    "limit": _l("Cases per page"),
    "format": _l("Format"),
}


def _choices() -> dict[str, Any]:
    """What the form's lists offer: conditions, and the facilities of the user's scope."""
    user = page_user()
    lang = language()
    rules = current_rules()
    if user.role is Role.COORDINATOR and user.area:
        facilities = area_facilities(user)
    else:
        facilities = registry.list_facilities(db.session)

    def condition_name(code: str, lang: str) -> str:
        condition = rules.conditions.get(code)
        return condition.name[lang] if condition else code

    return {
        "rules_condition_name": condition_name,
        "conditions": [(code, c.name[lang]) for code, c in rules.conditions.items()],
        "facilities": [
            (f.code, f.name if lang == "zh" else (f.name_en or f.name)) for f in facilities
        ],
        "receiving": [
            (f.code, f.name if lang == "zh" else (f.name_en or f.name))
            for f in facilities
            if f.maternal_level or f.neonatal_level
        ],
        "OUTCOME_NAMES": OUTCOME_NAMES,
        "STATUS_GROUPS": STATUS_GROUPS,
        "SORT_NAMES": SORT_NAMES,
    }


def _link(given: dict[str, str], **extra: str) -> str:
    return url_for("history.index") + "?" + urlencode({**given, **extra})


def _refused(given: dict[str, str], exc: ServiceError) -> tuple[str, int]:
    """The page again with the form as given and the field at fault named (a 400)."""
    db.session.rollback()
    return render_template(
        "history.html",
        given=given,
        lines=[],
        error=exc,
        error_field=FIELD_NAMES.get(exc.field or ""),
        **_choices(),
    ), 400


def _export_link(given: dict[str, str], fmt: str) -> str:
    return url_for("history.export") + "?" + urlencode({**given, "format": fmt})


@bp.get("/history")
@page_for(*ALL_ROLES)
def index() -> tuple[str, int]:
    actor = actor_for(page_user())
    args = request.args
    given = {k: v for k in (*history.FILTERS, "sort") if (v := args.get(k, "").strip())}
    try:
        filters = case_history.filters_from(args)
        sort = history.parse_sort(args.get("sort"))
        limit = history.parse_limit(args.get("limit"))
        page = history.search_cases(
            db.session,
            actor=actor,
            filters=filters,
            cursor=args.get("cursor") or None,
            limit=limit,
            sort=sort,
        )
    except ServiceError as exc:
        db.session.rollback()
        context: dict[str, Any] = {
            "lines": [],
            "error": exc,
            "error_field": FIELD_NAMES.get(exc.field or ""),
        }
        return render_template("history.html", given=given, **context, **_choices()), 400
    audited(
        "list", actor, None, referral_ids=[line.id for line in page.lines], filters=filters.given
    )
    db.session.commit()
    kept = {**filters.given, **({"sort": sort} if sort != "newest" else {})}
    return render_template(
        "history.html",
        given=given,
        lines=page.lines,
        error=None,
        first_page=_link(kept) if args.get("cursor") else None,
        next_page=_link(kept, cursor=page.next_cursor) if page.next_cursor else None,
        csv_url=_export_link(kept, "csv"),
        xlsx_url=_export_link(kept, "xlsx"),
        cap=history.EXPORT_CAP,
        **_choices(),
    ), 200


@bp.get("/history/export")
@page_for(*ALL_ROLES)
def export() -> Response | tuple[str, int]:
    """The page's list as CSV or Excel (the API's export: same columns, same cap)."""
    actor = actor_for(page_user())
    try:
        filters = case_history.filters_from(request.args)
        sort = history.parse_sort(request.args.get("sort"))
        fmt = history.parse_choice("format", request.args.get("format", "csv"), ("csv", "xlsx"))
    except ServiceError as exc:
        db.session.rollback()
        context: dict[str, Any] = {
            "lines": [],
            "error": exc,
            "error_field": FIELD_NAMES.get(exc.field or ""),
        }
        return render_template("history.html", given={}, **context, **_choices()), 400
    lines, truncated = case_history.export_lines(actor, filters, sort=sort)
    audited("export", actor, None, format=fmt, rows=len(lines), filters=filters.given)
    db.session.commit()
    return case_history.export_response(actor, lines, fmt=fmt, truncated=truncated)
