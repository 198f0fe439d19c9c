"""A production-shaped deployment on PostgreSQL: two web processes and two workers (real
``greenchannel`` processes), SMS through the real Twilio SDK to a fake Twilio server on
loopback. Fifty referrals go through them; hospitals accept half of them by signed SMS reply
or by the API. The fake provider's records and the database must agree: every queued message
sent exactly once, none lost, no (To, Body) pair twice.

Runs only when GREENCHANNEL_TEST_DATABASE_URL is a PostgreSQL URL; it creates and drops a
database of its own on that server (the main suite wipes its tables between tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from alerts.models import MessageStatus, OutboundMessage
from facilities.models import Contact, Facility, Team
from tests.fake_twilio import FakeTwilio, running_fake_twilio

ROOT = Path(__file__).resolve().parents[1]
TEST_URL = os.environ.get("GREENCHANNEL_TEST_DATABASE_URL", "")
PUBLIC = "https://gc.deploy.test"
REFERRALS = 50

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TEST_URL.startswith("postgresql"),
        reason="needs GREENCHANNEL_TEST_DATABASE_URL=postgresql://...",
    ),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(what: str, done: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def fresh_database() -> Iterator[str]:
    url = make_url(TEST_URL)
    name = f"gc_deploy_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from greenchannel.cli import main; main()", *args]


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_two_web_processes_and_two_workers_send_every_sms_exactly_once(
    fresh_database: str, tmp_path: Path
) -> None:
    with running_fake_twilio() as fake:
        env = {
            **os.environ,
            "DATABASE_URL": fresh_database,
            "SECRET_KEY": "deployment-test",
            "PUBLIC_BASE_URL": PUBLIC,
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": "+8610690000",
            "TWILIO_API_BASE": fake.base_url,
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("GREENCHANNEL_TEST_DATABASE_URL", None)

        def run(*args: str) -> str:
            done = subprocess.run(
                _cli(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        run("demo", "--no-serve")  # migrates, builds the region, its roads and contacts
        token = run("users", "create", "--username", "ops", "--role", "coordinator").split()[-1]
        ports = [_free_port(), _free_port()]
        commands = [_cli("serve", "--port", str(port)) for port in ports] + [
            _cli("worker", "--interval", "0.2") for _ in range(2)
        ]
        logs = [open(tmp_path / f"process-{n}.log", "w") for n in range(len(commands))]  # noqa: SIM115
        processes = [
            subprocess.Popen(c, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            for c, log in zip(commands, logs, strict=True)
        ]
        engine = create_engine(fresh_database.replace("postgresql://", "postgresql+psycopg://"))
        try:
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            _wait("both web processes", lambda: all(_ok(b + "/healthz") for b in bases), 60)
            _exercise(fake, engine, bases, token)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            for log in logs:
                log.close()
            engine.dispose()


def _exercise(fake: FakeTwilio, engine: Any, bases: list[str], token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with Session(engine) as session:
        townships = [
            code
            for code in session.scalars(select(Facility.code).order_by(Facility.code))
            if "-T" in code
        ]
    created: list[dict[str, Any]] = []
    for number in range(REFERRALS):
        answer = requests.post(
            bases[number % 2] + "/api/v1/referrals",
            json={
                "origin_facility": townships[number % len(townships)],
                "case": {"conditions": ["PPH"], "gestation_weeks": 38},
                "patient": {"ref": f"deploy-{number}"},
            },
            headers={**headers, "Idempotency-Key": f"deploy-{number}"},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        created.append(answer.json())
    assert all(len(r["offers"]) == 2 for r in created)

    def count(purpose: str, *statuses: MessageStatus) -> int:
        with Session(engine) as session:
            return len(
                session.scalars(
                    select(OutboundMessage.id).where(
                        OutboundMessage.purpose == purpose,
                        OutboundMessage.status.in_(statuses),
                    )
                ).all()
            )

    # critical PPH: two hospitals at once, three teams each (obstetrics, anaesthesia, blood bank)
    _wait(
        "every pre-alert handed to the provider",
        lambda: count("prealert", MessageStatus.SENT) == REFERRALS * 2 * 3,
        30,
    )

    # Half the cases are accepted: by a signed SMS reply from the hospital's obstetrician, or
    # by the API, through alternating web processes.
    validator = RequestValidator(fake.auth_token)
    accepted = created[::2]
    for number, referral in enumerate(accepted):
        offer = referral["offers"][0]
        base = bases[number % 2]
        if number % 2 == 0:
            with Session(engine) as session:
                phone = session.scalars(
                    select(Contact.phone)
                    .join(Facility)
                    .where(Facility.code == offer["facility"], Contact.team == Team.OBSTETRICS)
                    .order_by(Contact.priority)
                ).first()
            assert phone is not None
            form = {
                "From": phone,
                "Body": f"{referral['code']} Y",
                "MessageSid": f"SMin{number:030d}",
            }
            signature = validator.compute_signature(PUBLIC + "/webhooks/twilio/sms", form)
            reply = requests.post(
                base + "/webhooks/twilio/sms",
                data=form,
                headers={"X-Twilio-Signature": signature},
                timeout=30,
            )
            assert reply.status_code == 200 and referral["code"] in reply.text, reply.text
        else:
            reply = requests.post(
                f"{base}/api/v1/referrals/{referral['id']}/offers/{offer['id']}/accept",
                json={"eta_minutes": 10},
                headers=headers,
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
    _wait(
        "the clinics told of every acceptance",
        lambda: count("case_accepted", MessageStatus.SENT) == len(accepted),
        30,
    )

    def settled() -> bool:
        with Session(engine) as session:
            waiting = session.scalar(
                select(text("count(*)"))
                .select_from(OutboundMessage)
                .where(OutboundMessage.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING]))
            )
        return waiting == 0

    _wait("an empty outbox", settled, 30)

    with Session(engine) as session:
        rows = list(session.scalars(select(OutboundMessage)))
    sent = [r for r in rows if r.provider_id is not None]
    assert {r.status for r in rows} <= {MessageStatus.SENT, MessageStatus.CANCELLED}
    assert all(r.attempts == 1 for r in sent)
    provider = Counter((m["To"], m["Body"]) for m in fake.messages)
    database = Counter((r.to_phone, r.body) for r in sent)
    assert max(provider.values()) == 1, "the provider got the same SMS twice"
    assert provider == database, "the provider's records and the message log disagree"
    assert len(fake.requests) == len(fake.messages) == len(sent)
    assert all(r.authorised for r in fake.requests)
    assert len({r.provider_id for r in sent}) == len(sent)
    by_case = Counter(r.subject for r in sent if r.purpose == "case_accepted")
    assert len(by_case) == len(accepted) and set(by_case.values()) == {1}
