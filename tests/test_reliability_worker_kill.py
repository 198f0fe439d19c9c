"""A worker killed with SIGKILL at random moments, twenty times over: every due step still
happens exactly once in effect (each expired offer is expired once and moves the case on once;
every wanted SMS reaches the provider, and none twice: a kill after the provider accepted a
message and before the worker recorded it leaves a claim that the next worker reconciles with
the provider's message list instead of sending again).

Real worker processes against the test database and a fake Twilio on loopback; leases are cut
to two seconds so that a dead worker's claims come free quickly.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from alerts.models import MessageStatus, OutboundMessage, Timer, TimerStatus
from greenchannel.web.db import db
from referral.models import Offer, ReferralEvent
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.world import PPH_REQUEST, World, build_world

ROOT = Path(__file__).resolve().parents[1]
RUNS = 20
PARALLEL_SENDS = 4
WORKER = """
import datetime as dt, time
from alerts.outbox import DeliveryPolicy
from alerts.timers import WorkerSettings
from alerts.worker import tick
from alerts.transports import transport_from_config
from core.db import utcnow
from greenchannel.web.app import create_app

app = create_app({"TWILIO_TIMEOUT": 2.0})
factory = app.extensions["greenchannel.db"][1]
transport = transport_from_config(app.config)
lease = dt.timedelta(seconds=2)
settings = WorkerSettings(
    timer_lease=lease, delivery=DeliveryPolicy(lease=lease, parallel_sends=4), capacity_grace=None
)
print("ready", flush=True)
while True:
    tick(
        factory,
        now=utcnow(),
        transport=transport,
        settings=settings,
        handlers=app.extensions["greenchannel.handlers"],
    )
    time.sleep(0.02)
"""


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as server:
        yield server


def _environment(app: Flask, fake: FakeTwilio) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "SECRET_KEY": "test-secret",
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM": "+8610690000",
        "TWILIO_API_BASE": fake.base_url,
        "GREENCHANNEL_ROADS": app.config["GREENCHANNEL_ROADS"],
        "PYTHONPATH": str(ROOT),
    }


def _start(environment: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _unfinished(world: World) -> int:
    now = dt.datetime.now(dt.UTC)
    with world.app.app_context():
        s = db.session
        messages = s.scalars(
            select(OutboundMessage.id).where(
                OutboundMessage.status.in_([MessageStatus.QUEUED, MessageStatus.SENDING])
            )
        ).all()
        timers = s.scalars(
            select(Timer.id).where(
                Timer.status.in_([TimerStatus.PENDING, TimerStatus.CLAIMED]), Timer.due_at <= now
            )
        ).all()
        return len(messages) + len(timers)


@pytest.mark.long
def test_a_worker_killed_at_random_moments_loses_and_repeats_nothing(
    app: Flask, client: FlaskClient, fake: FakeTwilio
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 0
    world = build_world(app, client)
    # The cases were made ten minutes ago and their first pre-alerts left then (an earlier
    # worker sent them on time): every first offer's timeout (3 min) and every escalation step
    # are due when the workers start on the real clock. (A pre-alert that had not left would
    # restart its offer's clock instead: tests/test_reliability_late_alerts.py.)
    world.clock.now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    ids: list[int] = []
    sent_before: set[int] = set()

    def new_case() -> None:
        body = {**PPH_REQUEST, "patient": {"ref": f"kill-{len(ids)}"}}
        ids.append(world.post("clinic", "/api/v1/referrals", body).get_json()["id"])
        with app.app_context():
            for message in db.session.scalars(
                select(OutboundMessage).where(OutboundMessage.status == MessageStatus.QUEUED)
            ):
                message.status = MessageStatus.SENT
                message.sent_at = world.clock.now
                message.provider_id = f"EARLIER-{message.id}"
                sent_before.add(message.id)
            db.session.commit()

    environment = _environment(app, fake)
    rng = random.Random(20261124)
    for _run in range(RUNS):
        new_case()  # fresh due work for every run
        new_case()
        worker = _start(environment)
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the middle of its work
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # A last worker is left to finish: claims of the dead ones expire after their 2 s lease.
    survivor = _start(environment)
    try:
        deadline = time.monotonic() + 60
        while _unfinished(world) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(0.5)
    finally:
        survivor.send_signal(signal.SIGKILL)
        survivor.wait()
    assert _unfinished(world) == 0

    with app.app_context():
        s = db.session
        offers = list(s.scalars(select(Offer).where(Offer.referral_id.in_(ids))))
        events = list(s.scalars(select(ReferralEvent).where(ReferralEvent.referral_id.in_(ids))))
        messages = list(s.scalars(select(OutboundMessage)))
    # Each case: its first two offers expired exactly once, and it moved on exactly once to
    # the next two hospitals; no hospital was asked twice for the same case.
    for rid in ids:
        mine = sorted((o for o in offers if o.referral_id == rid), key=lambda o: o.id)
        facilities = Counter(o.facility_id for o in mine)
        assert set(facilities.values()) == {1}, rid
        assert [o.status.value for o in mine] == ["expired", "expired", "pending", "pending"], (
            rid,
            [(o.id, o.facility_id, o.status.value, o.offered_at, o.expires_at) for o in mine],
            [(e.kind, e.offer_id, e.at) for e in events if e.referral_id == rid],
        )
        expired = Counter(
            e.offer_id for e in events if e.referral_id == rid and e.kind == "expired"
        )
        assert sorted(expired.values()) == [1, 1], (rid, expired)
    # Every wanted SMS reached the provider.
    sent = [
        m
        for m in messages
        if m.status in (MessageStatus.SENT, MessageStatus.DELIVERED) and m.id not in sent_before
    ]
    assert {m.status for m in messages} <= {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.CANCELLED,
    }
    accepted = Counter((m["To"], m["Body"]) for m in fake.messages)
    for message in sent:
        assert accepted[(message.to_phone, message.body)] >= 1, message.id
    duplicates = len(fake.messages) - len(sent)  # the earlier worker's sends are not the fake's
    print(f"\n{RUNS} kills: {len(sent)} messages sent, {duplicates} sent twice by the provider")
    # A kill between the provider's acceptance and our commit leaves an abandoned claim; the
    # next worker finds the message at the provider instead of sending it again.
    assert duplicates == 0
