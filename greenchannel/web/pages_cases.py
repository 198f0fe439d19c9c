"""The clinic's pages (the one-screen referral form, its open and recent cases) and the case
page every role shares (destination, ETA, code, call-back number, advice, offers, timeline),
with the server-side form actions behind them."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from alerts.recipients import area_coordinators
from core.errors import NotFoundError, ServiceError
from facilities import registry
from facilities.models import FacilityKind, Role
from greenchannel.web import case_views, clock, http_cache, live_tags, observability, referral_form
from greenchannel.web.api_referrals import actor_for, audited, case_from, create_committed
from greenchannel.web.context import current_placement, current_rules
from greenchannel.web.db import db
from greenchannel.web.labels import BEDS, facility_name
from greenchannel.web.pages import (
    area_facilities,
    audit_list,
    language,
    page_error,
    page_for,
    page_user,
    report_failure,
)
from referral import commands, placement, service
from referral.models import OPEN_STATUSES, Offer, OfferStatus, Referral, ReferralStatus
from referral.triage import TriageError
from referral.wording import say

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


def treatments_for_form() -> list[dict[str, str]]:
    lang = language()
    return [
        {"code": code, "name": names[lang]} for code, names in current_rules().treatments.items()
    ]


def clinic_page(
    form: Any, errors: dict[str, str] | None = None, status: int = 200
) -> tuple[str, int]:
    user = page_user()
    assert user.facility_id is not None
    open_cases, recent = clinic_cases(user.facility_id)
    audit_list(user, [*open_cases, *recent])
    page = render_template(
        "clinic.html",
        user=user,
        conditions=conditions_for_form(),
        treatments=treatments_for_form(),
        open_cases=open_cases,
        recent=recent,
        form_key=form.get("form_key") or uuid.uuid4().hex,
        form=form,
        errors=errors or {},
    )
    return page, status


@bp.get("/clinic")
@page_for(Role.CLINIC)
def clinic() -> tuple[str, int]:
    return clinic_page(request.args)


@bp.get("/clinic/live")
@page_for(Role.CLINIC)
def clinic_live() -> Response:
    user = page_user()
    assert user.facility_id is not None
    tag = live_tags.clinic_tag(user)  # before the fragment: see greenchannel/web/http_cache.py
    unchanged = http_cache.not_modified(tag)
    if unchanged is not None:
        return unchanged
    open_cases, recent = clinic_cases(user.facility_id)
    page = render_template("_clinic_cases.html", open_cases=open_cases, recent=recent)
    return http_cache.tagged(page, tag)


@bp.post("/clinic/referrals")
@page_for(Role.CLINIC)
def create() -> Response | tuple[str, int]:
    """A referral from the form; a refused form comes back with everything entered and a
    message beside each wrong field (400), never empty."""
    user = page_user()
    form = request.form
    reading = referral_form.read(form)
    case = case_from(reading.body)
    referral_form.check(reading, case)
    if reading.errors:
        db.session.rollback()
        return clinic_page(form, reading.errors, 400)
    patient = {"ref": form.get("patient_ref", "").strip()[:64]} if form.get("patient_ref") else {}
    assert user.facility is not None
    arguments: dict[str, Any] = {
        "place": current_placement(),
        "actor": actor_for(user),
        "origin": user.facility,
        "case": case,
        "patient": patient,
        "callback_phone": reading.callback_phone,
        "idempotency_key": ("web-" + form.get("form_key", ""))[:200]
        if form.get("form_key")
        else None,
        "now": clock.now(),
    }
    try:
        referral, _created = create_committed(arguments)
    except ServiceError as exc:
        db.session.rollback()
        field = referral_form.form_name(exc.field or "")
        text = referral_form.problem_text(exc) if isinstance(exc, TriageError) else str(exc)
        if field:
            return clinic_page(form, {field: text}, exc.status)
        report_failure(exc)
        return clinic_page(form, {}, exc.status)
    return redirect(url_for("cases.case", referral_id=referral.id, sent=1))


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


REDIRECTABLE = ("requested", "offered", "unplaced", "accepted")
LOCAL_KINDS = (
    FacilityKind.CLINIC,
    FacilityKind.TOWNSHIP_HEALTH_CENTRE,
    FacilityKind.COMMUNITY_HEALTH_CENTRE,
)


def redirect_groups(referral: Referral, user: Any, lang: str) -> dict[str, list[dict[str, Any]]]:
    """The coordinator's redirect list: facilities that meet the case's requirements, ranked by
    road time with beds; partial matches apart, each with what it lacks; the nearest place to
    stabilise; and, for a destination agreed by phone, every other hospital of the area."""
    area = {f.code: f for f in area_facilities(user) if f.maternal_level or f.neonatal_level}
    now = clock.now()
    try:
        ranking = placement.rank_referral(
            db.session, place=current_placement(), referral=referral, now=now
        )
    except (ServiceError, ValueError):  # no answer here must not cost the page
        ranking = None

    def beds(code: str) -> str:
        facility = area.get(code)
        status = facility.status if facility is not None else None
        if status is None:
            return ""
        parts = [
            f"{BEDS[key]} {value}"
            for key, value in (
                ("obstetric", status.beds_obstetric),
                ("maternal_icu", status.beds_maternal_icu),
                ("nicu", status.beds_nicu),
            )
            if value is not None
        ]
        return " · ".join(parts)

    shown: set[str] = set()
    groups: dict[str, list[dict[str, Any]]] = {"capable": [], "partial": [], "stabilise": []}
    if ranking is not None:
        for c in ranking.candidates:
            if c.facility in area:
                shown.add(c.facility)
                groups["capable"].append(
                    {
                        "code": c.facility,
                        "name": facility_name(area[c.facility], lang),
                        "eta": c.eta_minutes,
                        "estimate": c.estimate,
                        "confirmed": c.confirmed,
                        "beds": beds(c.facility),
                    }
                )
        for p in ranking.partial:
            if p.facility in area and p.facility not in shown:
                shown.add(p.facility)
                groups["partial"].append(
                    {
                        "code": p.facility,
                        "name": facility_name(area[p.facility], lang),
                        "eta": p.eta_minutes,
                        "estimate": p.estimate,
                        "lacks": [say(r, lang) for r in p.lacks],
                        "beds": beds(p.facility),
                    }
                )
        stop = ranking.stabilise_at
        if stop is not None and stop.facility in area and stop.facility not in shown:
            shown.add(stop.facility)
            groups["stabilise"].append(
                {
                    "code": stop.facility,
                    "name": facility_name(area[stop.facility], lang),
                    "eta": stop.eta_minutes,
                    "estimate": stop.estimate,
                }
            )
    # Township and community centres are places to stabilise, never a destination by default.
    for code, f in area.items():
        if code in shown:
            continue
        row = {
            "code": code,
            "name": facility_name(f, lang),
            "level": f"M{f.maternal_level}/N{f.neonatal_level}",
            "eta": None,
        }
        groups["stabilise" if f.kind in LOCAL_KINDS else "other"].append(row)
    return groups


def case_context(referral: Referral) -> dict[str, Any]:
    user = page_user()
    lang = language()
    now = clock.now()
    mine = [
        o
        for o in referral.offers
        if o.status is OfferStatus.PENDING and o.facility_id == user.facility_id
    ]
    groups: dict[str, list[dict[str, Any]]] = {}
    if user.role in (Role.COORDINATOR, Role.ADMIN) and referral.status.value in REDIRECTABLE:
        groups = redirect_groups(referral, user, lang)
    coordinators: list[str] = []
    if referral.status is ReferralStatus.UNPLACED and referral.origin is not None:
        coordinators = [r.phone for r in area_coordinators(db.session, referral.origin)][:3]
    return {
        "user": user,
        "r": referral,
        "lang": lang,
        "origin_name": facility_name(referral.origin, lang),
        "my_offers": mine,
        "redirect_groups": groups,
        "coordinator_phones": coordinators,
        "handover": case_views.handover(referral, lang),
        "arrival": case_views.arrival(referral, now),
        "journey": case_views.journey_advice(referral, lang),
        "report_card": case_views.report_card(referral),
        "now": now,
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
def case_live(referral_id: int) -> Response:
    tag = live_tags.case_tag(page_user(), referral_id)
    if tag is not None:
        unchanged = http_cache.not_modified(tag)
        if unchanged is not None:
            return unchanged
    page = render_template("_case_live.html", **case_context(visible_case(referral_id)))
    return http_cache.tagged(page, tag) if tag is not None else Response(page, mimetype="text/html")


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
            facility = registry.get_facility(db.session, form.get("facility", ""), field="facility")
            arguments = {
                "facility": facility,
                "reason": form.get("reason", ""),
                "agreed_by_phone": form.get("agreed_by_phone") == "on",
            }
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
        commands.act(
            db.session,
            answer,
            place=current_placement(),
            referral=referral,
            actor=actor,
            now=clock.now(),
            request_id=observability.request_id(),
            **referral_form.answer_arguments(answer, request.form, offer),
        )
        db.session.commit()
        flash(referral_form.ANSWERED[answer], "ok")
    except ServiceError as exc:
        report_failure(exc)
    return _back(referral)
