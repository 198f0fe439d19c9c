"""A hospital's answer clock starts when its pre-alert reaches the SMS provider.

After the worker (or the provider) was down longer than the answer timeout, the nearest
hospitals used to be marked expired on restart and their pre-alerts cancelled unsent: the case
moved on without them ever being asked. Now an offer whose pre-alert has not left does not
expire; the pre-alert that leaves late carries the deadline it really has (the whole timeout
from when it left), its escalation waits from then too, and the coordinators are told once
that alerts were late. This holds whichever worker runs the timers and whichever sends."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import select

from alerts.models import AttentionItem, OutboundMessage
from alerts.timers import WorkerSettings, run_due_timers
from greenchannel.web.db import db
from referral.models import Offer
from referral.rules import load_rules
from tests.world import PPH_REQUEST, World

RULES = load_rules()
TIMEOUT = RULES.urgency["critical"].answer_timeout  # PPH is critical


def _offers(app: Flask, rid: int) -> dict[str, tuple[str, dt.datetime]]:
    with app.app_context():
        rows = db.session.scalars(select(Offer).where(Offer.referral_id == rid).order_by(Offer.id))
        return {o.facility.code: (o.status.value, o.expires_at) for o in rows}


def _attention(app: Flask, reason: str) -> list[AttentionItem]:
    with app.app_context():
        return list(db.session.scalars(select(AttentionItem).where(AttentionItem.reason == reason)))


def _outbox(app: Flask, purpose: str) -> list[OutboundMessage]:
    with app.app_context():
        return list(
            db.session.scalars(select(OutboundMessage).where(OutboundMessage.purpose == purpose))
        )


def test_after_a_worker_outage_the_nearest_hospitals_are_still_asked_with_their_full_time(
    world: World, app: Flask
) -> None:
    made = world.clock.now
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    written = RULES.clock_time(made + TIMEOUT)
    # The worker is down for ten minutes, far longer than the three-minute answer timeout.
    restart = world.clock.advance(minutes=10)
    world.tick()

    offers = _offers(app, case["id"])
    assert offers["H-A"] == ("pending", restart + TIMEOUT)
    assert offers["H-B"] == ("pending", restart + TIMEOUT)
    assert set(offers) == {"H-A", "H-B"}  # nobody further down was asked instead
    # Their pre-alerts went out now, with the deadline they really have.
    for code in ("H-A", "H-B"):
        texts = [sms.body for sms in world.transport.to(world.phones[f"{code}:obstetrics"])]
        assert len(texts) == 1
        assert RULES.clock_time(restart + TIMEOUT) in texts[0]
        assert written not in texts[0]
    # The silence is counted from now: no escalation, no "unanswered" to the coordinators.
    assert _outbox(app, "switchboard") == [] and _attention(app, "unanswered") == []
    # The coordinators are told, once for the case, and the board shows why.
    late = _attention(app, "late_alerts")
    assert [item.subject for item in late] == [f"referral:{case['id']}"]
    assert "预警延迟发出" in late[0].words["zh"] and "late" in late[0].words["en"]

    # Within the restarted clock nothing expires; after it, the case moves on as usual.
    world.clock.advance(seconds=TIMEOUT.total_seconds() - 30)
    world.tick()
    assert {s for s, _ in _offers(app, case["id"]).values()} == {"pending"}
    world.clock.advance(seconds=31)
    world.tick()
    offers = _offers(app, case["id"])
    assert offers["H-A"][0] == "expired" and offers["H-B"][0] == "expired"
    assert offers["H-C"][0] == "pending" and offers["H-D"][0] == "pending"
    assert len(_attention(app, "late_alerts")) == 1  # texted once per case


def test_a_worker_that_runs_the_timers_while_another_has_not_sent_yet_expires_nothing(
    world: World, app: Flask
) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.clock.advance(minutes=10)
    factory = app.extensions["greenchannel.db"][1]
    # One worker's timers run before any worker has reached the outbox.
    for _ in range(2):
        run_due_timers(
            factory,
            now=world.clock.now,
            worker_id="timers-only",
            settings=WorkerSettings(capacity_grace=None),
            handlers=app.extensions["greenchannel.handlers"].timers,
        )
    offers = _offers(app, case["id"])
    assert {code: s for code, (s, _) in offers.items()} == {"H-A": "pending", "H-B": "pending"}
    assert all(m.status.value == "queued" for m in _outbox(app, "prealert"))
    assert len(_attention(app, "late_alerts")) == 1
    # Then another worker sends: the hospitals are asked, each once.
    world.tick()
    for code in ("H-A", "H-B"):
        assert len(world.transport.to(world.phones[f"{code}:obstetrics"])) == 1
    assert {s for s, _ in _offers(app, case["id"]).values()} == {"pending"}


def test_an_outage_shorter_than_the_timeout_still_gives_the_whole_timeout(
    world: World, app: Flask
) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    sent = world.clock.advance(minutes=2)  # the pre-alerts leave two minutes late
    world.tick()
    assert _offers(app, case["id"])["H-A"] == ("pending", sent + TIMEOUT)
    world.clock.advance(seconds=TIMEOUT.total_seconds() - 30)  # past the first deadline
    world.tick()
    assert {s for s, _ in _offers(app, case["id"]).values()} == {"pending"}
    assert len(_attention(app, "late_alerts")) == 1


def test_pre_alerts_that_leave_on_time_change_nothing(world: World, app: Flask) -> None:
    made = world.clock.now
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.clock.advance(seconds=30)
    world.tick()
    assert _offers(app, case["id"])["H-A"] == ("pending", made + TIMEOUT)
    assert _attention(app, "late_alerts") == []
