"""A worker killed with SIGKILL at random moments, twenty times over: every due step still
happens exactly once in effect (each expired offer is expired once and moves the case on once;
every wanted SMS reaches the provider, and none twice: a kill after the provider accepted a
message and before the worker recorded it leaves a claim that the next worker reconciles with
the provider's message list instead of sending again).

Phone calls too (the call step of critical pre-alerts, issue #20): calls are in flight when
the workers die, and none rings twice or is lost (a kill after the provider took a call and
before the worker recorded it is reconciled with the provider's call list).

Real worker processes against the test database and a fake Twilio (SMS and Voice) on loopback;
leases are cut to two seconds so that a dead worker's claims come free quickly.
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

from alerts.models import CallStatus, MessageStatus, OutboundMessage, Timer, TimerStatus, VoiceCall
from greenchannel.web.db import db
from referral.models import Offer, ReferralEvent
from tests.fake_twilio import FakeTwilio
from tests.fake_twilio_voice import FakeTwilioVoice, running_fake_twilio_sms_and_voice
from tests.world import PPH_REQUEST, World, build_world

ROOT = Path(__file__).resolve().parents[1]
RUNS = 20
PARALLEL_SENDS = 4
RING_EVERY = 4  # every fourth run adds a case whose calls are due
CALL_RUNS = 6  # then kills aimed at calls in flight
WORKER = """
import datetime as dt, time
from alerts.outbox import DeliveryPolicy
from alerts.timers import WorkerSettings
from alerts.worker import tick
from alerts.transports import transport_from_config
from alerts.calls import CallPlacer, CallPolicy
from alerts.voice import voice_transport_from_config
from core.db import utcnow
from greenchannel.web.app import create_app

app = create_app({"TWILIO_TIMEOUT": 2.0})
factory = app.extensions["greenchannel.db"][1]
transport = transport_from_config(app.config)
lease = dt.timedelta(seconds=2)
settings = WorkerSettings(
    timer_lease=lease, delivery=DeliveryPolicy(lease=lease, parallel_sends=4), capacity_grace=None
)
voice = CallPlacer(
    transport=voice_transport_from_config(app.config),
    public_base_url="https://gc.test",
    policy=CallPolicy(lease=lease, reconcile_slack=dt.timedelta(seconds=1)),
)
print("ready", flush=True)
while True:
    tick(
        factory,
        now=utcnow(),
        transport=transport,
        settings=settings,
        handlers=app.extensions["greenchannel.handlers"],
        voice=voice,
    )
    time.sleep(0.02)
"""


@pytest.fixture
def fakes() -> Iterator[tuple[FakeTwilio, FakeTwilioVoice]]:
    with running_fake_twilio_sms_and_voice() as (sms, voice):
        voice.delay = 0.05  # each call takes a moment to be accepted: kills land in between
        yield sms, voice


@pytest.fixture
def fake(fakes: tuple[FakeTwilio, FakeTwilioVoice]) -> FakeTwilio:
    return fakes[0]


@pytest.fixture
def fake_voice(fakes: tuple[FakeTwilio, FakeTwilioVoice]) -> FakeTwilioVoice:
    return fakes[1]


def _environment(app: Flask, fake: FakeTwilio, voice: FakeTwilioVoice) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": app.config["DATABASE_URL"],
        "SECRET_KEY": "test-secret",
        "SMS_BACKEND": "twilio",
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM": "+8610690000",
        "TWILIO_API_BASE": fake.base_url,
        # The calls go to the voice fake: another account on another port. The worker's SDK
        # client for calls is built from these.
        "VOICE_BACKEND": "twilio",
        "TWILIO_VOICE_FROM": "+8610690001",
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


def _unfinished(world: World, now: dt.datetime) -> int:
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
        calls = s.scalars(
            select(VoiceCall.id).where(
                VoiceCall.status.in_([CallStatus.QUEUED, CallStatus.DIALLING])
            )
        ).all()
        return len(messages) + len(timers) + len(calls)


def _finish(world: World, environment: dict[str, str]) -> None:
    """A last worker finishes the dead ones' work (their claims expire after the 2 s lease)."""
    survivor = _start(environment)
    try:
        # On a loaded machine the survivor has every dead worker's work to do: wait while it
        # makes progress, give up after a minute without any (or ten in all).
        checked = dt.datetime.now(dt.UTC)
        left, stalled_since, start = _unfinished(world, checked), time.monotonic(), time.monotonic()
        while left and time.monotonic() - stalled_since < 60 and time.monotonic() - start < 600:
            time.sleep(0.5)
            checked = dt.datetime.now(dt.UTC)
            now_left = _unfinished(world, checked)
            if now_left < left:
                stalled_since = time.monotonic()
            left = now_left
        time.sleep(0.5)
    finally:
        survivor.send_signal(signal.SIGKILL)
        survivor.wait()
    # What was due when the survivor was last seen with nothing left (a timer that comes due
    # after that, such as a ringing case's offers expiring, is not the dead workers' work)
    assert _unfinished(world, checked) == 0


@pytest.mark.long
def test_a_worker_killed_at_random_moments_loses_and_repeats_nothing(
    app: Flask, client: FlaskClient, fake: FakeTwilio, fake_voice: FakeTwilioVoice
) -> None:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 0
    world = build_world(app, client)
    # The cases were made ten minutes ago and their first pre-alerts left then (an earlier
    # worker sent them on time): every first offer's timeout (3 min) and every escalation step
    # are due when the workers start on the real clock. (A pre-alert that had not left would
    # restart its offer's clock instead: tests/test_reliability_late_alerts.py.)
    ten_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    ids: list[int] = []
    voice_ids: list[int] = []
    sent_before: set[int] = set()

    def new_case(*, ringing: bool = False) -> None:
        # A ringing case was made 61 s ago: its call step (1 min) is due, its offers' timeout
        # (3 min) is two minutes away, so the workers place its calls (and are killed while
        # doing it) before the offers expire, even when twenty workers started and killed one
        # after another on a slow machine take more than a minute and a half (a case made 90 s
        # ago had its offers expire first once, and its calls were rightly cancelled).
        world.clock.now = (
            dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61) if ringing else ten_minutes_ago
        )
        ref = f"ring-{len(voice_ids)}" if ringing else f"kill-{len(ids)}"
        body = {**PPH_REQUEST, "patient": {"ref": ref}}
        made = world.post("clinic", "/api/v1/referrals", body).get_json()["id"]
        (voice_ids if ringing else ids).append(made)
        with app.app_context():
            for message in db.session.scalars(
                select(OutboundMessage).where(OutboundMessage.status == MessageStatus.QUEUED)
            ):
                message.status = MessageStatus.SENT
                message.sent_at = world.clock.now
                message.provider_id = f"EARLIER-{message.id}"
                sent_before.add(message.id)
            db.session.commit()

    environment = _environment(app, fake, fake_voice)
    rng = random.Random(20261124)
    for _run in range(RUNS):
        new_case()  # fresh due work for every run
        new_case()
        if _run % RING_EVERY == 0:
            new_case(ringing=True)
        worker = _start(environment)
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the middle of its work
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # A last worker is left to finish: claims of the dead ones expire after their 2 s lease.
    _finish(world, environment)

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

    # Calls in flight: each worker is killed while (or just after) the provider takes a call,
    # the window in which it has rung but not recorded it.
    fake_voice.delay = 0.3
    for _run in range(CALL_RUNS):
        new_case(ringing=True)
        asked = fake_voice.requests
        worker = _start(environment)
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 30
        while fake_voice.requests == asked and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.35))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    _finish(world, environment)

    # Every call was placed once or, its alert answered or expired first, cancelled; the
    # provider rang each placed call's marker once and nothing else.
    with app.app_context():
        rows = list(db.session.scalars(select(VoiceCall)))
    ringing = {r.id for r in rows if r.status is not CallStatus.CANCELLED}
    assert {r.status for r in rows} <= {CallStatus.PLACED, CallStatus.CANCELLED}
    markers = Counter(int(call.url.rsplit("call=", 1)[1]) for call in fake_voice.calls)
    assert set(markers.values()) <= {1}, markers
    assert set(markers) == ringing
    assert {r.provider_id for r in rows if r.id in ringing} == {c.sid for c in fake_voice.calls}
    # each ringing case's two on-call obstetricians, at least
    assert len(ringing) >= 2 * len(voice_ids)
    retried = sum(1 for r in rows if r.attempts > 1)
    print(f"{len(ringing)} calls placed, {retried} after a dead worker's claim, none twice")
    assert retried >= 1  # some kills did land between the provider taking a call and its record
