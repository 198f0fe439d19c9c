"""The coordinator board: every open case in the area with timers, the cases that need a
human on top, stale capacity, road closures and the map (``static/board-map.js``)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from alerts import attention as alert_attention
from alerts.models import AttentionItem
from alerts.providers.health import provider_states
from core.errors import ServiceError
from facilities import status as status_service
from facilities.models import Role, User
from greenchannel.web import clock, http_cache
from greenchannel.web.api_map import geometry_url
from greenchannel.web.api_referrals import actor_for
from greenchannel.web.db import db
from greenchannel.web.labels import (
    Attention,
    attention,
    board_order,
    condition_names,
    facility_name,
    past_target,
)
from greenchannel.web.observability import request_id
from greenchannel.web.pages import (
    area_facilities,
    audit_list,
    language,
    page_error,
    page_for,
    page_user,
    report_failure,
)
from referral import board, closures, live_state, service
from referral.board import BoardCase
from referral.locking import case_subject
from referral.models import Referral
from referral.reports_glance import glance

bp = Blueprint("board", __name__)
bp.register_error_handler(HTTPException, page_error)
bp.context_processor(lambda: {"geometry_url": geometry_url})
COORDINATORS = (Role.COORDINATOR, Role.ADMIN)


@dataclass(slots=True)
class BoardRow:
    """One row of the open cases' table, worked out in Python in one pass: the template only
    prints it (a hundred rows each calling four macros and a dozen helpers cost half a render).
    The timers carry the same numbers as the ``since``/``until`` macros of ``macros.html``."""

    case: BoardCase
    url: str  # the case's page
    flagged: bool
    conditions: str
    past_target: bool
    origin: str
    destination: str | None
    asked: list[str]  # the pending offers' hospitals (only without a destination: shown then)
    since_iso: str
    since_minutes: int
    until_iso: str | None  # the first pending offer's end, None without a pending offer
    left: float  # seconds until then (≤ 0: time is up)
    left_text: str  # m:ss


_SENTINEL = 987_654_321_987  # in no URL of the app but a case page's built around it


def board_rows(
    cases: list[BoardCase], flags: dict[int, Attention], *, lang: str, now: dt.datetime
) -> list[BoardRow]:
    conditions: dict[tuple[str, ...], str] = {}  # a hundred cases share a few conditions
    # url_for cost a tenth of a hundred-row render: the case page's URL is built once, around
    # a number that cannot be a case's, and each row's is that URL with its own number.
    before, after = url_for("cases.case", referral_id=_SENTINEL).split(str(_SENTINEL))
    rows = []
    for case in cases:
        soonest = min((o.expires_at for o in case.pending), default=None)
        left = (soonest - now).total_seconds() if soonest is not None else 0.0
        named = tuple(case.case.get("conditions", ()))
        if named not in conditions:
            conditions[named] = condition_names(case, lang)  # type: ignore[arg-type]
        rows.append(
            BoardRow(
                case=case,
                url=f"{before}{case.id}{after}",
                flagged=bool(flags[case.id]),
                conditions=conditions[named],
                past_target=past_target(case, now),  # type: ignore[arg-type]
                origin=facility_name(case.origin, lang),
                destination=facility_name(case.destination, lang) if case.destination else None,
                asked=[facility_name(o.facility, lang) for o in case.pending]
                if case.destination is None
                else [],
                since_iso=case.created_at.isoformat(),
                since_minutes=int((now - case.created_at).total_seconds() // 60),
                until_iso=soonest.isoformat() if soonest is not None else None,
                left=left,
                left_text=f"{int(left // 60)}:{int(left % 60):02d}",
            )
        )
    return rows


def board_context() -> dict[str, Any]:
    user = page_user()
    actor = actor_for(user)
    now = clock.now()
    # Two statements for the cases (visibility in SQL) and their pending offers, read as plain
    # rows: the statements do not grow with the number of open cases (referral.board).
    cases = board.open_cases(db.session, actor)
    urgency_badge = get_template_attribute("macros.html", "urgency")
    status_badge = get_template_attribute("macros.html", "status")
    # Needs a human = the coordinators were texted: the open attention items, one statement.
    items: dict[str, list[AttentionItem]] = defaultdict(list)
    # A BoardCase reads like the Referral these helpers are typed for (the same attributes).
    subjects = {r.id: case_subject(r) for r in cases}  # type: ignore[arg-type]
    for item in alert_attention.open_items(db.session, list(subjects.values())):
        items[item.subject].append(item)
    flags = {r.id: attention(items[subjects[r.id]]) for r in cases}
    cases.sort(key=lambda r: board_order(r, flags[r.id]))  # type: ignore[arg-type]
    grace = current_app.extensions["greenchannel.rules"].stale_grace
    stale = []
    facilities = area_facilities(user)
    for facility in facilities:
        if facility.maternal_level < 2 and facility.neonatal_level < 2:
            continue  # clinics do not receive cases: their figures are not asked for
        view = status_service.status_view(facility, now=now, grace=grace)
        if view.stale:
            stale.append((facility, view))
    return {
        "user": user,
        "cases": cases,
        "rows": board_rows(cases, flags, lang=language(), now=now),
        # The badges of the urgencies and statuses shown, each made once by its macro.
        "urgency_badges": {u: urgency_badge(u) for u in {r.urgency for r in cases}},
        "status_badges": {s: status_badge(s) for s in {r.status.value for r in cases}},
        "flags": flags,
        "needs_human": [r for r in cases if flags[r.id]],
        "stale": stale,
        "closures": closures.active_closures(db.session),
        "now": now,
        # SMS providers marked down after repeated failures (alerts.providers.health).
        "sms_down": sorted(n for n, up in provider_states(db.session, now=now).items() if not up),
        "sms_fallback": str(current_app.config.get("SMS_FALLBACK_BACKEND") or ""),
    }


@bp.get("/board")
@page_for(*COORDINATORS)
def index() -> str:
    context = board_context()
    audit_list(context["user"], context["cases"])
    # The figures strip (#19): three statements on the full page only, never on the live poll.
    context["strip"] = glance(
        db.session,
        area=context["user"].area if context["user"].role is Role.COORDINATOR else None,
        rules=current_app.extensions["greenchannel.rules"],
        now=context["now"],
    )
    return render_template("board.html", **context)


def board_tag(user: User) -> str:
    """The live fragment's ETag: what it is made of, read as light rows (``referral.live_state``,
    four statements), and the minute for the words that follow the clock (past the target,
    capacity reported so long ago). Anything added to ``_board_live.html`` belongs here too."""
    heads = live_state.open_heads(db.session, actor_for(user))
    return http_cache.key(
        "board",
        user.id,
        user.role.value,
        user.area,
        language(),
        heads,
        live_state.open_attention(db.session, [case_id for case_id, _ in heads]),
        live_state.registry(db.session),
        live_state.closures(db.session),
        # The banner of SMS providers marked down (alerts.providers.health).
        sorted(provider_states(db.session, now=clock.now()).items()),
        http_cache.minute(),
    )


@bp.get("/board/live")
@page_for(*COORDINATORS)
def live() -> Response:
    # The tag is read before the fragment: a write in between makes the next poll render again.
    tag = board_tag(page_user())
    unchanged = http_cache.not_modified(tag)
    if unchanged is not None:
        return unchanged
    return http_cache.tagged(render_template("_board_live.html", **board_context()), tag)


@bp.post("/board/attention/<int:item_id>/seen")
@page_for(*COORDINATORS)
def attention_seen(item_id: int) -> Response:
    """A coordinator has seen why a case needs a human and is acting on it: the board stops
    showing that reason (a new event raises it again, with a new text)."""
    user = page_user()
    item = db.session.get(AttentionItem, item_id)
    referral_id = _case_id(item.subject) if item is not None else None
    visible = (
        referral_id is not None
        and db.session.scalars(
            service.visible(select(Referral.id).where(Referral.id == referral_id), actor_for(user))
        ).first()
        is not None
    )
    if not visible:
        abort(404)
    alert_attention.mark_seen(db.session, item_id=item_id, by=user.username, now=clock.now())
    db.session.commit()
    flash(_("Marked as seen: the board no longer lists this reason."), "ok")
    return redirect(url_for("board.index"))


def _case_id(subject: str) -> int | None:
    kind, _, number = subject.partition(":")
    return int(number) if kind == "referral" and number.isdigit() else None


def _number(name: str) -> float:
    raw = request.form.get(name, "").strip().replace(",", ".")
    try:
        return float(raw)
    except ValueError:
        raise ServiceError(f"{name}: expected a number", field=name) from None


@bp.post("/board/closures")
@page_for(*COORDINATORS)
def add_closure() -> Response:
    """The same row the API writes (``POST /api/v1/roads/closures``); routing reads it at once."""
    user = page_user()
    kind = request.form.get("kind", "closed")
    try:
        closures.place_closure(
            db.session,
            lat=_number("lat"),
            lon=_number("lon"),
            radius_m=_number("radius_m"),
            kind=kind,
            speed_factor=_number("speed_factor") if kind == "slow" else None,
            reason=request.form.get("reason", ""),
            by=actor_for(user),
            now=clock.now(),
            request_id=request_id(),
        )
    except ServiceError as exc:
        db.session.rollback()
        report_failure(exc)
        return redirect(url_for("board.index") + "#closures")
    db.session.commit()
    flash(_("Road closure in effect: routing uses it from now on."), "ok")
    return redirect(url_for("board.index") + "#closures")


@bp.post("/board/closures/<int:closure_id>/lift")
@page_for(*COORDINATORS)
def lift_closure(closure_id: int) -> Response:
    try:
        closures.lift_closure(
            db.session,
            closure_id=closure_id,
            by=actor_for(page_user()),
            now=clock.now(),
            request_id=request_id(),
        )
    except ServiceError as exc:
        report_failure(exc)
        return redirect(url_for("board.index") + "#closures")
    db.session.commit()
    flash(_("Closure lifted."), "ok")
    return redirect(url_for("board.index") + "#closures")
