"""A busy token's once-a-minute bookkeeping is written by one request of a process, not by every
request in flight when the minute is up (greenchannel/web/auth.py)."""

from __future__ import annotations

import datetime as dt
import threading

from flask import Flask
from sqlalchemy import select

from greenchannel.web.auth import _first_touch
from greenchannel.web.db import db
from referral.models import AuditEntry
from tests.world import NOW, World


def test_one_request_per_process_and_minute_writes_the_touch(app: Flask) -> None:
    with app.app_context():
        assert _first_touch(7, NOW)
        assert not _first_touch(7, NOW + dt.timedelta(seconds=59))
        assert _first_touch(8, NOW)  # another token has its own minute
        assert _first_touch(7, NOW + dt.timedelta(minutes=1))
        assert _first_touch(7, NOW - dt.timedelta(hours=1))  # a clock set back still writes


def test_requests_in_flight_when_the_minute_is_up_write_one_audit_row(
    world: World, app: Flask
) -> None:
    assert world.get("coordinator", "/api/v1/facilities").status_code == 200
    world.clock.advance(seconds=61)
    statuses: list[int] = []

    def one() -> None:
        client = app.test_client()
        statuses.append(
            client.get("/api/v1/facilities", headers=world.headers("coordinator")).status_code
        )

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    with app.app_context():
        uses = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "token_use", AuditEntry.actor == "coord")
        ).all()
    assert len(uses) == 2
