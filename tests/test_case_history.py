"""The case history through the domain alone (no Flask): each filter, the outcome, keyset pages
that neither skip nor repeat a case while cases arrive, and the scope of each role."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from core.errors import Invalid
from facilities.models import Role
from referral import history, service
from referral.models import Offer, Referral
from referral.placement import Placement
from referral.triage import Case
from tests.world import NOW, Region

ZONE = "Asia/Shanghai"


def clinic_actor(region: Region) -> service.Actor:
    return service.Actor(
        name="clinic", channel="web", role=Role.CLINIC, facility_id=region.facilities["T-1"].id
    )


def hospital_actor(region: Region, code: str) -> service.Actor:
    facility = region.facilities[code]
    return service.Actor(name=code, channel="web", role=Role.HOSPITAL, facility_id=facility.id)


ADMIN = service.Actor(name="admin", channel="web", role=Role.ADMIN)
COORDINATOR = service.Actor(name="coord", channel="web", role=Role.COORDINATOR, area="云省")
FAR_COORDINATOR = service.Actor(name="far", channel="web", role=Role.COORDINATOR, area="别省")

Make = Callable[..., Referral]


@pytest.fixture
def make(session: Session, place: Placement, region: Region) -> Make:
    def make_case(*conditions: str, at: dt.datetime = NOW, colour: str | None = None) -> Referral:
        referral, _ = service.create_referral(
            session,
            place=place,
            actor=clinic_actor(region),
            origin=region.facilities["T-1"],
            case=Case(conditions=conditions, risk_colour=colour, delivered=True),
            patient={},
            now=at,
        )
        return referral

    return make_case


def codes(
    session: Session,
    raw: dict[str, str],
    *,
    place: Placement,
    actor: service.Actor = ADMIN,
    sort: str = "newest",
) -> list[str]:
    filters = history.parse_filters(session, raw, rules=place.rules, timezone=ZONE)
    page = history.search_cases(session, actor=actor, filters=filters, sort=sort, limit=200)
    return [line.code for line in page.lines]


def test_each_filter_narrows_the_history_to_the_matching_cases(
    session: Session, place: Placement, region: Region, make: Make
) -> None:
    pph = make("PPH", colour="red", at=NOW - dt.timedelta(days=3))
    waiting = make("ECLAMPSIA", at=NOW - dt.timedelta(days=2))
    sepsis = make("SEPSIS", colour="yellow", at=NOW - dt.timedelta(days=1))
    newborn = make("NB_ASPHYXIA", at=NOW)  # no hospital of the region can take her
    offer = pph.offers[0]
    service.accept_offer(
        session, place=place, referral=pph, actor=hospital_actor(region, offer.facility.code),
        offer=offer, now=NOW,
    )  # fmt: skip
    service.cancel(
        session, referral=sepsis, actor=clinic_actor(region), reason="stabilised", now=NOW
    )
    session.flush()
    everyone = [newborn.code, sepsis.code, waiting.code, pph.code]

    assert codes(session, {}, place=place) == everyone
    assert codes(session, {"condition": "pph"}, place=place) == [pph.code]
    assert codes(session, {"colour": "yellow"}, place=place) == [sepsis.code]
    assert codes(session, {"urgency": newborn.urgency}, place=place) == [
        c.code for c in (newborn, sepsis, waiting, pph) if c.urgency == newborn.urgency
    ]
    assert codes(session, {"status": "cancelled"}, place=place) == [sepsis.code]
    assert codes(session, {"status": "active"}, place=place) == [
        newborn.code, waiting.code, pph.code
    ]  # fmt: skip
    assert codes(session, {"origin": "T-1"}, place=place) == everyone
    assert codes(session, {"origin": "H-A"}, place=place) == []
    assert codes(session, {"destination": offer.facility.code}, place=place) == [pph.code]
    assert codes(session, {"outcome": "accepted"}, place=place) == [pph.code]
    assert codes(session, {"outcome": "cancelled"}, place=place) == [sepsis.code]
    assert codes(session, {"outcome": "unplaced"}, place=place) == [newborn.code]
    assert codes(session, {"outcome": "pending"}, place=place) == [waiting.code]
    assert codes(session, {"outcome": "arrived"}, place=place) == []
    every = history.search_cases(session, actor=ADMIN, filters=history.CaseFilters()).lines
    for outcome in history.OUTCOMES:  # the filter and the column say the same
        shown = [line.code for line in every if line.outcome == outcome]
        assert codes(session, {"outcome": outcome}, place=place) == shown, outcome
    assert codes(session, {"q": pph.code.lower()}, place=place) == [pph.code]
    by_start = codes(session, {"q": pph.code[:2]}, place=place)
    assert pph.code in by_start and all(c.startswith(pph.code[:2]) for c in by_start)
    assert codes(session, {"condition": "PPH", "status": "closed"}, place=place) == []
    assert codes(session, {}, place=place, sort="oldest") == everyone[::-1]


def test_a_date_range_takes_in_whole_local_days_and_an_exact_time_excludes_its_end(
    session: Session, place: Placement, make: Make
) -> None:
    # 2026-11-24 08:00 UTC is 16:00 in Shanghai; 17:00 UTC the day before is 01:00 on the 24th.
    early = make("PPH", at=dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.UTC))
    before = make("SEPSIS", at=dt.datetime(2026, 11, 23, 15, 59, tzinfo=dt.UTC))
    late = make("ECLAMPSIA", at=NOW)
    on_24th = {"from": "2026-11-24", "to": "2026-11-24"}
    assert codes(session, on_24th, place=place) == [late.code, early.code]
    assert codes(session, {"to": "2026-11-23"}, place=place) == [before.code]
    assert codes(session, {"to": NOW.isoformat()}, place=place) == [early.code, before.code]
    assert codes(session, {"from": NOW.isoformat()}, place=place) == [late.code]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from", "yesterday"),
        ("to", "2026-13-01"),
        ("condition", "NOT_A_CONDITION"),
        ("colour", "blue"),
        ("urgency", "soon"),
        ("status", "lost"),
        ("origin", "NOWHERE"),
        ("destination", "x" * 80),
        ("outcome", "died"),
        ("q", "%"),
    ],
)
def test_a_bad_filter_is_refused_naming_its_field(
    session: Session, place: Placement, region: Region, name: str, value: str
) -> None:
    with pytest.raises(Invalid) as refused:
        history.parse_filters(session, {name: value}, rules=place.rules, timezone=ZONE)
    assert refused.value.field == name


def test_a_range_that_ends_before_it_starts_is_refused_naming_to(
    session: Session, place: Placement
) -> None:
    with pytest.raises(Invalid) as refused:
        history.parse_filters(
            session, {"from": "2026-11-24", "to": "2026-11-01"}, rules=place.rules, timezone=ZONE
        )
    assert refused.value.field == "to"


def test_a_bad_cursor_or_limit_is_refused_naming_its_field(
    session: Session, place: Placement
) -> None:
    filters = history.CaseFilters()
    too_far = history.encode_cursor(NOW, 2**70, "newest")
    for cursor in ("garbage", "w6k", history.encode_cursor(NOW, 1, "oldest"), too_far):
        with pytest.raises(Invalid) as refused:
            history.search_cases(session, actor=ADMIN, filters=filters, cursor=cursor)
        assert refused.value.field == "cursor"
    with pytest.raises(Invalid) as refused:
        history.search_cases(session, actor=ADMIN, filters=filters, limit=201)
    assert refused.value.field == "limit"


@pytest.mark.parametrize("sort", history.SORTS)
def test_pages_neither_skip_nor_repeat_a_case_while_new_cases_arrive(
    session: Session, place: Placement, make: Make, sort: str
) -> None:
    # Several cases share a creation time: the id breaks the tie.
    made = [make("PPH", at=NOW + dt.timedelta(minutes=i // 3)).code for i in range(11)]
    seen: list[str] = []
    cursor = None
    for page_number in range(10):
        page = history.search_cases(
            session, actor=ADMIN, filters=history.CaseFilters(), cursor=cursor, limit=4, sort=sort
        )
        seen += [line.code for line in page.lines]
        if page_number == 0:
            make("SEPSIS", at=NOW + dt.timedelta(hours=1))  # arrives while the list is read
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = made[::-1] if sort == "newest" else made
    if sort == "oldest":
        assert seen[: len(made)] == expected and len(seen) == len(made) + 1
    else:
        assert seen == expected


def test_each_role_sees_its_own_scope_with_the_api_s_rule(
    session: Session, place: Placement, region: Region, make: Make
) -> None:
    referral = make("PPH", colour="red")
    asked = {o.facility.code for o in referral.offers}
    other_clinic = service.Actor(
        name="other", channel="web", role=Role.CLINIC, facility_id=region.facilities["T-1"].id + 99
    )
    for actor, sees in [
        (ADMIN, True),
        (COORDINATOR, True),
        (FAR_COORDINATOR, False),
        (clinic_actor(region), True),
        (other_clinic, False),
        *((hospital_actor(region, code), code in asked) for code in ("H-A", "H-B", "H-C", "H-D")),
    ]:
        found = codes(session, {}, place=place, actor=actor)
        assert found == ([referral.code] if sees else []), actor
        assert sees == service.can_view(actor, referral)


def test_a_case_placed_by_the_safety_net_has_that_outcome(
    session: Session, place: Placement, region: Region, make: Make
) -> None:
    referral = make("PPH")
    offer = referral.offers[0]
    offer.kind = "safety_net"
    service.accept_offer(
        session, place=place, referral=referral, offer=offer,
        actor=service.Actor(name=offer.facility.code, channel="web", role=Role.HOSPITAL,
                            facility_id=offer.facility_id),
        now=NOW,
    )  # fmt: skip
    session.flush()
    assert session.get(Offer, referral.accepted_offer_id) is offer
    assert codes(session, {"outcome": "safety_net"}, place=place) == [referral.code]
    assert codes(session, {"outcome": "accepted"}, place=place) == []


def test_only_the_facilities_caring_for_the_patient_may_see_who_she_is_in_an_export(
    session: Session, place: Placement, region: Region, make: Make
) -> None:
    referral = make("PPH")
    session.flush()
    line = history.search_cases(session, actor=ADMIN, filters=history.CaseFilters()).lines[0]
    assert line.id == referral.id
    assert history.may_identify(clinic_actor(region), line)
    assert not history.may_identify(hospital_actor(region, "H-A"), line)  # asked, not receiving
    assert not history.may_identify(COORDINATOR, line)
    assert not history.may_identify(ADMIN, line)
