"""Passwords, tokens, web sessions, CSRF and slowed-down guessing."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.accounts import (
    AccountError,
    LoginThrottled,
    check_login,
    create_user,
    revoke_tokens,
)
from facilities.models import ApiToken, User
from greenchannel.web.db import db
from tests.world import NOW, add_facility, add_user, bearer


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def test_passwords_are_stored_as_argon2id_and_tokens_only_as_hashes(session: Session) -> None:
    add_facility(session, "H-1")
    created = create_user(
        session,
        username="dr.wang",
        role="hospital",
        facility_code="H-1",
        password="correct horse",
        now=NOW,
    )
    user = session.scalar(select(User).where(User.username == "dr.wang"))
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    stored = session.scalars(select(ApiToken.token_hash)).all()
    assert created.token not in stored and len(stored) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "hospital"}, "facility"),
        ({"role": "clinic", "facility_code": "NOPE"}, "facility"),
        ({"role": "admin", "facility_code": "H-1"}, "facility"),
        ({"role": "hospital", "facility_code": "H-1", "area": "云省"}, "area"),
        ({"role": "pilot"}, "role"),
        ({"role": "admin", "password": "short"}, "password"),
        ({"role": "admin", "username": "a b"}, "username"),
    ],
)
def test_user_creation_refuses_inconsistent_roles(
    session: Session, kwargs: dict[str, str], field: str
) -> None:
    add_facility(session, "H-1")
    arguments = {"username": "someone", **kwargs}
    with pytest.raises(AccountError) as caught:
        create_user(session, now=NOW, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_revoked_token_no_longer_opens_the_api(client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        token = add_user(db.session, "adm", "admin")
        db.session.commit()
    assert client.get("/api/v1/facilities", headers=bearer(token)).status_code == 200
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "adm"))
        assert user is not None
        revoke_tokens(db.session, user=user, now=NOW)
        db.session.commit()
    response = client.get("/api/v1/facilities", headers=bearer(token))
    assert response.status_code == 401 and response.get_json()["field"] == "Authorization"
    assert client.get("/api/v1/facilities", headers={"Authorization": "Basic x"}).status_code == 401


def test_web_login_sets_a_safe_session_cookie_and_logout_ends_it(
    client: FlaskClient, app: Flask
) -> None:
    with app.app_context():
        add_user(db.session, "coord", "coordinator", password="s3cret-pass")
        db.session.commit()
    page = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login",
        data={"username": "coord", "password": "s3cret-pass", "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/api/v1/facilities").status_code == 200  # the session opens the API
    home = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(home)})
    assert client.get("/api/v1/facilities").status_code == 401


def test_a_login_form_without_its_csrf_token_is_refused(client: FlaskClient, app: Flask) -> None:
    with app.app_context():
        add_user(db.session, "coord", "coordinator", password="s3cret-pass")
        db.session.commit()
    response = client.post("/login", data={"username": "coord", "password": "s3cret-pass"})
    assert response.status_code == 400
    assert client.get("/api/v1/facilities").status_code == 401


def test_a_browser_session_must_send_the_csrf_header_to_change_things(
    client: FlaskClient, app: Flask
) -> None:
    with app.app_context():
        add_facility(db.session, "H-1")
        add_user(db.session, "hosp", "hospital", facility="H-1", password="s3cret-pass")
        db.session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"username": "hosp", "password": "s3cret-pass", "csrf_token": token})
    body = {"beds": {"obstetric": 1}}
    refused = client.put("/api/v1/facilities/H-1/status", json=body)
    assert refused.status_code == 403 and refused.get_json()["field"] == "X-CSRFToken"
    page_token = csrf_from(client.get("/").get_data(as_text=True))
    accepted = client.put(
        "/api/v1/facilities/H-1/status", json=body, headers={"X-CSRFToken": page_token}
    )
    assert accepted.status_code == 200
    assert accepted.get_json()["channel"] == "web"


def test_repeated_failed_logins_are_slowed_down_even_with_the_right_password(
    session: Session,
) -> None:
    create_user(session, username="coord", role="coordinator", password="s3cret-pass", now=NOW)
    for _ in range(5):
        assert (
            check_login(session, username="coord", password="wrong", remote_addr="1.2.3.4", now=NOW)
            is None
        )
    with pytest.raises(LoginThrottled) as caught:
        check_login(
            session, username="coord", password="s3cret-pass", remote_addr="1.2.3.4", now=NOW
        )
    assert 0 < caught.value.retry_after <= 15 * 60
    later = NOW.replace(minute=16)
    assert (
        check_login(
            session, username="coord", password="s3cret-pass", remote_addr="1.2.3.4", now=later
        )
        is not None
    )


def test_the_login_page_answers_429_with_retry_after_when_throttled(
    client: FlaskClient, app: Flask
) -> None:
    with app.app_context():
        add_user(db.session, "coord", "coordinator", password="s3cret-pass")
        db.session.commit()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    for _ in range(5):
        wrong = client.post(
            "/login", data={"username": "coord", "password": "nope", "csrf_token": token}
        )
        assert wrong.status_code == 401
    throttled = client.post(
        "/login", data={"username": "coord", "password": "s3cret-pass", "csrf_token": token}
    )
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0


def test_an_unknown_user_fails_like_a_wrong_password(session: Session) -> None:
    assert (
        check_login(session, username="ghost", password="whatever1", remote_addr="", now=NOW)
        is None
    )
