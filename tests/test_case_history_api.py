"""``GET /api/v1/referrals``: filters, cursor pages, scope, and the CSV and Excel exports."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.world import PPH_REQUEST, World


def refer(world: World, ref: str, *, conditions: list[str], note: str = "") -> dict[str, Any]:
    body = {
        **PPH_REQUEST,
        "case": {"conditions": conditions, "gestation_weeks": 39, "note": note},
        "patient": {"ref": ref, "age_years": 30},
    }
    answer = world.post("clinic", "/api/v1/referrals", body)
    assert answer.status_code == 201, answer.get_json()
    world.clock.advance(minutes=5)
    result: dict[str, Any] = answer.get_json()
    return result


@pytest.fixture
def cases(world: World) -> list[dict[str, Any]]:
    made = [refer(world, f"T1-{i}", conditions=["PPH"]) for i in range(5)]
    made.append(refer(world, "T1-9", conditions=["ECLAMPSIA"], note="=HYPERLINK(1) 王女士"))
    return made


def test_cursor_pages_list_every_visible_case_once_newest_first(
    world: World, cases: list[dict[str, Any]]
) -> None:
    seen: list[int] = []
    url = "/api/v1/referrals?limit=4"
    while True:
        answer = world.get("coordinator", url)
        assert answer.status_code == 200
        body = answer.get_json()
        assert len(body["referrals"]) <= 4
        seen += [case["id"] for case in body["referrals"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/v1/referrals?limit=4&cursor={body['next_cursor']}"
    assert seen == [case["id"] for case in reversed(cases)]
    first = world.get("coordinator", "/api/v1/referrals?limit=2&sort=oldest").get_json()
    assert [c["id"] for c in first["referrals"]] == [cases[0]["id"], cases[1]["id"]]
    assert first["referrals"][0]["offers"] and first["referrals"][0]["timeline"]


def test_filters_narrow_the_list_and_status_active_still_works(
    world: World, cases: list[dict[str, Any]]
) -> None:
    def ids(query: str) -> list[int]:
        answer = world.get("admin", f"/api/v1/referrals?{query}")
        assert answer.status_code == 200, answer.get_json()
        return [case["id"] for case in answer.get_json()["referrals"]]

    assert ids("condition=ECLAMPSIA") == [cases[-1]["id"]]
    assert ids("status=active") == [case["id"] for case in reversed(cases)]
    assert ids("origin=T-1&outcome=pending&urgency=critical") == [
        c["id"] for c in reversed(cases) if c["urgency"] == "critical"
    ]
    assert ids(f"q={cases[2]['code']}") == [cases[2]["id"]]
    assert ids("from=2030-01-01") == []
    assert ids("to=2026-11-24T16:05:00") == [cases[0]["id"]]  # 08:00 UTC is 16:00 in Shanghai


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("colour=blue", "colour"),
        ("from=yesterday", "from"),
        ("origin=NOWHERE", "origin"),
        ("cursor=abc", "cursor"),
        ("limit=201", "limit"),
        ("sort=random", "sort"),
        ("format=pdf", "format"),
        ("outcome=lost", "outcome"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(
    world: World, cases: list[dict[str, Any]], query: str, field: str
) -> None:
    answer = world.get("coordinator", f"/api/v1/referrals?{query}")
    assert answer.status_code in (400, 422)
    assert answer.get_json()["field"] == field


def test_each_user_lists_only_the_cases_of_its_scope(
    world: World, cases: list[dict[str, Any]]
) -> None:
    asked = {offer["facility"] for offer in cases[0]["offers"]}
    for who, sees in [
        ("outsider", False),
        ("clinic", True),
        ("H-A", "H-A" in asked),
        ("H-D", "H-D" in asked),
    ]:
        listed = world.get(who, "/api/v1/referrals?condition=PPH").get_json()["referrals"]
        assert bool(listed) == sees, who


def test_the_csv_export_is_de_identified_for_a_coordinator_and_not_for_the_clinic(
    world: World, cases: list[dict[str, Any]]
) -> None:
    answer = world.get("coordinator", "/api/v1/referrals?format=csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["X-Export-Truncated"] == "false"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["code"] for row in rows] == [case["code"] for case in reversed(cases)]
    assert "register_number" not in rows[0] and "note" not in rows[0]
    text = answer.get_data(as_text=True)
    assert "T1-9" not in text and "王女士" not in text

    mine = world.get("clinic", "/api/v1/referrals?format=csv&condition=ECLAMPSIA")
    (row,) = csv.DictReader(io.StringIO(mine.get_data(as_text=True).lstrip("\ufeff")))
    assert row["register_number"] == "T1-9"
    assert row["note"] == "'=HYPERLINK(1) 王女士"  # never read as a formula


def test_the_excel_export_holds_the_same_table(world: World, cases: list[dict[str, Any]]) -> None:
    answer = world.get("admin", "/api/v1/referrals?format=xlsx&sort=oldest")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(answer.get_data())).active
    assert sheet is not None
    table = list(sheet.iter_rows(values_only=True))
    assert table[0][:3] == ("code", "created_at", "status")
    assert [row[0] for row in table[1:]] == [case["code"] for case in cases]
    assert "register_number" not in table[0]
