"""Web pages: login and logout now; the clinic, hospital and coordinator pages grow here."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from facilities.accounts import LoginThrottled, check_login
from facilities.db import db, utcnow
from referral.auth import current_user

bp = Blueprint("web", __name__)


@bp.get("/")
def home() -> str | Response:
    user = current_user()
    if user is None:
        return redirect(url_for("web.login"))
    return render_template("home.html", user=user)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int, dict[str, str]]:
    if request.method == "GET":
        return render_template("login.html", error=None, username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    try:
        user = check_login(
            db.session,
            username=username,
            password=password,
            remote_addr=request.remote_addr or "",
            now=utcnow(),
        )
    except LoginThrottled as exc:
        db.session.commit()
        page = render_template("login.html", error=str(exc), username=username)
        return page, 429, {"Retry-After": str(exc.retry_after)}
    db.session.commit()
    if user is None:
        page = render_template(
            "login.html", error="用户名或密码错误 / Wrong username or password", username=username
        )
        return page, 401, {}
    session.clear()
    session["user_id"] = user.id
    session.permanent = False
    return redirect(url_for("web.home"))


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("web.login"))
