"""The pre-alert's one-time link: ``GET /l/<token>`` opens that one case for that contact.

Opening uses the link up (:func:`referral.links.open_link`) and starts a session that holds
nothing but the link's id: no ``user_id``, so :func:`greenchannel.web.auth.current_user` sees
nobody, every other page sends the holder to the login form and the API answers 401. The pages
here (``/link``: the case and the offer's Accept and Decline) ask
:func:`referral.links.grant_for` again on every request, so a revoked link or a deactivated
contact ends the session at once. Answers go through :func:`referral.commands.act`, like the
API's and the SMS replies, and are recorded as that contact.

A refused token (unknown, used, expired, revoked) leads to one page that says the link has
expired and to answer by SMS or phone; the refusals are counted per address and past
``GREENCHANNEL_RATE_LIMIT_LINK`` a minute (default 10) every token from there is refused until
the minute is over. The token never reaches a log line: the access log masks it
(``observability.loggable_path``, for every route with a ``<token>``).
"""

from __future__ import annotations

import logging
import math
import os

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import ServiceError
from core.settings import ConfigError
from core.vocabulary import LANGUAGES
from facilities.models import RateCounter
from greenchannel.web import clock, observability, ratelimit, referral_form
from greenchannel.web.api_referrals import audited
from greenchannel.web.context import current_placement, current_rules
from greenchannel.web.db import db
from greenchannel.web.pages import page_error, report_failure
from referral import commands, links
from referral.models import Offer, OfferStatus, Referral

log = logging.getLogger(__name__)

bp = Blueprint("links", __name__)
bp.register_error_handler(HTTPException, page_error)

SESSION_KEY = "case_link"
FAILURES_SETTING = "GREENCHANNEL_RATE_LIMIT_LINK"
DEFAULT_FAILURES_PER_MINUTE = 10


@bp.record_once
def _limit_from_env(state: BlueprintSetupState) -> None:
    raw = os.environ.get(FAILURES_SETTING, "").strip()
    if raw and not raw.isdecimal():
        raise ConfigError(f"{FAILURES_SETTING}: expected a whole number a minute, got {raw!r}")
    state.app.config.setdefault(FAILURES_SETTING, int(raw or DEFAULT_FAILURES_PER_MINUTE))


def _throttle_key() -> str:
    return f"link:{request.remote_addr or '?'}"


def _failures_so_far(key: str) -> int:
    count = db.session.scalar(
        select(RateCounter.count).where(
            RateCounter.key == key,
            RateCounter.window_start == ratelimit.window_start(clock.now()),
        )
    )
    db.session.rollback()  # a read only: leave no transaction open before the real work
    return int(count or 0)


def _refused_page(status: int = 410, retry_after: int | None = None) -> Response:
    page = render_template("link_case.html", r=None, throttled=retry_after is not None)
    response = current_app.make_response((page, status))
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/l/<token>")
def open_link(token: str) -> Response:
    limit = int(current_app.config.get(FAILURES_SETTING, DEFAULT_FAILURES_PER_MINUTE))
    key = _throttle_key()
    now = clock.now()
    if limit > 0 and _failures_so_far(key) >= limit:
        start = ratelimit.window_start(now)
        retry_after = max(1, math.ceil((start + ratelimit.WINDOW - now).total_seconds()))
        return _refused_page(429, retry_after)
    try:
        grant = links.open_link(db.session, token, now=now)
    except links.LinkRefused as exc:
        db.session.rollback()
        if limit > 0:
            ratelimit.hit(db.engine, key=key, now=now)
        log.info("case link refused (%s)", exc.reason)
        wanted = request.args.get("lang", "")
        lang = wanted if wanted in LANGUAGES else exc.language
        return redirect(url_for("links.expired", lang=lang))
    audited("link_open", grant.actor(), grant.referral_id, link_id=grant.link_id)
    db.session.commit()
    # One identity per browser session: whoever was logged in here is logged out, and the
    # holder of the link gets this case only, in their own language.
    session.clear()
    session[SESSION_KEY] = grant.link_id
    session["lang"] = grant.language
    session.permanent = False
    return redirect(url_for("links.case"))


@bp.get("/link/expired")
def expired() -> Response:
    return _refused_page()


def _grant() -> links.LinkGrant | None:
    link_id = session.get(SESSION_KEY)
    if not isinstance(link_id, int):
        return None
    return links.grant_for(db.session, link_id, now=clock.now())


def _granted() -> tuple[links.LinkGrant, Referral, Offer] | None:
    """The link session's grant with its case and offer; None (and the session forgotten)
    when the link no longer holds."""
    grant = _grant()
    if grant is not None:
        referral = db.session.get(Referral, grant.referral_id)
        offer = db.session.get(Offer, grant.offer_id)
        if referral is not None and offer is not None and offer.referral_id == referral.id:
            return grant, referral, offer
    session.pop(SESSION_KEY, None)
    return None


@bp.get("/link")
def case() -> Response | str:
    found = _granted()
    if found is None:
        return redirect(url_for("links.expired"))
    grant, referral, offer = found
    audited("view", grant.actor(), referral.id, page="/link", link_id=grant.link_id)
    db.session.commit()
    rules = current_rules()
    response = current_app.make_response(
        render_template(
            "link_case.html",
            r=referral,
            offer=offer,
            pending=offer.status is OfferStatus.PENDING,
            answer_by=rules.clock_time(offer.expires_at),
            now=clock.now(),
            throttled=False,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/link/<any(accept, decline):answer>")
def answer(answer: str) -> Response:
    found = _granted()
    if found is None:
        return redirect(url_for("links.expired"))
    grant, referral, offer = found
    try:
        commands.act(
            db.session,
            answer,
            place=current_placement(),
            referral=referral,
            actor=grant.actor(),
            now=clock.now(),
            request_id=observability.request_id(),
            **referral_form.answer_arguments(answer, request.form, offer),
        )
        db.session.commit()
        flash(referral_form.ANSWERED[answer], "ok")
    except ServiceError as exc:
        report_failure(exc)
    return redirect(url_for("links.case"))
