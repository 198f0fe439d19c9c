"""One attention rule: a case needs a human exactly when the coordinators were texted about it,
once per case and reason, and the board shows the same words; driven by the clock and the
worker's tick through an escalating case."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from alerts import attention
from alerts.models import AttentionItem, OutboundMessage
from core.vocabulary import ATTENTION_REASONS
from facilities.models import Facility, User
from greenchannel.web.db import db
from tests.world import T0, World, login, make_coordinator, make_facility, web_world

COORDINATOR = "+8613700000077"
REASON_WORDS = {reason: words["zh"] for reason, words in ATTENTION_REASONS.items()}
REASON_OF_PURPOSE = {
    "coordinator": "unanswered",
    "coordinator_unplaced": "unplaced",
    "coordinator_safety_net": "safety_net",
    "coordinator_late": "late_alerts",
}


def coordinator_texts(world: World) -> list[tuple[str, str, str]]:
    """(case subject, reason, body) of every text queued to the coordinator, in order."""
    with world.app.app_context():
        rows = db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.to_phone == COORDINATOR)
            .order_by(OutboundMessage.id)
        ).all()
        return [(r.subject or "", REASON_OF_PURPOSE[r.purpose], r.body) for r in rows]


def board(client: FlaskClient) -> dict[str, list[str]]:
    """The board's "needs a human" list as the coordinator reads it: case code → reasons."""
    page = client.get("/board/live").get_data(as_text=True)
    section = page.split('id="human-title"')[1].split('id="open-title"')[0]
    count = int(re.search(r'data-attention="(\d+)"', page).group(1))  # type: ignore[union-attr]
    cards = {}
    for card in section.split('<li class="card')[1:]:
        code = re.search(r'class="code"[^>]*>(\w+)</a>', card).group(1)  # type: ignore[union-attr]
        why = card.split('<ul class="why">')[1].split("</ul>")[0]
        cards[code] = [html.unescape(w.strip()) for w in re.findall(r"<li>([^<]+)<form", why)]
    assert count == len(cards), (count, cards)
    return cards


def agree(world: World, client: FlaskClient, code: str, rid: int) -> dict[str, list[str]]:
    """Every reason the board shows was texted to the coordinator in the same words, with the
    clinic's call-back number; at most one text per case and open reason."""
    shown = board(client)
    texts = coordinator_texts(world)
    with world.app.app_context():
        open_reasons = [i.reason for i in attention.open_items(db.session, [f"referral:{rid}"])]
    assert sorted(open_reasons) == sorted(set(open_reasons))  # one open item per reason
    for words in shown.get(code, []):
        reason = next(r for r in open_reasons if words.startswith(REASON_WORDS[r]))
        latest = [body for subject, r, body in texts if (subject, r) == (f"referral:{rid}", reason)]
        assert latest and words in latest[-1], (words, texts)
        assert "+8613911110000" in latest[-1]  # the clinician's call-back number
    assert len(shown.get(code, [])) == len(open_reasons)
    return shown


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    world = web_world(app, client)
    with app.app_context():
        user = db.session.scalars(select(User).where(User.username == "w-coord")).one()
        user.phone = COORDINATOR
        db.session.commit()
    login(client, "w-coord")
    return world


def test_an_escalating_case_is_on_the_board_exactly_when_the_coordinator_was_texted(
    world: World, client: FlaskClient
) -> None:
    created = world.post(
        "clinic",
        "/api/v1/referrals",
        {
            "origin_facility": "T-1",
            "case": {"conditions": ["PPH"], "gestation_weeks": 39},
            "callback_phone": "+8613911110000",
        },
    )
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    rid, code = case["id"], case["code"]
    assert case["urgency"] == "critical"
    assert len([o for o in case["offers"] if o["status"] == "pending"]) == 2  # two in parallel
    world.tick()
    assert coordinator_texts(world) == [] and agree(world, client, code, rid) == {}

    # 1.5 min: both hospitals' only contacts stayed silent; both alerts escalate in one tick.
    world.clock.advance(minutes=1.5)
    world.tick()
    texts = coordinator_texts(world)
    assert [(s, r) for s, r, _ in texts] == [(f"referral:{rid}", "unanswered")]
    shown = agree(world, client, code, rid)
    assert len(shown[code]) == 1 and shown[code][0].startswith("医院未回复：")
    assert shown[code][0] in texts[0][2] and "1.5分钟" in texts[0][2]

    # 3 min: both offers expire, the next two are asked; 4.5 min: they are silent too.
    for _ in range(2):
        world.clock.advance(minutes=1.5)
        world.tick()
        assert len(coordinator_texts(world)) == 1  # still one text for the case and reason
        assert len(agree(world, client, code, rid)[code]) == 1

    # 6 min: nobody left (no designated centre here): unplaced, a second reason, one more text.
    world.clock.advance(minutes=1.5)
    world.tick()
    status = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()["status"]
    assert status == "unplaced"
    texts = coordinator_texts(world)
    assert [r for _, r, _ in texts] == ["unanswered", "unplaced"]
    shown = agree(world, client, code, rid)
    assert sorted(w.split("：")[0] for w in shown[code]) == ["医院未回复", "无医院接收"]
    with world.app.app_context():
        told = db.session.scalars(
            select(OutboundMessage).where(OutboundMessage.purpose == "clinic_unplaced")
        ).all()
    assert {m.to_phone for m in told} == {"+8613911110000"}  # the clinician (also the contact)
    assert all(COORDINATOR in m.body for m in told)  # whom to call

    # The coordinator re-opens: a coordinator acted, the board is clear; nobody texted.
    reopened = world.post("coordinator", f"/api/v1/referrals/{rid}/reopen")
    assert reopened.status_code == 200, reopened.get_json()
    assert agree(world, client, code, rid) == {} and len(coordinator_texts(world)) == 2
    world.tick()  # the worker sends the new pre-alerts within seconds (not late)

    # The re-asked hospitals are silent again: a new episode, a new text, on the board at once.
    world.clock.advance(minutes=1.5)
    world.tick()
    assert [r for _, r, _ in coordinator_texts(world)] == ["unanswered", "unplaced", "unanswered"]
    assert len(agree(world, client, code, rid)[code]) == 1

    # A hospital accepts: the case has a destination, nobody needs to be called any more.
    case = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
    offer = next(o for o in case["offers"] if o["status"] == "pending")
    accepted = world.post(
        offer["facility"], f"/api/v1/referrals/{rid}/offers/{offer['id']}/accept", {}
    )
    assert accepted.status_code == 200, accepted.get_json()
    assert agree(world, client, code, rid) == {} and len(coordinator_texts(world)) == 3
    with world.app.app_context():
        items = db.session.scalars(select(AttentionItem)).all()
    assert {(i.reason, i.clear_reason) for i in items} == {
        ("unanswered", "reopened"),
        ("unplaced", "reopened"),
        ("unanswered", "accepted"),
    }


def test_a_coordinator_marking_a_reason_seen_takes_it_off_the_board(
    world: World, client: FlaskClient
) -> None:
    created = world.post(
        "clinic", "/api/v1/referrals", {"origin_facility": "T-1", "case": {"conditions": ["PPH"]}}
    )
    rid, code = created.get_json()["id"], created.get_json()["code"]
    world.clock.advance(minutes=1.5)
    world.tick()
    assert code in board(client)
    page = client.get("/board").get_data(as_text=True)
    assert "<title>(1) " in page
    with world.app.app_context():
        (item,) = attention.open_items(db.session, [f"referral:{rid}"])
        item_id = item.id
    from tests.world import post_form

    post_form(client, "/board", f"/board/attention/{item_id}/seen", {})
    assert board(client) == {}
    assert "<title>(1) " not in client.get("/board").get_data(as_text=True)
    # Someone else's board cannot clear it.
    assert client.post(f"/board/attention/{item_id + 99}/seen", data={}).status_code in (400, 404)


def test_two_workers_raising_the_same_reason_text_once(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    clinic = make_facility(session, "C1")
    make_coordinator(session, "coord-gx", area="广西", phone=COORDINATOR)
    session.commit()

    def raise_in_own_transaction() -> AttentionItem | None:
        with session_factory() as mine:
            facility = mine.get_one(Facility, clinic.id)
            item = attention.raise_item(
                mine,
                subject="referral:7",
                code="A7K2",
                reason="unanswered",
                area_of=facility,
                words=lambda language: "words",
                render=lambda language: "text",
                clinic_phone="+8613911110000",
                purpose="coordinator",
                now=T0,
            )
            mine.commit()
            return item

    assert raise_in_own_transaction() is not None
    assert raise_in_own_transaction() is None
    texts = session.scalars(select(OutboundMessage).where(OutboundMessage.to_phone == COORDINATOR))
    assert len(texts.all()) == 1
    # The database itself refuses a second open item, whoever writes it.
    session.add(
        AttentionItem(
            subject="referral:7",
            code="A7K2",
            reason="unanswered",
            words={},
            clinic_phone="",
            raised_at=T0 + dt.timedelta(seconds=1),
            cleared_by="",
            clear_reason="",
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    # Once cleared, a new event may raise the reason again (and text again).
    attention.clear(session, subject="referral:7", by="coord-gx", why="seen", now=T0)
    session.commit()
    assert raise_in_own_transaction() is not None


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_hard_moments_texts_fit_two_segments_and_carry_the_numbers(language: str) -> None:
    from alerts.messages import (
        clinic_safety_net,
        clinic_unplaced,
        coordinator_unanswered,
        coordinator_unplaced,
        safety_net_to_coordinator,
    )
    from alerts.segments import sms_segments

    long_name = ("云州市石山县人民医院妇产科分院" if language == "zh" else "Shishan County ") * 4
    clinic, coordinator, centre = "+8613911110000", "+8613700000077", "+867712345678"
    texts = {
        coordinator_unanswered(
            language, code="A7K2", facility_name=long_name, minutes=1.5, clinic_phone=clinic
        ): [clinic],
        coordinator_unplaced(
            language,
            code="A7K2",
            condition=long_name,
            origin=long_name,
            asked=4,
            clinic_phone=clinic,
        ): [clinic],
        safety_net_to_coordinator(
            language,
            code="A7K2",
            condition=long_name,
            origin=long_name,
            centre="云州市妇幼保健院",
            rule="assign",
            clinic_phone=clinic,
        ): [clinic],
        clinic_unplaced(language, code="A7K2", coordinator_phone=coordinator): [coordinator],
        clinic_unplaced(language, code="A7K2", coordinator_phone=""): ["120"],
        clinic_safety_net(
            language,
            code="A7K2",
            centre=long_name,
            eta_minutes=45,
            centre_phone=centre,
            coordinator_phone=coordinator,
        ): [centre, coordinator],
    }
    for text, numbers in texts.items():
        assert sms_segments(text).segments <= 2, text
        assert all(number in text for number in numbers), text
