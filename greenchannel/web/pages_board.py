"""The coordinator board: every open case in the area with timers, the cases that need a
human on top, stale capacity, road closures and the map (``static/board-map.js``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import ServiceError
from facilities import status as status_service
from facilities.models import Role
from greenchannel.web import clock
from greenchannel.web.api_referrals import actor_for
from greenchannel.web.db import db
from greenchannel.web.labels import attention, board_order
from greenchannel.web.pages import (
    area_facilities,
    audit_list,
    page_error,
    page_for,
    page_user,
    report_failure,
)
from referral import closures, service
from referral.models import OPEN_STATUSES, Offer, Referral

bp = Blueprint("board", __name__)
bp.register_error_handler(HTTPException, page_error)
COORDINATORS = (Role.COORDINATOR, Role.ADMIN)


def board_context() -> dict[str, Any]:
    user = page_user()
    actor = actor_for(user)
    now = clock.now()
    # One query for the cases (visibility in SQL) and one for their offers: the statements do
    # not grow with the number of open cases.
    statement = (
        select(Referral)
        .where(Referral.status.in_(OPEN_STATUSES))
        .options(
            joinedload(Referral.origin),
            joinedload(Referral.destination),
            selectinload(Referral.offers).joinedload(Offer.facility),
        )
        .order_by(Referral.created_at)
        .limit(500)
    )
    cases = list(db.session.scalars(service.visible(statement, actor)).unique())
    cases.sort(key=lambda r: board_order(r, now))
    flags = {r.id: attention(r, now) for r in cases}
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
        "flags": flags,
        "needs_human": [r for r in cases if flags[r.id]],
        "stale": stale,
        "closures": closures.active_closures(db.session),
        "redirect_choices": [f for f in facilities if f.maternal_level or f.neonatal_level],
        "now": now,
    }


@bp.get("/board")
@page_for(*COORDINATORS)
def index() -> str:
    context = board_context()
    audit_list(context["user"], context["cases"])
    return render_template("board.html", **context)


@bp.get("/board/live")
@page_for(*COORDINATORS)
def live() -> str:
    return render_template("_board_live.html", **board_context())


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
            by=user.username,
            now=clock.now(),
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
            db.session, closure_id=closure_id, by=page_user().username, now=clock.now()
        )
    except ServiceError as exc:
        report_failure(exc)
        return redirect(url_for("board.index") + "#closures")
    db.session.commit()
    flash(_("Closure lifted."), "ok")
    return redirect(url_for("board.index") + "#closures")
