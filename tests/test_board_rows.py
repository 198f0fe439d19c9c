"""The board reads its cases as plain rows (``referral.board``) and works out each row of the
table in Python (``pages_board.board_rows``): what it shows must stay what the case itself says,
and its timers and badges the markup of the shared macros."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask, g, get_template_attribute, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

from facilities.models import User
from greenchannel.web.api_referrals import actor_for
from greenchannel.web.db import db
from greenchannel.web.labels import pending_offers
from referral import board
from referral.models import OPEN_STATUSES, Referral
from tests.world import PPH_REQUEST, World, login, web_world

SHOCKED = {**PPH_REQUEST, "case": {**PPH_REQUEST["case"], "in_shock": True}}


def make_cases(world: World) -> list[int]:
    """Three open cases: asking hospitals, in shock, accepted by the first hospital asked."""
    ids = []
    for n, body in enumerate((PPH_REQUEST, SHOCKED, PPH_REQUEST)):
        answer = world.post("clinic", "/api/v1/referrals", {**body, "patient": {"ref": f"R-{n}"}})
        assert answer.status_code == 201, answer.get_json()
        ids.append(int(answer.get_json()["id"]))
        world.clock.advance(minutes=1, seconds=13)
    case = world.get("coordinator", f"/api/v1/referrals/{ids[2]}").get_json()
    offer = next(o for o in case["offers"] if o["status"] == "pending")
    accepted = world.post(
        offer["facility"],
        f"/api/v1/referrals/{ids[2]}/offers/{offer['id']}/accept",
        {"eta_minutes": 10},
    )
    assert accepted.status_code == 200, accepted.get_json()
    return ids


def test_the_board_reads_each_case_as_the_case_itself_says(app: Flask, client: FlaskClient) -> None:
    world = web_world(app, client)
    make_cases(world)
    with app.test_request_context():
        coordinator = db.session.scalars(select(User).where(User.username == "w-coord")).one()
        g.user = coordinator
        read = board.open_cases(db.session, actor_for(coordinator))
        stored = db.session.scalars(
            select(Referral).where(Referral.status.in_(OPEN_STATUSES)).order_by(Referral.created_at)
        ).all()
        assert [c.id for c in read] == [r.id for r in stored]
        assert any(r.requirements.get("in_shock") for r in stored)
        assert any(r.destination is not None for r in stored)
        for case, referral in zip(read, stored, strict=True):
            assert (case.code, case.status, case.urgency, case.created_at) == (
                referral.code,
                referral.status,
                referral.urgency,
                referral.created_at,
            )
            assert (case.outreach, case.patient_kind, case.case) == (
                referral.outreach,
                referral.patient_kind,
                referral.case,
            )
            assert case.requirements.get("in_shock") == referral.requirements.get("in_shock")
            assert (case.origin.name, case.origin.phone) == (
                referral.origin.name,
                referral.origin.phone,
            )
            if referral.destination is None:
                assert case.destination is None
            else:
                assert case.destination is not None
                assert case.destination.name_en == referral.destination.name_en
            assert [(o.facility.id, o.expires_at) for o in case.pending] == [
                (o.facility_id, o.expires_at) for o in pending_offers(referral)
            ]


LINK = re.compile(r'<a class="code" href="([^"]+)">([A-Z0-9]+)</a>')
TIMER = re.compile(r'<span class="timer[^"]*" data-(since|until)="([^"]+)">[^<]*</span>')
BADGE = re.compile(
    r'<span class="badge (urg|st)-([a-z_]+)"><span aria-hidden="true">[^<]*</span>[^<]*</span>'
)


def test_the_rows_timers_badges_and_links_are_the_macros_and_url_fors_own(
    app: Flask, client: FlaskClient
) -> None:
    world = web_world(app, client)
    ids = make_cases(world)
    world.clock.advance(minutes=1, seconds=41)  # the first case's offers have run out
    login(client, "w-coord", lang="en")
    page = client.get("/board/live").get_data(as_text=True)
    table = page.split('id="open-title"')[1]
    timers, badges = TIMER.finditer(table), BADGE.finditer(table)
    with app.test_request_context("/?lang=en"):
        since = get_template_attribute("macros.html", "since")
        until = get_template_attribute("macros.html", "until")
        made = {"urg": get_template_attribute("macros.html", "urgency")}
        made["st"] = get_template_attribute("macros.html", "status")
        shown = [(m.group(0), m.group(1), dt.datetime.fromisoformat(m.group(2))) for m in timers]
        assert {kind for _, kind, _ in shown} == {"since", "until"}
        assert any("over" in html for html, _, _ in shown)  # time is up, in words
        for html, kind, at in shown:
            macro = since if kind == "since" else until
            assert html == str(macro(at, world.clock.now))
        seen = [(m.group(0), m.group(1), m.group(2)) for m in badges]
        assert {kind for _, kind, _ in seen} == {"urg", "st"}
        for html, kind, value in seen:
            assert html == str(made[kind](value))
        codes = {code: rid for code, rid in db.session.execute(select(Referral.code, Referral.id))}
        links = LINK.findall(table)
        assert sorted(codes[code] for _, code in links) == sorted(ids)
        for href, code in links:
            assert href == url_for("cases.case", referral_id=codes[code])
