"""Factories and helpers shared by the alerts tests (no tests here)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import escalation
from alerts.handlers import Handlers
from alerts.messages import prealert
from alerts.models import OutboundMessage
from facilities.models import Contact, Facility, FacilityKind, Role, Team, User
from tests.conftest import add_facility

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


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
    """The alerts tests' hospital: the suite's one facility factory with a Guangxi address."""
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
) -> Contact:
    contact = Contact(
        facility_id=facility.id,
        name=f"contact {phone[-4:]}",
        team=team,
        phone=phone,
        language=language,
        priority=priority,
        active=active,
    )
    session.add(contact)
    session.flush()
    return contact


def make_coordinator(session: Session, username: str, *, area: str, phone: str) -> User:
    user = User(username=username, role=Role.COORDINATOR, area=area, phone=phone, language="zh")
    session.add(user)
    session.flush()
    return user


def render_for(code: str) -> Callable[[str], str]:
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
