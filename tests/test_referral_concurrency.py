"""Real concurrent HTTP requests against a live server: exactly one winner, no duplicates.

These run on every backend; on PostgreSQL (``.ci/run``'s second pass) they exercise real row
locking between concurrent transactions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from greenchannel.web.db import db
from referral import service
from referral.models import Offer, OfferStatus, Referral
from tests.world import PPH_REQUEST, World, build_world


@pytest.fixture
def live(world: World) -> Iterator[tuple[World, str]]:
    server = make_server("127.0.0.1", 0, world.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield world, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Fire the calls from separate threads released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def post(base: str, token: str, path: str, body: Any, **headers: str) -> requests.Response:
    return requests.post(
        base + path, json=body, timeout=30, headers={"Authorization": f"Bearer {token}", **headers}
    )


@pytest.mark.parametrize("round_", range(5))
def test_two_hospitals_accepting_at_the_same_moment_exactly_one_wins(
    live: tuple[World, str], app: Flask, round_: int
) -> None:
    world, base = live
    request = dict(PPH_REQUEST, patient={"ref": f"race-{round_}"})
    case = post(base, world.tokens["clinic"], "/api/v1/referrals", request).json()
    offers = {o["facility"]: o["id"] for o in case["offers"]}
    assert set(offers) == {"H-A", "H-B"}
    answers = at_once(
        [
            lambda f=f: post(
                base,
                world.tokens[f],
                f"/api/v1/referrals/{case['id']}/offers/{offers[f]}/accept",
                {},
            )
            for f in ("H-A", "H-B")
        ]
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409).json()
    assert loser["error"] == "conflict" and "nothing changed" in loser["message"]
    with app.app_context():
        referral = db.session.get(Referral, case["id"])
        assert referral is not None and referral.status.value == "accepted"
        statuses = sorted(o.status.value for o in referral.offers)
        assert statuses == ["accepted", "withdrawn"]
        winner = next(o for o in referral.offers if o.status is OfferStatus.ACCEPTED)
        assert referral.destination_facility_id == winner.facility_id


def test_simultaneous_retries_with_one_idempotency_key_create_one_referral(
    live: tuple[World, str], app: Flask
) -> None:
    world, base = live
    answers = at_once(
        [
            lambda: post(
                base,
                world.tokens["clinic"],
                "/api/v1/referrals",
                PPH_REQUEST,
                **{"Idempotency-Key": "retry-7"},
            )
            for _ in range(6)
        ]
    )
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    assert sum(r.status_code == 201 for r in answers) == 1
    assert len({r.json()["id"] for r in answers}) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Referral)) == 1
        assert db.session.scalar(select(func.count()).select_from(Offer)) == 2


def test_simultaneous_referrals_for_one_patient_leave_exactly_one_open(
    live: tuple[World, str], app: Flask
) -> None:
    world, base = live
    answers = at_once(
        [
            lambda: post(base, world.tokens["clinic"], "/api/v1/referrals", PPH_REQUEST)
            for _ in range(5)
        ]
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409, 409, 409, 409], [r.text for r in answers]
    first = next(r for r in answers if r.status_code == 201).json()
    for refused in (r for r in answers if r.status_code == 409):
        assert first["code"] in refused.json()["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Referral)) == 1


def test_a_change_holds_the_case_lock_until_its_transaction_ends_and_the_next_takes_it_again(
    app: Flask, client: FlaskClient, engine: Engine
) -> None:
    """The lock a change takes is remembered only for its own transaction: the next transaction
    of the same session locks the case again instead of trusting a lock that ended."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: needs PostgreSQL (GREENCHANNEL_TEST_DATABASE_URL)")
    world = build_world(app, client)
    created = client.post("/api/v1/referrals", json=PPH_REQUEST, headers=world.headers("clinic"))
    case_id = created.get_json()["id"]

    def locked_elsewhere() -> bool:
        with engine.connect() as other:
            try:
                other.execute(
                    text("SELECT id FROM referrals WHERE id = :id FOR NO KEY UPDATE NOWAIT"),
                    {"id": case_id},
                )
            except OperationalError:
                return True
            finally:
                other.rollback()
            return False

    with app.app_context():
        referral = service.get_referral(db.session, case_id, lock=True)
        assert locked_elsewhere()
        service.lock_case(db.session, referral)  # held already: no second round trip needed
        db.session.commit()
        assert not locked_elsewhere()
        service.lock_case(db.session, referral)  # a new transaction: it must lock again
        assert locked_elsewhere()
        db.session.rollback()
        assert not locked_elsewhere()
