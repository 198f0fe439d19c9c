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

import io
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Invalid
from facilities.models import Facility
from greenchannel.cli import main
from greenchannel.web.db import db
from referral.models import ReferralStatus
from referral.reports import monthly_report, parse_month
from referral.reports_coverage import coverage_table
from tests.report_month import RULES, add_case, at, build_month
from tests.world import NOW, Region, World, login, placement, web_world


@pytest.fixture
def month(session: Session, region: Region) -> dict[str, Facility]:
    return build_month(session, dict(region.facilities))


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
    # referral.history.OUTCOME: C1 completed and C2 arrived are "arrived"; C4 was placed by the
    # safety net; C3 is accepted; C6 unplaced (C8 is beyond the area).
    assert sorted(table(r, "cases_by_outcome")) == [
        ("accepted", 1),
        ("arrived", 2),
        ("cancelled:stabilised", 1),
        ("safety_net", 1),
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


# ------------------------------------------------------------------------------------- page


@pytest.fixture
def page_world(app: Flask, client: FlaskClient) -> World:
    world = web_world(app, client)
    with app.app_context():
        rows = db.session.scalars(select(Facility)).all()
        build_month(db.session, {f.code: f for f in rows})
        db.session.commit()
    return world


def test_the_page_answers_the_four_questions(page_world: World) -> None:
    login(page_world.client, "w-coord", lang="en")
    page = page_world.client.get("/reports?month=2026-11")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    glance = text[text.index('id="glance-title"') : text.index('id="series-title"')]
    assert re.search(r'big-figure">4</strong>\s*of 6 cases', glance)  # critical cases
    assert 'big-figure">9.0</strong> min' in glance  # median decision → accepted
    assert "H-A 医院</strong> (H-A): 2 declines" in glance  # declines most, and why
    assert "No bed 2" in glance
    assert re.search(r'big-figure">1</strong>: T-2 医院', glance)  # beyond an hour
    assert re.search(
        r'href="/api/v1/reports/monthly\?month=2026-11&amp;format=csv&amp;area=[^"]*&amp;table=missed_targets"',
        text,
    )


def test_the_page_in_chinese_and_a_bad_month_in_the_users_language(page_world: World) -> None:
    login(page_world.client, "w-coord")
    page = page_world.client.get("/reports?month=2026-11")
    assert page.status_code == 200 and "本月危重病例" in page.get_data(as_text=True)
    bad = page_world.client.get("/reports?month=2026-99")
    assert bad.status_code == 400 and "请检查月份或区域" in bad.get_data(as_text=True)


def test_a_hospital_user_sees_its_share_on_the_page(page_world: World) -> None:
    login(page_world.client, "w-hosp", lang="en")
    page = page_world.client.get("/reports?month=2026-11")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "· H-A</h1>" in text and 'id="report-area"' not in text


def test_a_clinic_user_has_no_report_page(page_world: World) -> None:
    login(page_world.client, "w-clinic", lang="en")
    assert page_world.client.get("/reports?month=2026-11").status_code == 403


# ------------------------------------------------------------------------ the board's strip


def test_the_boards_strip_shows_today_and_the_month(page_world: World) -> None:
    login(page_world.client, "w-coord", lang="en")
    text = page_world.client.get("/board").get_data(as_text=True)
    strip = text[
        text.index('class="report-strip"') : text.index("</section>", text.index("report-strip"))
    ]
    figures = re.findall(r"<strong>([^<]*)</strong>", strip)
    # today (11-24 local): none; the month: 6 cases, 4 critical; median 9.0; 4 declines,
    # 2 silent; C6 still unplaced
    assert figures == ["0", "0", "6", "4", "9.0", "4", "2", "1"]
    assert "/reports?month=2026-11" in strip


def test_the_strip_costs_three_statements_whatever_the_cases(
    session: Session, month: dict[str, Facility]
) -> None:
    from sqlalchemy import event

    from referral.reports_glance import glance

    statements: list[str] = []
    engine = session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        first = glance(session, area="云省", rules=RULES, now=NOW)
        assert len(statements) == 3
        for n in range(20):
            add_case(
                session, f"M{n}", origin=month["T-1"], created=at("2026-11-22T02:00"),
                urgency="critical", conditions=["PPH"], colour="red",
                status=ReferralStatus.ACCEPTED, destination=month["H-A"],
                offers=[(month["H-A"], "accepted", 1, 5 + n, None)],
                milestones={"accepted_at": 5 + n},
            )  # fmt: skip
        statements.clear()
        second = glance(session, area="云省", rules=RULES, now=NOW)
        assert len(statements) == 3
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert first["month_cases"] == 6 and second["month_cases"] == 26
