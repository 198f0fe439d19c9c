"""A small region for referral tests: a township clinic and four capable hospitals around it,
with contacts, fresh capacity, users of every role, a controllable clock and a worker tick."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import TickReport, tick
from facilities.models import Channel, Contact, Facility, FacilityKind, Team
from facilities.status import report_status
from greenchannel.web.clock import CLOCK_KEY
from greenchannel.web.db import db
from tests.conftest import NOW, add_facility, add_user, bearer

PPH_CAPS = ["caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"]
# Hospitals at growing straight-line distance north of the clinic (no road network: estimates).
HOSPITALS = [("H-A", 0.05, 3), ("H-B", 0.10, 3), ("H-C", 0.15, 3), ("H-D", 0.20, 4)]
CLINIC = ("T-1", 29.80, 106.20)


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


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


def build_world(app: Flask, client: FlaskClient) -> World:
    clock = Clock()
    app.extensions[CLOCK_KEY] = clock
    world = World(app=app, client=client, clock=clock, transport=RecordingTransport())
    with app.app_context():
        s = db.session
        code, lat, lon = CLINIC
        add_facility(
            s,
            code,
            kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
            lat=lat,
            lon=lon,
            maternal_level=1,
            neonatal_level=1,
            capabilities=[],
            phone="+862300000000",
        )
        phone = 10
        for code, dlat, level in HOSPITALS:
            facility = add_facility(
                s,
                code,
                lat=lat + dlat,
                lon=lon,
                maternal_level=level,
                neonatal_level=3,
                capabilities=PPH_CAPS,
                phone=f"+8623000000{phone:02d}",
            )
            phone += 1
            report_status(
                s,
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
                s.add(
                    Contact(
                        facility_id=facility.id,
                        name=f"{code} {team.value}",
                        team=team,
                        phone=number,
                        language="zh",
                        priority=1,
                        active=True,
                    )
                )
                world.phones[f"{code}:{team.value}"] = number
            world.tokens[code] = add_user(s, f"user-{code}", "hospital", facility=code)
        clinic = s.query(Facility).filter_by(code="T-1").one()
        s.add(
            Contact(
                facility_id=clinic.id,
                name="duty doctor",
                team=Team.OBSTETRICS,
                phone="+8613911110000",
                language="zh",
                priority=1,
                active=True,
            )
        )
        world.phones["T-1:obstetrics"] = "+8613911110000"
        world.tokens["clinic"] = add_user(s, "clinic", "clinic", facility="T-1")
        world.tokens["coordinator"] = add_user(s, "coord", "coordinator", area="云省")
        world.tokens["outsider"] = add_user(s, "coord-far", "coordinator", area="别省")
        world.tokens["admin"] = add_user(s, "admin", "admin")
        s.commit()
    return world


PPH_REQUEST = {
    "origin_facility": "T-1",
    "case": {"conditions": ["PPH"], "gestation_weeks": 39},
    "patient": {"ref": "T1-2026-0042", "age_years": 28},
}
