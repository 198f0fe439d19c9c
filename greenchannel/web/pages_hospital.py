"""The hospital's page: incoming offers (Accept / Decline), the capacity form, expected
arrivals with an "arrived" button."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import ServiceError
from core.vocabulary import VocabularyError
from facilities import status as status_service
from facilities.models import Channel, Diversion, Facility, Role
from greenchannel.web import clock, http_cache, live_tags
from greenchannel.web.db import db
from greenchannel.web.pages import audit_list, page_error, page_for, page_user
from referral.models import Offer, OfferStatus, Referral, ReferralStatus

bp = Blueprint("hospital", __name__)
bp.register_error_handler(HTTPException, page_error)
BED_TYPES = ("obstetric", "maternal_icu", "nicu")


def hospital_context() -> dict[str, Any]:
    user = page_user()
    facility = user.facility
    assert facility is not None
    now = clock.now()
    offers = list(
        db.session.scalars(
            select(Offer)
            .join(Referral)
            .where(
                Offer.facility_id == facility.id,
                Offer.status == OfferStatus.PENDING,
                Referral.status.in_([ReferralStatus.OFFERED, ReferralStatus.UNPLACED]),
            )
            .order_by(Offer.expires_at)
        )
    )
    arrivals = list(
        db.session.scalars(
            select(Referral)
            .where(
                Referral.destination_facility_id == facility.id,
                Referral.status.in_(
                    [ReferralStatus.ACCEPTED, ReferralStatus.IN_TRANSIT, ReferralStatus.ARRIVED]
                ),
            )
            .order_by(Referral.accepted_at)
        )
    )
    grace = current_app.extensions["greenchannel.rules"].stale_grace
    view = status_service.status_view(facility, now=now, grace=grace)
    return {
        "user": user,
        "facility": facility,
        "offers": offers,
        "arrivals": arrivals,
        "status": view,
        "now": now,
    }


@bp.get("/hospital")
@page_for(Role.HOSPITAL)
def index() -> str:
    return _page()


def _page(form: Any = None, error: tuple[str, str] | None = None) -> str:
    """The hospital's page; after a refused capacity form, with what was typed and the message
    beside the field at fault (a bad value is never silently replaced by the stored one)."""
    context = hospital_context()
    offered = [offer.referral for offer in context["offers"]]
    audit_list(context["user"], [*offered, *context["arrivals"]])
    return render_template(
        "hospital.html",
        **context,
        form=form,
        capacity_error=error,
        saved=request.args.get("saved") == "1",
    )


@bp.get("/hospital/live")
@page_for(Role.HOSPITAL)
def live() -> Response:
    tag = live_tags.hospital_tag(page_user())  # before the fragment (http_cache.py)
    unchanged = http_cache.not_modified(tag)
    if unchanged is not None:
        return unchanged
    return http_cache.tagged(render_template("_hospital_live.html", **hospital_context()), tag)


def _count(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 10000:
        raise VocabularyError(_("Enter a whole number from 0 to 10000."), field=name)
    return int(raw)


@bp.post("/hospital/capacity")
@page_for(Role.HOSPITAL)
def capacity() -> Response | tuple[str, int]:
    """The capacity form: every field is sent, so unticked services are available again."""
    user = page_user()
    facility = db.session.get(Facility, user.facility_id)
    assert facility is not None
    form = request.form
    try:
        beds = {name: _count(name) for name in BED_TYPES}
        diversion = form.get("diversion", "")
        if diversion not in {d.value for d in Diversion}:
            raise VocabularyError(_("Choose normal, advisory or closed."), field="diversion")
        unavailable = [c for c in form.getlist("unavailable") if c in facility.capabilities]
        status_service.report_status(
            db.session,
            facility=facility,
            beds={k: v for k, v in beds.items() if v is not None},
            diversion=diversion,
            diversion_reason=form.get("diversion_reason", "").strip()[:500],
            unavailable=unavailable,
            reported_by=user.username,
            user_id=user.id,
            channel=Channel.WEB,
            now=clock.now(),
        )
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        field = (exc.field or "").removeprefix("beds.")
        return _page(form, (field, str(exc))), exc.status
    return redirect(url_for("hospital.index", saved=1) + "#capacity")
