"""Seeing a case and acting on it, for every action of ``referral.commands.ACTIONS`` and every
role, through the API and through the pages: the two tables below are the specification.

The case is a critical PPH from clinic T-1 (county 临河县), offered at once to H-A (临河县) and
H-B, which sits in another county (石山县) so that its coordinator sees the case only because
their hospital was asked. H-A accepts in the later states and so is the destination; H-B stays
"the offered hospital"; H-C is never offered. The roles (columns):

    clinic     a user of T-1, the referring clinic
    clinic2    a user of T-2, another clinic of the same county
    offered    a user of H-B, offered the case (its offer is the one answered below)
    unoffered  a user of H-C, never offered
    dest       a user of H-A, the destination once accepted (offered too before that)
    coord      the coordinator of the case's own area (临河县)
    asked      the coordinator of 石山县, whose hospital (H-B) was merely asked
    far        the coordinator of another province (别省)
    admin      an administrator

Outcomes: ``ok`` the action goes through; ``403`` the user sees the case (or may never do this
kind of thing) but may not act; ``404`` the user may not see the case, so it is as if it did not
exist. A refusal changes nothing: the case, its offers and its timeline are as they were. On a
page a refusal of a visible case comes back as the case page with the message "You may not do
that." (the form's redirect), which counts as ``403`` here.

The rule behind the tables (referral/access.py): seeing follows the origin, the destination and
every hospital asked; acting on the journey (depart, cancel / arrive, complete) belongs to the
referring / receiving facility; answering an offer belongs to the offered hospital, and among
coordinators to the one of that hospital's area or of the case's own area; every other
coordinator action (depart, arrive, complete, cancel, redirect, reopen) follows the case's own
area, i.e. its referring facility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from facilities.models import Facility, FacilityKind
from greenchannel.web.db import db
from referral.commands import ACTIONS
from referral.models import Offer, OfferStatus, Referral, ReferralEvent, ReferralStatus
from tests.world import (
    PASSWORD,
    PPH_REQUEST,
    World,
    add_facility,
    add_user,
    bearer,
    build_world,
    csrf_from,
)

# ------------------------------------------------------------------------------- the tables

ROLES = ("clinic", "clinic2", "offered", "unoffered", "dest", "coord", "asked", "far", "admin")

# Who sees the case (GET /api/v1/referrals/{id} and the case page /cases/{id}), in every state.
SEEING = """
state       clinic  clinic2  offered  unoffered  dest  coord  asked  far  admin
offered     ok      404      ok       404        ok    ok     ok     404  ok
accepted    ok      404      ok       404        ok    ok     ok     404  ok
in_transit  ok      404      ok       404        ok    ok     ok     404  ok
arrived     ok      404      ok       404        ok    ok     ok     404  ok
completed   ok      404      ok       404        ok    ok     ok     404  ok
unplaced    ok      404      ok       404        ok    ok     ok     404  ok
cancelled   ok      404      ok       404        ok    ok     ok     404  ok
"""

# Who may act, in each state where the action applies (the API endpoint and the page form alike).
ACTING = """
action    state       clinic  clinic2  offered  unoffered  dest  coord  asked  far  admin
accept    offered     403     403      ok       404        403   ok     ok     404  ok
decline   offered     403     403      ok       404        403   ok     ok     404  ok
depart    accepted    ok      404      403      404        403   ok     403    404  ok
arrive    accepted    403     404      403      404        ok    ok     403    404  ok
arrive    in_transit  403     404      403      404        ok    ok     403    404  ok
complete  arrived     403     404      403      404        ok    ok     403    404  ok
cancel    offered     ok      404      403      404        403   ok     403    404  ok
cancel    accepted    ok      404      403      404        403   ok     403    404  ok
cancel    in_transit  ok      404      403      404        403   ok     403    404  ok
cancel    unplaced    ok      404      403      404        403   ok     403    404  ok
redirect  offered     403     404      403      404        403   ok     403    404  ok
redirect  accepted    403     404      403      404        403   ok     403    404  ok
redirect  unplaced    403     404      403      404        403   ok     403    404  ok
reopen    unplaced    403     404      403      404        403   ok     403    404  ok
"""


def _rows(table: str) -> list[tuple[list[str], dict[str, str]]]:
    header, *lines = [line.split() for line in table.strip().splitlines()]
    keys = len(header) - len(ROLES)
    assert tuple(header[keys:]) == ROLES, header
    return [(line[:keys], dict(zip(ROLES, line[keys:], strict=True))) for line in lines]


SEES = [(state, role, want) for (state,), row in _rows(SEEING) for role, want in row.items()]
ACTS = [
    (action, state, role, want)
    for (action, state), row in _rows(ACTING)
    for role, want in row.items()
]


def test_the_tables_cover_every_action_and_every_role() -> None:
    assert {action for action, *_ in ACTS} == set(ACTIONS)
    assert {role for _, _, role, _ in ACTS} == set(ROLES)
    assert {want for *_, want in ACTS} | {want for *_, want in SEES} == {"ok", "403", "404"}


# ------------------------------------------------------------------------------- the world

# Each role's user: (role name for add_user, facility, area); each may also log in on the pages.
USERS = {
    "clinic": ("clinic", "T-1", ""),
    "clinic2": ("clinic", "T-2", ""),
    "offered": ("hospital", "H-B", ""),
    "unoffered": ("hospital", "H-C", ""),
    "dest": ("hospital", "H-A", ""),
    "coord": ("coordinator", None, "云省/云州市/临河县"),
    "asked": ("coordinator", None, "云省/云州市/石山县"),
    "far": ("coordinator", None, "别省"),
    "admin": ("admin", None, ""),
}


@dataclass
class Matrix:
    """The world with one user per role: an API token each, and (``web``) a logged-in client."""

    world: World
    tokens: dict[str, str]
    clients: dict[str, FlaskClient]
    cases: int = 0

    @property
    def app(self) -> Flask:
        return self.world.app


def _matrix(app: Flask, client: FlaskClient, *, web: bool = False) -> Matrix:
    world = build_world(app, client)
    tokens: dict[str, str] = {}
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
        s.query(Facility).filter_by(code="H-B").one().county = "石山县"
        for role, (kind, facility, area) in USERS.items():
            tokens[role] = add_user(
                s,
                f"m-{role}",
                kind,
                facility=facility,
                area=area,
                password=PASSWORD if web else None,
            )
        s.commit()
    clients = {role: _web_login(app, role) for role in ROLES} if web else {}
    return Matrix(world=world, tokens=tokens, clients=clients)


@dataclass
class Case:
    id: int
    offer: int  # H-B's offer: the one answered in the accept and decline rows


def _case(matrix: Matrix, state: str) -> Case:
    """A new case of the matrix's world, brought to ``state`` the way the users would."""
    world, app = matrix.world, matrix.app
    matrix.cases += 1
    request = {**PPH_REQUEST, "patient": {"ref": f"M-{matrix.cases}", "age_years": 28}}
    created = world.post("clinic", "/api/v1/referrals", request)
    assert created.status_code == 201, created.get_json()
    document = created.get_json()
    offers = {o["facility"]: o["id"] for o in document["offers"]}
    assert set(offers) == {"H-A", "H-B"}, offers
    rid = document["id"]
    steps: list[tuple[str, str, dict[str, Any]]] = []
    if state in ("accepted", "in_transit", "arrived", "completed"):
        steps.append(("H-A", f"offers/{offers['H-A']}/accept", {}))
    if state in ("in_transit", "arrived", "completed"):
        steps.append(("clinic", "depart", {}))
    if state in ("arrived", "completed"):
        steps.append(("H-A", "arrive", {}))
    if state == "completed":
        steps.append(("H-A", "complete", {"outcome": "delivered, well"}))
    if state == "cancelled":
        steps.append(("clinic", "cancel", {"reason": "stabilised"}))
    for who, path, body in steps:
        response = world.post(who, f"/api/v1/referrals/{rid}/{path}", body)
        assert response.status_code == 200, response.get_json()
    if state == "unplaced":
        # Nobody accepted in time: both offers ran out (the worker's path, without its clock).
        with app.app_context():
            for offer in db.session.scalars(select(Offer).where(Offer.referral_id == rid)):
                offer.status = OfferStatus.EXPIRED
            referral = db.session.get(Referral, rid)
            assert referral is not None
            referral.status = ReferralStatus.UNPLACED
            db.session.commit()
    with app.app_context():
        referral = db.session.get(Referral, rid)
        assert referral is not None and referral.status.value == state
    return Case(id=rid, offer=offers["H-B"])


def _snapshot(app: Flask, rid: int) -> tuple[Any, ...]:
    """What an action changes: the case's state and destination, its offers, its timeline."""
    with app.app_context():
        s = db.session
        referral = s.get(Referral, rid)
        assert referral is not None
        offers = s.execute(
            select(Offer.id, Offer.status).where(Offer.referral_id == rid).order_by(Offer.id)
        ).all()
        events = s.scalar(
            select(func.count()).select_from(ReferralEvent).where(ReferralEvent.referral_id == rid)
        )
        return (referral.status, referral.destination_facility_id, tuple(offers), events)


# The API call and the page form of each action: (path under the case, JSON body, form fields).
CALLS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "accept": ("offers/{offer}/accept", {}, {}),
    "decline": ("offers/{offer}/decline", {"reason": "FULL"}, {"reason": "FULL"}),
    "depart": ("depart", {}, {}),
    "arrive": ("arrive", {}, {}),
    "complete": ("complete", {"outcome": "delivered, well"}, {"outcome": "delivered, well"}),
    "cancel": ("cancel", {"reason": "duplicate"}, {"reason": "duplicate"}),
    "redirect": (
        "redirect",
        {"facility": "H-D", "reason": "family asked"},
        {"facility": "H-D", "reason": "family asked"},
    ),
    "reopen": ("reopen", {}, {}),
}


def _web_login(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login?lang=en").get_data(as_text=True)
    response = client.post(
        "/login",
        data={"username": f"m-{role}", "password": PASSWORD, "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def _cell(status: int) -> str:
    return "ok" if status == 200 else str(status)


def _by_api(matrix: Matrix, role: str, action: str, case: Case) -> str:
    path, body, _ = CALLS[action]
    response = matrix.world.client.post(
        f"/api/v1/referrals/{case.id}/{path.format(offer=case.offer)}",
        json=body,
        headers=bearer(matrix.tokens[role]),
    )
    if response.status_code != 200:
        assert set(response.get_json()) >= {"error", "message"}, response.get_json()
    return _cell(response.status_code)


def _by_page(matrix: Matrix, role: str, action: str, case: Case) -> str:
    """Post the page form as the browser would; what the person is shown, as a table cell."""
    path, _, form = CALLS[action]
    client = matrix.clients[role]
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post(
        f"/cases/{case.id}/{path.format(offer=case.offer)}", data={**form, "csrf_token": token}
    )
    if response.status_code != 302:
        return _cell(response.status_code)
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    if "You may not do that." in shown:
        return "403"
    if "Not found." in shown:
        return "404"
    if "Nothing changed" in shown or "Please check the form." in shown:
        return "refused otherwise"
    return "ok"


def _check_row(matrix: Matrix, action: str, state: str, row: dict[str, str], by: Any) -> list[str]:
    """Every cell of one row: the refusals on one case (none may change it), then each role
    that may act on a case of its own. Returns the cells that differ from the table."""
    wrong: list[str] = []
    refused = _case(matrix, state)
    before = _snapshot(matrix.app, refused.id)
    for role, want in row.items():
        if want == "ok":
            continue
        got = by(matrix, role, action, refused)
        if got != want:
            wrong.append(f"{role}: table says {want}, got {got}")
        if _snapshot(matrix.app, refused.id) != before:
            wrong.append(f"{role}: refused ({got}) but the case changed")
            refused = _case(matrix, state)
            before = _snapshot(matrix.app, refused.id)
    for role, want in row.items():
        if want != "ok":
            continue
        case = _case(matrix, state)
        before = _snapshot(matrix.app, case.id)
        got = by(matrix, role, action, case)
        if got != "ok":
            wrong.append(f"{role}: table says ok, got {got}")
        elif _snapshot(matrix.app, case.id) == before:
            wrong.append(f"{role}: answered ok but nothing changed")
    return wrong


# ------------------------------------------------------------------------------- the tests

ROWS = _rows(ACTING)
ROW_IDS = [f"{action} ({state})" for (action, state), _ in ROWS]


def test_who_sees_the_case(app: Flask, client: FlaskClient) -> None:
    matrix = _matrix(app, client, web=True)
    wrong = []
    for (state,), row in _rows(SEEING):
        case = _case(matrix, state)
        for role, want in row.items():
            api = client.get(f"/api/v1/referrals/{case.id}", headers=bearer(matrix.tokens[role]))
            page = matrix.clients[role].get(f"/cases/{case.id}")
            for where, got in (("API", _cell(api.status_code)), ("page", _cell(page.status_code))):
                if got != want:
                    wrong.append(f"{state}, {role} ({where}): table says {want}, got {got}")
    assert not wrong, wrong


@pytest.mark.parametrize(("key", "row"), ROWS, ids=ROW_IDS)
def test_who_may_act_through_the_api(
    app: Flask, client: FlaskClient, key: list[str], row: dict[str, str]
) -> None:
    action, state = key
    wrong = _check_row(_matrix(app, client), action, state, row, _by_api)
    assert not wrong, wrong


def test_who_may_act_through_the_page_forms(app: Flask, client: FlaskClient) -> None:
    # One world for every row (each row makes its own cases): a password login per role costs
    # an argon2 verification, so the nine logins are made once.
    matrix = _matrix(app, client, web=True)
    wrong = []
    for (action, state), row in ROWS:
        wrong += [
            f"{action} ({state}), {cell}"
            for cell in _check_row(matrix, action, state, row, _by_page)
        ]
    assert not wrong, wrong


def test_the_cases_coordinator_may_redirect_agreed_by_phone_to_a_hospital_of_another_area(
    app: Flask, client: FlaskClient
) -> None:
    """The case's own coordinator phoned H-B (in 石山县) and it agreed: the redirect records the
    offer as accepted. Before, the acceptance inside the redirect asked whether H-B was in the
    coordinator's area, and the whole redirect was refused."""
    matrix = _matrix(app, client, web=True)
    case = _case(matrix, "offered")
    coordinator = matrix.clients["coord"]
    token = csrf_from(coordinator.get("/").get_data(as_text=True))
    response = coordinator.post(
        f"/cases/{case.id}/redirect",
        data={
            "facility": "H-B",
            "reason": "phoned, they agreed",
            "agreed_by_phone": "on",
            "csrf_token": token,
        },
    )
    shown = coordinator.get(response.headers["Location"]).get_data(as_text=True)
    assert "You may not do that." not in shown
    with app.app_context():
        referral = db.session.get(Referral, case.id)
        assert referral is not None and referral.status is ReferralStatus.ACCEPTED
        assert referral.destination is not None and referral.destination.code == "H-B"
