"""A window runs from its own start and is told on the region's clock (no Flask needed)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

import routing
from referral.decision import decide
from referral.rules import load_rules
from referral.triage import Case
from tests.world import NOW, add_facility

RULES = load_rules()
CHINA = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    "born_at",
    [
        dt.datetime(2026, 11, 24, 8, 0, tzinfo=CHINA),  # as a phone in China sends it
        dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC),  # the same moment in UTC
    ],
)
def test_a_cooling_window_that_closed_is_told_with_its_local_clock_time(
    session: Session, born_at: dt.datetime
) -> None:
    add_facility(
        session,
        "CENTRE",
        maternal_level=4,
        neonatal_level=4,
        capabilities=["therapeutic_hypothermia"],
        lat=30.05,
        lon=110.0,
    )
    clinic = add_facility(session, "CLINIC", maternal_level=1, neonatal_level=1, capabilities=[])
    decision = decide(
        session,
        rules=RULES,
        router=routing.Router(None),
        origin=(clinic.lat, clinic.lon),
        case=Case(conditions=("NB_ASPHYXIA",), born_at=born_at),
        now=NOW,  # 16:00 in China, 8 hours after birth
        origin_facility=clinic,
    )
    assert decision.kind == "window_passed"
    window = decision.window_dict()
    assert window is not None
    assert window["from"] == "birth" and window["closed"] and not window["reachable_in_time"]
    assert window["closes_at_local"] == "14:00"
    assert "14:00" in decision.summary("zh") and "14:00" in decision.summary("en")
    answer = decision.to_dict("en")
    assert answer["beyond_window"] is True
    assert answer["window_advice"] and "Passive cooling" in answer["window_advice"][0]
    assert answer["requirements"]["neonatal_level"] == "N3"  # the level is kept


def test_a_baby_born_an_hour_ago_is_within_the_window_and_goes_to_cooling(
    session: Session,
) -> None:
    centre = add_facility(
        session,
        "CENTRE",
        maternal_level=4,
        neonatal_level=4,
        capabilities=["therapeutic_hypothermia"],
        lat=30.05,
        lon=110.0,
    )
    clinic = add_facility(session, "CLINIC", maternal_level=1, neonatal_level=1, capabilities=[])
    decision = decide(
        session,
        rules=RULES,
        router=routing.Router(None),
        origin=(clinic.lat, clinic.lon),
        case=Case(conditions=("NB_ASPHYXIA",), born_at=NOW - dt.timedelta(hours=1)),
        now=NOW,
        origin_facility=clinic,
    )
    assert decision.kind == "capable" and decision.first is not None
    assert decision.first.facility == centre.code
    window = decision.window_dict()
    assert window is not None and window["minutes_left"] == 300 and window["reachable_in_time"]
    assert decision.to_dict("en")["window_advice"] == []
