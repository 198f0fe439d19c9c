"""One area rule: the coordinators texted about a facility's cases are exactly those who may open
them (the registry's ``area_covers``), including a facility whose city is not recorded."""

from __future__ import annotations

from sqlalchemy.orm import Session

from alerts.recipients import area_coordinators
from facilities.models import Role
from referral.service import Actor, can_see
from tests.world import make_coordinator, make_facility


def test_who_is_texted_about_a_case_is_exactly_who_may_open_it(session: Session) -> None:
    # A township whose city was left empty in the registry: province / "" / county.
    clinic = make_facility(session, "T-EMPTY-CITY")
    clinic.province, clinic.city, clinic.county = "云省", "", "临河县"
    areas = {
        "province": "云省",
        "county-as-city": "云省/临河县",  # reads the county as a city: covers nothing here
        "exact": "云省//临河县",
        "elsewhere": "别省",
        "everywhere": "",
    }
    users = {
        name: make_coordinator(session, f"c-{name}", area=area, phone=f"+86139000000{i:02d}")
        for i, (name, area) in enumerate(areas.items())
    }
    session.flush()
    texted = {r.user_id for r in area_coordinators(session, clinic)}
    may_open = {
        user.id
        for user in users.values()
        if can_see(
            Actor(name=user.username, channel="web", role=Role.COORDINATOR, area=user.area),
            origin=clinic,
            destination=None,
            offered=[],
        )
    }
    assert texted == may_open
    assert users["county-as-city"].id not in texted  # the old escalation rule texted this one
    assert users["province"].id in texted and users["everywhere"].id in texted
