"""Who may do what to a case: every referral, route, closure and coverage endpoint × every role
and scope (own facility, another facility, another area), with the expected answer.

The case is a critical PPH from clinic T-1, offered at once to H-A and H-B. ``hospital`` is H-A
(offered, the destination once accepted); ``other_hospital`` is H-C (never offered);
``other_clinic`` is T-2 in the same county; ``outsider`` is a coordinator of another province.
A case a user may not see is a 404 (its existence is not revealed); a case they may see but not
touch is a 403.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from facilities.models import Facility, FacilityKind
from greenchannel.web.db import db
from referral.models import Referral, RoadClosure
from tests.world import NOW, PPH_REQUEST, World, add_facility, add_user, bearer, build_world

ROLES = [
    None,
    "clinic",
    "other_clinic",
    "hospital",
    "other_hospital",
    "coordinator",
    "outsider",
    "admin",
]
# The world's own names for the tokens of each role.
TOKEN_OF = {"hospital": "H-A", "other_hospital": "H-C"}


def _build(app: Flask, client: FlaskClient, state: str) -> tuple[World, dict[str, Any]]:
    world = build_world(app, client)
    with app.app_context():
        s = db.session
        add_facility(
            s,
            "T-2",
            kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
            maternal_level=1,
            neonatal_level=1,
            capabilities=[],
        )
        world.tokens["other_clinic"] = add_user(s, "clinic-2", "clinic", facility="T-2")
        closure = RoadClosure(
            lat=29.9, lon=106.2, radius_m=500, kind="closed", created_by="x", created_at=NOW
        )
        s.add(closure)
        s.commit()
        closure_id = closure.id
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    offers = {o["facility"]: o["id"] for o in case["offers"]}
    assert set(offers) == {"H-A", "H-B"}, offers
    rid = case["id"]
    steps = {
        "offered": [],
        "accepted": [("H-A", f"/api/v1/referrals/{rid}/offers/{offers['H-A']}/accept", {})],
    }
    steps["in_transit"] = [*steps["accepted"], ("clinic", f"/api/v1/referrals/{rid}/depart", {})]
    steps["arrived"] = [*steps["in_transit"], ("H-A", f"/api/v1/referrals/{rid}/arrive", {})]
    for who, path, body in steps[state]:
        response = world.post(who, path, body)
        assert response.status_code == 200, response.get_json()
    ids = {"rid": rid, "offer": offers["H-A"], "closure": closure_id}
    return world, ids


ALL = {None: 401, "*": 200}
CASE_VIEW = {
    None: 401,
    "clinic": 200,
    "other_clinic": 404,
    "hospital": 200,
    "other_hospital": 404,
    "coordinator": 200,
    "outsider": 404,
    "admin": 200,
}
ANSWER = {**CASE_VIEW, "clinic": 403, "other_clinic": 403}
ORIGIN_SIDE = {**CASE_VIEW, "hospital": 403}
DESTINATION_SIDE = {**CASE_VIEW, "clinic": 403}
COORDINATORS = {None: 401, "coordinator": 200, "outsider": 200, "admin": 200, "*": 403}

# (state, method, path, body, expected); {rid}, {offer}, {closure} are filled in.
ACCESS: list[tuple[str, str, str, Any, dict[str | None, int]]] = [
    ("offered", "GET", "/api/v1/referrals?status=active", None, ALL),
    ("offered", "GET", "/api/v1/referrals/{rid}", None, CASE_VIEW),
    (
        "offered",
        "POST",
        "/api/v1/referrals",
        {**PPH_REQUEST, "patient": {"ref": "second"}},
        {
            None: 401,
            "clinic": 201,
            "other_clinic": 403,
            "hospital": 403,
            "other_hospital": 403,
            "coordinator": 201,
            "outsider": 403,
            "admin": 201,
        },
    ),
    ("offered", "POST", "/api/v1/referrals/{rid}/offers/{offer}/accept", {}, ANSWER),
    (
        "offered",
        "POST",
        "/api/v1/referrals/{rid}/offers/{offer}/decline",
        {"reason": "FULL"},
        ANSWER,
    ),
    ("accepted", "POST", "/api/v1/referrals/{rid}/depart", {}, ORIGIN_SIDE),
    ("in_transit", "POST", "/api/v1/referrals/{rid}/arrive", {}, DESTINATION_SIDE),
    (
        "arrived",
        "POST",
        "/api/v1/referrals/{rid}/complete",
        {"outcome": "delivered, well"},
        DESTINATION_SIDE,
    ),
    ("offered", "POST", "/api/v1/referrals/{rid}/cancel", {"reason": "stabilised"}, ORIGIN_SIDE),
    (
        "offered",
        "POST",
        "/api/v1/referrals/{rid}/redirect",
        {"facility": "H-D", "reason": "family asked"},
        {**CASE_VIEW, "clinic": 403, "hospital": 403},
    ),
    # Only an unplaced case can be re-opened: the role is checked first, then the state.
    (
        "offered",
        "POST",
        "/api/v1/referrals/{rid}/reopen",
        {},
        {**CASE_VIEW, "clinic": 403, "hospital": 403, "coordinator": 409, "admin": 409},
    ),
    (
        "offered",
        "POST",
        "/api/v1/route",
        {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}},
        ALL,
    ),
    ("offered", "GET", "/api/v1/roads/closures", None, ALL),
    (
        "offered",
        "POST",
        "/api/v1/roads/closures",
        {"lat": 29.9, "lon": 106.2, "radius_m": 300, "kind": "closed", "reason": "flood"},
        {**COORDINATORS, "coordinator": 201, "outsider": 201, "admin": 201},
    ),
    ("offered", "DELETE", "/api/v1/roads/closures/{closure}", None, COORDINATORS),
    ("offered", "GET", "/api/v1/coverage?maternal_level=M3", None, COORDINATORS),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("state", "method", "path", "body", "expected"),
    ACCESS,
    ids=[f"{m} {p.split('?')[0]} ({s})" for s, m, p, _, _ in ACCESS],
)
def test_every_case_endpoint_checks_role_and_scope(
    app: Flask,
    client: FlaskClient,
    role: str | None,
    state: str,
    method: str,
    path: str,
    body: Any,
    expected: dict[str | None, int],
) -> None:
    world, ids = _build(app, client, state)
    url = path.format(**ids)
    headers = bearer(world.tokens[TOKEN_OF.get(role, role)]) if role else {}
    response = client.open(url, method=method, headers=headers, json=body)
    want = expected.get(role, expected.get("*"))
    assert response.status_code == want, response.get_json()
    if want >= 400:
        assert set(response.get_json()) >= {"error", "message"}
    with app.app_context():
        referral = db.session.get(Referral, ids["rid"])
        assert referral is not None
        if want >= 400:
            # A refusal changes nothing: the case is still in the state it was in.
            assert referral.status.value == state


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        ("clinic", 1),
        ("other_clinic", 0),
        ("hospital", 1),
        ("other_hospital", 0),
        ("coordinator", 1),
        ("outsider", 0),
        ("admin", 1),
    ],
)
def test_the_case_list_shows_each_user_only_the_cases_in_their_scope(
    app: Flask, client: FlaskClient, role: str, sees: int
) -> None:
    world, _ = _build(app, client, "offered")
    response = client.get(
        "/api/v1/referrals?status=active", headers=bearer(world.tokens[TOKEN_OF.get(role, role)])
    )
    assert response.status_code == 200
    assert len(response.get_json()["referrals"]) == sees


def test_a_revoked_token_is_refused_at_once(app: Flask, client: FlaskClient) -> None:
    from facilities.accounts import revoke_tokens
    from facilities.models import User

    world, ids = _build(app, client, "offered")
    with app.app_context():
        user = db.session.query(User).filter_by(username="user-H-A").one()
        revoke_tokens(db.session, user=user, now=NOW)
        db.session.commit()
    response = world.post("H-A", f"/api/v1/referrals/{ids['rid']}/offers/{ids['offer']}/accept")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorised"


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("cancel", {"reason": "duplicate"}),
        ("redirect", {"facility": "H-C", "reason": "phoned"}),
    ],
)
def test_a_coordinator_sees_a_case_their_hospital_was_asked_about_but_acts_only_in_their_area(
    app: Flask, client: FlaskClient, action: str, body: dict[str, Any]
) -> None:
    world = build_world(app, client)
    with app.app_context():
        hospital = db.session.query(Facility).filter_by(code="H-A").one()
        hospital.county = "石山县"  # asked about the case, in another county than the clinic
        world.tokens["shishan"] = add_user(
            db.session, "coord-shishan", "coordinator", area="云省/云州市/石山县"
        )
        db.session.commit()
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    assert "H-A" in [o["facility"] for o in case["offers"]]
    path = f"/api/v1/referrals/{case['id']}"
    assert world.get("shishan", path).status_code == 200  # seeing is allowed
    refused = world.post("shishan", f"{path}/{action}", body)
    assert refused.status_code == 403, refused.get_json()
    assert world.get("coordinator", path).get_json()["status"] == "offered"  # nothing changed
    allowed = world.post("coordinator", f"{path}/{action}", body)  # the case's own area
    assert allowed.status_code == 200, allowed.get_json()
