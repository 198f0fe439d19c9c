"""The coordinator's board reads a constant number of SQL statements, however many cases are
open: the page, its live fragment when it renders, and the live fragment's 304."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from greenchannel.web.db import db
from referral.models import OPEN_STATUSES, Referral
from tests.world import PPH_REQUEST, World, login, web_world


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    """The statements the app sends while the block runs."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    engine = app.extensions["greenchannel.db"][0]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def open_cases(world: World, count: int) -> None:
    """Bring the open cases up to ``count`` (from the clinic, through the API)."""
    with world.app.app_context():
        have = len(
            db.session.scalars(select(Referral.id).where(Referral.status.in_(OPEN_STATUSES))).all()
        )
    for n in range(have, count):
        patient = {"ref": f"T1-2026-{n:04d}", "age_years": 30}
        response = world.post("clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": patient})
        assert response.status_code == 201, response.get_json()


def statements_of_the_board(app: Flask, client: FlaskClient) -> dict[str, int]:
    counts: dict[str, int] = {}
    with counted(app) as seen:
        assert client.get("/board").status_code == 200
    counts["page"] = len(seen)
    with counted(app) as seen:
        fragment = client.get("/board/live")
    assert fragment.status_code == 200
    counts["fragment"] = len(seen)
    with counted(app) as seen:
        unchanged = client.get("/board/live", headers={"If-None-Match": fragment.headers["ETag"]})
    assert unchanged.status_code == 304
    counts["unchanged"] = len(seen)
    return counts


def test_the_board_reads_the_same_statements_for_ten_and_a_hundred_open_cases(
    app: Flask, client: FlaskClient
) -> None:
    world = web_world(app, client)
    login(client, "w-coord")
    open_cases(world, 10)
    few = statements_of_the_board(app, client)
    open_cases(world, 100)
    many = statements_of_the_board(app, client)
    page = client.get("/board/live").get_data(as_text=True)
    with app.app_context():
        codes = db.session.scalars(select(Referral.code)).all()
    assert len(codes) == 100 and all(code in page for code in codes)
    assert many == few, (few, many)
    # The unchanged poll renders nothing: fewer statements than the fragment it stands for
    # (the fragment reads the same light rows for its tag, then the cases to render them).
    assert many["unchanged"] < many["fragment"]
