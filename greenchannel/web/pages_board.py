"""The coordinator board: every open case in the area with timers, the cases that need a
human on top, stale capacity, road closures and the map (``static/board-map.js``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from facilities import status as status_service
from facilities.models import Role
from greenchannel.web import clock
from greenchannel.web.api_referrals import actor_for
from greenchannel.web.db import db
from greenchannel.web.labels import attention, board_order
from greenchannel.web.pages import area_facilities, audit_list, page_error, page_for, page_user
from referral import service
from referral.models import OPEN_STATUSES, Referral, RoadClosure

bp = Blueprint("board", __name__)
bp.register_error_handler(HTTPException, page_error)
COORDINATORS = (Role.COORDINATOR, Role.ADMIN)


def board_context() -> dict[str, Any]:
    user = page_user()
    actor = actor_for(user)
    now = clock.now()
    cases = [
        r
        for r in db.session.scalars(
            select(Referral).where(Referral.status.in_(OPEN_STATUSES)).limit(500)
        )
        if service.can_view(actor, r)
    ]
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
    closures = list(
        db.session.scalars(
            select(RoadClosure).where(RoadClosure.lifted_at.is_(None)).order_by(RoadClosure.id)
        )
    )
    return {
        "user": user,
        "cases": cases,
        "flags": flags,
        "needs_human": [r for r in cases if flags[r.id]],
        "stale": stale,
        "closures": closures,
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


def _float(name: str, low: float, high: float) -> float:
    raw = request.form.get(name, "").strip().replace(",", ".")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(name) from None
    if not low <= value <= high:
        raise ValueError(name)
    return value


@bp.post("/board/closures")
@page_for(*COORDINATORS)
def add_closure() -> Response:
    """The same row the API writes (``POST /api/v1/roads/closures``); routing reads it at once."""
    user = page_user()
    kind = request.form.get("kind", "closed")
    try:
        lat = _float("lat", -90, 90)
        lon = _float("lon", -180, 180)
        radius = _float("radius_m", 10, 50_000)
        factor = _float("speed_factor", 0.05, 0.95) if kind == "slow" else 1.0
        if kind not in ("closed", "slow"):
            raise ValueError("kind")
    except ValueError as exc:
        flash(_("Please check the form.") + f" ({exc})", "error")
        return redirect(url_for("board.index") + "#closures")
    db.session.add(
        RoadClosure(
            lat=lat,
            lon=lon,
            radius_m=radius,
            kind=kind,
            speed_factor=factor,
            reason=request.form.get("reason", "").strip()[:500],
            created_by=user.username,
            created_at=clock.now(),
        )
    )
    db.session.commit()
    flash(_("Road closure in effect: routing uses it from now on."), "ok")
    return redirect(url_for("board.index") + "#closures")


@bp.post("/board/closures/<int:closure_id>/lift")
@page_for(*COORDINATORS)
def lift_closure(closure_id: int) -> Response:
    row = db.session.get(RoadClosure, closure_id)
    if row is not None and row.lifted_at is None:
        row.lifted_at = clock.now()
        row.lifted_by = page_user().username
        db.session.commit()
        flash(_("Closure lifted."), "ok")
    return redirect(url_for("board.index") + "#closures")
