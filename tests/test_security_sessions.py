"""Web sessions end on the server: logout, password change and reset, deactivation, and the
idle and absolute timeouts of a shared ward computer; a copied cookie is worth nothing after.
Logins are throttled per client and per (username, client), kept, and audited (issue 22)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities import accounts
from facilities.accounts import LoginThrottled, check_login, create_user
from facilities.models import LoginFailure, WebSession
from greenchannel.web.db import db
from referral.models import AuditEntry
from tests.world import NOW, PASSWORD, World, csrf_from, login, web_world

STATUS = {"beds": {"obstetric": 2}}


def _copy_cookie(source: FlaskClient, target: FlaskClient) -> None:
    cookie = source.get_cookie("session")
    assert cookie is not None
    target.set_cookie("session", cookie.value)


def _write(client: FlaskClient) -> int:
    """An API write from a browser session (the page's CSRF header, as live.js sends it)."""
    page = client.get("/hospital")
    token = csrf_from(page.get_data(as_text=True)) if page.status_code == 200 else "x"
    response = client.put(
        "/api/v1/facilities/H-A/status", json=STATUS, headers={"X-CSRFToken": token}
    )
    return response.status_code


@pytest.fixture
def ward(app: Flask, client: FlaskClient) -> World:
    return web_world(app, client)


def test_a_copied_cookie_stops_working_at_logout_api_writes_included(
    ward: World, app: Flask
) -> None:
    login(ward.client, "w-hosp")
    thief = app.test_client()
    _copy_cookie(ward.client, thief)
    assert _write(thief) == 200  # the copy works while the session lives
    home = ward.client.get("/").get_data(as_text=True)
    ward.client.post("/logout", data={"csrf_token": csrf_from(home)})
    assert thief.get("/api/v1/facilities").status_code == 401
    assert _write(thief) in (401, 403)
    assert thief.get("/hospital").status_code == 302  # back to the login form
    with app.app_context():
        rows = db.session.scalars(select(WebSession)).all()
        assert len(rows) == 1 and rows[0].revoked_at is not None
        assert "w-hosp" not in rows[0].token_hash  # only the id's hash is kept


def test_a_session_ends_after_thirty_idle_minutes(ward: World) -> None:
    login(ward.client, "w-hosp")
    ward.clock.advance(minutes=29)
    assert ward.client.get("/api/v1/facilities").status_code == 200
    ward.clock.advance(minutes=29)  # 29 idle minutes since the last request: still alive
    assert ward.client.get("/api/v1/facilities").status_code == 200
    ward.clock.advance(minutes=31)
    assert ward.client.get("/api/v1/facilities").status_code == 401
    ward.clock.advance(minutes=1)  # and it does not come back
    assert ward.client.get("/api/v1/facilities").status_code == 401


def test_a_busy_session_still_ends_twelve_hours_after_login(ward: World) -> None:
    login(ward.client, "w-coord")
    for _ in range(11 * 3):  # a request every 20 minutes for 11 hours
        ward.clock.advance(minutes=20)
        assert ward.client.get("/api/v1/facilities").status_code == 200
    ward.clock.advance(minutes=61)
    assert ward.client.get("/api/v1/facilities").status_code == 401


def test_the_timeouts_come_from_the_environment(app: Flask, client: FlaskClient) -> None:
    app.config["SESSION_IDLE_MINUTES"] = 5
    world = web_world(app, client)
    login(client, "w-hosp")
    world.clock.advance(minutes=6)
    assert client.get("/api/v1/facilities").status_code == 401
    from core.settings import ConfigError, load_config

    config = load_config(
        app.instance_path,
        {"SECRET_KEY": "k", "GREENCHANNEL_SESSION_IDLE_MINUTES": "15"},
    )
    assert config["SESSION_IDLE_MINUTES"] == 15 and config["SESSION_MAX_HOURS"] == 12
    with pytest.raises(ConfigError, match="GREENCHANNEL_SESSION_MAX_HOURS"):
        load_config(app.instance_path, {"SECRET_KEY": "k", "GREENCHANNEL_SESSION_MAX_HOURS": "0"})


def test_polling_writes_the_last_request_at_most_once_a_minute(ward: World, app: Flask) -> None:
    login(ward.client, "w-hosp")

    def last_seen() -> dt.datetime:
        with app.app_context():
            row = db.session.scalars(select(WebSession)).one()
            return row.last_seen_at

    start = last_seen()
    for _ in range(5):  # five polls within 50 seconds
        ward.clock.advance(seconds=10)
        assert ward.client.get("/api/v1/facilities").status_code == 200
    assert last_seen() == start
    ward.clock.advance(seconds=20)
    ward.client.get("/api/v1/facilities")
    assert last_seen() == NOW + dt.timedelta(seconds=70)


def test_deactivation_and_a_password_reset_end_every_session_of_the_user(
    ward: World, app: Flask
) -> None:
    login(ward.client, "w-hosp")
    other = app.test_client()
    login(other, "w-coord")
    with app.app_context():
        accounts.reset_password(db.session, username="w-hosp", now=ward.clock.now)
        db.session.commit()
    assert ward.client.get("/api/v1/facilities").status_code == 401
    assert other.get("/api/v1/facilities").status_code == 200  # another user is untouched
    with app.app_context():
        accounts.deactivate_user(db.session, username="w-coord", now=ward.clock.now)
        db.session.commit()
    assert other.get("/api/v1/facilities").status_code == 401


def test_changing_ones_password_ends_the_other_sessions_and_keeps_this_one(
    ward: World, app: Flask
) -> None:
    login(ward.client, "w-hosp")
    elsewhere = app.test_client()
    login(elsewhere, "w-hosp")
    page = ward.client.get("/account/password?lang=en").get_data(as_text=True)
    weak = ward.client.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "new": "w-hosp-2026-x",
            "repeat": "w-hosp-2026-x",
            "csrf_token": csrf_from(page),
        },
    )
    assert weak.status_code == 400
    assert "contains the username" in weak.get_data(as_text=True)
    done = ward.client.post(
        "/account/password",
        data={
            "current": PASSWORD,
            "new": "amber-kettle-41",
            "repeat": "amber-kettle-41",
            "csrf_token": csrf_from(page),
        },
    )
    assert done.status_code == 200
    assert ward.client.get("/api/v1/facilities").status_code == 200
    assert elsewhere.get("/api/v1/facilities").status_code == 401


def test_the_weak_password_message_is_in_chinese_on_a_chinese_page(ward: World) -> None:
    login(ward.client, "w-hosp", lang="zh")
    page = ward.client.get("/account/password").get_data(as_text=True)
    answer = ward.client.post(
        "/account/password",
        data={"current": PASSWORD, "new": "password123", "repeat": "password123"}
        | {"csrf_token": csrf_from(page)},
    )
    assert answer.status_code == 400 and "此密码过于常见" in answer.get_data(as_text=True)


# ------------------------------------------------------------------------------ throttling


def _fail(session: Session, username: str, client: str, now: dt.datetime = NOW) -> None:
    assert (
        check_login(session, username=username, password="wrong", remote_addr=client, now=now)
        is None
    )


def test_the_real_user_on_another_computer_is_not_locked_out(session: Session) -> None:
    create_user(session, username="coord", role="coordinator", password="s3cret-pass", now=NOW)
    for _ in range(5):
        _fail(session, "coord", "10.0.0.66")
    with pytest.raises(LoginThrottled):
        check_login(
            session, username="coord", password="s3cret-pass", remote_addr="10.0.0.66", now=NOW
        )
    user = check_login(
        session, username="coord", password="s3cret-pass", remote_addr="10.0.0.7", now=NOW
    )
    assert user is not None and user.username == "coord"


def test_guessing_across_many_usernames_from_one_client_is_slowed(session: Session) -> None:
    create_user(session, username="coord", role="coordinator", password="s3cret-pass", now=NOW)
    for n in range(accounts.FAILED_LOGIN_CLIENT_LIMIT):
        _fail(session, f"user{n}", "10.0.0.66")  # one password sprayed over many usernames
    with pytest.raises(LoginThrottled) as caught:
        check_login(
            session, username="coord", password="s3cret-pass", remote_addr="10.0.0.66", now=NOW
        )
    assert 0 < caught.value.retry_after <= 15 * 60
    assert (
        check_login(
            session, username="coord", password="s3cret-pass", remote_addr="10.0.0.7", now=NOW
        )
        is not None
    )


def test_failed_logins_are_kept_after_a_success_but_no_longer_count(session: Session) -> None:
    create_user(session, username="coord", role="coordinator", password="s3cret-pass", now=NOW)
    for _ in range(4):
        _fail(session, "coord", "10.0.0.7")
    assert check_login(
        session, username="coord", password="s3cret-pass", remote_addr="10.0.0.7", now=NOW
    )
    assert len(session.scalars(select(LoginFailure)).all()) == 4
    for _ in range(4):  # four more: not locked, the earlier four were cleared by the success
        _fail(session, "coord", "10.0.0.7")
    assert check_login(
        session, username="coord", password="s3cret-pass", remote_addr="10.0.0.7", now=NOW
    )


def test_retention_deletes_ended_sessions_and_old_failed_logins_never_a_live_session(
    session: Session,
) -> None:
    user = create_user(
        session, username="coord", role="coordinator", password="s3cret-pass", now=NOW
    ).user
    long_ago = NOW - dt.timedelta(days=400)
    idle_out = accounts.start_session(session, user=user, remote_addr="10.0.0.1", now=long_ago)
    logged_out = accounts.start_session(session, user=user, remote_addr="10.0.0.2", now=long_ago)
    accounts.end_session(session, logged_out, now=long_ago)
    live = accounts.start_session(session, user=user, remote_addr="10.0.0.3", now=NOW)
    _fail(session, "coord", "10.0.0.66", now=long_ago)
    _fail(session, "coord", "10.0.0.66", now=NOW - dt.timedelta(hours=1))
    assert accounts.forget_old_sign_ins(session, now=NOW, days=365) == (2, 1)
    remaining = session.scalars(select(WebSession.remote_addr)).all()
    assert remaining == ["10.0.0.3"]
    assert session.scalars(select(LoginFailure.at)).all() == [NOW - dt.timedelta(hours=1)]
    assert accounts.user_for_session(session, live, now=NOW) is not None
    for gone in (idle_out, logged_out):
        assert accounts.user_for_session(session, gone, now=NOW) is None

    # A session last seen two days ago that a deployment's three-day idle limit keeps alive
    # outlives a one-day retention; once it has ended it goes.
    quiet = accounts.start_session(
        session, user=user, remote_addr="10.0.0.4", now=NOW - dt.timedelta(days=2)
    )
    limits = {"idle": dt.timedelta(days=3), "absolute": dt.timedelta(days=7)}
    assert accounts.forget_old_sign_ins(session, now=NOW, days=1, **limits) == (0, 0)
    assert accounts.user_for_session(session, quiet, now=NOW, **limits) is not None
    later = NOW + dt.timedelta(days=8)  # past its absolute limit
    assert accounts.forget_old_sign_ins(session, now=later, days=1, **limits) == (2, 1)
    assert session.scalars(select(WebSession)).all() == []


def test_logins_failures_and_logouts_are_in_the_audit_trail(ward: World, app: Flask) -> None:
    page = ward.client.get("/login").get_data(as_text=True)
    ward.client.post(
        "/login", data={"username": "w-hosp", "password": "nope", "csrf_token": csrf_from(page)}
    )
    login(ward.client, "w-hosp")
    home = ward.client.get("/").get_data(as_text=True)
    ward.client.post("/logout", data={"csrf_token": csrf_from(home)})
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntry).where(AuditEntry.actor == "w-hosp").order_by(AuditEntry.id)
        ).all()
        assert [r.action for r in rows] == ["login_failed", "login", "logout"]
        assert all("nope" not in str(r.detail) and PASSWORD not in str(r.detail) for r in rows)
