"""The demo region: a deterministic prefecture modelled on the seed cities (docs/domain.md).

One city with a city-level critical maternal and neonatal centre (M4/N4) and a city MCH
hospital, three counties each with a county hospital and a county MCH hospital, thirty township
health centres, an island township, contacts for every receiving team, demo users of every role,
and varied live capacity (one hospital on diversion, one with stale figures).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.vocabulary import CAPABILITIES
from facilities.accounts import create_user, issue_token, token_is_live
from facilities.models import Channel, Contact, Facility, FacilityKind, Team, User
from facilities.status import report_status
from greenchannel.demo.roads import DemoRoads, Place, build_demo_roads

PROVINCE = "云省"
CITY = "云州市"
CITY_CENTRE = (29.60, 106.50)
DEMO_PASSWORD = "greenchannel-demo"
DEMO_USERNAMES = ("clinic", "hospital", "county", "coordinator", "admin")
# Capacity as the demo starts: one hospital closed to new cases, one silent since yesterday.
DIVERTED_HOSPITAL = "SS-CH"
STALE_HOSPITAL = "BW-MCH"
STALE_AGE = dt.timedelta(hours=20)


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
    ("青石", "Qingshi"),
    ("河口", "Hekou"),
    ("柳林", "Liulin"),
    ("桃源", "Taoyuan"),
    ("双桥", "Shuangqiao"),
    ("龙泉", "Longquan"),
    ("白沙", "Baisha"),
    ("新场", "Xinchang"),
    ("高坪", "Gaoping"),
    ("三江", "Sanjiang"),
    ("马鞍", "Ma'an"),
    ("清溪", "Qingxi"),
    ("黄桷", "Huangjue"),
    ("金竹", "Jinzhu"),
    ("大兴", "Daxing"),
    ("长岭", "Changling"),
    ("石门", "Shimen"),
    ("杨柳", "Yangliu"),
    ("太平", "Taiping"),
    ("凤凰", "Fenghuang"),
    ("云台", "Yuntai"),
    ("古镇", "Guzhen"),
    ("水口", "Shuikou"),
    ("松林", "Songlin"),
    ("梅子", "Meizi"),
    ("花桥", "Huaqiao"),
    ("五里", "Wuli"),
    ("天池", "Tianchi"),
    ("安乐", "Anle"),
    ("明月", "Mingyue"),
)
# The island township in the lake east of Baiwan: reached only by the ferry (about 35 min).
ISLAND_TOWNSHIP = ("HXD", "湖心岛乡", "Huxin Island", (29.70, 107.235))


def _phone(number: int) -> str:
    return f"+86139{number:08d}"


@dataclass(frozen=True)
class DemoFacility:
    code: str
    name: str
    name_en: str
    kind: FacilityKind
    county: str
    township: str
    lat: float
    lon: float
    maternal_level: int
    neonatal_level: int
    capabilities: tuple[str, ...]
    designated: tuple[str, ...] = ()
    # Where the receiving team is (facilities.models.Facility): address, department, entrance.
    address: str = ""
    department: str = ""
    department_en: str = ""
    entrance: str = ""
    entrance_en: str = ""


# The city centre has every capability but ECMO.
TOP_CAPABILITIES = tuple(name for name in CAPABILITIES if name != "ecmo")
CITY_MCH_CAPABILITIES = (
    "caesarean_24h",
    "blood_transfusion",
    "massive_transfusion",
    "adult_icu",
    "neonatal_cpap",
    "neonatal_ventilation",
    "therapeutic_hypothermia",
    "exchange_transfusion",
)


def county_towns() -> dict[str, tuple[float, float]]:
    """County code → the county town (where the county hospital stands)."""
    lat0, lon0 = CITY_CENTRE
    return {code: (lat0 + dlat, lon0 + dlon) for code, _, _, (dlat, dlon), _ in COUNTIES}


def demo_facilities(seed: int = 7) -> list[DemoFacility]:
    """The demo region's facilities, always the same for a given seed (no database needed)."""
    rng = random.Random(seed)
    lat0, lon0 = CITY_CENTRE
    found = [
        DemoFacility(
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
            TOP_CAPABILITIES,
            ("maternal", "neonatal"),
            address="云州市城中区人民路128号",
            department="产科急诊 / 新生儿重症监护室（NICU）",
            department_en="Obstetric emergency / NICU",
            entrance="急诊楼东门救护车通道，产科急诊在2楼，NICU在住院部5楼",
            entrance_en="Emergency building east gate (ambulance lane): obstetrics 2F, NICU 5F",
        ),
        DemoFacility(
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
            CITY_MCH_CAPABILITIES,
            address="云州市江北区妇幼路36号",
            department="产科急诊",
            department_en="Obstetric emergency",
            entrance="门诊楼北侧急诊入口，1楼",
            entrance_en="North side of the outpatient building, emergency entrance, ground floor",
        ),
    ]
    township_index = 0
    for number, (code, county, county_en, (dlat, dlon), (m, n)) in enumerate(COUNTIES):
        clat, clon = lat0 + dlat, lon0 + dlon
        caps = ["caesarean_24h", "blood_transfusion", "neonatal_cpap"]
        if m >= 3:
            caps += ["massive_transfusion", "adult_icu"]
        if n >= 3:
            caps += ["neonatal_ventilation", "exchange_transfusion"]
        found.append(
            DemoFacility(
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
                tuple(caps),
                address=f"{county}城关镇人民路{88 + 20 * number}号",
                department="急诊科（产科急诊）",
                department_en="Emergency department (obstetric emergency)",
                entrance="急诊楼正门，产科在住院部3楼",
                entrance_en="Emergency building, main door; obstetrics on the inpatient 3rd floor",
            )
        )
        found.append(
            DemoFacility(
                f"{code}-MCH",
                f"{county}妇幼保健院",
                f"{county_en} MCH Hospital",
                FacilityKind.COUNTY_MCH_HOSPITAL,
                county,
                "",
                clat - 0.01,
                clon + 0.012,
                2,
                2,
                ("caesarean_24h", "blood_transfusion", "neonatal_cpap"),
                address=f"{county}城关镇健康路{16 + 10 * number}号",
                department="产科",
                department_en="Obstetrics",
                entrance="住院部1楼，产科急诊入口在楼西侧",
                entrance_en="Inpatient building, ground floor; obstetric entrance on the west side",
            )
        )
        for i in range(10):
            name, pinyin = TOWNSHIP_NAMES[township_index]
            township_index += 1
            angle = 2 * math.pi * i / 10 + rng.uniform(-0.2, 0.2)
            radius = rng.uniform(0.08, 0.22)
            found.append(
                DemoFacility(
                    f"{code}-T{i + 1:02d}",
                    f"{county}{name}镇卫生院",
                    f"{pinyin} Township Health Centre",
                    FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                    county,
                    f"{name}镇",
                    clat + radius * math.sin(angle),
                    clon + radius * math.cos(angle),
                    1,
                    1,
                    (),
                    address=f"{county}{name}镇正街{3 + 7 * i}号",
                    department="产房",
                    department_en="Delivery room",
                    entrance="卫生院正门，产房在1楼",
                    entrance_en="Health centre main door; delivery room on the ground floor",
                )
            )
    code, name, name_en, (ilat, ilon) = ISLAND_TOWNSHIP
    found.append(
        DemoFacility(
            code,
            f"{name}卫生院",
            f"{name_en} Township Health Centre",
            FacilityKind.TOWNSHIP_HEALTH_CENTRE,
            "白湾县",
            name,
            ilat,
            ilon,
            1,
            1,
            (),
            address="白湾县湖心岛乡码头路1号",
            department="产房",
            department_en="Delivery room",
            entrance="渡口上岸后沿码头路步行约200米，卫生院正门",
            entrance_en="From the ferry landing walk about 200 m along Matou Road to the main door",
        )
    )
    return found


def build_demo_region(session: Session, *, now: dt.datetime, seed: int = 7) -> list[DemoLogin]:
    """Create the demo region in an empty registry. Returns the demo logins."""
    if session.scalar(select(Facility.id).limit(1)) is not None:
        raise ValueError("the registry is not empty: the demo region is built only once")
    rng = random.Random(seed + 1)
    facilities: list[Facility] = []
    phone_counter = iter(range(10_000_000, 99_999_999))
    for spec in demo_facilities(seed):
        facility = Facility(
            code=spec.code,
            name=spec.name,
            name_en=spec.name_en,
            kind=spec.kind,
            province=PROVINCE,
            city=CITY,
            county=spec.county,
            township=spec.township,
            lat=round(spec.lat, 5),
            lon=round(spec.lon, 5),
            maternal_level=spec.maternal_level,
            neonatal_level=spec.neonatal_level,
            capabilities=sorted(spec.capabilities),
            designated=list(spec.designated),
            address=spec.address,
            department=spec.department,
            department_en=spec.department_en,
            entrance=spec.entrance,
            entrance_en=spec.entrance_en,
            phone=_phone(next(phone_counter)),
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(facility)
        facilities.append(facility)
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

    _report_demo_capacity(session, facilities, rng=rng, now=now)

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


def _receiving(facility: Facility) -> bool:
    return facility.maternal_level >= 2 or facility.neonatal_level >= 2


def _demo_beds(facility: Facility, rng: random.Random) -> dict[str, int]:
    return {
        "obstetric": rng.randint(2, 12),
        "maternal_icu": rng.randint(0, 3) if facility.maternal_level >= 3 else 0,
        "nicu": rng.randint(0, 6) if facility.neonatal_level >= 2 else 0,
    }


def _report_demo_capacity(
    session: Session, facilities: list[Facility], *, rng: random.Random, now: dt.datetime
) -> None:
    """Every receiving hospital has reported its beds within the last hour and a half, except
    one that has been silent since yesterday (stale: it gets the capacity reminder); one is
    closed to new cases (diversion)."""
    for facility in facilities:
        if not _receiving(facility):
            continue
        stale = facility.code == STALE_HOSPITAL
        report_status(
            session,
            facility=facility,
            beds=_demo_beds(facility, rng),
            diversion="normal",
            unavailable=[],
            reported_by="demo",
            user_id=None,
            channel=Channel.IMPORT,
            now=now - (STALE_AGE if stale else dt.timedelta(minutes=rng.randint(5, 90))),
        )
    by_code = {f.code: f for f in facilities}
    report_status(
        session,
        facility=by_code[DIVERTED_HOSPITAL],
        diversion="closed",
        diversion_reason="手术室检修 / theatre under repair",
        reported_by="demo",
        user_id=None,
        channel=Channel.IMPORT,
        now=now - dt.timedelta(minutes=30),
    )


def is_demo_region(session: Session) -> bool:
    """Whether the registry holds the demo region (its city centre and island township)."""
    codes = set(
        session.scalars(select(Facility.code).where(Facility.code.in_(["YZ-CENTRE", "HXD"])))
    )
    return codes == {"YZ-CENTRE", "HXD"}


def refresh_demo_capacity(
    session: Session, *, now: dt.datetime, grace: dt.timedelta, seed: int = 7
) -> list[str]:
    """On a later day the demo's bed figures would all be stale, and every hospital would get
    a capacity reminder at once. Report them again (same figures, minutes ago), except the
    deliberately stale hospital. Returns the codes refreshed."""
    rng = random.Random(seed + 2)
    refreshed = []
    facilities = session.scalars(
        select(Facility).options(selectinload(Facility.status)).order_by(Facility.code)
    )
    for facility in facilities:
        if not _receiving(facility) or facility.code == STALE_HOSPITAL:
            continue
        status = facility.status
        reported_at = status.beds_reported_at if status is not None else None
        if reported_at is not None and _aware(reported_at) >= now - grace:
            continue
        beds = _demo_beds(facility, rng)
        if status is not None and status.beds_obstetric is not None:
            beds = {
                "obstetric": status.beds_obstetric,
                "maternal_icu": status.beds_maternal_icu or 0,
                "nicu": status.beds_nicu or 0,
            }
        report_status(
            session,
            facility=facility,
            beds=beds,
            reported_by="demo",
            user_id=None,
            channel=Channel.IMPORT,
            now=now - dt.timedelta(minutes=rng.randint(5, 90)),
        )
        refreshed.append(facility.code)
    session.flush()
    return refreshed


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def issue_demo_tokens(
    session: Session, *, now: dt.datetime, kept: Mapping[str, str] | None = None
) -> dict[str, str]:
    """API tokens for the demo's own users, printed at start so that the walkthrough's curl
    commands work. A token ``kept`` from an earlier start is used again while it is live, and
    no token is ever revoked here: a restart leaves every token working, those of users added
    by hand included."""
    tokens = {}
    kept = kept or {}
    demo_users = session.scalars(
        select(User).where(User.username.in_(DEMO_USERNAMES)).order_by(User.id)
    )
    for user in demo_users:
        earlier = kept.get(user.username, "")
        if earlier and token_is_live(session, earlier, user=user, now=now):
            tokens[user.username] = earlier
        else:
            tokens[user.username] = issue_token(
                session, user=user, label="greenchannel demo", now=now
            )
    session.flush()
    return tokens


def demo_places(seed: int = 7) -> list[Place]:
    return [Place(f.code, f.lat, f.lon, f.kind.value) for f in demo_facilities(seed)]


def demo_road_network(*, speeds: Mapping[str, float] | None = None, seed: int = 7) -> DemoRoads:
    """The demo region's roads (a few seconds to build), reaching every demo facility."""
    island = ISLAND_TOWNSHIP[3]
    return build_demo_roads(
        demo_places(seed), city=CITY_CENTRE, towns=county_towns(), island=island, speeds=speeds
    )


def demo_logins(session: Session) -> list[DemoLogin]:
    """The demo's own users (not those added by hand: their passwords are their own)."""
    users = session.scalars(select(User).where(User.username.in_(DEMO_USERNAMES)).order_by(User.id))
    return [
        DemoLogin(u.username, u.role.value, u.facility.code if u.facility else None, DEMO_PASSWORD)
        for u in users
    ]
