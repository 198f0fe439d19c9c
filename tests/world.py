"""The world every test lives in, and the one set of factories that builds it.

Time
    ``NOW`` (2026-11-24 08:00 UTC) is the one start of time. ``Clock`` is the controllable clock
    the app reads (``world.clock.advance(minutes=5)``); tests without the app pass ``now=``
    themselves, from ``NOW`` (``T0`` and ``minutes()`` are the alerts tests' names for it).

The region (``build_region``; fixture ``region`` on a plain session, no Flask)
    Province 云省, city 云州市, county 临河县. One township clinic and four capable hospitals
    at growing straight-line distance north of it (no road network: the router estimates)::

        T-1  township clinic, level 1/1, 29.80 N 106.20 E  duty doctor +8613911110000
        H-A  0.05 deg north, maternal 3, neonatal 3  }  PPH capabilities (caesarean, blood,
        H-B  0.10 deg north, maternal 3, neonatal 3  }  massive transfusion, adult ICU); fresh
        H-C  0.15 deg north, maternal 3, neonatal 3  }  capacity (4 obstetric, 1 maternal ICU,
        H-D  0.20 deg north, maternal 4, neonatal 3  }  2 NICU, normal), reported 10 min ago

    Each hospital has an obstetrics, anaesthesia and blood-bank contact
    (``phones["H-A:obstetrics"]``) and an API user (``tokens["H-A"]``). Other users:
    ``tokens["clinic"]`` (T-1), ``tokens["coordinator"]`` (area 云省), ``tokens["outsider"]``
    (a coordinator of 别省), ``tokens["admin"]``. The case: ``PPH_REQUEST``, the API body of
    a PPH referral from T-1.

The world (``build_world``; fixture ``world``)
    The region in the app's database, with the app, its test client, the clock and a recording
    SMS transport: ``world.post("clinic", "/api/v1/referrals", PPH_REQUEST)``, ``world.get(...)``,
    ``world.tick()`` (one worker pass at the clock's time). A test module that needs more (a road
    network, a Twilio fake, a phone on the coordinator) overrides ``world`` with a small fixture
    that takes ``world`` and adds it; a test that must configure the app first (rate limits,
    webhook tokens) sets ``app.config`` and then calls ``build_world(app, client)`` itself.
    ``web_world`` is the same world plus one password login per role for the pages (``w-clinic``,
    ``w-hosp`` at H-A, ``w-hosp-b`` at H-B, ``w-coord``; password ``PASSWORD``), entered with
    ``login`` and ``post_form``; ``road_grid`` writes a road grid over the region for the map.

Factories for tests that build their own few rows (on a session, no Flask)
    ``add_facility`` (a county hospital in the region unless told otherwise), ``make_contact``,
    ``add_user`` (returns the API token), ``make_coordinator`` (an SMS-reachable coordinator),
    ``placement`` (the shipped rules with the straight-line router; fixture ``place``).
    The alerts tests write their SMS and areas against one hospital in Guangxi:
    ``make_facility`` is ``add_facility`` with that address (H1, 武鸣区妇幼保健院, 广西/南宁/武鸣);
    ``render_for`` makes a pre-alert body, ``outbox`` reads the outbound rows, ``ALERTS_ONLY`` is
    the alerts package's own handler table.

The database under all of this (SQLite, or PostgreSQL with GREENCHANNEL_TEST_DATABASE_URL), the
session and the app are the fixtures in ``conftest.py``; every test starts from an empty database.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import routing
from alerts import escalation
from alerts.handlers import Handlers
from alerts.messages import prealert
from alerts.models import OutboundMessage
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import TickReport, tick
from facilities.accounts import create_user
from facilities.models import Channel, Contact, Facility, FacilityKind, Role, Team, User
from facilities.status import report_status
from greenchannel.web.clock import CLOCK_KEY
from greenchannel.web.db import db
from referral.placement import Placement
from referral.rules import load_rules
from routing import RoadNetwork

# ---------------------------------------------------------------------------------------- time

NOW = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
T0 = NOW


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


# ----------------------------------------------------------------------------------- factories


def add_facility(session: Session, code: str, **values: Any) -> Facility:
    defaults: dict[str, Any] = {
        "name": f"{code} 医院",
        "name_en": f"{code} Hospital",
        "kind": FacilityKind.COUNTY_HOSPITAL,
        "province": "云省",
        "city": "云州市",
        "county": "临河县",
        "lat": 30.0,
        "lon": 110.0,
        "maternal_level": 2,
        "neonatal_level": 2,
        "capabilities": ["blood_transfusion", "caesarean_24h"],
        "phone": "+862000000001",
        "active": True,
        "created_at": NOW,
        "updated_at": NOW,
    }
    defaults.update(values)
    facility = Facility(code=code, **defaults)
    session.add(facility)
    session.flush()
    return facility


def make_facility(
    session: Session,
    code: str = "H1",
    *,
    name: str = "武鸣区妇幼保健院",
    name_en: str = "Wuming MCH Hospital",
    phone: str = "+867716200000",
    province: str = "广西",
    city: str = "南宁",
    county: str = "武鸣",
) -> Facility:
    """The alerts tests' hospital: ``add_facility`` with a Guangxi address."""
    return add_facility(
        session,
        code,
        name=name,
        name_en=name_en,
        kind=FacilityKind.COUNTY_MCH_HOSPITAL,
        province=province,
        city=city,
        county=county,
        lat=23.15,
        lon=108.27,
        maternal_level=3,
        neonatal_level=3,
        capabilities=[],
        phone=phone,
    )


def make_contact(
    session: Session,
    facility: Facility,
    phone: str,
    *,
    team: Team = Team.OBSTETRICS,
    priority: int = 1,
    language: str = "zh",
    active: bool = True,
    name: str | None = None,
) -> Contact:
    contact = Contact(
        facility_id=facility.id,
        name=name if name is not None else f"contact {phone[-4:]}",
        team=team,
        phone=phone,
        language=language,
        priority=priority,
        active=active,
    )
    session.add(contact)
    session.flush()
    return contact


def add_user(
    session: Session,
    username: str,
    role: str,
    *,
    facility: str | None = None,
    area: str = "",
    password: str | None = None,
) -> str:
    """Create a user and return the API token."""
    created = create_user(
        session,
        username=username,
        role=role,
        facility_code=facility,
        area=area,
        password=password,
        now=NOW,
    )
    return created.token


def make_coordinator(session: Session, username: str, *, area: str, phone: str) -> User:
    """A coordinator the escalation can text (a phone, no password, no token)."""
    user = User(username=username, role=Role.COORDINATOR, area=area, phone=phone, language="zh")
    session.add(user)
    session.flush()
    return user


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def placement() -> Placement:
    """The shipped clinical rules with the straight-line router (no road network)."""
    return Placement(rules=load_rules(), router=routing.Router(None))


# -------------------------------------------------------------------------------------- region

PPH_CAPS = ["caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"]
# Hospitals at growing straight-line distance north of the clinic (no road network: estimates).
HOSPITALS = [("H-A", 0.05, 3), ("H-B", 0.10, 3), ("H-C", 0.15, 3), ("H-D", 0.20, 4)]
CLINIC = ("T-1", 29.80, 106.20)

PPH_REQUEST = {
    "origin_facility": "T-1",
    "case": {"conditions": ["PPH"], "gestation_weeks": 39},
    "patient": {"ref": "T1-2026-0042", "age_years": 28},
}


@dataclass
class Region:
    """The rows of the region: facilities by code, API tokens and contact phones by name."""

    facilities: dict[str, Facility] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)


def build_region(session: Session) -> Region:
    """The clinic, the four hospitals, their contacts, capacity and users (flushed only)."""
    region = Region()
    code, lat, lon = CLINIC
    clinic = add_facility(
        session,
        code,
        kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        lat=lat,
        lon=lon,
        maternal_level=1,
        neonatal_level=1,
        capabilities=[],
        phone="+862300000000",
    )
    region.facilities[code] = clinic
    phone = 10
    for code, dlat, level in HOSPITALS:
        facility = add_facility(
            session,
            code,
            lat=lat + dlat,
            lon=lon,
            maternal_level=level,
            neonatal_level=3,
            capabilities=PPH_CAPS,
            phone=f"+8623000000{phone:02d}",
        )
        region.facilities[code] = facility
        phone += 1
        report_status(
            session,
            facility=facility,
            beds={"obstetric": 4, "maternal_icu": 1, "nicu": 2},
            diversion="normal",
            reported_by="test",
            user_id=None,
            channel=Channel.API,
            now=NOW - dt.timedelta(minutes=10),
        )
        for team in (Team.OBSTETRICS, Team.ANAESTHESIA, Team.BLOOD_BANK):
            number = f"+86139000{phone:05d}"
            phone += 1
            make_contact(session, facility, number, team=team, name=f"{code} {team.value}")
            region.phones[f"{code}:{team.value}"] = number
        region.tokens[code] = add_user(session, f"user-{code}", "hospital", facility=code)
    make_contact(session, clinic, "+8613911110000", name="duty doctor")
    region.phones["T-1:obstetrics"] = "+8613911110000"
    region.tokens["clinic"] = add_user(session, "clinic", "clinic", facility="T-1")
    region.tokens["coordinator"] = add_user(session, "coord", "coordinator", area="云省")
    region.tokens["outsider"] = add_user(session, "coord-far", "coordinator", area="别省")
    region.tokens["admin"] = add_user(session, "admin", "admin")
    session.flush()
    return region


# --------------------------------------------------------------------------------------- world


@dataclass
class World:
    app: Flask
    client: FlaskClient
    clock: Clock
    transport: RecordingTransport
    tokens: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {**bearer(self.tokens[who]), **extra}

    def tick(self) -> TickReport:
        factory = self.app.extensions["greenchannel.db"][1]
        return tick(
            factory,
            now=self.clock.now,
            transport=self.transport,
            handlers=self.app.extensions["greenchannel.handlers"],
            worker_id="test",
            settings=WorkerSettings(capacity_grace=None),
        )

    def post(self, who: str, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.post(
            path, json=body if body is not None else {}, headers=self.headers(who, **headers)
        )

    def get(self, who: str, path: str) -> Any:
        return self.client.get(path, headers=self.headers(who))


PASSWORD = "web-pass-123"


def build_world(app: Flask, client: FlaskClient, *, web_logins: bool = False) -> World:
    """The region in the app's database, the app reading ``world.clock``; with ``web_logins``
    also one password user per role for the pages."""
    clock = Clock()
    app.extensions[CLOCK_KEY] = clock
    world = World(app=app, client=client, clock=clock, transport=RecordingTransport())
    with app.app_context():
        s = db.session
        region = build_region(s)
        world.tokens.update(region.tokens)
        world.phones.update(region.phones)
        if web_logins:
            add_user(s, "w-clinic", "clinic", facility="T-1", password=PASSWORD)
            add_user(s, "w-hosp", "hospital", facility="H-A", password=PASSWORD)
            add_user(s, "w-hosp-b", "hospital", facility="H-B", password=PASSWORD)
            add_user(s, "w-coord", "coordinator", area="云省", password=PASSWORD)
        s.commit()
    return world


def web_world(app: Flask, client: FlaskClient) -> World:
    """The world plus one web login per role (password ``PASSWORD``)."""
    return build_world(app, client, web_logins=True)


# ---------------------------------------------------------------------------------------- web

CJK = re.compile(r"[\u3400-\u9fff]")


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no csrf_token in the page"
    return match.group(1)


def login(client: FlaskClient, username: str, lang: str = "zh") -> None:
    page = client.get(f"/login?lang={lang}").get_data(as_text=True)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, object]) -> str:
    """Post a form the way the browser would: the token from the page, then follow redirects."""
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    response = client.post(action, data={**data, "csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def road_grid(path: str | Path) -> None:
    """A small road grid around the region (a fast north-south road through the clinic and the
    hospitals, slower side roads), compiled to ``path`` for the map and the router."""
    rows, cols, step = 26, 17, 0.01
    lat = np.repeat(29.78 + np.arange(rows) * step, cols)
    lon = np.tile(106.12 + np.arange(cols) * step, rows)
    index = np.arange(rows * cols).reshape(rows, cols)
    a = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    b = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    length = np.hypot((lat[a] - lat[b]) * 111_000, (lon[a] - lon[b]) * 96_500)
    main_road = (np.abs(lon[a] - 106.20) < 1e-6) & (np.abs(lon[b] - 106.20) < 1e-6)
    speed = np.where(main_road, 80.0, 30.0) / 3.6
    network = RoadNetwork.from_arcs(
        node_id=np.arange(rows * cols),
        lat=lat,
        lon=lon,
        tail=np.concatenate([a, b]),
        head=np.concatenate([b, a]),
        travel_time=np.concatenate([length / speed, length / speed]),
        length=np.concatenate([length, length]),
    )
    network.save(path)


# ------------------------------------------------------------------------------------- alerts


def render_for(code: str) -> Callable[[str], str]:
    """A pre-alert body for case ``code`` in the reader's language."""

    def render(language: str) -> str:
        return prealert(
            language,
            code=code,
            condition="产后出血" if language == "zh" else "postpartum haemorrhage",
            colour="red",
            origin="高岭镇卫生院" if language == "zh" else "Gaoling THC",
            eta_minutes=40,
            callback_phone="+8613800000001",
            gestation_weeks=36,
        )

    return render


def outbox(session: Session) -> list[OutboundMessage]:
    session.expire_all()
    return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


# The alerts package's own table: the escalation's timers, no referral handlers.
ALERTS_ONLY = Handlers(timers=dict(escalation.TIMER_HANDLERS))
