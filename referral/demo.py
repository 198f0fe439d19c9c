"""The demo region: a deterministic prefecture modelled on the seed cities (DOMAIN.md §1).

One city with a city-level critical maternal and neonatal centre (M4/N4) and a city MCH
hospital, three counties each with a county hospital and a county MCH hospital, thirty township
health centres, an island township, contacts for every receiving team, demo users of every role,
and varied live capacity (one hospital on diversion, one with stale figures).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.accounts import create_user
from facilities.models import Channel, Contact, Facility, FacilityKind, Team, User
from facilities.status import report_status

PROVINCE = "云省"
CITY = "云州市"
CITY_CENTRE = (29.60, 106.50)
DEMO_PASSWORD = "greenchannel-demo"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    facility: str | None
    password: str


COUNTIES = (
    # code, Chinese, English, offset (lat, lon) from the city centre, county hospital level
    ("LH", "临河县", "Linhe County", (0.28, -0.32), (3, 3)),
    ("SS", "石山县", "Shishan County", (-0.30, -0.25), (2, 2)),
    ("BW", "白湾县", "Baiwan County", (0.05, 0.42), (3, 2)),
)
TOWNSHIP_NAMES = (
    "青石",
    "河口",
    "柳林",
    "桃源",
    "双桥",
    "龙泉",
    "白沙",
    "新场",
    "高坪",
    "三江",
    "马鞍",
    "清溪",
    "黄桷",
    "金竹",
    "大兴",
    "长岭",
    "石门",
    "杨柳",
    "太平",
    "凤凰",
    "云台",
    "古镇",
    "水口",
    "松林",
    "梅子",
    "花桥",
    "五里",
    "天池",
    "安乐",
    "明月",
)
ISLAND_TOWNSHIP = ("HXD", "湖心岛乡", "Huxin Island", (0.12, 0.62))


def _phone(number: int) -> str:
    return f"+86139{number:08d}"


def build_demo_region(session: Session, *, now: dt.datetime, seed: int = 7) -> list[DemoLogin]:
    """Create the demo region in an empty registry. Returns the demo logins."""
    if session.scalar(select(Facility.id).limit(1)) is not None:
        raise ValueError("the registry is not empty: the demo region is built only once")
    rng = random.Random(seed)
    facilities: list[Facility] = []
    phone_counter = iter(range(10_000_000, 99_999_999))

    def add(
        code: str,
        name: str,
        name_en: str,
        kind: FacilityKind,
        county: str,
        township: str,
        lat: float,
        lon: float,
        m: int,
        n: int,
        caps: list[str],
    ) -> Facility:
        facility = Facility(
            code=code,
            name=name,
            name_en=name_en,
            kind=kind,
            province=PROVINCE,
            city=CITY,
            county=county,
            township=township,
            lat=round(lat, 5),
            lon=round(lon, 5),
            maternal_level=m,
            neonatal_level=n,
            capabilities=sorted(caps),
            phone=_phone(next(phone_counter)),
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(facility)
        facilities.append(facility)
        return facility

    lat0, lon0 = CITY_CENTRE
    top_caps = [
        "caesarean_24h",
        "blood_transfusion",
        "massive_transfusion",
        "adult_icu",
        "interventional_radiology",
        "cardiac_surgery",
        "neonatal_cpap",
        "neonatal_ventilation",
        "hfov_ino",
        "therapeutic_hypothermia",
        "exchange_transfusion",
        "neonatal_surgery",
        "infectious_isolation",
    ]
    add(
        "YZ-CENTRE",
        "云州市危重孕产妇和新生儿救治中心（市中心医院）",
        "Yunzhou City Critical Maternal and Neonatal Centre",
        FacilityKind.CITY_HOSPITAL,
        "",
        "",
        lat0,
        lon0,
        4,
        4,
        top_caps,
    )
    add(
        "YZ-MCH",
        "云州市妇幼保健院",
        "Yunzhou City MCH Hospital",
        FacilityKind.CITY_MCH_CENTRE,
        "",
        "",
        lat0 + 0.03,
        lon0 + 0.05,
        3,
        3,
        [
            "caesarean_24h",
            "blood_transfusion",
            "massive_transfusion",
            "adult_icu",
            "neonatal_cpap",
            "neonatal_ventilation",
            "therapeutic_hypothermia",
            "exchange_transfusion",
        ],
    )
    township_index = 0
    for code, county, county_en, (dlat, dlon), (m, n) in COUNTIES:
        clat, clon = lat0 + dlat, lon0 + dlon
        caps = ["caesarean_24h", "blood_transfusion", "neonatal_cpap"]
        if m >= 3:
            caps += ["massive_transfusion", "adult_icu"]
        if n >= 3:
            caps += ["neonatal_ventilation", "exchange_transfusion"]
        add(
            f"{code}-CH",
            f"{county}人民医院",
            f"{county_en} People's Hospital",
            FacilityKind.COUNTY_HOSPITAL,
            county,
            "",
            clat,
            clon,
            m,
            n,
            caps,
        )
        add(
            f"{code}-MCH",
            f"{county}妇幼保健院",
            f"{county_en} MCH Hospital",
            FacilityKind.COUNTY_MCH_HOSPITAL,
            county,
            "",
            clat - 0.02,
            clon + 0.03,
            2,
            2,
            ["caesarean_24h", "blood_transfusion", "neonatal_cpap"],
        )
        for i in range(10):
            name = TOWNSHIP_NAMES[township_index]
            township_index += 1
            angle = 2 * math.pi * i / 10 + rng.uniform(-0.2, 0.2)
            radius = rng.uniform(0.08, 0.22)
            add(
                f"{code}-T{i + 1:02d}",
                f"{county}{name}镇卫生院",
                f"{name} Township Health Centre",
                FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                county,
                f"{name}镇",
                clat + radius * math.sin(angle),
                clon + radius * math.cos(angle),
                1,
                1,
                [],
            )
    code, name, name_en, (dlat, dlon) = ISLAND_TOWNSHIP
    add(
        code,
        f"{name}卫生院",
        f"{name_en} Township Health Centre",
        FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        "白湾县",
        name,
        lat0 + dlat,
        lon0 + dlon,
        1,
        1,
        [],
    )
    session.flush()

    for facility in facilities:
        teams: list[Team] = [Team.CAPACITY]
        if facility.maternal_level >= 2:
            teams += [Team.OBSTETRICS, Team.ANAESTHESIA, Team.BLOOD_BANK]
        if facility.neonatal_level >= 2:
            teams.append(Team.NEONATOLOGY)
        if facility.maternal_level <= 1:
            teams = [Team.OBSTETRICS]  # the township's duty doctor, who refers
        for team in teams:
            for priority in (1, 2) if team in (Team.OBSTETRICS, Team.NEONATOLOGY) else (1,):
                session.add(
                    Contact(
                        facility_id=facility.id,
                        name=f"{team.value} duty {priority}",
                        team=team,
                        phone=_phone(next(phone_counter)),
                        language="en" if priority == 2 else "zh",
                        priority=priority,
                        active=True,
                    )
                )

    by_code = {f.code: f for f in facilities}
    for facility in facilities:
        if facility.maternal_level < 2:
            continue
        report_status(
            session,
            facility=facility,
            beds={
                "obstetric": rng.randint(2, 12),
                "maternal_icu": rng.randint(0, 3) if facility.maternal_level >= 3 else 0,
                "nicu": rng.randint(0, 6) if facility.neonatal_level >= 2 else 0,
            },
            diversion="normal",
            unavailable=[],
            reported_by="demo",
            user_id=None,
            channel=Channel.IMPORT,
            now=now - dt.timedelta(minutes=rng.randint(5, 90)),
        )
    report_status(
        session,
        facility=by_code["SS-CH"],
        diversion="closed",
        diversion_reason="手术室检修 / theatre under repair",
        reported_by="demo",
        user_id=None,
        channel=Channel.IMPORT,
        now=now - dt.timedelta(minutes=30),
    )
    report_status(
        session,
        facility=by_code["BW-MCH"],
        beds={"obstetric": 4, "maternal_icu": 0, "nicu": 1},
        reported_by="demo",
        user_id=None,
        channel=Channel.IMPORT,
        now=now - dt.timedelta(hours=30),
    )

    logins = [
        DemoLogin("clinic", "clinic", "LH-T01", DEMO_PASSWORD),
        DemoLogin("hospital", "hospital", "YZ-CENTRE", DEMO_PASSWORD),
        DemoLogin("county", "hospital", "LH-CH", DEMO_PASSWORD),
        DemoLogin("coordinator", "coordinator", None, DEMO_PASSWORD),
        DemoLogin("admin", "admin", None, DEMO_PASSWORD),
    ]
    for login in logins:
        create_user(
            session,
            username=login.username,
            role=login.role,
            facility_code=login.facility,
            area=f"{PROVINCE}/{CITY}" if login.role == "coordinator" else "",
            password=login.password,
            phone=_phone(next(phone_counter)),
            now=now,
        )
    session.flush()
    return logins


def demo_logins(session: Session) -> list[DemoLogin]:
    users = session.scalars(select(User).order_by(User.id))
    return [
        DemoLogin(u.username, u.role.value, u.facility.code if u.facility else None, DEMO_PASSWORD)
        for u in users
    ]
