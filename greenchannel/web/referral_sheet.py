# flask-smorest ships no type information: its decorators are untyped (see setup.cfg).
# mypy: disable-error-code="untyped-decorator"
"""The printed referral form (转诊单): the case on one sheet, from the browser's print of the case
page and as a PDF (WeasyPrint, with the Noto Sans CJK fonts) at
``GET /api/v1/referrals/{id}/referral-form.pdf``.

The sheet holds what travels with the patient: the dates and times, the referring and receiving
facilities, who referred and who accepted, the patient block (the service never stores a name:
the sheet leaves a line to write it by hand), the handover in SBAR order, the timeline and the
signature lines. The register number is printed only for the users of the referring or the
receiving facility (:func:`referral.history.may_identify`, the exports' rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Response, render_template, request
from flask_babel import force_locale

from core.errors import NotFoundError
from core.vocabulary import LANGUAGES
from facilities.models import User
from greenchannel.web import case_views, clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.api_referrals import actor_for, audited
from greenchannel.web.auth import require_user
from greenchannel.web.db import db
from greenchannel.web.labels import condition_names, facility_name
from greenchannel.web.pages import language, page_user
from referral import history, service
from referral.models import Referral

STATIC = Path(__file__).parent / "static"

blp = Blueprint(
    "referral_sheet",
    __name__,
    url_prefix="/api/v1/referrals",
    description="The printed referral form (转诊单) of a case",
)


@dataclass(frozen=True)
class Party:
    """One side of the transfer on the sheet."""

    code: str
    name: str
    phone: str


def _party(facility: Any, lang: str) -> Party | None:
    if facility is None:
        return None
    return Party(code=facility.code, name=facility_name(facility, lang), phone=facility.phone or "")


def context_for(referral: Referral, user: User, lang: str) -> dict[str, Any]:
    """What the sheet shows (the case page's print section and the PDF share it)."""
    actor = actor_for(user)
    accepted = next((o for o in referral.offers if o.id == referral.accepted_offer_id), None)
    identify = history.may_identify_ids(
        actor,
        origin_id=referral.origin_facility_id,
        destination_id=referral.destination_facility_id,
    )
    return {
        "r": referral,
        "lang": lang,
        "conditions": condition_names(referral, lang),
        "origin": _party(referral.origin, lang),
        "destination": _party(referral.destination, lang),
        "referred_by": referral.created_by,
        "accepted_by": accepted.answered_by if accepted else "",
        "accepted_at": accepted.answered_at if accepted else None,
        "register_number": (referral.patient_ref or "") if identify else None,
        "patient": referral.patient or {},
        "handover": case_views.handover(referral, lang),
        "events": list(referral.events),
        "printed_at": clock.now(),
        "printed_by": user.username,
    }


def page_sheet(referral: Referral) -> dict[str, Any]:
    """The sheet of the case page's print section (a template global)."""
    return context_for(referral, page_user(), language())


def _language(user: User) -> str:
    wanted = request.args.get("lang", "")
    if wanted in LANGUAGES:
        return wanted
    return user.language if user.language in LANGUAGES else language()


def render_pdf(referral: Referral, user: User, lang: str) -> bytes:
    """The sheet as a PDF in ``lang`` (CJK text set in Noto Sans CJK)."""
    from weasyprint import CSS, HTML  # heavy: loaded on the first PDF, not at start

    with force_locale(lang):
        html = render_template("referral_sheet.html", sheet=context_for(referral, user, lang))
    sheet = CSS(filename=str(STATIC / "referral-sheet.css"))
    pdf: bytes = HTML(string=html, base_url=str(STATIC)).write_pdf(stylesheets=[sheet])
    return pdf


@blp.route("/<int:referral_id>/referral-form.pdf", methods=["GET"])
@blp.doc(
    parameters=[
        {
            "in": "query",
            "name": "lang",
            "required": False,
            "schema": {"type": "string", "enum": list(LANGUAGES)},
            "description": "the sheet's language; absent: the user's own",
        }
    ],
    responses={
        "200": {
            "description": "the referral form as a PDF",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        "404": {"description": "no such case, or not one this user may see"},
    },
)
def referral_form_pdf(referral_id: int) -> Response:
    """The printed referral form (转诊单) of one case, as a PDF: same access as the case."""
    user = require_user()
    actor = actor_for(user)
    try:
        referral = service.get_referral(db.session, referral_id)
    except NotFoundError:
        raise NotFoundError(f"no referral {referral_id}", field="id") from None
    if not service.can_view(actor, referral):
        raise NotFoundError(f"no referral {referral_id}", field="id")
    lang = _language(user)
    body = render_pdf(referral, user, lang)
    audited("print", actor, referral.id, format="pdf", lang=lang)
    db.session.commit()
    response = Response(body, mimetype="application/pdf")
    stamp = f"{clock.now():%Y%m%d}"
    response.headers["Content-Disposition"] = (
        f'inline; filename="referral-{referral.code}-{stamp}.pdf"'
    )
    return response
