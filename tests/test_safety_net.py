"""The safety net (兜底) and the never-empty answer, through the API and the worker.

A case nobody can take, or that everyone declined, is never left without a plan: under the
region's rule the designated centre is assigned (critical), gets a final offer it cannot decline
for FULL (urgent), or the coordinator must act (planned) — and the clinic, the centre and the
coordinator are each told. Partial matches are listed with what they lack, never offered.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from alerts.models import OutboundMessage
from facilities.models import Facility, User
from greenchannel.web.db import db
from tests.world import World


@pytest.fixture
def world(world: World) -> World:
    """The world with H-D designated as the region's centre and a phone on the coordinator."""
    with world.app.app_context():
        centre = db.session.scalars(select(Facility).where(Facility.code == "H-D")).one()
        centre.designated = ["maternal", "neonatal"]
        coordinator = db.session.scalars(select(User).where(User.username == "coord")).one()
        coordinator.phone = "+8613800000001"
        db.session.commit()
    return world


def refer(world: World, conditions: list[str], **case: Any) -> dict[str, Any]:
    created = world.post(
        "clinic",
        "/api/v1/referrals",
        {"origin_facility": "T-1", "case": {"conditions": conditions, **case}},
    )
    assert created.status_code == 201, created.get_json()
    answer: dict[str, Any] = created.get_json()
    return answer


def purposes(world: World) -> dict[str, set[str]]:
    """Who was told what: the queued and sent messages' purposes by phone."""
    with world.app.app_context():
        rows = db.session.scalars(select(OutboundMessage)).all()
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row.purpose, set()).add(row.to_phone)
        return found


def test_a_critical_case_nobody_can_take_is_assigned_to_the_designated_centre(
    world: World,
) -> None:
    # Decompensated heart disease needs M4 with cardiac surgery: nobody here has it.
    case = refer(world, ["CARDIAC"], delivered=True)
    assert case["status"] == "accepted" and case["destination"] == "H-D"
    (offer,) = case["offers"]
    assert offer["kind"] == "safety_net" and offer["status"] == "accepted"
    decided = case["requirements"]["decision"]
    assert decided["kind"] == "safety_net"
    assert decided["safety_net"]["facility"] == "H-D"
    assert [lack["code"] for lack in decided["safety_net"]["lacks"]] == ["lacks_capability"]
    assert decided["partial"][0]["facility"] == "H-D"  # level met, one capability short
    why = next(e for e in case["timeline"] if e["kind"] == "safety_net_assigned")
    assert why["detail"]["why"] == "no hospital meets every need"
    assert why["detail"]["lacks"] == ["lacks cardiac_surgery"]

    told = purposes(world)
    assert world.phones["H-D:obstetrics"] in told["safety_net_assigned"]
    assert world.phones["T-1:obstetrics"] in told["clinic_safety_net"]  # where to go, whom to call
    assert "+8613800000001" in told["coordinator_safety_net"]
    assert "prealert" not in told  # nobody was offered a case they cannot take


def test_when_every_capable_hospital_declines_the_safety_net_assigns_the_centre(
    world: World,
) -> None:
    case = refer(world, ["PPH"], delivered=True)
    rid = case["id"]
    for _ in range(4):  # four capable hospitals, two asked at a time
        pending = [o for o in case["offers"] if o["status"] == "pending"]
        if not pending:
            break
        offer = pending[0]
        answer = world.post(
            offer["facility"],
            f"/api/v1/referrals/{rid}/offers/{offer['id']}/decline",
            {"reason": "FULL"},
        )
        assert answer.status_code == 200, answer.get_json()
        case = answer.get_json()
    assert case["status"] == "accepted" and case["destination"] == "H-D"
    kinds = [(o["facility"], o["kind"], o["status"]) for o in case["offers"]]
    assert kinds[-1] == ("H-D", "safety_net", "accepted")
    assert sum(1 for _, kind, _ in kinds if kind == "safety_net") == 1
    why = next(e for e in case["timeline"] if e["kind"] == "safety_net_assigned")
    assert why["detail"]["why"] == "nobody accepted"


def test_an_urgent_case_gets_a_final_offer_that_cannot_be_declined_for_full(world: World) -> None:
    # A newborn needing surgery (N4 + neonatal surgery): nobody qualifies; urgent → offer.
    case = refer(world, ["NB_SURGICAL"], born_at="2026-11-24T07:30:00+00:00")
    assert case["status"] == "offered"
    (offer,) = case["offers"]
    assert offer["facility"] == "H-D" and offer["kind"] == "safety_net"
    path = f"/api/v1/referrals/{case['id']}/offers/{offer['id']}/decline"
    full = world.post("H-D", path, {"reason": "FULL"})
    assert full.status_code in (400, 409, 422)
    assert full.get_json()["field"] == "reason"
    with world.app.app_context():
        bodies = db.session.scalars(
            select(OutboundMessage.body).where(
                OutboundMessage.purpose.in_(["prealert", "switchboard"])
            )
        ).all()
    assert bodies and all("兜底" in body for body in bodies)  # the centre reads it is final
    # Another reason is heard; the final offer was the last step: the coordinator must act.
    staff = world.post("H-D", path, {"reason": "STAFF"})
    assert staff.status_code == 200, staff.get_json()
    case = staff.get_json()
    assert case["status"] == "unplaced"
    told = purposes(world)
    assert world.phones["T-1:obstetrics"] in told["clinic_unplaced"]
    assert "+8613800000001" in told["coordinator_unplaced"]


def test_a_planned_case_nobody_can_take_waits_for_the_coordinator_with_its_partial_matches(
    world: World,
) -> None:
    # Suspected accreta needs interventional radiology; planned → the safety net is off.
    case = refer(world, ["PAS"], gestation_weeks=34)
    assert case["status"] == "unplaced" and case["offers"] == []
    unplaced = next(e for e in case["timeline"] if e["kind"] == "unplaced")
    partial = unplaced["detail"]["partial"]
    assert partial and all("lacks interventional_radiology" in p["lacks"] for p in partial)
    assert case["requirements"]["decision"]["kind"] == "partial"
    told = purposes(world)
    assert world.phones["T-1:obstetrics"] in told["clinic_unplaced"]


def test_the_route_answer_lists_partial_matches_with_what_they_lack_and_the_safety_net(
    world: World,
) -> None:
    answer = world.post(
        "clinic",
        "/api/v1/route?lang=zh",
        {"origin": {"facility": "T-1"}, "case": {"conditions": ["CARDIAC"], "delivered": True}},
    )
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["candidates"] == []
    assert [p["facility"] for p in body["partial"]][:1] == ["H-D"]
    assert body["partial"][0]["lacks"] == [
        {
            "code": "lacks_capability",
            "text": "不具备心脏外科",
            "params": {"capability": "cardiac_surgery"},
        }
    ]
    # the others are a level short as well: the level gap ranks them after H-D
    assert [lack["code"] for lack in body["partial"][1]["lacks"]] == [
        "maternal_level_below",
        "lacks_capability",
    ]
    assert body["safety_net"]["facility"] == "H-D" and body["safety_net"]["rule"] == "assign"
    assert body["decision"]["kind"] == "safety_net"
    assert body["beyond_window"] is False or body["window"] is not None
    assert body["stabilise_at"] is not None
