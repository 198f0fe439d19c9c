"""Account lifecycle: list, deactivate, reset a password, revoke tokens (CLI, API, admin page);
tokens expire and record their last use; passwords follow a strength rule; the demo keeps
tokens across restarts (issue 22)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities import accounts
from facilities.accounts import WeakPassword, create_user
from facilities.models import ApiToken, User
from greenchannel.web.db import db
from referral.models import AuditEntry
from tests.world import NOW, World, add_user, csrf_from, login, web_world

# ------------------------------------------------------------------------------ passwords


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-9ch", "too_short"),
        ("password123", "common"),
        ("qwertyuiop", "common"),
        ("1234567890", "common"),
        ("Password1234!", "common"),
        ("dr.wang-2026!", "contains_username"),
        ("zzzzzzzzzzzz", "common"),
    ],
)
def test_a_weak_password_is_refused_and_the_rule_is_said(
    session: Session, password: str, reason: str
) -> None:
    with pytest.raises(WeakPassword) as caught:
        create_user(session, username="dr.wang", role="admin", password=password, now=NOW)
    assert caught.value.field == "password" and caught.value.reason == reason
    assert "at least 10 characters" in str(caught.value)
    assert "not a common password" in str(caught.value)


def test_a_strong_password_is_taken(session: Session) -> None:
    create_user(session, username="dr.wang", role="admin", password="amber-kettle-41", now=NOW)


# ------------------------------------------------------------------------------ tokens


def test_an_expired_token_is_refused_naming_authorization(world: World, app: Flask) -> None:
    assert world.get("admin", "/api/v1/facilities").status_code == 200
    world.clock.advance(days=90)
    refused = world.get("admin", "/api/v1/facilities")
    assert refused.status_code == 401
    assert refused.get_json()["field"] == "Authorization"
    assert "expired" in refused.get_json()["message"]


def test_a_tokens_last_use_is_recorded_and_audited_at_most_once_a_minute(
    world: World, app: Flask
) -> None:
    for _ in range(5):
        world.clock.advance(seconds=10)
        assert world.get("coordinator", "/api/v1/facilities").status_code == 200
    world.clock.advance(seconds=60)
    world.get("coordinator", "/api/v1/facilities")
    with app.app_context():
        token = db.session.scalars(
            select(ApiToken).join(User).where(User.username == "coord")
        ).one()
        assert token.last_used_at == NOW + dt.timedelta(seconds=110)
        uses = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "token_use", AuditEntry.actor == "coord")
        ).all()
        assert len(uses) == 2 and uses[0].detail["token"] == token.prefix
        assert token.prefix.startswith("gc_") and len(token.prefix) == 11


# ------------------------------------------------------------------------------ the API


def test_an_administrator_lists_deactivates_resets_and_revokes_over_the_api(
    world: World, app: Flask
) -> None:
    listed = world.get("admin", "/api/v1/users").get_json()["users"]
    names = {u["username"]: u for u in listed}
    assert names["clinic"]["facility"] == "T-1" and names["clinic"]["active"]
    assert names["clinic"]["tokens"][0]["prefix"].startswith("gc_")
    assert "token_hash" not in json.dumps(listed)

    reset = world.post("admin", "/api/v1/users/clinic/reset-password")
    assert reset.status_code == 200
    with app.app_context():
        user = accounts.get_user(db.session, "clinic")
        assert accounts.password_matches(user, reset.get_json()["password"])

    prefix = names["coord"]["tokens"][0]["prefix"]
    revoked = world.post("admin", "/api/v1/tokens/revoke", {"prefix": prefix})
    assert revoked.status_code == 200 and revoked.get_json() == {"revoked": 1}
    assert world.get("coordinator", "/api/v1/facilities").status_code == 401

    assert world.post("admin", "/api/v1/tokens/revoke", {"user": "user-H-A"}).status_code == 200
    assert world.get("H-A", "/api/v1/facilities").status_code == 401

    gone = world.post("admin", "/api/v1/users/clinic/deactivate")
    assert gone.status_code == 200 and gone.get_json()["active"] is False
    assert world.get("clinic", "/api/v1/facilities").status_code == 401
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == "admin")
        ).all()
        assert {"password_reset", "token_revoke", "user_deactivate"} <= set(actions)


def test_only_an_administrator_may_and_never_on_themselves(world: World) -> None:
    for who in ("clinic", "H-A", "coordinator"):
        assert world.get(who, "/api/v1/users").status_code == 403
        assert world.post(who, "/api/v1/users/admin/deactivate").status_code == 403
        assert world.post(who, "/api/v1/tokens/revoke", {"user": "admin"}).status_code == 403
    myself = world.post("admin", "/api/v1/users/admin/deactivate")
    assert myself.status_code == 403 and myself.get_json()["field"] == "username"
    assert world.post("admin", "/api/v1/tokens/revoke", {"user": "admin"}).status_code == 403
    assert world.post("admin", "/api/v1/users/nobody/deactivate").status_code == 404
    both = world.post("admin", "/api/v1/tokens/revoke", {})
    assert both.status_code == 422 or both.status_code == 400
    assert world.get("admin", "/api/v1/facilities").status_code == 200


def test_an_administrator_issues_a_new_token_to_a_user_whose_token_was_revoked(
    world: World, app: Flask
) -> None:
    assert world.post("admin", "/api/v1/tokens/revoke", {"user": "clinic"}).status_code == 200
    assert world.get("clinic", "/api/v1/facilities").status_code == 401
    issued = world.post("admin", "/api/v1/tokens", {"user": "clinic", "label": "HIS bridge"})
    assert issued.status_code == 201, issued.get_json()
    answer = issued.get_json()
    token = answer["token"]
    assert answer["user"] == "clinic" and token.startswith(answer["prefix"])
    expires = dt.datetime.fromisoformat(answer["expires_at"])
    assert expires == world.clock.now + dt.timedelta(days=90)
    world.tokens["clinic"] = token
    assert world.get("clinic", "/api/v1/facilities").status_code == 200
    listed = world.get("admin", "/api/v1/users").get_json()["users"]
    clinic = next(u for u in listed if u["username"] == "clinic")
    assert [t["label"] for t in clinic["tokens"]] == ["HIS bridge"]
    with app.app_context():
        row = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "token_issue")).one()
        assert row.actor == "admin" and answer["prefix"] in json.dumps(row.detail)
        assert token not in json.dumps(row.detail)  # the audit trail names it by its prefix
    # never for oneself, nobody, a deactivated user; only administrators
    myself = world.post("admin", "/api/v1/tokens", {"user": "admin"})
    assert myself.status_code == 403 and myself.get_json()["field"] == "user"
    assert world.post("admin", "/api/v1/tokens", {"user": "nobody"}).status_code == 404
    world.post("admin", "/api/v1/users/clinic/deactivate")
    gone = world.post("admin", "/api/v1/tokens", {"user": "clinic"})
    assert gone.status_code == 400 and gone.get_json()["field"] == "user"
    assert "deactivated" in gone.get_json()["message"]
    assert world.post("admin", "/api/v1/tokens", {}).get_json()["field"] == "user"
    for who in ("H-A", "coordinator"):
        assert world.post(who, "/api/v1/tokens", {"user": "H-A"}).status_code == 403


def test_the_account_operations_are_in_the_openapi_description(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "get" in paths["/api/v1/users"]
    assert "post" in paths["/api/v1/users/{username}/deactivate"]
    assert "post" in paths["/api/v1/users/{username}/reset-password"]
    assert "post" in paths["/api/v1/tokens/revoke"]
    assert "post" in paths["/api/v1/tokens"]


# ------------------------------------------------------------------------------ the page


@pytest.mark.parametrize(("lang", "title"), [("zh", "用户"), ("en", "Users")])
def test_the_admin_page_lists_users_and_deactivates_in_both_languages(
    app: Flask, client: FlaskClient, lang: str, title: str
) -> None:
    world = web_world(app, client)
    with app.app_context():
        add_user(db.session, "w-admin", "admin", password="amber-kettle-41")
        db.session.commit()
    page = client.get(f"/login?lang={lang}").get_data(as_text=True)
    client.post(
        "/login",
        data={"username": "w-admin", "password": "amber-kettle-41", "csrf_token": csrf_from(page)},
    )
    listing = client.get("/admin/users").get_data(as_text=True)
    assert f"<h1>{title}</h1>" in listing and "w-clinic" in listing
    hosp = app.test_client()
    login(hosp, "w-hosp")
    done = client.post(
        "/admin/users/w-hosp/deactivate",
        data={"csrf_token": csrf_from(listing)},
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert hosp.get("/api/v1/facilities").status_code == 401
    assert world.get("H-A", "/api/v1/facilities").status_code == 200  # another user of H-A
    login_page = app.test_client()
    login(login_page, "w-coord")
    assert login_page.get("/admin/users").status_code == 403
    shown = client.post(
        "/admin/users/w-clinic/issue-token",
        data={"csrf_token": csrf_from(listing)},
        follow_redirects=True,
    ).get_data(as_text=True)
    said = "的新 API 令牌" if lang == "zh" else "New API token for w-clinic"
    assert said in shown
    token = shown.split(said, 1)[1].split("gc_", 1)[1].split("<", 1)[0].strip()
    with_it = app.test_client()  # no session cookie: the token alone
    answer = with_it.get("/api/v1/facilities", headers={"Authorization": f"Bearer gc_{token}"})
    assert answer.status_code == 200


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, session: Session) -> Session:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    return session


def test_the_cli_lists_deactivates_resets_and_revokes(cli_env: Session) -> None:
    from greenchannel.cli import main

    session = cli_env
    token = add_user(session, "coord", "coordinator", password="s3cret-pass")
    add_user(session, "adm", "admin")
    session.commit()
    runner = CliRunner()
    listed = runner.invoke(main, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    assert "coord" in listed.output and token[:11] in listed.output and token not in listed.output

    reset = runner.invoke(main, ["users", "reset-password", "coord"])
    assert reset.exit_code == 0, reset.output
    new = reset.output.strip().rsplit(" ", 1)[-1]
    read = runner.invoke(main, ["users", "reset-password", "coord", "--read"], input="password1\n")
    assert read.exit_code == 1 and "common" in read.output
    session.expire_all()
    assert accounts.password_matches(accounts.get_user(session, "coord"), new)

    revoked = runner.invoke(main, ["tokens", "revoke", token[:11]])
    assert revoked.exit_code == 0, revoked.output
    assert accounts.user_for_token(session, token, now=NOW) is None
    assert runner.invoke(main, ["tokens", "revoke", "--user", "adm"]).exit_code == 0
    assert runner.invoke(main, ["tokens", "revoke"]).exit_code == 2
    issued = runner.invoke(main, ["tokens", "issue", "coord", "--label", "HIS bridge"])
    assert issued.exit_code == 0, issued.output
    fresh = issued.output.strip().rsplit(" ", 1)[-1]
    assert fresh.startswith("gc_") and "shown once" in issued.output
    session.expire_all()
    assert accounts.user_for_token(session, fresh, now=NOW) is not None
    assert runner.invoke(main, ["tokens", "issue", "nobody"]).exit_code == 1

    gone = runner.invoke(main, ["users", "deactivate", "coord"])
    assert gone.exit_code == 0, gone.output
    session.expire_all()
    assert accounts.get_user(session, "coord").active is False
    assert runner.invoke(main, ["users", "deactivate", "nobody"]).exit_code == 1


# ------------------------------------------------------------------------------ the demo


def test_a_demo_restart_keeps_every_token_and_prints_the_same_demo_tokens(
    session: Session,
) -> None:
    from greenchannel.demo import region

    for name in ("clinic", "admin"):
        add_user(session, name, "admin")
    by_hand = add_user(session, "by-hand", "coordinator")
    first = region.issue_demo_tokens(session, now=NOW)
    again = region.issue_demo_tokens(session, now=NOW + dt.timedelta(hours=1), kept=first)
    assert again == first
    later = NOW + dt.timedelta(hours=2)
    assert accounts.user_for_token(session, by_hand, now=later) is not None
    for token in first.values():
        assert accounts.user_for_token(session, token, now=later) is not None
    fresh = region.issue_demo_tokens(session, now=later, kept={})  # the kept file was lost
    assert fresh["clinic"] != first["clinic"]
    assert accounts.user_for_token(session, first["clinic"], now=later) is not None
    assert "by-hand" not in fresh


def test_the_demo_keeps_its_tokens_in_a_private_file_beside_its_database(tmp_path: Path) -> None:
    from greenchannel.cli.demo import demo_tokens_file, read_demo_tokens, write_demo_tokens

    path = demo_tokens_file(f"sqlite:///{tmp_path / 'demo.sqlite'}")
    assert path.parent == tmp_path
    write_demo_tokens(path, {"clinic": "gc_x"})
    assert read_demo_tokens(path) == {"clinic": "gc_x"}
    assert path.stat().st_mode & 0o077 == 0
