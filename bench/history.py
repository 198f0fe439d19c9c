"""How fast is a filtered page of the case history on a year of a prefecture's cases?

    python bench/history.py [--cases 50000] [--postgres URL] [--repeat 30]

Builds a migrated database (a fresh SQLite file; with ``--postgres``, that database too, which
is WIPED first), bulk-inserts ``--cases`` cases over one year from 200 facilities in 10 counties
(with offers, destinations and every outcome), and times pages of 50 through
``referral.history.search_cases`` (the domain call the API and the page make) for several
filters and scopes: p50 and p99 over ``--repeat`` runs after a warm-up, against the target of
100 ms. In the same run it times the baselines: the same pages with the history's indexes
(migration 0010) dropped, and the list the API had before (``status`` only, ``limit`` 100).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from core.db import make_engine  # noqa: E402
from facilities.models import Facility, FacilityKind, Role  # noqa: E402
from migrations import import_models, upgrade  # noqa: E402
from referral import documents, history  # noqa: E402
from referral.access import Actor, visible  # noqa: E402
from referral.models import (  # noqa: E402
    OPEN_STATUSES,
    Offer,
    OfferStatus,
    Referral,
    ReferralStatus,
    conditions_key,
)
from referral.rules import COLOURS  # noqa: E402

TARGET_MS = 100.0
START = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
COUNTIES = [f"县{i}" for i in range(10)]
CONDITIONS = ["PPH", "SEVERE_PE", "ECLAMPSIA", "SEPSIS", "APH", "PRETERM_LABOUR", "NB_ASPHYXIA"]
CONDITIONS += ["NB_RESP", "NB_PRETERM", "CARDIAC", "AFE_ARREST", "PAS"]
INDEXES = (
    "ix_referrals_created_id",
    "ix_referrals_origin_created",
    "ix_referrals_destination_created",
    "ix_referrals_colour_created",
    "ix_referrals_urgency_created",
    "ix_offers_facility_referral",
)


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))


def build(url: str, cases: int, seed: int = 19) -> dict[str, Any]:
    """The migrated database with the region and ``cases`` cases (bulk inserts)."""
    rng = random.Random(seed)
    engine = make_engine(url)
    reset(engine)
    upgrade(url)
    places: dict[str, Any] = {"hospitals": [], "clinics": []}
    now = START
    with Session(engine) as session:
        rows = []
        for i in range(200):
            hospital = i < 20
            rows.append(
                {
                    "code": f"{'H' if hospital else 'C'}{i:03d}",
                    "name": f"{i}号{'医院' if hospital else '卫生院'}",
                    "name_en": "",
                    "kind": FacilityKind.COUNTY_HOSPITAL
                    if hospital
                    else FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                    "province": "云省",
                    "city": "云州市",
                    "county": COUNTIES[i % 10],
                    "lat": 30 + rng.random(),
                    "lon": 110 + rng.random(),
                    "maternal_level": 3 if hospital else 1,
                    "neonatal_level": 3 if hospital else 1,
                    "capabilities": [],
                    "phone": "+862000000001",
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Facility), rows)
        ids = {code: id_ for code, id_ in session.execute(select(Facility.code, Facility.id))}
        places["hospitals"] = [ids[f"H{i:03d}"] for i in range(20)]
        places["clinics"] = [ids[f"C{i:03d}"] for i in range(20, 200)]
        session.commit()

        alphabet = "ACDEFHJKMNPRTUVWXY34679"
        statuses = [s for s in ReferralStatus]
        weights = [1, 2, 2, 2, 3, 30, 4, 2]  # mostly completed, as a year's history is
        referral_rows = []
        for n in range(cases):
            created = START + dt.timedelta(seconds=rng.randrange(365 * 86400))
            status = rng.choices(statuses, weights)[0]
            placed = status in (
                ReferralStatus.ACCEPTED,
                ReferralStatus.IN_TRANSIT,
                ReferralStatus.ARRIVED,
                ReferralStatus.COMPLETED,
            )
            conditions = rng.sample(CONDITIONS, rng.choice((1, 1, 1, 2)))
            colour = rng.choice((*COLOURS, "", ""))
            referral_rows.append(
                {
                    "code": "".join(rng.choice(alphabet) for _ in range(4)),
                    "open_code": None,
                    "status": status,
                    "urgency": rng.choice(("critical", "urgent", "urgent", "planned")),
                    "patient_kind": "newborn" if conditions[0].startswith("NB_") else "mother",
                    "outreach": False,
                    "origin_facility_id": rng.choice(places["clinics"]),
                    "origin_lat": 30.0,
                    "origin_lon": 110.0,
                    "created_by": "bench",
                    "created_channel": "api",
                    "callback_phone": "",
                    "case": {"conditions": conditions, "risk_colour": colour or None},
                    "patient": {},
                    "requirements": {},
                    "reasons": [],
                    "risk_colour": colour,
                    "conditions_key": conditions_key(conditions),
                    "destination_facility_id": rng.choice(places["hospitals"]) if placed else None,
                    "created_at": created,
                    "updated_at": created,
                    "closed_at": created + dt.timedelta(hours=3)
                    if status not in OPEN_STATUSES
                    else None,
                    "revision": n,
                }
            )
        for start in range(0, len(referral_rows), 5000):
            session.execute(insert(Referral), referral_rows[start : start + 5000])
        session.commit()

        offer_rows = []
        heads = session.execute(
            select(Referral.id, Referral.destination_facility_id, Referral.created_at)
        ).all()
        for head in heads:
            asked = [head.destination_facility_id] if head.destination_facility_id else []
            asked += rng.sample(places["hospitals"], rng.choice((0, 1, 1, 2)))
            for rank, facility_id in enumerate(dict.fromkeys(asked)):
                accepted = facility_id == head.destination_facility_id
                offer_rows.append(
                    {
                        "referral_id": head.id,
                        "facility_id": facility_id,
                        "status": OfferStatus.ACCEPTED if accepted else OfferStatus.DECLINED,
                        "kind": "safety_net" if accepted and rng.random() < 0.03 else "transfer",
                        "rank": rank,
                        "reasons": [],
                        "offered_by": "system",
                        "offered_at": head.created_at,
                        "expires_at": head.created_at + dt.timedelta(minutes=10),
                        "answered_by": "",
                        "answer_channel": "",
                        "decline_note": "",
                    }
                )
        for start in range(0, len(offer_rows), 5000):
            session.execute(insert(Offer), offer_rows[start : start + 5000])
        session.commit()
        accepted = select(Offer.id).where(
            Offer.referral_id == Referral.id, Offer.status == OfferStatus.ACCEPTED
        )
        session.execute(
            Referral.__table__.update().values(accepted_offer_id=accepted.scalar_subquery())
        )
        session.commit()
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        places["offers"] = len(offer_rows)
        places["engine"] = engine
        places["sample_code"] = referral_rows[cases // 2]["code"]
    return places


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, int, float]:
    """Wall-clock p50 and p99 in milliseconds, the rows of the last answer, and the median
    CPU time of this process (the part that does not wait for the database or for a core on a
    busy machine)."""
    for _ in range(3):
        call()
    times = []
    cpu = []
    rows = 0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = call()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return statistics.median(times), p99, rows, statistics.median(cpu)


def queries(places: dict[str, Any]) -> list[tuple[str, Actor, dict[str, str], int]]:
    """(name, actor, filters, pages deep) of the pages measured."""
    admin = Actor(name="admin", channel="api", role=Role.ADMIN)
    coordinator = Actor(name="c", channel="api", role=Role.COORDINATOR, area="云省/云州市/县3")
    clinic = Actor(name="k", channel="api", role=Role.CLINIC, facility_id=places["clinics"][7])
    hospital = Actor(
        name="h", channel="api", role=Role.HOSPITAL, facility_id=places["hospitals"][3]
    )
    month = {"from": "2026-03-01", "to": "2026-03-31"}
    return [
        ("admin, no filter", admin, {}, 1),
        ("admin, no filter, page 20", admin, {}, 20),
        ("admin, PPH in March", admin, {"condition": "PPH", **month}, 1),
        ("admin, red, critical", admin, {"colour": "red", "urgency": "critical"}, 1),
        ("admin, safety_net outcome", admin, {"outcome": "safety_net"}, 1),
        ("admin, destination + closed", admin, {"destination": "H005", "status": "closed"}, 1),
        ("admin, origin clinic", admin, {"origin": "C050"}, 1),
        ("admin, case code", admin, {"q": places["sample_code"]}, 1),
        ("coordinator (county), no filter", coordinator, {}, 1),
        ("coordinator, cancelled in March", coordinator, {"outcome": "cancelled", **month}, 1),
        ("clinic, its cases", clinic, {}, 1),
        ("hospital, offered to it", hospital, {}, 1),
        ("hospital, accepted, page 5", hospital, {"outcome": "arrived"}, 5),
    ]


def run_page(
    session: Session, actor: Actor, raw: dict[str, str], depth: int, rules: Any
) -> Callable[[], int]:
    filters = history.parse_filters(session, raw, rules=rules, timezone="Asia/Shanghai")
    cursor = None
    for _ in range(depth - 1):  # the cursor of the page wanted (found once, outside the timing)
        page = history.search_cases(session, actor=actor, filters=filters, cursor=cursor)
        cursor = page.next_cursor

    def call() -> int:
        page = history.search_cases(session, actor=actor, filters=filters, cursor=cursor)
        return len(page.lines)

    return call


def old_list(session: Session, actor: Actor) -> Callable[[], int]:
    """The list endpoint before the history: ``status=closed``, newest first, 100."""

    def call() -> int:
        statement = documents.HEADS.order_by(Referral.created_at.desc(), Referral.id.desc())
        closed = set(ReferralStatus) - set(OPEN_STATUSES)
        statement = visible(statement.where(Referral.status.in_(closed)), actor)
        return len(session.execute(statement.limit(100)).all())

    return call


def measure(url: str, label: str, cases: int, repeat: int) -> list[str]:
    from referral.rules import load_rules

    rules = load_rules(None)
    started = time.perf_counter()
    places = build(url, cases)
    built = time.perf_counter() - started
    engine: Engine = places["engine"]
    lines = [
        f"\n== {label}: {cases:,} cases, {places['offers']:,} offers (built in {built:.1f} s) ==",
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores",
        f"{'page of 50':38} {'p50 ms':>8} {'p99 ms':>8} {'rows':>5} {'cpu ms':>7}"
        f"  {'no index p50':>12}",
    ]
    results = []
    with Session(engine) as session:
        for name, actor, raw, depth in queries(places):
            p50, p99, rows, cpu = timed(run_page(session, actor, raw, depth, rules), repeat)
            results.append((name, actor, raw, depth, p50, p99, rows, cpu))
        old = timed(old_list(session, queries(places)[0][1]), repeat)
    with engine.begin() as conn:
        for index in INDEXES:
            conn.execute(text(f"DROP INDEX {index}"))
        conn.execute(text("ANALYZE"))
    with Session(engine) as session:
        for name, actor, raw, depth, p50, p99, rows, cpu in results:
            bare, *_ = timed(run_page(session, actor, raw, depth, rules), max(5, repeat // 3))
            verdict = "ok" if p99 < TARGET_MS else "SLOW"
            lines.append(
                f"{name:38} {p50:8.2f} {p99:8.2f} {rows:5d} {cpu:7.2f}  {bare:12.2f}  {verdict}"
            )
    lines.append(
        f"{'baseline: old list (status, limit 100)':38} {old[0]:8.2f} {old[1]:8.2f} {old[2]:5d}"
        f" {old[3]:7.2f}"
    )
    worst = max(result[5] for result in results)
    lines.append(f"worst p99 {worst:.2f} ms against the target {TARGET_MS:.0f} ms")
    engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--postgres", help="a PostgreSQL URL (its public schema is WIPED)")
    arguments = parser.parse_args()
    import_models()
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{folder}/history.sqlite"
        print("\n".join(measure(sqlite_url, "SQLite", arguments.cases, arguments.repeat)))
    if arguments.postgres:
        lines = measure(arguments.postgres, "PostgreSQL", arguments.cases, arguments.repeat)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
