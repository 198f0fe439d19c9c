"""The SMS provider fails for a stretch (HTTP 500s, then timeouts): escalation carries on in the
meantime, and once the provider recovers every message that is still wanted goes out, once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from alerts.models import MessageStatus, OutboundMessage
from greenchannel.web.db import db
from tests.fake_twilio import FakeTwilio, running_fake_twilio
from tests.test_sms_end_to_end import BASE, worker_tick
from tests.world import PPH_REQUEST, World


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as server:
        yield server


@pytest.fixture
def world(world: World, fake: FakeTwilio) -> World:
    """The world sending its SMS through the real Twilio SDK to the fake on loopback."""
    world.app.config.update(
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID=fake.account_sid,
        TWILIO_AUTH_TOKEN=fake.auth_token,
        TWILIO_FROM="+8610690000",
        TWILIO_API_BASE=fake.base_url,
        TWILIO_TIMEOUT=0.3,
        PUBLIC_BASE_URL=BASE,
    )
    return world


def _rows(world: World) -> list[OutboundMessage]:
    with world.app.app_context():
        return list(db.session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def _offers(world: World, rid: int) -> dict[str, str]:
    case = world.get("coordinator", f"/api/v1/referrals/{rid}").get_json()
    return {o["facility"]: o["status"] for o in case["offers"]}


def test_a_provider_outage_delays_messages_but_escalation_goes_on_and_nothing_is_sent_twice(
    world: World, fake: FakeTwilio
) -> None:
    fake.fail_next(10_000)  # down until further notice
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    assert _offers(world, case["id"]) == {"H-A": "pending", "H-B": "pending"}
    for _ in range(8):  # four minutes of ticks while the provider answers 500
        worker_tick(world)
        world.clock.advance(seconds=30)
    assert fake.messages == []
    # Nobody has been asked yet, so no answer clock has run: the nearest hospitals' offers
    # wait for their pre-alerts rather than expire unsent (their clock starts when the
    # provider takes the pre-alert), and the case has not moved on without them.
    offers = _offers(world, case["id"])
    assert offers == {"H-A": "pending", "H-B": "pending"}
    assert all(m.status is not MessageStatus.SENT for m in _rows(world))

    fake.fail_next(0)  # the provider recovers
    # The nearest hospitals are asked now, with their whole timeout from now (3 min); silent,
    # they expire and the next two are asked.
    for _ in range(20):
        world.clock.advance(seconds=30)
        worker_tick(world)
    rows = _rows(world)
    sent = [m for m in rows if m.status in (MessageStatus.SENT, MessageStatus.DELIVERED)]
    # Nothing is left hanging: every row was sent, or cancelled because its alert had closed
    # (a pre-alert for an offer that already expired is not worth sending late).
    assert {m.status for m in rows} <= {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.CANCELLED,
    }, [(m.id, m.purpose, m.status) for m in rows]
    # The current candidates' pre-alerts reached them ...
    delivered = {m["To"] for m in fake.messages}
    assert world.phones["H-C:obstetrics"] in delivered
    assert world.phones["H-D:obstetrics"] in delivered
    # ... and every accepted request at the provider is exactly one row: none sent twice.
    assert len(fake.messages) == len(sent)
    assert len({m.provider_id for m in sent}) == len(sent)


def test_provider_timeouts_are_retried_and_no_pre_alert_is_lost(
    world: World, fake: FakeTwilio
) -> None:
    # Each held request outlives the client's 0.3 s timeout; the fake still accepts it
    # afterwards, like a real provider that received the request but answered too late.
    fake.hang_next(3, seconds=0.6)
    world.post("clinic", "/api/v1/referrals", PPH_REQUEST)
    worker_tick(world)
    for _ in range(4):
        world.clock.advance(minutes=1)
        worker_tick(world)
    rows = [m for m in _rows(world) if m.purpose == "prealert"]
    assert rows and all(m.status is MessageStatus.SENT for m in rows)
    delivered = [m["To"] for m in fake.messages]
    for row in rows:
        assert row.to_phone in delivered
    # The documented at-least-once window: a request that timed out on our side but reached
    # the provider can be sent again; at most once per timed-out request, never more.
    assert len(delivered) - len(set(delivered)) <= 3
