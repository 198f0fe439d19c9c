"""The monthly report against a small month of cases whose every figure is worked out by hand.

The month is November 2026 on the region's clock (UTC+8): it runs from 2026-10-31 16:00 UTC,
and the report is made at ``NOW`` (2026-11-24 08:00 UTC). The cases, minutes after decision:

    C1 critical PPH red, T-1, 11-20 02:00Z: H-A and H-B offered at +1; H-A declines FULL at +4,
       H-B accepts at +10; departs +20, arrives +50, completed.
    C2 critical PPH+SEVERE_ANAEMIA red, T-2, 11-21 03:00Z: H-A offered +2, accepts +6;
       departs +16, arrives +40.
    C3 urgent PRETERM_LABOUR orange, T-1, 11-21 05:00Z: H-A offered +1, silent (expired +16);
       H-C offered +16, declines STAFF +20; H-D offered +20, accepts +45 (target 20: missed).
    C4 critical ECLAMPSIA red, T-1, 11-21 17:00Z (11-22 01:00 local): H-A offered +1 declines
       FULL +3, H-B offered +3 declines BLOOD +5; unplaced; safety net assigns H-D at +8.
    C5 planned SEVERE_PE yellow, T-2, 11-23 00:00Z: cancelled (stabilised), no offers.
    C6 critical PPH red, T-1, 10-31 16:30Z (11-01 00:30 local): H-A offered +1, silent;
       unplaced still (target 10: missed).
    C7 as C6 but 10-31 15:30Z (10-31 23:30 local): October, not in the report.
    C8 critical PPH red from a clinic of 别省: outside the coordinator's area.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Invalid
from facilities.models import Channel, Facility, FacilityKind
from facilities.status import report_status
from greenchannel.cli import main
from greenchannel.web.db import db
from referral.models import Offer, OfferStatus, Referral, ReferralEvent, ReferralStatus
from referral.reports import monthly_report, parse_month
from referral.reports_coverage import coverage_table
from referral.rules import load_rules
from tests.world import NOW, Region, World, add_facility, placement

RULES = load_rules()
Z = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=Z)


def plus(t: dt.datetime, minutes: float | None) -> dt.datetime | None:
    return None if minutes is None else t + dt.timedelta(minutes=minutes)


def add_case(
    session: Session,
    code: str,
    *,
    origin: Facility,
    created: dt.datetime,
    urgency: str,
    conditions: list[str],
    colour: str,
    status: ReferralStatus,
    offers: list[tuple[Facility, str, float, float | None, str | None]] = (),  # type: ignore[assignment]
    destination: Facility | None = None,
    milestones: dict[str, float] | None = None,
    cancel_reason: str = "",
    events: tuple[str, ...] = (),
) -> Referral:
    """A case as the service leaves it; ``offers`` are (hospital, status, offered +min,
    answered +min, decline reason); ``milestones`` are minutes after decision."""
    times = {k: plus(created, v) for k, v in (milestones or {}).items()}
    referral = Referral(
        code=code,
        status=status,
        urgency=urgency,
        patient_kind="mother",
        origin_facility_id=origin.id,
        origin_lat=origin.lat,
        origin_lon=origin.lon,
        created_by="test",
        created_channel="api",
        case={"conditions": conditions, "risk_colour": colour},
        patient={"ref": f"secret-{code}"},
        requirements={},
        destination_facility_id=destination.id if destination else None,
        cancel_reason=cancel_reason,
        outcome="free text that is never exported",
        created_at=created,
        updated_at=created,
        **times,
    )
    session.add(referral)
    session.flush()
    for hospital, state, offered, answered, reason in offers:
        offer = Offer(
            referral_id=referral.id,
            facility_id=hospital.id,
            status=OfferStatus(state),
            kind="safety_net" if reason == "safety_net" else "transfer",
            offered_at=plus(created, offered),
            expires_at=plus(created, offered + 15),
            answered_at=plus(created, answered),
            decline_reason=reason if reason not in (None, "safety_net") else None,
        )
        session.add(offer)
        session.flush()
        if state == "accepted":
            referral.accepted_offer_id = offer.id
    for kind in events:
        session.add(
            ReferralEvent(
                referral_id=referral.id, at=created, kind=kind, actor="system", channel="system"
            )
        )
    session.flush()
    return referral


@pytest.fixture
def month(session: Session, region: Region) -> dict[str, Facility]:
    return build_month(session, dict(region.facilities))


def build_month(session: Session, f: dict[str, Facility]) -> dict[str, Facility]:
    """The month of the module's docstring over the region's facilities ``f``."""
    f["T-2"] = add_facility(
        session,
        "T-2",
        kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        county="河西县",
        township="河西镇",
        lat=31.80,
        lon=106.20,
        maternal_level=1,
        neonatal_level=1,
        capabilities=[],
    )
    far = add_facility(session, "X-1", kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE, province="别省")
    ha, hb, hc, hd = f["H-A"], f["H-B"], f["H-C"], f["H-D"]
    t1, t2 = f["T-1"], f["T-2"]
    done = {"first_alert_at": 1, "first_answer_at": 4, "accepted_at": 10}
    add_case(
        session, "C1", origin=t1, created=at("2026-11-20T02:00"), urgency="critical",
        conditions=["PPH"], colour="red", status=ReferralStatus.COMPLETED, destination=hb,
        offers=[(ha, "declined", 1, 4, "FULL"), (hb, "accepted", 1, 10, None)],
        milestones={**done, "departed_at": 20, "arrived_at": 50, "completed_at": 90},
    )  # fmt: skip
    add_case(
        session, "C2", origin=t2, created=at("2026-11-21T03:00"), urgency="critical",
        conditions=["PPH", "SEVERE_ANAEMIA"], colour="red", status=ReferralStatus.ARRIVED,
        destination=ha, offers=[(ha, "accepted", 2, 6, None)],
        milestones={"first_alert_at": 2, "first_answer_at": 6, "accepted_at": 6,
                    "departed_at": 16, "arrived_at": 40},
    )  # fmt: skip
    add_case(
        session, "C3", origin=t1, created=at("2026-11-21T05:00"), urgency="urgent",
        conditions=["PRETERM_LABOUR"], colour="orange", status=ReferralStatus.ACCEPTED,
        destination=hd,
        offers=[(ha, "expired", 1, None, None), (hc, "declined", 16, 20, "STAFF"),
                (hd, "accepted", 20, 45, None)],
        milestones={"first_alert_at": 1, "first_answer_at": 20, "accepted_at": 45},
    )  # fmt: skip
    add_case(
        session, "C4", origin=t1, created=at("2026-11-21T17:00"), urgency="critical",
        conditions=["ECLAMPSIA"], colour="red", status=ReferralStatus.ACCEPTED, destination=hd,
        offers=[(ha, "declined", 1, 3, "FULL"), (hb, "declined", 3, 5, "BLOOD"),
                (hd, "accepted", 8, 8, "safety_net")],
        milestones={"first_alert_at": 1, "first_answer_at": 3, "accepted_at": 8},
        events=("unplaced", "safety_net_assigned"),
    )  # fmt: skip
    add_case(
        session, "C5", origin=t2, created=at("2026-11-23T00:00"), urgency="planned",
        conditions=["SEVERE_PE"], colour="yellow", status=ReferralStatus.CANCELLED,
        cancel_reason="stabilised", milestones={"closed_at": 30},
    )  # fmt: skip
    for code, created in (("C6", "2026-10-31T16:30"), ("C7", "2026-10-31T15:30")):
        add_case(
            session, code, origin=t1, created=at(created), urgency="critical",
            conditions=["PPH"], colour="red", status=ReferralStatus.UNPLACED,
            offers=[(ha, "expired", 1, None, None)], milestones={"first_alert_at": 1},
            events=("unplaced",),
        )  # fmt: skip
    add_case(
        session, "C8", origin=far, created=at("2026-11-22T00:00"), urgency="critical",
        conditions=["PPH"], colour="red", status=ReferralStatus.UNPLACED,
    )  # fmt: skip
    # H-A's bed reports: before the month, 11-10 (closing), 11-12 (open again); the region's
    # own report of every hospital is at NOW - 10 min (2026-11-24 07:50).
    for when, diversion in (("2026-10-30T00:00", "normal"), ("2026-11-10T00:00", "closed"),
                            ("2026-11-12T00:00", "normal")):  # fmt: skip
        report_status(
            session, facility=ha, beds={"obstetric": 1}, diversion=diversion,
            diversion_reason="theatre full" if diversion != "normal" else None,
            reported_by="test", user_id=None, channel=Channel.API, now=at(when),
        )  # fmt: skip
    session.flush()
    return f


def table(report: Any, name: str) -> list[tuple[Any, ...]]:
    return report.tables[name].rows


def test_a_month_is_the_calendar_month_on_the_regions_clock() -> None:
    start, end = parse_month("2026-11", rules=RULES, now=NOW)
    assert start == at("2026-10-31T16:00") and end == at("2026-11-30T16:00")


@pytest.mark.parametrize("text", ["2026-13", "2026/11", "", "26-11", "2026-11-01", "1999-12"])
def test_a_month_that_is_not_yyyy_mm_is_refused_naming_month(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_month(text, rules=RULES, now=NOW)
    assert caught.value.field == "month"


def test_a_month_that_has_not_begun_is_refused() -> None:
    with pytest.raises(Invalid, match="not begun"):
        parse_month("2026-12", rules=RULES, now=NOW)


def test_the_counts_of_an_area(session: Session, month: dict[str, Facility]) -> None:
    r = monthly_report(session, month="2026-11", area="云省", rules=RULES, now=NOW)
    assert r.summary["cases"] == 6 and r.summary["critical_cases"] == 4
    assert sorted(table(r, "cases_by_urgency")) == [("critical", 4), ("planned", 1), ("urgent", 1)]
    assert table(r, "cases_by_condition") == [
        ("PPH", 3),
        ("ECLAMPSIA", 1),
        ("PRETERM_LABOUR", 1),
        ("SEVERE_ANAEMIA", 1),
        ("SEVERE_PE", 1),
    ]
    assert sorted(table(r, "cases_by_colour")) == [("orange", 1), ("red", 4), ("yellow", 1)]
    assert sorted(table(r, "cases_by_origin_county")) == [("临河县", 4), ("河西县", 2)]
    assert table(r, "cases_by_destination") == [
        ("H-D", "H-D 医院", 2),
        ("H-A", "H-A 医院", 1),
        ("H-B", "H-B 医院", 1),
    ]
    assert sorted(table(r, "cases_by_outcome")) == [
        ("accepted", 2),
        ("arrived", 1),
        ("cancelled:stabilised", 1),
        ("completed", 1),
        ("unplaced", 1),
    ]
    assert table(r, "cases_by_day") == [
        ("2026-11-01", 1, 1, None, None),
        ("2026-11-20", 1, 1, 10.0, 10.0),
        ("2026-11-21", 2, 1, 25.5, 41.1),
        ("2026-11-22", 1, 1, 8.0, 8.0),
        ("2026-11-23", 1, 0, None, None),
    ]


def test_everywhere_holds_the_other_provinces_case_too(
    session: Session, month: dict[str, Facility]
) -> None:
    r = monthly_report(session, month="2026-11", rules=RULES, now=NOW)
    assert r.summary["cases"] == 7 and r.summary["critical_cases"] == 5


def test_the_interval_card_with_median_p90_and_the_missed_targets(
    session: Session, month: dict[str, Facility]
) -> None:
    r = monthly_report(session, month="2026-11", area="云省", rules=RULES, now=NOW)
    card = {(row[0], row[1]): row[2:] for row in table(r, "intervals")}
    # decision → accepted: C2 6, C4 8, C1 10 (critical), C3 45 (urgent)
    assert card[("decision_to_accepted", "all")] == (4, 9.0, 34.5, None, None)
    assert card[("decision_to_accepted", "critical")] == (3, 8.0, 9.6, 10.0, 1)  # C6 unplaced
    assert card[("decision_to_accepted", "urgent")] == (1, 45.0, 45.0, 20.0, 1)
    assert card[("decision_to_accepted", "planned")] == (0, None, None, 1440.0, 0)
    # accepted → departed: C1 10, C2 10; departed → arrived: C1 30, C2 24
    assert card[("accepted_to_departed", "all")] == (2, 10.0, 10.0, None, None)
    assert card[("departed_to_arrived", "critical")] == (2, 27.0, 29.4, None, None)
    # decision → first pre-alert: 1, 2, 1, 1, 1 (C6)
    assert card[("decision_to_first_alert", "all")] == (5, 1.0, 1.6, None, None)
    assert r.summary["median_decision_to_accepted_min"] == 9.0
    assert r.summary["p90_decision_to_accepted_min"] == 34.5
    assert r.summary["missed_target"] == 2
    assert [(row[0], row[1], row[3], row[4]) for row in table(r, "missed_targets")] == [
        ("C6", "critical", None, 10.0),
        ("C3", "urgent", 45.0, 20.0),
    ]
    by_facility = {(row[0], row[1]): row[2:] for row in table(r, "intervals_by_facility")}
    assert by_facility[("H-D", "decision_to_accepted")] == (2, 26.5, 41.3)
    assert by_facility[("H-B", "decision_to_accepted")] == (1, 10.0, 10.0)


def test_offers_declines_expiries_and_answer_times(
    session: Session, month: dict[str, Facility]
) -> None:
    r = monthly_report(session, month="2026-11", area="云省", rules=RULES, now=NOW)
    offers = {row[0]: row[2:] for row in table(r, "offers_by_hospital")}
    # offers, accepted, declined, silent, withdrawn, pending, median and p90 answer minutes
    assert offers["H-A"] == (5, 1, 2, 2, 0, 0, 3.0, 3.8)
    assert offers["H-B"] == (2, 1, 1, 0, 0, 0, 5.5, 8.3)
    assert offers["H-C"] == (1, 0, 1, 0, 0, 0, 4.0, 4.0)
    assert offers["H-D"] == (2, 2, 0, 0, 0, 0, 25.0, 25.0)  # the safety net's is not an answer
    assert table(r, "declines_by_reason") == [("FULL", 2), ("BLOOD", 1), ("STAFF", 1)]
    assert table(r, "declines_by_hospital") == [
        ("H-A", "H-A 医院", "FULL", 2),
        ("H-B", "H-B 医院", "BLOOD", 1),
        ("H-C", "H-C 医院", "STAFF", 1),
    ]
    assert r.summary["silent_expiries"] == 2
    assert r.summary["cases_offered"] == 5
    assert r.summary["first_offer_accepted"] == 2  # C1 (parallel first round), C2
    assert r.summary["first_offer_acceptance"] == 0.4
    assert r.summary["unplaced_cases"] == 2 and r.summary["still_unplaced"] == 1
    assert r.summary["safety_net_assignments"] == 1
    assert sorted(table(r, "unplaced_cases")) == [
        ("C4", "critical", "accepted"),
        ("C6", "critical", "unplaced"),
    ]


def test_capacity_stale_hours_and_diversion(session: Session, month: dict[str, Facility]) -> None:
    r = monthly_report(session, month="2026-11", area="云省", rules=RULES, now=NOW)
    capacity = {row[0]: row[2:] for row in table(r, "capacity")}
    # H-A: stale from the month's start to 11-10 00:00 (224 h), 11-10 12:00 to 11-12 00:00
    # (36 h), 11-12 12:00 to 11-24 07:50 (283 h 50 min); closed 11-10 to 11-12 (48 h).
    assert capacity["H-A"] == (3, 543.83, 0.957, 3, 48.0, 0.0)
    # H-B: no report before 11-24 07:50: stale from the start of the month until then.
    assert capacity["H-B"] == (1, 567.83, 1.0, 1, 0.0, 0.0)


def test_a_hospital_sees_its_own_share(session: Session, month: dict[str, Facility]) -> None:
    r = monthly_report(session, month="2026-11", facility=month["H-D"], rules=RULES, now=NOW)
    assert r.summary["cases"] == 2  # C3 and C4: it was asked
    assert [row[0] for row in table(r, "offers_by_hospital")] == ["H-D"]
    assert [row[0] for row in table(r, "capacity")] == ["H-D"]


def test_coverage_lists_the_townships_beyond_an_hour(
    session: Session, month: dict[str, Facility]
) -> None:
    place = placement()
    cov = coverage_table(session, place=place, area="云省", now=NOW)
    r = monthly_report(session, month="2026-11", area="云省", rules=RULES, now=NOW, coverage=cov)
    bands = {row[0]: row[4] for row in table(r, "coverage")}
    # T-2 is 1.75 degrees (about 195 km) north of the nearest hospital, T-1 5.5 km south of H-A
    assert bands == {"T-2": ">120", "T-1": "<=30"}
    assert r.summary["townships_beyond_60_min"] == 1
    assert r.summary["townships_beyond_30_min"] == 1


def test_no_name_no_register_number_no_free_text_in_any_table(
    session: Session, month: dict[str, Facility]
) -> None:
    r = monthly_report(session, month="2026-11", rules=RULES, now=NOW)
    text = repr(r.as_dict())
    assert "secret-" not in text and "free text" not in text


# ------------------------------------------------------------------------------ API and CLI


@pytest.fixture
def api_world(world: World) -> World:
    with world.app.app_context():
        rows = db.session.scalars(select(Facility)).all()
        build_month(db.session, {f.code: f for f in rows})
        db.session.commit()
    return world


def test_the_api_answers_the_coordinators_area(api_world: World) -> None:
    answer = api_world.get("coordinator", "/api/v1/reports/monthly?month=2026-11")
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["area"] == "云省" and body["summary"]["cases"] == 6
    assert body["summary"]["median_decision_to_accepted_min"] == 9.0
    assert body["tables"]["declines_by_reason"]["rows"][0] == ["FULL", 2]
    assert {row[0] for row in body["tables"]["coverage"]["rows"]} == {"T-1", "T-2"}
    assert "secret-" not in answer.get_data(as_text=True)


def test_the_api_gives_a_hospital_its_share_and_refuses_it_an_area(api_world: World) -> None:
    mine = api_world.get("H-D", "/api/v1/reports/monthly?month=2026-11").get_json()
    assert mine["facility"] == "H-D" and mine["summary"]["cases"] == 2
    assert "coverage" not in mine["tables"]
    refused = api_world.get("H-D", "/api/v1/reports/monthly?month=2026-11&area=云省")
    assert refused.status_code == 403 and refused.get_json()["field"] == "area"


@pytest.mark.parametrize(
    ("who", "query", "status", "field"),
    [
        ("coordinator", "month=2026-13", 400, "month"),
        ("coordinator", "", 400, "month"),
        ("coordinator", "month=2026-11&format=pdf", 400, "format"),
        ("coordinator", "month=2026-11&format=csv", 400, "table"),
        ("coordinator", "month=2026-11&format=csv&table=nope", 400, "table"),
        ("outsider", "month=2026-11&area=云省", 403, "area"),
        ("clinic", "month=2026-11", 403, None),
    ],
)
def test_a_bad_request_is_a_4xx_naming_the_field(
    api_world: World, who: str, query: str, status: int, field: str | None
) -> None:
    answer = api_world.get(who, f"/api/v1/reports/monthly?{query}")
    assert answer.status_code == status
    assert answer.get_json().get("field") == field


def test_each_table_downloads_as_csv_and_the_report_as_a_workbook(api_world: World) -> None:
    got = api_world.get(
        "admin", "/api/v1/reports/monthly?month=2026-11&area=云省&format=csv&table=missed_targets"
    )
    assert got.status_code == 200 and got.mimetype == "text/csv"
    lines = got.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("case,urgency,decided_at") and len(lines) == 3
    assert lines[1].startswith("C6,critical,2026-11-01 00:30")
    book = api_world.get("admin", "/api/v1/reports/monthly?month=2026-11&area=云省&format=xlsx")
    assert book.status_code == 200
    workbook = load_workbook(io.BytesIO(book.data))
    assert "declines_by_hospital" in workbook.sheetnames and "summary" in workbook.sheetnames
    sheet = workbook["declines_by_hospital"]
    assert [c.value for c in sheet[2]] == ["H-A", "H-A 医院", "FULL", 2]


def test_the_report_is_in_the_openapi_description(api_world: World) -> None:
    spec = api_world.client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/reports/monthly" in spec["paths"]


def test_the_command_line_report(
    session: Session, month: dict[str, Facility], database_url: str, monkeypatch: Any
) -> None:
    session.commit()
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    runner = CliRunner()
    out = runner.invoke(main, ["report", "--month", "2026-11", "--area", "云省"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["summary"]["missed_target"] == 2
    out = runner.invoke(
        main, ["report", "--month", "2026-11", "--format", "csv", "--table", "cases_by_urgency"]
    )
    assert out.exit_code == 0 and out.output.splitlines()[0] == "urgency,cases"
    bad = runner.invoke(main, ["report", "--month", "11-2026"])
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output
