"""A bearer token verified by this process is taken without a lookup only while the auth
revision has not moved and the token has not expired: a revocation (by the accounts function,
the API, raw SQL), a deactivation, a role change from another process takes effect on the very
next request (facilities/token_cache.py, migration 0011)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from facilities import accounts, token_cache
from facilities.models import User
from greenchannel.web import auth
from greenchannel.web.db import db
from tests.world import World, bearer, minutes

CLOSURES = "/api/v1/roads/closures"  # any request that needs a user, and only reads


def ensure_revision_row(engine: Engine, table: str = "auth_revision") -> None:
    """The suite wipes every table between tests, the revision row included: put it back."""
    with engine.begin() as conn:
        found = conn.execute(text(f"SELECT revision FROM {table} WHERE id = 1")).first()
        if found is None:
            conn.execute(
                text(f"INSERT INTO {table} (id, revision) VALUES (1, :r)"),
                {"r": secrets.randbits(52)},
            )


@pytest.fixture
def lookups(world: World, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The tokens looked up in the database, in order (the process's cache emptied first)."""
    ensure_revision_row(engine)
    token_cache.forget()
    seen: list[str] = []
    real = auth.token_use

    def counted(session: Any, token: str, **kwargs: Any) -> Any:
        seen.append(token)
        return real(session, token, **kwargs)

    monkeypatch.setattr(auth, "token_use", counted)
    yield seen
    token_cache.forget()


def warm(world: World, who: str, lookups: list[str], path: str = CLOSURES) -> None:
    """Use the token until this process takes it from its cache (the first use writes the
    last use, which moves the revision; the second is kept), and check that it does."""
    for _ in range(2):
        assert world.get(who, path).status_code == 200
    before = len(lookups)
    assert world.get(who, path).status_code == 200
    assert len(lookups) == before, "the token should now be taken from the cache"


def test_a_verified_token_is_taken_without_a_lookup_while_nothing_is_written(
    world: World, lookups: list[str]
) -> None:
    for _ in range(5):
        assert world.get("clinic", CLOSURES).status_code == 200
    # the first use writes the token's last use (a write: the revision moves), the second is
    # looked up again and kept, the rest are taken from the cache
    assert lookups == [world.tokens["clinic"]] * 2


def test_an_unknown_token_is_looked_up_every_time(world: World, lookups: list[str]) -> None:
    counts = []
    for _ in range(3):
        response = world.client.get(CLOSURES, headers=bearer("gc_" + "x" * 43))
        assert response.status_code == 401
        counts.append(len(lookups))
    assert counts[0] >= 1
    assert counts == [counts[0], 2 * counts[0], 3 * counts[0]]


def test_a_revocation_by_the_accounts_function_ends_the_token_on_the_next_request(
    world: World, lookups: list[str]
) -> None:
    warm(world, "clinic", lookups)
    with world.app.app_context():
        token = world.tokens["clinic"]
        accounts.revoke_token_by_prefix(db.session, prefix=token[:11], now=world.clock.now)
        db.session.commit()
    assert world.get("clinic", CLOSURES).status_code == 401


def test_a_revocation_by_the_api_ends_the_token_on_the_next_request(
    world: World, lookups: list[str]
) -> None:
    warm(world, "clinic", lookups)
    revoked = world.post("admin", "/api/v1/tokens/revoke", {"user": "clinic"})
    assert revoked.status_code == 200, revoked.get_json()
    assert world.get("clinic", CLOSURES).status_code == 401


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE api_tokens SET revoked_at = created_at"
        " WHERE user_id = (SELECT id FROM users WHERE username = 'clinic')",
        "UPDATE users SET active = false WHERE username = 'clinic'",
        "DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE username = 'clinic')",
    ],
    ids=["token-revoked", "user-deactivated", "token-deleted"],
)
def test_raw_sql_from_another_process_ends_the_token_on_the_next_request(
    world: World, lookups: list[str], engine: Engine, statement: str
) -> None:
    warm(world, "clinic", lookups)
    with engine.begin() as conn:  # the suite's engine, not the app's: another process
        conn.execute(text(statement))
    assert world.get("clinic", CLOSURES).status_code == 401


def test_a_role_changed_by_raw_sql_is_the_role_of_the_next_request(
    world: World, lookups: list[str], engine: Engine
) -> None:
    warm(world, "coordinator", lookups, "/api/v1/coverage")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE users SET role = 'clinic', facility_id ="
                " (SELECT id FROM facilities WHERE code = 'T-1') WHERE username = 'coord'"
            )
        )
    response = world.get("coordinator", "/api/v1/coverage")
    assert response.status_code == 403, response.get_json()


def test_an_expired_token_is_refused_on_the_next_request_without_a_write(
    world: World, lookups: list[str]
) -> None:
    with world.app.app_context():
        user = db.session.query(User).filter_by(username="clinic").one()
        short = accounts.issue_token(
            db.session, user=user, label="short", now=world.clock.now, lifetime=minutes(5)
        )
        db.session.commit()
    world.tokens["short"] = short
    world.clock.advance(minutes=4, seconds=30)
    warm(world, "short", lookups)  # its last use written 30 s before it expires
    world.clock.advance(seconds=29)
    assert world.get("short", CLOSURES).status_code == 200
    world.clock.advance(seconds=1)
    assert world.get("short", CLOSURES).status_code == 401


def test_the_last_use_is_still_written_once_a_minute(world: World, lookups: list[str]) -> None:
    token = world.tokens["clinic"]
    for _ in range(3):
        assert world.get("clinic", CLOSURES).status_code == 200
    world.clock.advance(minutes=1)
    for _ in range(3):
        assert world.get("clinic", CLOSURES).status_code == 200
    with world.app.app_context():
        user = db.session.query(User).filter_by(username="clinic").one()
        (row,) = user.tokens
        assert row.last_used_at == world.clock.now
    # the first use and the one a minute later went to the database and wrote the last use,
    # the request after each write looked the token up again (the revision moved); the rest
    # were taken from the cache
    assert lookups == [token] * 4


def test_a_database_without_the_revision_row_keeps_nothing(
    world: World, lookups: list[str], engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM auth_revision"))
    for _ in range(2):
        assert world.get("clinic", CLOSURES).status_code == 200
    assert len(lookups) == 2


def test_a_hot_route_request_reads_the_revisions_and_nothing_else(
    world: World, lookups: list[str], engine: Engine
) -> None:
    """Token, user, origin facility, facility table and closures all come from what this
    process keeps under the two revisions, read by one statement (core/revisions.py)."""
    from sqlalchemy import event

    ensure_revision_row(engine, "routing_revision")

    route = {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}}
    warm(world, "clinic", lookups)
    for _ in range(2):  # the routing state and the rate-limit block are read once
        assert world.post("clinic", "/api/v1/route", route).status_code == 200
    served_by = world.client.application.extensions["greenchannel.runtime"].engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(served_by, "before_cursor_execute", seen)
    try:
        assert world.post("clinic", "/api/v1/route", route).status_code == 200
    finally:
        event.remove(served_by, "before_cursor_execute", seen)
    assert len(statements) == 1 and "auth_revision" in statements[0], statements
