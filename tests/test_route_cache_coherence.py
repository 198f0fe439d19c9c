"""The route answer from the per-process cache equals the answer read afresh, after every kind of
write: a status report by the web page, the API and SMS, the worker's clock moving staleness, a
second engine (another process), raw SQL, a road closure; and a write rolled back never reaches
the cache (referral/live.py, migration 0010)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from core.db import make_engine
from facilities.models import Channel, Facility
from facilities.status import report_status
from greenchannel.web.api_routing import RouteOutSchema, route_answer
from greenchannel.web.db import db
from referral import live
from referral.decision import decide
from referral.triage import Case
from tests.world import NOW, PASSWORD, World, add_user, csrf_from, minutes, road_grid

PPH = {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}}
TWILIO_TOKEN = "coherence-token"


def ensure_revision_row(engine: Engine) -> None:
    """The suite wipes every table between tests, the revision row included: put it back."""
    with engine.begin() as conn:
        found = conn.execute(text("SELECT revision FROM routing_revision WHERE id = 1")).first()
        if found is None:
            conn.execute(
                text("INSERT INTO routing_revision (id, revision) VALUES (1, :r)"),
                {"r": secrets.randbits(52)},
            )


@pytest.fixture
def world(world: World, engine: Engine) -> Iterator[World]:
    """The world on a road grid, with the routing revision row, an empty process cache and a
    web login."""
    road_grid(world.app.config["GREENCHANNEL_ROADS"])
    ensure_revision_row(engine)
    live.forget()
    world.app.config.update(TWILIO_AUTH_TOKEN=TWILIO_TOKEN)
    with world.app.app_context():
        add_user(db.session, "w-hosp", "hospital", facility="H-A", password=PASSWORD)
        db.session.commit()
    yield world
    live.forget()


def cached(world: World) -> dict[str, Any]:
    response = world.post("clinic", "/api/v1/route", PPH)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def fresh(world: World) -> dict[str, Any]:
    """The same request with the process's cache emptied first: read from the database."""
    live.forget()
    return cached(world)


def excluded(answer: dict[str, Any]) -> dict[str, list[str]]:
    return {e["facility"]: e["reasons"] for e in answer["excluded"]}


def candidates(answer: dict[str, Any]) -> list[str]:
    return [c["facility"] for c in answer["candidates"]]


def assert_coherent(world: World, before: dict[str, Any]) -> dict[str, Any]:
    """The cached answer equals the fresh one, and the write did change the answer."""
    after = cached(world)
    assert after == fresh(world)
    assert after != before, "the write should have changed the answer"
    return after


def test_the_cache_serves_while_nothing_is_written(world: World) -> None:
    cached(world)
    with world.app.app_context():
        first = live.live_state(db.session)
        assert first.revision is not None
        db.session.rollback()
        assert live.live_state(db.session) is first


def test_a_status_report_on_the_web_page_reaches_the_next_answer(world: World) -> None:
    before = cached(world)
    browser = world.app.test_client()
    page = browser.get("/login?lang=en").get_data(as_text=True)
    logged = browser.post(
        "/login", data={"username": "w-hosp", "password": PASSWORD, "csrf_token": csrf_from(page)}
    )
    assert logged.status_code == 302
    token = csrf_from(browser.get("/hospital").get_data(as_text=True))
    saved = browser.post(
        "/hospital/capacity",
        data={
            "csrf_token": token,
            "obstetric": "3",
            "maternal_icu": "1",
            "nicu": "2",
            "diversion": "closed",
            "diversion_reason": "theatre flooded",
        },
    )
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]
    after = assert_coherent(world, before)
    assert "H-A" not in candidates(after)
    assert any("theatre flooded" in r for r in excluded(after)["H-A"])


def test_a_status_report_by_the_api_reaches_the_next_answer(world: World) -> None:
    before = cached(world)
    response = world.client.put(
        "/api/v1/facilities/H-B/status",
        json={"diversion": "closed", "diversion_reason": "no anaesthetist"},
        headers=world.headers("H-B"),
    )
    assert response.status_code == 200, response.get_json()
    after = assert_coherent(world, before)
    assert "H-B" in excluded(after)


def test_a_bed_report_by_sms_reaches_the_next_answer(world: World) -> None:
    before = cached(world)
    phone = world.phones["H-A:obstetrics"]
    path = "/webhooks/twilio/sms"
    form = {"From": phone, "To": "+8610690000", "Body": "CAP OB 0 ICU 0", "MessageSid": "SM1"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        world.app.config["PUBLIC_BASE_URL"] + path, form
    )
    response = world.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.get_data(as_text=True)
    after = assert_coherent(world, before)
    assert "H-A" in excluded(after)


def test_the_worker_and_the_clock_turning_figures_stale_reach_the_next_answer(
    world: World,
) -> None:
    before = cached(world)
    assert all(c["confirmed"] for c in before["candidates"])
    world.clock.advance(hours=13)  # past the 12-hour grace: every hospital's beds are unconfirmed
    world.tick()
    after = assert_coherent(world, before)
    assert not any(c["confirmed"] for c in after["candidates"])
    world.clock.advance(hours=-13)  # and back: the cache has both patterns, both right
    assert cached(world) == fresh(world) == before


def test_a_report_from_another_process_reaches_the_next_answer(
    world: World, database_url: str
) -> None:
    before = cached(world)
    other = make_engine(database_url)  # another process: its own engine, pool and session
    try:
        with Session(other) as session:
            facility = session.query(Facility).filter_by(code="H-C").one()
            report_status(
                session,
                facility=facility,
                diversion="closed",
                diversion_reason="power cut",
                reported_by="elsewhere",
                user_id=None,
                channel=Channel.API,
                now=NOW,
            )
            session.commit()
    finally:
        other.dispose()
    after = assert_coherent(world, before)
    assert "H-C" in excluded(after)


def test_raw_sql_on_the_status_and_the_registry_reaches_the_next_answer(
    world: World, engine: Engine
) -> None:
    before = cached(world)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE facility_status SET beds_obstetric = 0 WHERE facility_id = "
                "(SELECT id FROM facilities WHERE code = 'H-D')"
            )
        )
    after = assert_coherent(world, before)
    assert "H-D" in excluded(after)
    with engine.begin() as conn:
        conn.execute(text("UPDATE facilities SET active = :no WHERE code = 'H-A'"), {"no": False})
    later = assert_coherent(world, after)
    assert any("not active" in r for r in excluded(later)["H-A"])


def test_a_road_closure_and_its_lifting_reach_the_next_answer(world: World) -> None:
    before = cached(world)
    closure = world.post(
        "coordinator",
        "/api/v1/roads/closures",
        {"lat": 29.83, "lon": 106.20, "radius_m": 300, "reason": "landslide"},
    )
    assert closure.status_code == 201, closure.get_json()
    during = cached(world)
    assert during == fresh(world)
    assert any("closure" in w for w in during["warnings"])
    world.client.delete(
        f"/api/v1/roads/closures/{closure.get_json()['id']}", headers=world.headers("coordinator")
    )
    assert cached(world) == fresh(world) == before


def test_a_write_rolled_back_never_reaches_the_cache(world: World) -> None:
    before = cached(world)
    with world.app.app_context():
        facility = db.session.query(Facility).filter_by(code="H-A").one()
        report_status(
            db.session,
            facility=facility,
            diversion="closed",
            diversion_reason="only a draft",
            reported_by="test",
            user_id=None,
            channel=Channel.API,
            now=NOW,
        )
        seen = live.live_state(db.session)  # this transaction sees its own write...
        assert seen.revision is None  # ...and keeps it to itself
        db.session.rollback()
    assert cached(world) == before == fresh(world)


def test_the_orjson_answer_equals_the_schema_dump(world: World, app: Flask) -> None:
    """The fast path writes what marshmallow and Flask's encoder wrote before."""
    world.clock.advance(minutes=1)
    with app.test_request_context():
        for body in (
            {"conditions": ["PPH"]},
            {"conditions": ["PRETERM_LABOUR"], "gestation_weeks": 30},
            {"conditions": ["ECLAMPSIA"], "onset_at": (NOW - minutes(30)).isoformat()},
        ):
            place = app.extensions["greenchannel.place"]()
            from greenchannel.web.api_referrals import CaseSchema, case_from

            case: Case = case_from(CaseSchema().load(body))
            decision = decide(
                db.session,
                rules=place.rules,
                router=place.router,
                origin=(29.80, 106.20),
                case=case,
                now=world.clock.now,
                origin_facility=None,
            )
            answer = decision.to_dict("en")
            fast = json.loads(route_answer(answer).get_data())
            slow = json.loads(app.json.dumps(RouteOutSchema().dump(answer)))
            assert fast == slow


def test_a_centre_designated_by_raw_sql_is_the_next_answers_safety_net(
    world: World, engine: Engine
) -> None:
    before = cached(world)
    assert before["safety_net"] is None
    with engine.begin() as conn:  # another process, no ORM
        conn.execute(
            text(
                'UPDATE facilities SET designated = \'["maternal", "neonatal"]\''
                " WHERE code = 'H-D'"
            )
        )
    after = assert_coherent(world, before)
    assert after["safety_net"]["facility"] == "H-D"
    with engine.begin() as conn:  # no longer a maternal centre: no net for a mother
        conn.execute(text("UPDATE facilities SET designated = '[\"neonatal\"]' WHERE code = 'H-D'"))
    again = assert_coherent(world, after)
    assert again["safety_net"] is None
