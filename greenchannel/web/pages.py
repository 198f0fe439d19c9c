"""Web pages, the shared part: login and logout, language, role guards, formatting helpers.

The pages themselves live in :mod:`greenchannel.web.pages_cases` (clinic form and the case
page), :mod:`greenchannel.web.pages_hospital` and :mod:`greenchannel.web.pages_board`. Every
form posts to a server-side route that calls the same services as the JSON API and redirects, so
the pages work without JavaScript; with it, ``static/live.js`` refreshes the marked parts of a
page by short polling.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_datetime, format_decimal, format_timedelta, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from core.errors import ServiceError
from core.vocabulary import LANGUAGES
from facilities import areas, registry
from facilities.accounts import LoginThrottled, check_login, end_session, start_session
from facilities.models import Facility, Role, User
from greenchannel.web import clock
from greenchannel.web.api_referrals import actor_for, audited
from greenchannel.web.auth import SESSION_ID, current_user
from greenchannel.web.db import db
from referral import audit
from referral.models import Referral

bp = Blueprint("web", __name__)
F = TypeVar("F", bound=Callable[..., Any])

ROLE_HOME = {
    Role.CLINIC: "cases.clinic",
    Role.HOSPITAL: "hospital.index",
    Role.COORDINATOR: "board.index",
    Role.ADMIN: "board.index",
}
ROLE_NAMES = {
    Role.CLINIC: _l("Clinic"),
    Role.HOSPITAL: _l("Hospital"),
    Role.COORDINATOR: _l("Coordinator"),
    Role.ADMIN: _l("Administrator"),
}


# ---------------------------------------------------------------------------- language


def select_locale() -> str:
    """``?lang=`` wins and is remembered in the session; Chinese is the default."""
    wanted = request.args.get("lang", "")
    if wanted in LANGUAGES:
        session["lang"] = wanted
        return wanted
    stored = session.get("lang", "")
    return stored if stored in LANGUAGES else "zh"


def language() -> str:
    return str(get_locale() or "zh")[:2]


def lang_url(code: str) -> str:
    """The current page in another language (GET pages only; a POST lands on home)."""
    if request.method != "GET" or request.endpoint is None:
        return url_for("web.home", lang=code)
    # The same path with the query string rebuilt, not url_for(endpoint, **args): a query
    # argument named like url_for's own (``_method``, ``_external``, ``endpoint``) or like the
    # route's (``?referral_id=x``) would make the link unbuildable and the page a 500.
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
    return request.script_root + request.path + "?" + urlencode([*query, ("lang", code)])


# ---------------------------------------------------------------------------- formatting


def local_time(value: dt.datetime | None, fmt: str = "short") -> str:
    if value is None:
        return "—"
    if fmt == "time":
        return str(format_datetime(value, "HH:mm"))
    return str(format_datetime(value, fmt))


def ago(value: dt.datetime | None) -> str:
    """How long ago, in the page's language ("5 minutes ago"; the clock tests can steer)."""
    if value is None:
        return str(_("never"))
    return str(format_timedelta(value - clock.now(), add_direction=True, threshold=1.0))


def number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    pattern = "#,##0" if digits == 0 else "#,##0." + "0" * digits
    return str(format_decimal(value, format=pattern))


def page_error(error: HTTPException) -> tuple[str, int]:
    """Errors inside the pages are pages too (the API keeps its JSON errors)."""
    status = error.code or 500
    titles = {
        400: _("The form was not accepted (it may have expired): go back and try again."),
        403: _("This page is not for your role."),
        404: _("Not found, or not visible to you."),
    }
    message = titles.get(status, _("Something went wrong."))
    return render_template("error.html", status=status, message=message), status


# ---------------------------------------------------------------------------- guards


def login_url() -> str:
    return url_for("web.login", next=request.full_path if request.method == "GET" else None)


def page_for(*roles: Role) -> Callable[[F], F]:
    """A page for these roles: anonymous users go to the login form, others get 403."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(login_url())
            if roles and user.role not in roles:
                abort(403)
            g.page_user = user
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def page_user() -> User:
    return cast(User, g.page_user)


def report_failure(exc: ServiceError) -> None:
    """A refused action, for the person: a translated lead, the service's exact words after."""
    db.session.rollback()
    leads = {
        409: _("Nothing changed: the case has moved on."),
        403: _("You may not do that."),
        404: _("Not found."),
    }
    lead = leads.get(exc.status, _("Please check the form."))
    flash(f"{lead} ({exc})", "error")


def safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# ---------------------------------------------------------------------------- pages

bp.register_error_handler(HTTPException, page_error)


@bp.get("/")
def home() -> str | Response:
    user = current_user()
    if user is None:
        return redirect(url_for("web.login"))
    return render_template("home.html", user=user, target=ROLE_HOME[user.role])


def _audit_login(action: str, username: str, user: User | None, client: str) -> None:
    """Logins, failed logins and logouts in the audit trail (no password, ever)."""
    audit.record(
        db.session,
        action=action,
        actor=username[:64],
        channel="web",
        role=user.role.value if user is not None else "",
        user_id=user.id if user is not None else None,
        now=clock.now(),
        client=client,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int, dict[str, str]]:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", error=None, username="", next_url=next_url)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    client = (request.remote_addr or "")[:64]
    try:
        user = check_login(
            db.session, username=username, password=password, remote_addr=client, now=clock.now()
        )
    except LoginThrottled as exc:
        _audit_login("login_throttled", username, None, client)
        db.session.commit()
        error = _("Too many failed attempts: try again in %(minutes)s minutes.")
        page = render_template(
            "login.html",
            error=error % {"minutes": max(1, round(exc.retry_after / 60))},
            username=username,
            next_url=next_url,
        )
        return page, 429, {"Retry-After": str(exc.retry_after)}
    if user is None:
        _audit_login("login_failed", username, None, client)
        db.session.commit()
        page = render_template(
            "login.html",
            error=_("Wrong username or password"),
            username=username,
            next_url=next_url,
        )
        return page, 401, {}
    old = session.get(SESSION_ID)
    if old:  # logging in over an earlier login ends that one
        end_session(db.session, str(old), now=clock.now())
    raw = start_session(db.session, user=user, remote_addr=client, now=clock.now())
    _audit_login("login", user.username, user, client)
    db.session.commit()
    lang = session.get("lang")
    session.clear()
    session[SESSION_ID] = raw
    if lang in LANGUAGES:
        session["lang"] = lang
    session.permanent = False
    return redirect(next_url or url_for(ROLE_HOME[user.role]))


@bp.post("/logout")
def logout() -> Response:
    """Ends the session in the database, not only in this browser: a copy of the cookie is
    worth nothing afterwards."""
    raw = session.get(SESSION_ID)
    if raw:
        user = current_user()
        end_session(db.session, str(raw), now=clock.now())
        if user is not None:
            _audit_login("logout", user.username, user, (request.remote_addr or "")[:64])
        db.session.commit()
    lang = session.get("lang")
    session.clear()
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(url_for("web.login"))


def audit_list(user: User, cases: Sequence[Referral]) -> None:
    """A page listing cases was opened: one audit row naming them (committed here). Its live
    refreshes every few seconds continue that view and are not written again."""
    audited("list", actor_for(user), None, referral_ids=[r.id for r in cases], page=request.path)
    db.session.commit()


def area_facilities(user: User) -> list[Facility]:
    """The active facilities in the user's area (the registry's area rule)."""
    return [
        f
        for f in registry.list_facilities(db.session, active_only=True)
        if areas.area_covers(user.area, f)
    ]
