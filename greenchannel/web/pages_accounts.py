"""Account pages: the administrators' user list (deactivate, reset a password, issue and revoke
tokens) and everyone's own password change. The same services as ``api_users`` and the CLI;
every change is audited and ends the web sessions it must."""

from __future__ import annotations

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
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from core.errors import ServiceError
from facilities import accounts
from facilities.models import Role
from greenchannel.web import clock
from greenchannel.web.auth import SESSION_ID, audit_by
from greenchannel.web.db import db
from greenchannel.web.pages import page_for, page_user, report_failure

bp = Blueprint("accounts", __name__)


def password_rule_text(reason: str | None = None) -> str:
    """The password rule in the page's language, leading with what was wrong."""
    rule = _(
        "A password has at least %(n)s characters, is not a common password and does not "
        "contain the username.",
        n=accounts.MIN_PASSWORD_LENGTH,
    )
    leads = {
        "too_short": _("This password is too short."),
        "common": _("This password is too common."),
        "contains_username": _("This password contains the username."),
    }
    return f"{leads[reason]} {rule}" if reason in leads else rule


@bp.get("/admin/users")
@page_for(Role.ADMIN)
def users() -> str:
    now = clock.now()
    rows = [
        (user, accounts.live_tokens(db.session, user=user, now=now))
        for user in accounts.list_users(db.session)
    ]
    return render_template("admin_users.html", rows=rows, me=page_user())


def _admin_action(username: str, action: str) -> Response:
    admin = page_user()
    now = clock.now()
    try:
        target = accounts.get_user(db.session, username[:64])
        if action == "deactivate":
            if target.id == admin.id:
                flash(_("You may not deactivate yourself."), "error")
                return redirect(url_for("accounts.users"))
            accounts.deactivate_user(db.session, username=target.username, now=now)
            audit_by(admin, "user_deactivate", user=target.username, user_ref=target.id)
            message = _("%(name)s is deactivated: tokens revoked, sessions ended.", name=username)
        elif action == "reset":
            password = accounts.reset_password(db.session, username=target.username, now=now)
            audit_by(admin, "password_reset", user=target.username, user_ref=target.id)
            message = _(
                "New password for %(name)s (shown once, hand it over safely): %(password)s",
                name=username,
                password=password,
            )
        elif action == "issue":
            issued = accounts.new_token(
                db.session,
                user=target,
                label="issued on the Users page",
                now=now,
                lifetime=accounts.token_lifetime(current_app.config),
            )
            audit_by(admin, "token_issue", user=target.username, token=issued.prefix)
            message = _(
                "New API token for %(name)s (shown once, hand it over safely): %(token)s",
                name=username,
                token=issued.token,
            )
        else:
            count = accounts.revoke_tokens(db.session, user=target, now=now)
            audit_by(admin, "token_revoke", user=target.username, count=count)
            message = _("%(count)s token(s) of %(name)s revoked.", count=count, name=username)
    except ServiceError as exc:
        report_failure(exc)
        return redirect(url_for("accounts.users"))
    db.session.commit()
    flash(message, "ok")
    return redirect(url_for("accounts.users"))


@bp.post("/admin/users/<username>/deactivate")
@page_for(Role.ADMIN)
def deactivate(username: str) -> Response:
    return _admin_action(username, "deactivate")


@bp.post("/admin/users/<username>/reset-password")
@page_for(Role.ADMIN)
def reset_password(username: str) -> Response:
    return _admin_action(username, "reset")


@bp.post("/admin/users/<username>/revoke-tokens")
@page_for(Role.ADMIN)
def revoke_tokens(username: str) -> Response:
    return _admin_action(username, "revoke")


@bp.post("/admin/users/<username>/issue-token")
@page_for(Role.ADMIN)
def issue_token(username: str) -> Response:
    return _admin_action(username, "issue")


@bp.route("/account/password", methods=["GET", "POST"])
@page_for()
def change_password() -> str | tuple[str, int]:
    """Everyone's own password: the current one, then the new one twice. Every other web
    session of the user ends; this browser gets a fresh one."""
    user = page_user()
    if request.method == "GET":
        return render_template("password.html", error=None, rule=password_rule_text())
    current = request.form.get("current", "")
    new = request.form.get("new", "")
    error = None
    if not accounts.password_matches(user, current):
        error = _("The current password is wrong.")
    elif new != request.form.get("repeat", ""):
        error = _("The two new passwords differ.")
    else:
        try:
            accounts.check_password_strength(new, username=user.username)
        except accounts.WeakPassword as exc:
            error = password_rule_text(exc.reason)
    if error is not None:
        return render_template("password.html", error=error, rule=password_rule_text()), 400
    now = clock.now()
    user.password_hash = accounts.hash_password(new)
    accounts.revoke_sessions(db.session, user=user, now=now)
    raw = accounts.start_session(
        db.session, user=user, remote_addr=(request.remote_addr or "")[:64], now=now
    )
    audit_by(user, "password_change")
    db.session.commit()
    session[SESSION_ID] = raw
    flash(_("Your password is changed; your other sessions are ended."), "ok")
    return render_template("password.html", error=None, rule=password_rule_text())
