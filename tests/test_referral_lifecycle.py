"""A referral's whole life through the API, with the worker's tick driven at explicit times."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from tests.world import PPH_REQUEST, World


def pending(referral: dict[str, object]) -> list[str]:
    return [o["facility"] for o in referral["offers"] if o["status"] == "pending"]  # type: ignore[index, attr-defined]


def offer_id(referral: dict[str, object], facility: str) -> int:
    return next(o["id"] for o in referral["offers"] if o["facility"] == facility)  # type: ignore[index, attr-defined]


def test_a_pph_referral_is_declined_ignored_moved_on_accepted_and_completed(world: World) -> None:
    # 08:00 the township doctor starts a PPH referral: critical, so the best two are asked.
    created = world.post("clinic", "/api/v1/referrals", PPH_REQUEST)
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    rid = case["id"]
    assert case["status"] == "offered" and case["urgency"] == "critical"
    assert case["requirements"]["maternal_level"] == "M2"
    assert set(case["requirements"]["capabilities"]) == {"caesarean_24h", "massive_transfusion"}
    assert pending(case) == ["H-A", "H-B"]
    assert case["advice"]["zh"] and case["advice"]["en"]

    world.tick()  # the pre-alerts leave through the transport
    prealert = world.transport.to(world.phones["H-A:obstetrics"])
    assert len(prealert) == 1 and case["code"] in prealert[0].body
    # The age (28) and the register number never travel; the one-time link's random token
    # may contain any digits, so it is left out of the look.
    text = re.sub(r"https?://\S+", "", prealert[0].body)
    assert "28" not in text and "T1-2026-0042" not in text

    # 08:01 hospital A declines by API: no bed. The case moves on to C at once.
    world.clock.advance(minutes=1)
    declined = world.post(
        "H-A", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-A')}/decline", {"reason": "FULL"}
    )
    assert declined.status_code == 200, declined.get_json()
    assert pending(declined.get_json()) == ["H-B", "H-C"]

    # 08:03:01 hospital B has said nothing for 3 minutes: its offer expires, D is asked.
    world.clock.advance(minutes=2, seconds=1)
    world.tick()
    case = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
    by_facility = {o["facility"]: o["status"] for o in case["offers"]}
    assert by_facility == {"H-A": "declined", "H-B": "expired", "H-C": "pending", "H-D": "pending"}

    # 08:04 hospital C accepts; D's offer is withdrawn and the clinic is told.
    world.clock.advance(seconds=59)
    accepted = world.post(
        "H-C", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-C')}/accept", {"eta_minutes": 10}
    )
    assert accepted.status_code == 200, accepted.get_json()
    case = accepted.get_json()
    assert case["status"] == "accepted" and case["destination"] == "H-C"
    assert {o["facility"]: o["status"] for o in case["offers"]}["H-D"] == "withdrawn"
    world.tick()
    to_clinic = world.transport.to(world.phones["T-1:obstetrics"])
    assert any(case["code"] in sms.body and "H-C" in sms.body for sms in to_clinic)
    # D's team had been pre-alerted: it is told to stand down; C's team is not.
    stand_down = [s.body for s in world.transport.to(world.phones["H-D:obstetrics"])]
    assert len(stand_down) == 2 and "其他医院接收" in stand_down[-1]
    assert not any(
        "无需再准备" in s.body for s in world.transport.to(world.phones["H-C:obstetrics"])
    )

    # Nothing is left ticking: far in the future, no offer expires and nobody is escalated.
    sent_before = len(world.transport.sent)
    world.clock.advance(minutes=30)
    world.tick()
    assert len(world.transport.sent) == sent_before
    world.clock.advance(minutes=-30)

    # 08:06 the patient leaves; 08:40 arrives; 08:50 the outcome is recorded.
    world.clock.advance(minutes=2)
    assert world.post("clinic", f"/api/v1/referrals/{rid}/depart").status_code == 200
    world.clock.advance(minutes=34)
    arrived = world.post("H-C", f"/api/v1/referrals/{rid}/arrive")
    assert arrived.status_code == 200
    world.tick()
    assert any("到达" in sms.body for sms in world.transport.to(world.phones["T-1:obstetrics"]))
    world.clock.advance(minutes=10)
    done = world.post(
        "H-C",
        f"/api/v1/referrals/{rid}/complete",
        {"outcome": "bleeding controlled, B-Lynch suture, discharged home"},
    )
    assert done.status_code == 200
    case = done.get_json()
    assert case["status"] == "completed"

    kinds = [event["kind"] for event in case["timeline"]]
    assert kinds == [
        "created",
        "offered",
        "offered",
        "declined",
        "offered",
        "expired",
        "offered",
        "accepted",
        "withdrawn",
        "departed",
        "arrived",
        "completed",
    ]
    channels = {event["kind"]: event["channel"] for event in case["timeline"]}
    assert channels["declined"] == "api" and channels["expired"] == "system"
    assert case["intervals"] == {
        "decision_to_first_alert": 0.0,
        "decision_to_first_answer": 1.0,
        "decision_to_accepted": 4.0,
        "accepted_to_departed": 2.0,
        "departed_to_arrived": 34.0,
        "decision_to_arrived": 40.0,
        "arrived_to_completed": 10.0,
    }


def test_nobody_left_makes_the_case_unplaced_and_tells_the_coordinators(
    world: World, app: Flask
) -> None:
    from facilities.models import User
    from greenchannel.web.db import db

    with app.app_context():
        coordinator = db.session.query(User).filter_by(username="coord").one()
        coordinator.phone = "+8613922220000"
        db.session.commit()
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    rid = case["id"]
    for facility in ("H-A", "H-B", "H-C", "H-D"):
        current = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
        if facility in pending(current):
            world.post(
                facility,
                f"/api/v1/referrals/{rid}/offers/{offer_id(current, facility)}/decline",
                {"reason": "STAFF"},
            )
    case = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
    assert case["status"] == "unplaced"
    world.tick()
    assert any(case["code"] in sms.body for sms in world.transport.to("+8613922220000"))
    # The coordinator asks everyone again.
    reopened = world.post("coordinator", f"/api/v1/referrals/{rid}/reopen")
    assert reopened.status_code == 200 and reopened.get_json()["status"] == "offered"


def test_an_accept_on_a_withdrawn_offer_is_a_409_that_says_why(world: World) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    rid = case["id"]
    ok = world.post("H-A", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-A')}/accept")
    assert ok.status_code == 200
    late = world.post("H-B", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-B')}/accept")
    assert late.status_code == 409
    assert "withdrawn" in late.get_json()["message"]


def test_a_retried_create_with_the_same_idempotency_key_returns_the_first_result(
    world: World,
) -> None:
    first = world.post("clinic", "/api/v1/referrals", PPH_REQUEST, **{"Idempotency-Key": "k1"})
    again = world.post("clinic", "/api/v1/referrals", PPH_REQUEST, **{"Idempotency-Key": "k1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    other = dict(PPH_REQUEST, case={"conditions": ["ECLAMPSIA"]})
    misuse = world.post("clinic", "/api/v1/referrals", other, **{"Idempotency-Key": "k1"})
    assert misuse.status_code == 409 and misuse.get_json()["field"] == "Idempotency-Key"


def test_a_second_open_referral_for_the_same_patient_points_to_the_first(world: World) -> None:
    first = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    second = world.post("clinic", "/api/v1/referrals", PPH_REQUEST)
    assert second.status_code == 409
    body = second.get_json()
    assert body["field"] == "patient.ref" and first["code"] in body["message"]


def test_do_not_move_turns_the_request_into_an_outreach_request(world: World) -> None:
    body = dict(PPH_REQUEST, case={"conditions": ["PPH"], "do_not_move": True})
    case = world.post("clinic", "/api/v1/referrals", body).get_json()
    assert case["outreach"] is True
    assert [o["kind"] for o in case["offers"]] == ["outreach"]
    world.tick()
    text = world.transport.to(world.phones["H-A:obstetrics"])[0].body
    assert "下沉" in text


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        ("H-A", "/api/v1/referrals", 403),  # a hospital refers only from its own facility
        ("outsider", "/api/v1/referrals", 403),  # a coordinator of another area
        ("coordinator", "/api/v1/referrals", 201),
        ("admin", "/api/v1/referrals", 201),
    ],
)
def test_who_may_start_a_referral_from_the_clinic(
    world: World, who: str, path: str, status: int
) -> None:
    assert world.post(who, path, PPH_REQUEST).status_code == status


def test_journey_steps_check_role_scope_and_state(world: World) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    rid = case["id"]
    # Not accepted yet: it cannot leave (the referring facility confirms the destination first).
    early = world.post("clinic", f"/api/v1/referrals/{rid}/depart")
    assert early.status_code == 409 and "accepted" in early.get_json()["message"]
    # Another hospital cannot answer for H-A; the clinic cannot answer offers at all.
    assert world.post(
        "H-C", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-A')}/accept"
    ).status_code in (403, 404)
    assert (
        world.post(
            "clinic", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-A')}/accept"
        ).status_code
        == 403
    )
    # H-D was not offered the case: for it the case does not exist.
    assert world.get("H-D", f"/api/v1/referrals/{rid}").status_code == 404
    world.post("H-A", f"/api/v1/referrals/{rid}/offers/{offer_id(case, 'H-A')}/accept")
    # Only the destination marks arrival.
    assert world.post("H-B", f"/api/v1/referrals/{rid}/arrive").status_code in (403, 404)
    bad_outcome = world.post("H-A", f"/api/v1/referrals/{rid}/complete", {"outcome": ""})
    assert bad_outcome.status_code in (400, 422) and bad_outcome.get_json()["field"] == "outcome"


def test_bad_referral_requests_name_the_field_and_create_nothing(world: World) -> None:
    cases = [
        ({**PPH_REQUEST, "case": {"conditions": ["HEADACHE"]}}, "conditions"),
        (
            {**PPH_REQUEST, "case": {"conditions": ["PPH"], "gestation_weeks": 60}},
            "case.gestation_weeks",
        ),
        ({**PPH_REQUEST, "origin_facility": "NOPE"}, "origin_facility"),
        ({**PPH_REQUEST, "patient": {"name": "王芳"}}, "patient.name"),
        (
            {**PPH_REQUEST, "case": {"conditions": ["PPH"], "risk_colour": "blue"}},
            "case.risk_colour",
        ),
    ]
    for body, field in cases:
        response = world.post("clinic", "/api/v1/referrals", body)
        assert response.status_code in (400, 404, 422), body
        assert response.get_json()["field"] == field, response.get_json()
    listing = world.get("coordinator", "/api/v1/referrals?status=active").get_json()
    assert listing["referrals"] == []


def test_cancel_withdraws_offers_and_stops_every_timer(world: World) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    rid = case["id"]
    cancelled = world.post("clinic", f"/api/v1/referrals/{rid}/cancel", {"reason": "stabilised"})
    assert cancelled.status_code == 200
    assert {o["status"] for o in cancelled.get_json()["offers"]} == {"withdrawn"}
    world.tick()
    # Pre-alerts that had not left yet are dropped, so nobody needs telling; none had left.
    assert not any("无需再准备" in s.body for s in world.transport.sent)
    sent = len(world.transport.sent)
    world.clock.advance(minutes=10)
    world.tick()
    assert len(world.transport.sent) == sent
    again = world.post("clinic", f"/api/v1/referrals/{rid}/cancel", {"reason": "stabilised"})
    assert again.status_code == 409


def test_a_coordinator_redirects_with_a_reason_that_the_timeline_keeps(world: World) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    rid = case["id"]
    world.tick()  # the pre-alerts to H-A and H-B leave
    moved = world.post(
        "coordinator",
        f"/api/v1/referrals/{rid}/redirect",
        {"facility": "H-D", "reason": "family lives near H-D"},
    )
    assert moved.status_code == 200, moved.get_json()
    case = moved.get_json()
    assert pending(case) == ["H-D"]
    event = next(e for e in case["timeline"] if e["kind"] == "redirected")
    assert event["detail"]["reason"] == "family lives near H-D" and event["actor"] == "coord"
    assert (
        world.post(
            "clinic", f"/api/v1/referrals/{rid}/redirect", {"facility": "H-D", "reason": "x"}
        ).status_code
        == 403
    )
    world.tick()
    for team in ("H-A:obstetrics", "H-B:anaesthesia"):
        assert "改派" in world.transport.to(world.phones[team])[-1].body
