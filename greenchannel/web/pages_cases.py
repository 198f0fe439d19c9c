"""The clinic's pages (the one-screen referral form, its open and recent cases) and the case
page every role shares (destination, ETA, code, call-back number, advice, offers, timeline),
with the server-side form actions behind them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import NotFoundError, ServiceError
from facilities import registry
from facilities.models import Role
from greenchannel.web import clock, observability
from greenchannel.web.api_referrals import actor_for, audited, case_from, create_committed
from greenchannel.web.context import current_placement, current_rules
from greenchannel.web.db import db
from greenchannel.web.labels import facility_name
from greenchannel.web.pages import (
    area_facilities,
    audit_list,
    language,
    page_error,
    page_for,
    page_user,
    report_failure,
)
from referral import commands, service, triage
from referral.models import OPEN_STATUSES, Offer, OfferStatus, Referral
from referral.triage import TriageError

bp = Blueprint("cases", __name__)
bp.register_error_handler(HTTPException, page_error)
ALL_ROLES = (Role.CLINIC, Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)


def _number(name: str, low: float, high: float) -> float | None:
    raw = request.form.get(name, "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ServiceError(f"{name}: expected a number", field=name) from None
    if not low <= value <= high:
        raise ServiceError(f"{name}: expected {low:g} to {high:g}", field=name)
    return value


def _time_today(name: str) -> dt.datetime | None:
    """A clock time typed on the form (``14:05``), read in the region's time zone as the last
    such moment (today, or yesterday when today's would be in the future)."""
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        clock_time = dt.time.fromisoformat(raw)
    except ValueError:
        raise ServiceError(f"{name}: expected a time such as 14:05", field=name) from None
    zone = dt.timezone(dt.timedelta(hours=current_rules().working_hours[2]))
    now = clock.now().astimezone(zone)
    when = now.replace(hour=clock_time.hour, minute=clock_time.minute, second=0, microsecond=0)
    if when > now + triage.CLOCK_SLACK:
        when -= dt.timedelta(days=1)
    return when


def conditions_for_form() -> list[dict[str, Any]]:
    lang = language()
    return [
        {
            "code": code,
            "name": condition.name[lang],
            "other": condition.name["en" if lang == "zh" else "zh"],
            "patient": condition.patient,
            "urgency": condition.urgency,
        }
        for code, condition in current_rules().conditions.items()
    ]


def clinic_cases(facility_id: int) -> tuple[list[Referral], list[Referral]]:
    mine = select(Referral).where(Referral.origin_facility_id == facility_id)
    open_cases = list(
        db.session.scalars(
            mine.where(Referral.status.in_(OPEN_STATUSES)).order_by(Referral.created_at.desc())
        )
    )
    recent = list(
        db.session.scalars(
            mine.where(Referral.status.not_in(OPEN_STATUSES))
            .order_by(Referral.created_at.desc())
            .limit(10)
        )
    )
    return open_cases, recent


@bp.get("/clinic")
@page_for(Role.CLINIC)
def clinic() -> str:
    user = page_user()
    assert user.facility_id is not None
    open_cases, recent = clinic_cases(user.facility_id)
    audit_list(user, [*open_cases, *recent])
    return render_template(
        "clinic.html",
        user=user,
        conditions=conditions_for_form(),
        open_cases=open_cases,
        recent=recent,
        form_key=uuid.uuid4().hex,
        form=request.args,
    )


@bp.get("/clinic/live")
@page_for(Role.CLINIC)
def clinic_live() -> str:
    user = page_user()
    assert user.facility_id is not None
    open_cases, recent = clinic_cases(user.facility_id)
    return render_template("_clinic_cases.html", open_cases=open_cases, recent=recent)


@bp.post("/clinic/referrals")
@page_for(Role.CLINIC)
def create() -> Response:
    user = page_user()
    form = request.form
    # Known codes only, each once (a checkbox is sent once; a repeat is a forged or replayed
    # form): at most the rulebook's conditions, and the service refuses more than its bound.
    known = current_rules().conditions
    conditions = list(dict.fromkeys(c for c in form.getlist("conditions") if c in known))
    try:
        colour = form.get("risk_colour") or None
        if colour not in (None, "green", "yellow", "orange", "red"):
            raise ServiceError("risk_colour: unknown colour", field="risk_colour")
        gestation = _number("gestation_weeks", *triage.GESTATION_WEEKS)
        weight = _number("birth_weight_g", *triage.BIRTH_WEIGHT_G)
        if not conditions and colour is None:
            raise ServiceError(
                "conditions: choose at least one condition or a risk colour", field="conditions"
            )
        case = case_from(
            {
                "conditions": conditions,
                "risk_colour": colour,
                "purple": form.get("purple") == "on",
                "gestation_weeks": gestation,
                "birth_weight_g": weight,
                "in_shock": form.get("in_shock") == "on",
                "ventilated": form.get("ventilated") == "on",
                "do_not_move": True
                if form.get("do_not_move") == "on"
                else (False if form.get("move_anyway") == "on" else None),
                "delivered": {"yes": True, "no": False}.get(form.get("delivered", "")),
                "born_at": _time_today("born_time"),
                "estimated_fetal_weight_g": _number(
                    "estimated_fetal_weight_g", *triage.FETAL_WEIGHT_G
                ),
                "vitals": {
                    "hr": _number("hr", *triage.VITAL_RANGES["hr"]),
                    "sbp": _number("sbp", *triage.VITAL_RANGES["sbp"]),
                },
                "blood_loss_ml": _number("blood_loss_ml", *triage.BLOOD_LOSS_ML),
            }
        )
        patient = (
            {"ref": form.get("patient_ref", "").strip()[:64]} if form.get("patient_ref") else {}
        )
        assert user.facility is not None
        arguments: dict[str, Any] = {
            "place": current_placement(),
            "actor": actor_for(user),
            "origin": user.facility,
            "case": case,
            "patient": patient,
            "callback_phone": "",
            "idempotency_key": ("web-" + form.get("form_key", ""))[:200]
            if form.get("form_key")
            else None,
            "now": clock.now(),
        }
        referral, _created = create_committed(arguments)
    except (ServiceError, TriageError) as exc:
        if isinstance(exc, ServiceError):
            report_failure(exc)
        else:
            db.session.rollback()
            flash(f"{_('Please check the form.')} ({exc})", "error")
        return redirect(url_for("cases.clinic"))
    return redirect(url_for("cases.case", referral_id=referral.id))


# ---------------------------------------------------------------------------- the case page


def visible_case(referral_id: int) -> Referral:
    actor = actor_for(page_user())
    try:
        referral = service.get_referral(db.session, referral_id)
    except NotFoundError:
        abort(404)
    if not service.can_view(actor, referral):
        abort(404)
    return referral


def case_context(referral: Referral) -> dict[str, Any]:
    user = page_user()
    lang = language()
    mine = [
        o
        for o in referral.offers
        if o.status is OfferStatus.PENDING and o.facility_id == user.facility_id
    ]
    facilities: list[Any] = []
    if user.role in (Role.COORDINATOR, Role.ADMIN):
        facilities = [f for f in area_facilities(user) if f.maternal_level or f.neonatal_level]
    return {
        "user": user,
        "r": referral,
        "lang": lang,
        "origin_name": facility_name(referral.origin, lang),
        "my_offers": mine,
        "redirect_choices": facilities,
        "now": clock.now(),
    }


@bp.get("/cases/<int:referral_id>")
@page_for(*ALL_ROLES)
def case(referral_id: int) -> str:
    referral = visible_case(referral_id)
    audited("view", actor_for(page_user()), referral.id, page=request.path)
    db.session.commit()
    return render_template("case.html", **case_context(referral))


@bp.get("/cases/<int:referral_id>/live")
@page_for(*ALL_ROLES)
def case_live(referral_id: int) -> str:
    return render_template("_case_live.html", **case_context(visible_case(referral_id)))


def _back(referral: Referral) -> Response:
    target = request.form.get("back", "")
    if target in ("hospital", "board"):
        return redirect(url_for(f"{target}.index"))
    return redirect(url_for("cases.case", referral_id=referral.id))


# What the person is told when an action went through (the command table's actions).
DONE = {
    "depart": _l("Departure recorded: the hospital is waiting."),
    "arrive": _l("Arrival recorded; the clinic is told."),
    "complete": _l("Case completed."),
    "cancel": _l("Case cancelled."),
    "reopen": _l("Offers re-opened to every capable hospital."),
    "redirect": _l("Redirected: the chosen hospital has been asked."),
}


def _act(referral_id: int, action: str) -> Response:
    referral = visible_case(referral_id)
    actor = actor_for(page_user())
    form = request.form
    now = clock.now()
    arguments: dict[str, Any] = {}
    if action == "complete":
        arguments = {"outcome": form.get("outcome", "")}
    elif action == "cancel":
        arguments = {"reason": form.get("reason", ""), "note": form.get("note", "")}
    try:
        if action == "redirect":
            if actor.role not in (Role.COORDINATOR, Role.ADMIN):
                abort(403)
            try:
                facility = registry.get_facility(db.session, form.get("facility", ""))
            except registry.NotFound:
                raise NotFoundError("facility: unknown facility", field="facility") from None
            arguments = {"facility": facility, "reason": form.get("reason", "")}
        if action not in DONE:
            abort(404)
        commands.act(
            db.session,
            action,
            place=current_placement(),
            referral=referral,
            actor=actor,
            now=now,
            request_id=observability.request_id(),
            **arguments,
        )
        db.session.commit()
        flash(DONE[action], "ok")
    except ServiceError as exc:
        report_failure(exc)
    return _back(referral)


@bp.post(
    "/cases/<int:referral_id>/<any(depart, arrive, complete, cancel, reopen, redirect):action>"
)
@page_for(*ALL_ROLES)
def act(referral_id: int, action: str) -> Response:
    return _act(referral_id, action)


@bp.post("/cases/<int:referral_id>/offers/<int:offer_id>/<any(accept, decline):answer>")
@page_for(Role.HOSPITAL, Role.COORDINATOR, Role.ADMIN)
def answer(referral_id: int, offer_id: int, answer: str) -> Response:
    referral = visible_case(referral_id)
    actor = actor_for(page_user())
    try:
        offer: Offer = service.get_offer(db.session, referral, offer_id)
        if answer == "accept":
            minutes = _number("eta_minutes", 0, 24 * 60)
            service.accept_offer(
                db.session,
                place=current_placement(),
                referral=referral,
                offer=offer,
                actor=actor,
                minutes=round(minutes) if minutes is not None else None,
                now=clock.now(),
            )
            flash(_("Accepted: the clinic is told to come."), "ok")
        else:
            service.decline_offer(
                db.session,
                place=current_placement(),
                referral=referral,
                offer=offer,
                actor=actor,
                reason=request.form.get("reason", ""),
                note=request.form.get("note", ""),
                now=clock.now(),
            )
            flash(_("Declined: the case moves to the next hospital."), "ok")
        audited(answer, actor, referral.id)
        db.session.commit()
    except ServiceError as exc:
        report_failure(exc)
    return _back(referral)
