"""The demo region: facilities, contacts, users, a sensible first state, and its roads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import routing
from alerts.models import OutboundMessage
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import tick
from facilities.models import Contact, Facility, FacilityKind, Team, User
from greenchannel.demo.region import (
    DIVERTED_HOSPITAL,
    STALE_HOSPITAL,
    build_demo_region,
    demo_facilities,
    demo_road_network,
    is_demo_region,
    refresh_demo_capacity,
)
from greenchannel.demo.roads import DemoRoads
from referral.rules import load_rules
from tests.world import ALERTS_ONLY, NOW

RECEIVING_TEAMS = {Team.OBSTETRICS, Team.ANAESTHESIA, Team.BLOOD_BANK, Team.CAPACITY}


@pytest.fixture(scope="module")
def roads() -> DemoRoads:
    return demo_road_network(speeds=load_rules(None).road_speeds_kmh)


def _sweep(factory: sessionmaker[Session], now: dt.datetime) -> list[OutboundMessage]:
    tick(
        factory,
        handlers=ALERTS_ONLY,
        now=now,
        transport=RecordingTransport(),
        worker_id="test",
        settings=WorkerSettings(
            capacity_grace=dt.timedelta(hours=12), capacity_second_grace=dt.timedelta(hours=2)
        ),
    )
    with factory() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_the_demo_region_is_a_prefecture_with_every_level_of_care(session: Session) -> None:
    logins = build_demo_region(session, now=NOW)
    session.commit()
    facilities = {f.code: f for f in session.scalars(select(Facility))}
    assert len(facilities) == 39
    assert facilities["YZ-CENTRE"].maternal_level == 4
    assert facilities["YZ-CENTRE"].neonatal_level == 4
    kinds = [f.kind for f in facilities.values()]
    assert kinds.count(FacilityKind.COUNTY_HOSPITAL) == 3
    assert kinds.count(FacilityKind.COUNTY_MCH_HOSPITAL) == 3
    assert kinds.count(FacilityKind.TOWNSHIP_HEALTH_CENTRE) == 31
    assert all(f.name and f.name_en and f.name != f.name_en for f in facilities.values())
    assert {f.maternal_level for f in facilities.values() if f.code.endswith("-CH")} <= {2, 3}
    for facility in facilities.values():
        teams = {c.team for c in facility.contacts}
        if facility.maternal_level >= 2:
            assert teams >= RECEIVING_TEAMS, facility.code
        else:
            assert teams == {Team.OBSTETRICS}, facility.code
    assert {login.role for login in logins} == {"clinic", "hospital", "coordinator", "admin"}
    assert all(login.password for login in logins)
    assert is_demo_region(session)
    assert session.scalar(select(User).where(User.username == "clinic")) is not None
    assert session.scalar(select(Contact.id).where(Contact.phone == "")) is None


def test_the_demo_layout_is_the_same_every_time() -> None:
    assert demo_facilities() == demo_facilities()
    assert len({(f.lat, f.lon) for f in demo_facilities()}) == 39


def test_a_new_demo_sends_one_capacity_reminder_only_to_the_stale_hospital(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    build_demo_region(session, now=NOW)
    session.commit()
    facilities = {f.code: f for f in session.scalars(select(Facility))}
    for facility in facilities.values():
        if facility.maternal_level >= 2:
            assert facility.status is not None and facility.status.beds_reported_at is not None
    assert facilities[DIVERTED_HOSPITAL].status.diversion.value == "closed"  # type: ignore[union-attr]
    sent = _sweep(session_factory, NOW)
    assert [(m.purpose, m.facility_id) for m in sent] == [
        ("capacity_reminder", facilities[STALE_HOSPITAL].id)
    ]


def test_a_demo_started_again_days_later_does_not_remind_every_hospital(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    build_demo_region(session, now=NOW)
    session.commit()
    later = NOW + dt.timedelta(days=3)
    refreshed = refresh_demo_capacity(session, now=later, grace=dt.timedelta(hours=12))
    session.commit()
    assert len(refreshed) == 7 and STALE_HOSPITAL not in refreshed
    assert refresh_demo_capacity(session, now=later, grace=dt.timedelta(hours=12)) == []
    sent = _sweep(session_factory, later)
    assert [m.purpose for m in sent] == ["capacity_reminder"]


def test_the_demo_roads_reach_every_facility_by_road(roads: DemoRoads) -> None:
    network = roads.network
    assert 2_000 <= network.node_count <= 10_000
    assert network.report.ferries == 1
    assert {"motorway", "trunk", "primary", "secondary", "tertiary", "unclassified"} <= set(
        roads.km_by_class
    )
    assert 30 <= roads.ferry_minutes <= 40
    places = {f.code: f for f in demo_facilities()}
    _, metres = network.nearest_nodes(
        [f.lat for f in places.values()], [f.lon for f in places.values()]
    )
    assert float(metres.max()) < 1.0  # every facility has its own gate on the network
    router = routing.Router(network)

    def minutes(origin: str, destination: str) -> float:
        a, b = places[origin], places[destination]
        found = router.route((a.lat, a.lon), (b.lat, b.lon))
        assert not found.estimate
        return float(found.eta_minutes)

    for code, place in places.items():
        if place.kind is FacilityKind.TOWNSHIP_HEALTH_CENTRE and code != "HXD":
            own = minutes(code, f"{code.split('-')[0]}-CH")
            assert 5 < own < 50, (code, own)
            assert minutes("YZ-CENTRE", code) < 120
    for county in ("LH", "SS", "BW"):
        assert 15 < minutes(f"{county}-CH", "YZ-CENTRE") < 40  # by expressway
    assert minutes("HXD", "BW-CH") > roads.ferry_minutes  # the island needs the ferry


def test_the_demo_road_network_is_the_same_every_time(roads: DemoRoads) -> None:
    again = demo_road_network(speeds=load_rules(None).road_speeds_kmh)
    assert np.array_equal(again.network.travel_time, roads.network.travel_time)
    assert np.array_equal(again.network.lat, roads.network.lat)


def test_greenchannel_demo_builds_the_region_and_roads_once_and_prints_the_walkthrough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenchannel.cli import main

    roads = tmp_path / "roads.npz"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'demo.sqlite'}")
    monkeypatch.setenv("GREENCHANNEL_ROADS", str(roads))
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("SMS_BACKEND", "console")
    first = CliRunner().invoke(main, ["demo", "--no-serve", "--port", "5123"])
    assert first.exit_code == 0, first.output
    assert "built the demo region" in first.output
    assert "road network:" in first.output and "ferry" in first.output
    assert roads.exists()
    assert "http://127.0.0.1:5123/" in first.output
    assert "coordinator" in first.output and "greenchannel-demo" in first.output
    assert "curl" in first.output and "CLINIC=gc_" in first.output
    built = roads.stat().st_mtime_ns
    again = CliRunner().invoke(main, ["demo", "--no-serve"])
    assert again.exit_code == 0, again.output
    assert "already built" in again.output and "road network:" not in again.output
    assert roads.stat().st_mtime_ns == built
    route = CliRunner().invoke(main, ["route", "--from-facility", "LH-T01", "--condition", "PPH"])
    assert route.exit_code == 0, route.output
    assert "(estimate)" not in route.output
    first = next(line for line in route.output.splitlines() if line.lstrip().startswith("1."))
    assert first.split()[:2] == ["1.", "LH-CH"]
