"""Property: whatever the case and whatever the region, the decision is never empty and never
wrong about what a hospital has (issue 15).

Random cases (a random set of one patient's conditions, delivered or not, gestation, weights,
vital signs, do-not-move) meet random small regions (random levels, capabilities, diversion,
beds, staleness, with or without a designated centre) on straight-line estimates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

import routing
from facilities.models import Channel, Facility, FacilityKind
from facilities.status import report_status
from referral.decision import KINDS, decide
from referral.placement import beds_needed, snapshots
from referral.rules import Need, load_rules
from referral.triage import Case, Vitals, neonatal_level_for
from tests.world import NOW, add_facility

RULES = load_rules(None)
MOTHER = sorted(code for code, c in RULES.conditions.items() if c.patient == "mother")
NEWBORN = sorted(code for code, c in RULES.conditions.items() if c.patient == "newborn")
CAPABILITIES = sorted(
    {
        cap
        for c in RULES.conditions.values()
        for need in (c.need, c.in_shock, c.ventilated, c.stabilise)
        if need is not None
        for cap in need.capabilities
    }
    | set(RULES.colours["purple"].capabilities)
)
ROUTER = routing.Router(None)  # straight-line estimates: fast, and the same for every database
CENTRE = (29.60, 106.50)


def _minutes_ago(draw: Any) -> dt.datetime | None:
    minutes = draw(st.one_of(st.none(), st.integers(0, 600)))
    return None if minutes is None else NOW - dt.timedelta(minutes=minutes)


def _weights(draw: Any, low: float) -> float | None:
    grams: float | None = draw(st.one_of(st.none(), st.integers(int(low), 4500).map(float)))
    return grams


@st.composite
def cases(draw: Any) -> Case:
    if draw(st.booleans()):
        conditions = draw(st.lists(st.sampled_from(NEWBORN), min_size=1, max_size=3, unique=True))
        weeks = draw(st.one_of(st.none(), st.integers(22, 43).map(float)))
        grams = _weights(draw, 400)
        if weeks is None and grams is None:
            weeks = 30.0  # NB_PRETERM cannot be triaged without one of them
        return Case(
            conditions=tuple(conditions),
            gestation_weeks=weeks,
            birth_weight_g=grams,
            ventilated=draw(st.booleans()),
            do_not_move=draw(st.sampled_from([None, None, True, False])),
            delivered=draw(st.sampled_from([None, True])),
            born_at=_minutes_ago(draw),
        )
    conditions = draw(st.lists(st.sampled_from(MOTHER), max_size=3, unique=True))
    timings = {RULES.conditions[c].timing for c in conditions}
    if {"antepartum", "postpartum"} <= timings:  # not one woman at one moment
        conditions = [c for c in conditions if RULES.conditions[c].timing != "postpartum"]
        timings.discard("postpartum")
    delivered: list[bool | None] = [None, True, False]
    if "antepartum" in timings:
        delivered = [None, False]
    elif "postpartum" in timings:
        delivered = [None, True]
    colour = draw(st.sampled_from([None, "green", "yellow", "orange", "red"]))
    purple = draw(st.booleans())
    if not conditions and colour is None and not purple:
        colour = "yellow"
    weeks = draw(st.one_of(st.none(), st.integers(20, 43).map(float)))
    fetal = _weights(draw, 300)
    if (
        weeks is None
        and fetal is None
        and any(RULES.conditions[c].neonatal_by_gestation for c in conditions)
    ):
        weeks = 34.0
    return Case(
        conditions=tuple(conditions),
        risk_colour=colour,
        purple=purple,
        gestation_weeks=weeks,
        estimated_fetal_weight_g=fetal,
        in_shock=draw(st.booleans()),
        do_not_move=draw(st.sampled_from([None, None, True, False])),
        delivered=draw(st.sampled_from(delivered)),
        onset_at=_minutes_ago(draw),
        vitals=Vitals(
            hr=draw(st.one_of(st.none(), st.integers(40, 180).map(float))),
            sbp=draw(st.one_of(st.none(), st.integers(50, 200).map(float))),
        ),
        blood_loss_ml=draw(st.one_of(st.none(), st.integers(0, 3000).map(float))),
    )


@dataclass(frozen=True)
class Place:
    code: str
    kind: FacilityKind
    county: str
    lat: float
    lon: float
    maternal: int
    neonatal: int
    capabilities: tuple[str, ...]
    designated: tuple[str, ...]
    active: bool
    status: dict[str, Any] | None  # a status report, or None: never reported


@st.composite
def places(draw: Any, index: int) -> Place:
    capabilities = tuple(draw(st.lists(st.sampled_from(CAPABILITIES), unique=True)))
    status = None
    if draw(st.integers(0, 3)):
        beds = {b: draw(st.one_of(st.none(), st.integers(0, 3))) for b in routing.BED_TYPES}
        status = {
            "beds": {b: n for b, n in beds.items() if n is not None},  # None: not reported
            "diversion": draw(st.sampled_from(["normal", "normal", "advisory", "closed"])),
            "unavailable": draw(st.lists(st.sampled_from(capabilities), unique=True))
            if capabilities
            else [],
            "hours_ago": draw(st.sampled_from([1, 1, 20])),  # 20 h: stale
        }
    return Place(
        code=f"P{index}",
        kind=draw(
            st.sampled_from(
                [
                    FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                    FacilityKind.COUNTY_HOSPITAL,
                    FacilityKind.CITY_HOSPITAL,
                ]
            )
        ),
        county=draw(st.sampled_from(["甲县", "乙县"])),
        lat=CENTRE[0] + draw(st.integers(-30, 30)) / 100,
        lon=CENTRE[1] + draw(st.integers(-30, 30)) / 100,
        maternal=draw(st.integers(0, 4)),
        neonatal=draw(st.integers(0, 4)),
        capabilities=capabilities,
        designated=draw(
            st.sampled_from([(), (), (), ("maternal",), ("neonatal",), ("maternal", "neonatal")])
        ),
        active=draw(st.integers(0, 9)) > 0,
        status=status,
    )


@st.composite
def regions(draw: Any) -> tuple[list[Place], int | None, tuple[float, float]]:
    count = draw(st.integers(1, 6))
    found = [draw(places(i)) for i in range(count)]
    origin = draw(st.one_of(st.none(), st.integers(0, count - 1)))
    point = (
        (found[origin].lat, found[origin].lon)
        if origin is not None
        else (CENTRE[0] + draw(st.integers(-30, 30)) / 100, CENTRE[1])
    )
    return found, origin, point


def _build(session: Session, region: list[Place]) -> list[Facility]:
    built = []
    for p in region:
        facility = add_facility(
            session, p.code, kind=p.kind, county=p.county, lat=p.lat, lon=p.lon,
            maternal_level=p.maternal, neonatal_level=p.neonatal,
            capabilities=sorted(p.capabilities), designated=list(p.designated), active=p.active,
        )  # fmt: skip
        if p.status is not None:
            report_status(
                session, facility=facility, beds=p.status["beds"],
                diversion=p.status["diversion"], diversion_reason="random",
                unavailable=p.status["unavailable"],
                reported_by="test", user_id=None, channel=Channel.IMPORT,
                now=NOW - dt.timedelta(hours=p.status["hours_ago"]),
            )  # fmt: skip
        built.append(facility)
    session.flush()
    return built


def _gaps(need: Need, patient: str, s: routing.FacilitySnapshot) -> set[str]:
    gaps = set()
    if s.maternal_level < need.maternal_level:
        gaps.add(f"maternal level M{s.maternal_level} below required M{need.maternal_level}")
    if s.neonatal_level < need.neonatal_level:
        gaps.add(f"neonatal level N{s.neonatal_level} below required N{need.neonatal_level}")
    for cap in need.capabilities:
        if cap not in s.capabilities:
            gaps.add(f"lacks {cap}")
        elif cap in s.unavailable:
            gaps.add(f"{cap} temporarily unavailable")
    for bed in beds_needed(need, patient):
        if s.beds.get(bed) == 0:
            gaps.add(f"no bed: {bed}")
    return gaps


def _lacks(reasons: tuple[routing.Reason, ...]) -> set[str]:
    return {f"no bed: {r.params['bed_type']}" if r.code == "no_bed" else r.text for r in reasons}


def _baby_band(case: Case) -> int:
    """The band of the baby the case is about: a newborn always; an undelivered mother's baby
    below 37 weeks (or by its estimated weight); nothing for a delivered mother."""
    conditions = [RULES.conditions[c] for c in case.conditions]
    if conditions and conditions[0].patient == "newborn":
        if case.gestation_weeks is None and case.birth_weight_g is None:
            return 0
        return neonatal_level_for(RULES, weeks=case.gestation_weeks, grams=case.birth_weight_g)
    timings = {c.timing for c in conditions}
    if "antepartum" in timings:
        undelivered = True
    elif conditions and timings == {"postpartum"}:
        undelivered = False
    else:
        undelivered = case.delivered is not True
    weeks = case.gestation_weeks
    preterm = weeks is not None and weeks < RULES.clinical.baby_inside_below_weeks
    if not undelivered or (not preterm and case.estimated_fetal_weight_g is None):
        return 0
    level = neonatal_level_for(
        RULES, weeks=weeks if preterm else None, grams=case.estimated_fetal_weight_g
    )
    return level if preterm or level > 1 else 0  # a term-sized baby needs no particular unit


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases(), region=regions())
def test_every_answer_has_a_capable_choice_partial_matches_outreach_or_the_safety_net(
    session: Session,
    case: Case,
    region: tuple[list[Place], int | None, tuple[float, float]],
) -> None:
    places_, origin_index, origin = region
    try:
        built = _build(session, places_)
        origin_facility = built[origin_index] if origin_index is not None else None
        decision = decide(
            session, rules=RULES, router=ROUTER, origin=origin, case=case, now=NOW,
            origin_facility=origin_facility,
        )  # fmt: skip
        answer = decision.to_dict("en")
        snaps = {s.code: s for s in snapshots(session, rules=RULES, now=NOW)}
        need, patient = decision.triage.need, decision.triage.patient
        own = origin_facility.code if origin_facility is not None else None

        assert decision.kind in KINDS
        candidates = [c.facility for c in decision.ranking.candidates]
        for code in candidates:  # no candidate ever lacks a requirement
            s = snaps[code]
            assert s.active and s.diversion != "closed" and not _gaps(need, patient, s), code
        for p in decision.partial:  # partial matches: exactly what they lack, never offered
            assert p.facility not in candidates and p.facility != own
            assert p.lacks and _lacks(p.lacks) == _gaps(need, patient, snaps[p.facility])
        outreach = decision.triage.do_not_move and decision.ranking.outreach is not None
        # The answer is never empty: a capable first choice, partial matches, an outreach
        # request for a patient who stays, or the designated centre.
        assert (
            decision.first is not None
            or decision.partial
            or outreach
            or decision.safety_net is not None
        ) or not _anyone_to_ask(snaps, need, own), (case, places_, origin_index)

        # the baby counts: never a lower neonatal level than the baby's band
        assert need.neonatal_level >= _baby_band(case), (case, need)
        if decision.triage.window is None:
            assert answer["beyond_window"] is False and answer["window"] is None
            assert decision.kind not in ("beyond_window", "window_passed")
    finally:
        session.rollback()


def _anyone_to_ask(snaps: dict[str, routing.FacilitySnapshot], need: Need, own: str | None) -> bool:
    """Whether the region has any facility open to new cases other than the origin that provides
    some care on each axis the case needs (a township at M1 counts): with none, there is nobody
    whom the answer could name, and an empty answer is the truth."""
    return any(
        s.active
        and s.diversion != "closed"
        and s.code != own
        and (s.maternal_level >= 1 or not need.maternal_level)
        and (s.neonatal_level >= 1 or not need.neonatal_level)
        for s in snaps.values()
    )
