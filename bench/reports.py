"""How long do the monthly report's queries take on a year of a prefecture's cases?

    python bench/reports.py [--cases 50000] [--database-url URL] [--repeat 3]

Builds (bulk inserts) a region of 10 counties, 100 township health centres and 20 hospitals,
50,000 referrals over the twelve months of 2026 with about two offers each, the timeline's
``unplaced`` events and two status reports a day per hospital, into a fresh SQLite file
(default) or the database of ``--database-url`` (its schema is DROPPED and rebuilt: give it a
database of its own). Then times, best of ``--repeat``:

- the monthly report of the whole region (every table but coverage), and of one county;
- one hospital's share;
- the coverage table (straight-line router: no road network here) and the report with it;
- the board's strip (``reports_glance.glance``).

Every figure is computed in the database; the time printed is the wall time of each call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

import routing  # noqa: E402
from core.db import Base, make_engine  # noqa: E402
from facilities.models import Facility, FacilityKind, FacilityStatus, StatusReport  # noqa: E402
from migrations import import_models, upgrade  # noqa: E402
from referral.models import Offer, Referral, ReferralEvent  # noqa: E402
from referral.placement import Placement  # noqa: E402
from referral.reports import monthly_report, report_with_coverage  # noqa: E402
from referral.reports_coverage import coverage_table  # noqa: E402
from referral.reports_glance import glance  # noqa: E402
from referral.rules import load_rules  # noqa: E402

YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC)
CONDITIONS = ["PPH", "ECLAMPSIA", "SEVERE_PE", "PRETERM_LABOUR", "SEPSIS", "NB_ASPHYXIA"]
COLOURS = ["red", "orange", "yellow", "green"]
URGENCY = ["critical", "urgent", "planned"]
REASONS = ["FULL", "THEATRE", "BLOOD", "STAFF", "NICU", "OTHER"]
PPH_CAPS = ["caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"]


def reset(url: str) -> Any:
    import_models()
    engine = make_engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(url)
    return engine


def facilities(session: Session) -> tuple[list[int], list[int]]:
    rng = random.Random(1)
    rows: list[dict[str, Any]] = []
    for c in range(10):
        county = f"县{c:02d}"
        for t in range(10):
            rows.append(
                {
                    "code": f"T{c:02d}{t}",
                    "name": f"{county}第{t}乡镇卫生院",
                    "kind": FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                    "county": county,
                    "township": f"{county}镇{t}",
                    "lat": 29.0 + c * 0.1 + rng.random() * 0.1,
                    "lon": 106.0 + t * 0.1 + rng.random() * 0.1,
                    "maternal_level": 1,
                    "neonatal_level": 1,
                    "capabilities": [],
                }
            )
        for h in range(2):
            rows.append(
                {
                    "code": f"H{c:02d}{h}",
                    "name": f"{county}医院{h}",
                    "kind": FacilityKind.COUNTY_HOSPITAL,
                    "county": county,
                    "township": "",
                    "lat": 29.0 + c * 0.1 + 0.05,
                    "lon": 106.0 + h * 0.5 + 0.2,
                    "maternal_level": 3,
                    "neonatal_level": 3,
                    "capabilities": PPH_CAPS,
                }
            )
    for row in rows:
        row.update(province="云省", city="云州市", name_en="", phone="", active=True)
        row.update(created_at=YEAR_START, updated_at=YEAR_START, designated=[])
    session.execute(insert(Facility), rows)
    ids = dict(session.execute(select(Facility.code, Facility.id)).all())
    clinics = [i for code, i in ids.items() if code.startswith("T")]
    hospitals = [i for code, i in ids.items() if code.startswith("H")]
    session.execute(
        insert(FacilityStatus),
        [{"facility_id": h, "beds_obstetric": 3, "beds_reported_at": NOW} for h in hospitals],
    )
    reports = []
    for h in hospitals:
        at = YEAR_START
        while at < NOW:
            diversion = "closed" if rng.random() < 0.03 else "normal"
            reports.append(
                {
                    "facility_id": h,
                    "reported_at": at,
                    "reported_by": "bench",
                    "channel": "api",
                    "values": {"beds": {"obstetric": 3}, "diversion": diversion},
                }
            )
            at += dt.timedelta(hours=rng.choice([8, 12, 14, 20]))
    session.execute(insert(StatusReport), reports)
    return clinics, hospitals


def cases(session: Session, n: int, clinics: list[int], hospitals: list[int]) -> None:
    rng = random.Random(2)
    span = (NOW - YEAR_START).total_seconds()
    # Cases arrive in time order, as in life (the table's physical order follows the clock).
    times = sorted(YEAR_START + dt.timedelta(seconds=rng.random() * span) for _ in range(n))
    batch = 5000
    for first in range(0, n, batch):
        referrals, plans = [], []
        for i in range(first, min(n, first + batch)):
            created = times[i]
            urgency = rng.choice(URGENCY)
            dest = rng.choice(hospitals)
            declined = rng.random() < 0.3
            silent = rng.random() < 0.1
            unplaced = rng.random() < 0.02
            accept = rng.uniform(2, 40)
            row = {
                "code": f"{i:06X}"[-6:],
                "status": "unplaced" if unplaced else "completed",
                "urgency": urgency,
                "patient_kind": "mother",
                "origin_facility_id": rng.choice(clinics),
                "origin_lat": 29.5,
                "origin_lon": 106.5,
                "created_by": "bench",
                "created_channel": "api",
                "case": {
                    "conditions": rng.sample(CONDITIONS, rng.choice([1, 1, 2])),
                    "risk_colour": rng.choice(COLOURS),
                },
                "patient": {},
                "requirements": {},
                "reasons": [],
                "destination_facility_id": None if unplaced else dest,
                "created_at": created,
                "updated_at": created,
                "first_alert_at": created + dt.timedelta(minutes=rng.uniform(0.1, 2)),
                "first_answer_at": created + dt.timedelta(minutes=rng.uniform(1, accept)),
                "accepted_at": None if unplaced else created + dt.timedelta(minutes=accept),
                "departed_at": None if unplaced else created + dt.timedelta(minutes=accept + 10),
                "arrived_at": None if unplaced else created + dt.timedelta(minutes=accept + 50),
            }
            referrals.append(row)
            plans.append((created, dest, declined, silent, unplaced, accept))
        ids = session.execute(insert(Referral).returning(Referral.id), referrals).scalars().all()
        offers, events = [], []
        for rid, (created, dest, declined, silent, unplaced, accept) in zip(
            ids, plans, strict=True
        ):
            other = rng.choice(hospitals)
            if declined:
                offers.append(
                    _offer(
                        rid, other, "declined", created, 1, rng.uniform(2, 6), rng.choice(REASONS)
                    )
                )
            if silent:
                offers.append(_offer(rid, other, "expired", created, 1, None, None))
            if unplaced:
                events.append(
                    {"referral_id": rid, "at": created, "kind": "unplaced", "actor": "system",
                     "channel": "system", "detail": {}}
                )  # fmt: skip
            else:
                offers.append(_offer(rid, dest, "accepted", created, 1, accept, None))
        session.execute(insert(Offer), offers)
        if events:
            session.execute(insert(ReferralEvent), events)
        session.commit()


def _offer(
    rid: int, facility: int, status: str, created: dt.datetime, at: float, answer: float | None,
    reason: str | None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "referral_id": rid,
        "facility_id": facility,
        "status": status,
        "kind": "transfer",
        "offered_at": created + dt.timedelta(minutes=at),
        "expires_at": created + dt.timedelta(minutes=at + 5),
        "answered_at": None if answer is None else created + dt.timedelta(minutes=answer),
        "decline_reason": reason,
        "reasons": [],
    }


def best(repeat: int, call: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite"
        engine = reset(url)
        factory = sessionmaker(engine, expire_on_commit=False)
        started = time.perf_counter()
        with factory() as session:
            clinics, hospitals = facilities(session)
            session.commit()
            cases(session, args.cases, clinics, hospitals)
            if engine.dialect.name == "postgresql":
                session.execute(text("ANALYZE"))
                session.commit()
        print(
            f"{engine.dialect.name}: {args.cases} cases built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        rules = load_rules()
        place = Placement(rules=rules, router=routing.Router(None))
        with factory() as session:
            hospital = session.scalars(select(Facility).where(Facility.code == "H000")).one()
            month_cases = session.scalar(
                select(text("count(*)"))
                .select_from(Referral)
                .where(
                    Referral.created_at >= dt.datetime(2026, 5, 31, 16, tzinfo=dt.UTC),
                    Referral.created_at < dt.datetime(2026, 6, 30, 16, tzinfo=dt.UTC),
                )
            )
            print(f"the month 2026-06 holds {month_cases} cases")
            runs: list[tuple[str, Callable[[], Any]]] = [
                ("region, 2026-06", lambda: monthly_report(
                    session, month="2026-06", area="云省", rules=rules, now=NOW)),
                ("one county, 2026-06", lambda: monthly_report(
                    session, month="2026-06", area="云省/云州市/县03", rules=rules, now=NOW)),
                ("one hospital's share, 2026-06", lambda: monthly_report(
                    session, month="2026-06", facility=hospital, rules=rules, now=NOW)),
                ("coverage table (100 townships)", lambda: coverage_table(
                    session, place=place, area="云省", now=NOW)),
                ("region with coverage, 2026-06", lambda: report_with_coverage(
                    session, place=place, month="2026-06", area="云省", now=NOW)),
                ("board strip (today + this month)", lambda: glance(
                    session, area="云省", rules=rules, now=NOW)),
            ]  # fmt: skip
            for name, call in runs:
                print(f"  {name:<36} {best(args.repeat, call) * 1000:8.1f} ms")
        engine.dispose()


if __name__ == "__main__":
    main()
