"""The board's documents: cached per process under the case's revision, never stale.

The database's triggers move ``referrals.revision`` on every write to a case, its offers or its
timeline, whoever makes it; the list endpoint serves a cached document only when the revision
(and the names of the facilities it shows) are still the ones it was written from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import delete, event, insert, select, update

from facilities.models import Facility
from greenchannel.web.db import db
from referral.documents import DocumentCache, Place, Written
from referral.models import Offer, Referral, ReferralEvent, ReferralStatus
from referral.retention import scrub_closed_cases
from tests.world import PPH_REQUEST, World


def board(world: World) -> dict[int, dict[str, Any]]:
    response = world.get("coordinator", "/api/v1/referrals")
    assert response.status_code == 200
    return {case["id"]: case for case in response.get_json()["referrals"]}


def fresh(world: World, rid: int) -> dict[str, Any]:
    """The case as its own endpoint reads it: straight from the database, no cache."""
    response = world.get("coordinator", f"/api/v1/referrals/{rid}")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def offer_of(case: dict[str, Any], facility: str) -> int:
    return next(int(o["id"]) for o in case["offers"] if o["facility"] == facility)


def revision(app: Flask, rid: int) -> int:
    with app.app_context():
        found = db.session.scalar(select(Referral.revision).where(Referral.id == rid))
        assert found is not None
        return int(found)


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app sends while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_board_shows_each_case_as_its_own_page_does_after_every_step(world: World) -> None:
    first = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    other = world.post(
        "clinic",
        "/api/v1/referrals",
        {**PPH_REQUEST, "patient": {"ref": "T1-2026-0043", "age_years": 31}},
    ).get_json()
    rid = first["id"]

    def same() -> None:
        shown = board(world)
        assert shown[rid] == fresh(world, rid)
        assert shown[other["id"]] == fresh(world, other["id"])

    same()
    world.clock.advance(minutes=1)
    world.post(
        "H-A",
        f"/api/v1/referrals/{rid}/offers/{offer_of(first, 'H-A')}/decline",
        {"reason": "FULL"},
    )
    same()
    world.clock.advance(minutes=2, seconds=1)
    world.tick()  # the worker: H-B's silence expires, the case moves on
    same()
    case = fresh(world, rid)
    accepted = world.post(
        "H-C", f"/api/v1/referrals/{rid}/offers/{offer_of(case, 'H-C')}/accept", {}
    )
    assert accepted.status_code == 200
    same()
    assert board(world)[rid]["status"] == "accepted"
    for step, who in (("depart", "clinic"), ("arrive", "H-C")):
        world.clock.advance(minutes=5)
        assert world.post(who, f"/api/v1/referrals/{rid}/{step}").status_code == 200
        same()
    done = world.post("H-C", f"/api/v1/referrals/{rid}/complete", {"outcome": "B-Lynch, well"})
    assert done.status_code == 200
    same()
    assert (
        world.post(
            "clinic", f"/api/v1/referrals/{other['id']}/cancel", {"reason": "stabilised"}
        ).status_code
        == 200
    )
    same()
    assert board(world)[other["id"]]["status"] == "cancelled"


def test_a_write_from_outside_the_app_reaches_the_board(world: World, app: Flask) -> None:
    """Retention runs from cron, in another process: its scrub still shows at once."""
    rid = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()["id"]
    world.post("clinic", f"/api/v1/referrals/{rid}/cancel", {"reason": "stabilised"})
    with app.app_context():
        db.session.execute(update(Referral).where(Referral.id == rid).values(outcome="notes"))
        db.session.commit()
    assert board(world)[rid]["outcome"] == "notes"
    with app.app_context():
        closed = world.clock.now + dt.timedelta(days=400)
        assert scrub_closed_cases(db.session, now=closed, days=365) == 1
    assert board(world)[rid] == fresh(world, rid)
    assert board(world)[rid]["outcome"] == "[removed after the retention period]"


def test_a_renamed_hospital_is_renamed_on_the_board_at_once(world: World, app: Flask) -> None:
    rid = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()["id"]
    before = revision(app, rid)
    assert {o["facility_name"] for o in board(world)[rid]["offers"]} == {"H-A 医院", "H-B 医院"}
    with app.app_context():
        db.session.execute(
            update(Facility).where(Facility.code == "H-A").values(name="临河县人民医院")
        )
        db.session.commit()
    assert revision(app, rid) == before  # the registry is not the case …
    shown = {o["facility"]: o["facility_name"] for o in board(world)[rid]["offers"]}
    assert shown["H-A"] == "临河县人民医院"  # … but the board checks the names it shows


def test_every_write_to_a_case_its_offers_or_its_timeline_moves_its_revision(
    world: World, app: Flask
) -> None:
    rid = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()["id"]
    other = world.post(
        "clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": {"ref": "T1-2026-0043"}}
    ).get_json()["id"]
    at = world.clock.now
    writes = [
        update(Referral).where(Referral.id == rid).values(note="called back"),
        update(Offer).where(Offer.referral_id == rid).values(decline_note="x"),
        insert(ReferralEvent).values(
            referral_id=rid, at=at, kind="note", actor="t", channel="api", detail={}
        ),
        update(ReferralEvent).where(ReferralEvent.referral_id == rid).values(detail={"a": 1}),
        delete(ReferralEvent).where(ReferralEvent.referral_id == rid, ReferralEvent.kind == "note"),
    ]
    seen = {revision(app, rid)}
    untouched = revision(app, other)
    for statement in writes:
        with app.app_context():
            db.session.execute(statement)
            db.session.commit()
        now = revision(app, rid)
        assert now not in seen, statement
        seen.add(now)
    assert revision(app, other) == untouched
    # A timeline row moved to another case changes both.
    with app.app_context():
        db.session.execute(
            update(ReferralEvent)
            .where(ReferralEvent.referral_id == rid, ReferralEvent.kind == "created")
            .values(referral_id=other)
        )
        db.session.commit()
    assert revision(app, rid) not in seen and revision(app, other) != untouched


def test_the_board_reads_again_only_the_cases_that_changed(world: World, app: Flask) -> None:
    ids = [
        world.post(
            "clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": {"ref": f"T1-{n}"}}
        ).get_json()["id"]
        for n in range(3)
    ]
    board(world)
    with statements(app) as sent:
        board(world)
    assert not [s for s in sent if "FROM referral_events" in s]  # nothing changed, nothing read

    case = fresh(world, ids[1])
    world.post(
        "H-A",
        f"/api/v1/referrals/{ids[1]}/offers/{offer_of(case, 'H-A')}/decline",
        {"reason": "FULL"},
    )
    with statements(app) as sent:
        shown = board(world)
    reads = [s for s in sent if "FROM referral_events" in s]
    assert len(reads) == 1  # one batch: the declined case alone
    assert {o["facility"]: o["status"] for o in shown[ids[1]]["offers"]}["H-A"] == "declined"
    assert shown[ids[1]] == fresh(world, ids[1])


def test_the_cache_keeps_the_most_recently_read_documents() -> None:
    place = Place(1, "T-1", "卫生院", "云省", "云州市", "临河县")

    def entry(case_id: int, revision: int = 0) -> Written:
        return Written(case_id, revision, ReferralStatus.OFFERED, place, None, (), b"{}")

    cache = DocumentCache(size=2)
    cache.put(entry(1))
    cache.put(entry(2))
    assert cache.get(1, 0) is not None  # read: 1 is now the most recent
    cache.put(entry(3))
    assert cache.get(2, 0) is None and cache.get(1, 0) is not None and len(cache) == 2
    assert cache.get(1, 5) is None  # another revision is another document
