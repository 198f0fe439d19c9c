"""Rate limits without a write per request: each process claims blocks of the window's count,
and the limit still holds across processes (greenchannel/web/ratelimit.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from facilities.models import RateCounter
from greenchannel.web import ratelimit
from greenchannel.web.ratelimit import Allowance

NOW = dt.datetime(2026, 12, 3, 8, 0, 10, tzinfo=dt.UTC)


@pytest.fixture
def writes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The amounts each database write claimed."""
    claimed: list[int] = []
    real = ratelimit.hit

    def counting(engine: Engine, *, key: str, now: dt.datetime, amount: int = 1) -> int:
        claimed.append(amount)
        return real(engine, key=key, now=now, amount=amount)

    monkeypatch.setattr(ratelimit, "hit", counting)
    yield claimed
    with engine.begin() as conn:
        conn.execute(RateCounter.__table__.delete())


def test_two_processes_never_let_more_than_the_limit_through(
    engine: Engine, writes: list[int]
) -> None:
    first, second = Allowance(), Allowance()  # two web processes
    allowed = [
        (first if i % 3 else second).take(engine, key="token:busy", now=NOW, limit=600)
        for i in range(900)
    ]
    assert sum(allowed) <= 600
    assert sum(allowed) >= 600 - 600 // ratelimit.SHARE * 2  # early by at most the held blocks
    assert allowed[-50:] == [False] * 50
    assert len(writes) < 900 // 5  # blocks: far fewer writes than requests
    # the next minute starts afresh
    assert first.take(engine, key="token:busy", now=NOW + dt.timedelta(minutes=1), limit=600)


def test_a_small_limit_is_counted_one_by_one_and_exactly(engine: Engine, writes: list[int]) -> None:
    first, second = Allowance(), Allowance()
    answers = [
        (first if i % 2 else second).take(engine, key="sms:+86139", now=NOW, limit=30)
        for i in range(40)
    ]
    assert answers == [True] * 30 + [False] * 10
    assert set(writes) == {1}
