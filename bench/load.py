"""Load: does the service hold a busy region on PostgreSQL without losing or repeating anything?

    python bench/load.py [--minutes 5] [--database-url postgresql://…] [--keep] [--log FILE]
                         [--strict]

A fresh PostgreSQL database (``gc_load_<pid>`` on 127.0.0.1 unless ``--database-url``), the demo
prefecture's road network with every facility on a road, two ``greenchannel serve`` processes,
one ``greenchannel worker`` and a fake Twilio on loopback. For the duration, from this process:

- 100 clinics create referrals (one every ~40 s each, ~2.5/s in all; each cancels a case still
  unplaced after a minute, and marks the departure of an accepted one);
- 30 hospitals poll their offers every 3 s and answer them (70% accept, 30% decline FULL),
  mark arrivals and completions, and report capacity every ~30 s;
- 10 coordinator boards refresh ``GET /api/v1/referrals?status=active`` every 2 s;
- 5 coordinators on the HTML board: each logs in once by the form (``/login``, session cookie)
  and polls its live fragment ``GET /board/live`` 2.5 s after each answer, as ``live.js`` does.

Requests go round-robin to the two web processes. Afterwards the database is checked: every
201 is a referral and every referral a 201 (nothing lost, nothing doubled), no hospital offered
twice the same case, at most one accepted offer per case, every open offer still has its
timer, every SMS sent once (the fake provider's count equals the sent rows) and none left
queued. Targets on the 2-core machine: zero errors; p99 < 300 ms to create a referral,
< 100 ms for the board's API list and < 100 ms for the board page. 409 answers (an offer that
expired or was taken a moment before the answer) are the service doing its job and are counted
apart, not as errors. Each endpoint's p50/p99 is given twice: as the client saw it, and as the
app spent on it (its ``Server-Timing`` header), so queueing can be told from work. The SQL
statements of one board page and of one API list are counted in this process (the app on the
same database) before the run, halfway and at its end, with the number of open cases then.

Exit status 1 when anything was lost, doubled or answered with an error (and, with
``--strict``, when a latency target is missed): ``.ci/run`` runs it for half a minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from tests.fake_twilio import running_fake_twilio  # noqa: E402

CLINICS, HOSPITALS, BOARDS, PAGE_BOARDS = 100, 30, 10, 5
CLINIC_PERIOD, HOSPITAL_POLL, CAPACITY_PERIOD, BOARD_PERIOD = 40.0, 3.0, 30.0, 2.0
PAGE_PERIOD = 2.5  # live.js: the next poll 2.5 s after an answer
PAGE_PASSWORD = "bench-board-pass"
API_LIST, BOARD_PAGE = "GET board (status=active)", "GET board page (/board/live)"
CONDITIONS = ["PPH", "SEVERE_PE", "PRETERM_LABOUR", "NB_RESP", "APH", "NB_SEPSIS"]
CAPS = [
    "caesarean_24h",
    "blood_transfusion",
    "massive_transfusion",
    "adult_icu",
    "interventional_radiology",
    "neonatal_cpap",
    "neonatal_ventilation",
    "therapeutic_hypothermia",
    "exchange_transfusion",
]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    in_app: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[str] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)  # idempotency key → referral id
    slowest: list[tuple[float, float, str]] = field(default_factory=list)  # (seconds, at, name)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, seconds: float, status: int, in_app: float | None) -> None:
        with self.lock:
            self.latencies[name].append(seconds)
            if in_app is not None:
                self.in_app[name].append(in_app)
            self.statuses[name][status] += 1
            self.slowest.append((seconds, time.monotonic() - seconds - self.started, name))
            if len(self.slowest) > 200:
                self.slowest.sort(reverse=True)
                del self.slowest[20:]


def build_roads(target: Path) -> list[tuple[float, float]]:
    """The demo prefecture's road network, compiled to ``target``; returns its node positions
    (every facility stands on a road, as a real registry's do, so every ETA is a road ETA)."""
    from greenchannel.demo.region import demo_road_network
    from greenchannel.demo.roads import save_network

    network = demo_road_network().network
    save_network(network, target)
    return list(zip(network.lat.tolist(), network.lon.tolist(), strict=True))


def build_region(url: str, sites: list[tuple[float, float]]) -> dict[str, Any]:
    """Facilities, contacts, capacity and a token per actor, straight into the database."""
    from core.db import make_engine
    from facilities.accounts import create_user
    from facilities.models import Channel, Contact, Facility, FacilityKind, Team
    from facilities.status import report_status
    from migrations import upgrade

    upgrade(url)
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    rng = random.Random(7)
    tokens: dict[str, Any] = {"clinics": [], "hospitals": [], "boards": [], "pages": []}
    with Session(engine) as s:
        area = {"province": "云省", "city": "云州市", "county": "临河县"}
        for n in range(HOSPITALS):
            level = 2 + n % 3
            hospital = Facility(
                code=f"H{n:02d}",
                name=f"医院{n}",
                kind=FacilityKind.COUNTY_HOSPITAL,
                lat=(site := rng.choice(sites))[0],
                lon=site[1],
                maternal_level=level,
                neonatal_level=level,
                capabilities=sorted(CAPS),
                phone=f"+86230000{n:04d}",
                created_at=now,
                updated_at=now,
                **area,
            )
            s.add(hospital)
            s.flush()
            report_status(
                s,
                facility=hospital,
                beds={"obstetric": 5, "maternal_icu": 2, "nicu": 3},
                diversion="normal",
                reported_by="load",
                user_id=None,
                channel=Channel.API,
                now=now,
            )
            for k, team in enumerate(
                (Team.OBSTETRICS, Team.ANAESTHESIA, Team.BLOOD_BANK, Team.NEONATOLOGY)
            ):
                for priority in (1, 2):
                    s.add(
                        Contact(
                            facility_id=hospital.id,
                            name=f"{team.value} {priority}",
                            team=team,
                            phone=f"+861390{n:03d}{k}{priority:03d}",
                            language="zh",
                            priority=priority,
                            active=True,
                        )
                    )
            created = create_user(
                s, username=f"hosp{n:02d}", role="hospital", facility_code=hospital.code, now=now
            )
            tokens["hospitals"].append((hospital.code, created.token))
        for n in range(CLINICS):
            clinic = Facility(
                code=f"T{n:03d}",
                name=f"卫生院{n}",
                kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                lat=(site := rng.choice(sites))[0],
                lon=site[1],
                maternal_level=1,
                neonatal_level=1,
                capabilities=[],
                phone=f"+86231000{n:04d}",
                created_at=now,
                updated_at=now,
                **area,
            )
            s.add(clinic)
            s.flush()
            created = create_user(
                s, username=f"clinic{n:03d}", role="clinic", facility_code=clinic.code, now=now
            )
            tokens["clinics"].append((clinic.code, created.token))
        for n in range(BOARDS):
            created = create_user(s, username=f"board{n}", role="coordinator", area="云省", now=now)
            tokens["boards"].append((f"board{n}", created.token))
        for n in range(PAGE_BOARDS):
            username = f"page{n}"
            create_user(
                s,
                username=username,
                role="coordinator",
                area="云省",
                password=PAGE_PASSWORD,
                now=now,
            )
            tokens["pages"].append((username, None))  # logs in by the form: no token
        s.commit()
    engine.dispose()
    return tokens


def server_time(response: requests.Response) -> float | None:
    """The app's own time from its ``Server-Timing: app;dur=<ms>`` header, in seconds."""
    timing = response.headers.get("Server-Timing", "")
    _, _, duration = timing.partition("app;dur=")
    try:
        return float(duration) / 1000
    except ValueError:
        return None


class Actor:
    def __init__(
        self, stats: Stats, token: str | None, bases: list[str], stop: threading.Event
    ) -> None:
        self.stats = stats
        self.session = requests.Session()  # keeps the web session's cookie for the page boards
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.bases = bases
        self.stop = stop
        self.turn = random.randrange(len(bases))

    def call(
        self, name: str, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> requests.Response | None:
        self.turn += 1
        base = self.bases[self.turn % len(self.bases)]
        start = time.perf_counter()
        try:
            response = self.session.request(method, base + path, timeout=30, **kwargs)
        except requests.RequestException as exc:
            with self.stats.lock:
                self.stats.errors.append(f"{name}: {type(exc).__name__}")
            return None
        self.stats.record(
            name, time.perf_counter() - start, response.status_code, server_time(response)
        )
        if response.status_code not in ok and response.status_code != 409:
            with self.stats.lock:
                self.stats.errors.append(f"{name}: {response.status_code} {response.text[:200]}")
        return response

    def pause(self, mean: float) -> bool:
        return not self.stop.wait(random.expovariate(1 / mean))


def clinic_loop(actor: Actor, code: str) -> None:
    number = 0
    open_cases: list[tuple[int, float]] = []
    while actor.pause(CLINIC_PERIOD):
        for rid, since in list(open_cases):
            answer = actor.call("GET /referrals/{id}", "GET", f"/api/v1/referrals/{rid}")
            if answer is None or answer.status_code != 200:
                continue
            status = answer.json()["status"]
            if status == "accepted":
                actor.call("POST depart", "POST", f"/api/v1/referrals/{rid}/depart", json={})
                open_cases.remove((rid, since))
            elif status in ("offered", "unplaced", "requested") and time.time() - since > 60:
                actor.call(
                    "POST cancel",
                    "POST",
                    f"/api/v1/referrals/{rid}/cancel",
                    json={"reason": "stabilised"},
                )
                open_cases.remove((rid, since))
            elif status not in ("offered", "unplaced", "requested"):
                open_cases.remove((rid, since))
        number += 1
        key = f"{code}-{number}-{uuid.uuid4().hex[:8]}"
        body = {
            "origin_facility": code,
            "case": {"conditions": [random.choice(CONDITIONS)], "gestation_weeks": 34},
            "patient": {"ref": key, "age_years": 27},
        }
        answer = None
        for _attempt in range(3):  # a retry with the same key can never make a second case
            answer = actor.call(
                "POST /referrals",
                "POST",
                "/api/v1/referrals",
                ok=(200, 201),
                json=body,
                headers={"Idempotency-Key": key},
            )
            if answer is not None:
                break
        if answer is not None and answer.status_code in (200, 201):
            rid = answer.json()["id"]
            with actor.stats.lock:
                actor.stats.created[key] = rid
            open_cases.append((rid, time.time()))


def hospital_loop(actor: Actor, code: str) -> None:
    next_capacity = time.monotonic() + random.uniform(0, CAPACITY_PERIOD)
    while actor.pause(HOSPITAL_POLL):
        if time.monotonic() >= next_capacity:
            next_capacity += CAPACITY_PERIOD
            actor.call(
                "PUT capacity",
                "PUT",
                f"/api/v1/facilities/{code}/status",
                json={"beds": {"obstetric": random.randint(0, 6), "maternal_icu": 1, "nicu": 2}},
            )
        answer = actor.call("GET hospital list", "GET", "/api/v1/referrals?status=active&limit=50")
        if answer is None or answer.status_code != 200:
            continue
        for case in answer.json()["referrals"]:
            rid = case["id"]
            if case["status"] == "in_transit" and case["destination"] == code:
                actor.call("POST arrive", "POST", f"/api/v1/referrals/{rid}/arrive", json={})
                actor.call(
                    "POST complete",
                    "POST",
                    f"/api/v1/referrals/{rid}/complete",
                    json={"outcome": "delivered"},
                )
                continue
            for offer in case["offers"]:
                if offer["facility"] != code or offer["status"] != "pending":
                    continue
                if random.random() < 0.7:
                    actor.call(
                        "POST accept",
                        "POST",
                        f"/api/v1/referrals/{rid}/offers/{offer['id']}/accept",
                        json={"eta_minutes": 10},
                    )
                else:
                    actor.call(
                        "POST decline",
                        "POST",
                        f"/api/v1/referrals/{rid}/offers/{offer['id']}/decline",
                        json={"reason": "FULL"},
                    )


def board_loop(actor: Actor, _name: str) -> None:
    while actor.pause(BOARD_PERIOD):
        actor.call(API_LIST, "GET", "/api/v1/referrals?status=active")


def csrf_from(page: str) -> str | None:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    return match.group(1) if match else None


def page_login(actor: Actor, username: str) -> bool:
    """Log in by the form, as a browser does: the CSRF token from the login page, then the
    password; the session cookie stays in the actor's ``requests.Session``."""
    page = actor.call("GET /login (page boards)", "GET", "/login")
    token = csrf_from(page.text) if page is not None and page.status_code == 200 else None
    if token is None:
        with actor.stats.lock:
            actor.stats.errors.append(f"{username}: no csrf_token on the login page")
        return False
    answer = actor.call(
        "POST /login (page boards)",
        "POST",
        "/login",
        ok=(302,),
        data={"username": username, "password": PAGE_PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    return answer is not None and answer.status_code == 302


def page_board_loop(actor: Actor, username: str) -> None:
    if actor.stop.wait(random.uniform(0, PAGE_PERIOD)) or not page_login(actor, username):
        return
    while True:
        # Not following redirects: a lost session (302 to /login) is an error, not a login page.
        actor.call(BOARD_PAGE, "GET", "/board/live", allow_redirects=False)
        if actor.stop.wait(PAGE_PERIOD):
            return


@dataclass
class Statements:
    """SQL statements of one request, counted on the app's engine in this process."""

    open_cases: int
    board_page: int
    full_page: int
    api_list: int  # rebuilding the cached documents of the cases changed since the last call
    api_list_warm: int  # the same request again at once: every document cached
    api_listed: int


class StatementCounter:
    """The web app built in this process on the bench's database, logged in as a page board's
    coordinator (its test client) and holding a board's token for the API."""

    def __init__(self, url: str, roads: str, token: str, username: str) -> None:
        from greenchannel.web.app import create_app

        # create_app reads its settings from the environment (as ``greenchannel serve`` does).
        os.environ.update(
            {
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "SMS_BACKEND": "console",
                "GREENCHANNEL_ROADS": roads,
            }
        )
        # TESTING only keeps this process's output plain (no JSON access log on stderr).
        self.app = create_app({"TESTING": True})
        self.engine = self.app.extensions["greenchannel.db"][0]
        self.client = self.app.test_client()
        self.token = token
        page = self.client.get("/login").get_data(as_text=True)
        answer = self.client.post(
            "/login",
            data={"username": username, "password": PAGE_PASSWORD, "csrf_token": csrf_from(page)},
        )
        if answer.status_code != 302:
            raise RuntimeError(f"in-process login as {username}: {answer.status_code}")

    def statements(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        count = 0

        def counted(*_: object) -> None:
            nonlocal count
            count += 1

        event.listen(self.engine, "before_cursor_execute", counted)
        try:
            response = self.client.get(path, **kwargs)
        finally:
            event.remove(self.engine, "before_cursor_execute", counted)
        if response.status_code != 200:
            raise RuntimeError(f"in-process {path}: {response.status_code}")
        return count, response

    def measure(self) -> Statements:
        from referral.models import OPEN_STATUSES, Referral

        with Session(self.engine) as s:
            open_cases = s.scalar(
                select(func.count()).select_from(Referral).where(Referral.status.in_(OPEN_STATUSES))
            )
        self.statements("/board/live")  # a first request warms what is cached per process
        board_page, _ = self.statements("/board/live")
        full_page, _ = self.statements("/board")
        auth = {"Authorization": f"Bearer {self.token}"}
        api_list, answer = self.statements("/api/v1/referrals?status=active", headers=auth)
        api_list_warm, _ = self.statements("/api/v1/referrals?status=active", headers=auth)
        return Statements(
            open_cases=open_cases or 0,
            board_page=board_page,
            full_page=full_page,
            api_list=api_list,
            api_list_warm=api_list_warm,
            api_listed=len(answer.get_json()["referrals"]),
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def check_database(url: str, stats: Stats, provider_messages: int) -> list[tuple[str, bool, str]]:
    from alerts.models import MessageStatus, OutboundMessage, Timer, TimerStatus
    from core.db import make_engine
    from referral.models import Offer, OfferStatus, Referral

    engine = make_engine(url)
    checks: list[tuple[str, bool, str]] = []
    with Session(engine) as s:
        rows = {r.idempotency_key: r.id for r in s.scalars(select(Referral))}
        lost = [k for k, rid in stats.created.items() if rows.get(k) != rid]
        extra = [k for k in rows if k not in stats.created]
        checks.append(
            (
                "no referral lost or doubled",
                not lost and not extra,
                f"{len(stats.created)} created by 201/200, {len(rows)} in the database, "
                f"{len(lost)} lost, {len(extra)} unacknowledged",
            )
        )
        doubled = s.execute(
            select(Offer.referral_id, Offer.facility_id, func.count())
            .group_by(Offer.referral_id, Offer.facility_id)
            .having(func.count() > 1)
        ).all()
        accepted_twice = s.execute(
            select(Offer.referral_id, func.count())
            .where(Offer.status == OfferStatus.ACCEPTED)
            .group_by(Offer.referral_id)
            .having(func.count() > 1)
        ).all()
        pending = s.scalars(select(Offer.id).where(Offer.status == OfferStatus.PENDING)).all()
        timed = set(
            s.scalars(
                select(Timer.subject).where(
                    Timer.status.in_([TimerStatus.PENDING, TimerStatus.CLAIMED])
                )
            )
        )
        untimed = [o for o in pending if f"offer:{o}" not in timed]
        offers = s.scalar(select(func.count()).select_from(Offer))
        checks.append(
            (
                "no offer lost or duplicated",
                not doubled and not accepted_twice and not untimed,
                f"{offers} offers; {len(doubled)} hospitals asked twice, {len(accepted_twice)} "
                f"cases accepted twice, {len(untimed)} pending offers without a timer",
            )
        )
        by_status = Counter(status for status in s.scalars(select(OutboundMessage.status)))
        sent = by_status[MessageStatus.SENT] + by_status[MessageStatus.DELIVERED]
        stuck = by_status[MessageStatus.QUEUED] + by_status[MessageStatus.SENDING]
        checks.append(
            (
                "no message lost or duplicated",
                provider_messages == sent and stuck == 0,
                f"{sent} sent rows, {provider_messages} accepted by the provider, {stuck} still "
                f"queued, {by_status[MessageStatus.CANCELLED]} cancelled (alert closed), "
                f"{by_status[MessageStatus.FAILED]} failed",
            )
        )
        referral_states = Counter(r.value for r in s.scalars(select(Referral.status)))
        checks.append(("referrals by state", True, dict(referral_states).__repr__()))
    engine.dispose()
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a new one)")
    parser.add_argument("--port", type=int, default=5600)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--log", help="write the web and worker processes' logs to this file")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on a latency miss too (without it only errors, losses and doubles fail)",
    )
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake provider's access log

    created_db = None
    url = args.database_url
    if not url:
        created_db = f"gc_load_{os.getpid()}"
        admin = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {created_db}"))
        admin.dispose()
        url = f"postgresql://postgres@127.0.0.1/{created_db}"
    stats = Stats()
    stop = threading.Event()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as folder, running_fake_twilio() as fake:
        print(f"database {url}; building the roads and the region …", flush=True)
        tokens = build_region(url, build_roads(Path(folder) / "roads.npz"))
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": "+8610690000",
            "TWILIO_API_BASE": fake.base_url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
            "GREENCHANNEL_ROADS": f"{folder}/roads.npz",
        }
        ports = [args.port, args.port + 1]
        log_path = Path(args.log) if args.log else Path(folder) / "processes.log"
        logs = open(log_path, "wb")  # noqa: SIM115
        for port in ports:
            processes.append(
                subprocess.Popen(
                    ["greenchannel", "serve", "--port", str(port)],
                    env=env,
                    stdout=logs,
                    stderr=logs,
                )
            )
        processes.append(
            subprocess.Popen(["greenchannel", "worker"], env=env, stdout=logs, stderr=logs)
        )
        try:
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base in bases:
                wait_for(base + "/healthz")
            counter = StatementCounter(
                url, f"{folder}/roads.npz", tokens["boards"][0][1], tokens["pages"][0][0]
            )
            before = counter.measure()
            threads = [
                threading.Thread(target=loop, args=(Actor(stats, token, bases, stop), name))
                for loop, group in (
                    (clinic_loop, "clinics"),
                    (hospital_loop, "hospitals"),
                    (board_loop, "boards"),
                    (page_board_loop, "pages"),
                )
                for name, token in tokens[group]
            ]
            print(
                f"{CLINICS} clinics, {HOSPITALS} hospitals, {BOARDS} API boards, "
                f"{PAGE_BOARDS} page boards for {args.minutes:g} min against 2 web processes "
                "and 1 worker …",
                flush=True,
            )
            started = stats.started = time.monotonic()
            for thread in threads:
                thread.start()
            stop.wait(args.minutes * 30)
            halfway = counter.measure()
            stop.wait(max(0.0, started + args.minutes * 60 - time.monotonic()))
            stop.set()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            after = counter.measure()  # the cases the run left open, before the worker drains
            counter.engine.dispose()
            # Let the worker send what the last requests queued.
            deadline = time.monotonic() + 30
            from core.db import make_engine

            engine = make_engine(url)
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    left = conn.execute(
                        text(
                            "SELECT count(*) FROM outbound_messages"
                            " WHERE status IN ('queued', 'sending')"
                        )
                    ).scalar_one()
                if not left:
                    break
                time.sleep(0.5)
            engine.dispose()
            provider_messages = len(fake.messages)
        finally:
            stop.set()  # the actors end too if anything above failed
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)
            logs.close()

    print(f"\n== load: {elapsed:.0f} s, {sum(len(v) for v in stats.latencies.values())} requests")
    print("(p50/p99 as the client saw them; in-app: the server's own time, without queueing)")
    print(
        f"{'endpoint':<32}{'count':>7}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'in-app p50':>12}{'p99':>6}  statuses"
    )
    for name in sorted(stats.latencies):
        values, in_app = stats.latencies[name], stats.in_app[name]
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(stats.statuses[name].items()))
        print(
            f"{name:<32}{len(values):>7}{len(values) / elapsed:>8.1f}"
            f"{percentile(values, 50) * 1000:>9.0f}{percentile(values, 99) * 1000:>9.0f}"
            f"{percentile(in_app, 50) * 1000:>12.0f}{percentile(in_app, 99) * 1000:>6.0f}"
            f"  {statuses}"
        )
    print("\n== SQL statements per request (counted in-process on the same database)")
    for when, counted in (("before the run", before), ("halfway", halfway), ("at the end", after)):
        print(
            f"{when:<15} {counted.open_cases:>4} open cases: board page (/board/live) "
            f"{counted.board_page}, full page (/board) {counted.full_page}; API list "
            f"(status=active, {counted.api_listed} cases listed) {counted.api_list}, "
            f"{counted.api_list_warm} with its document cache warm"
        )
    checks = check_database(url, stats, provider_messages)
    create_p99 = percentile(stats.latencies["POST /referrals"], 99) * 1000
    board_p99 = percentile(stats.latencies[API_LIST], 99) * 1000
    page_p99 = percentile(stats.latencies[BOARD_PAGE], 99) * 1000
    print("\n== targets")
    targets = [
        ("zero errors", not stats.errors, f"{len(stats.errors)} errors"),
        *[(name, ok, detail) for name, ok, detail in checks],
        ("create a referral p99 < 300 ms", create_p99 < 300, f"p99 {create_p99:.0f} ms"),
        ("board p99 < 100 ms", board_p99 < 100, f"p99 {board_p99:.0f} ms"),
        ("board page p99 < 100 ms", page_p99 < 100, f"p99 {page_p99:.0f} ms"),
    ]
    failed = False
    for name, ok, detail in targets:
        verdict = "PASS" if ok else "MISS"
        if name == "referrals by state":
            verdict = "info"
        elif not ok and (args.strict or "p99" not in name):
            failed = True
        print(f"{verdict:<5} {name}: {detail}")
    for error in stats.errors[:10]:
        print(f"  error: {error}")
    print("\nslowest requests (seconds into the run):")
    for seconds, at, name in sorted(stats.slowest, reverse=True)[:8]:
        print(f"  {seconds * 1000:7.0f} ms at {at:5.1f} s  {name}")
    if created_db and not args.keep:
        admin = create_engine(
            "postgresql+psycopg://postgres@127.0.0.1/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {created_db} WITH (FORCE)"))
        admin.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
