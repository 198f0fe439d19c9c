"""The case history page: each role's scope, the filters as a form, paging links, zh and en, a
bad filter named on the page, and the downloads."""

from __future__ import annotations

import csv
import io
import re

from flask import Flask
from flask.testing import FlaskClient

from tests.world import CJK, PPH_REQUEST, World, login, web_world


def refer_several(world: World, count: int) -> list[str]:
    codes = []
    for i in range(count):
        body = {**PPH_REQUEST, "patient": {"ref": f"T1-{i}", "age_years": 30}}
        answer = world.post("clinic", "/api/v1/referrals", body)
        assert answer.status_code == 201
        codes.append(answer.get_json()["code"])
        world.clock.advance(minutes=3)
    return codes


def codes_on(page: str) -> list[str]:
    return re.findall(r'class="code" href="/cases/\d+">([A-Z0-9]+)<', page)


def test_the_history_page_lists_the_clinic_s_cases_a_page_at_a_time(
    app: Flask, client: FlaskClient
) -> None:
    world = web_world(app, client)
    made = refer_several(world, 3)
    login(client, "w-clinic", "en")
    page = client.get("/history?limit=2")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert codes_on(text) == made[::-1][:2]
    next_link = re.search(r'href="([^"]+)" rel="next"', text)
    assert next_link is not None
    second = client.get(next_link.group(1).replace("&amp;", "&") + "&limit=2")
    assert codes_on(second.get_data(as_text=True)) == [made[0]]
    assert "First page" in second.get_data(as_text=True)


def test_the_history_page_is_in_chinese_by_default_and_names_a_bad_filter(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    login(client, "w-coord")
    page = client.get("/history").get_data(as_text=True)
    assert "病例查询" in page and CJK.search(page)
    assert 'href="/history"' in page  # in the navigation
    refused = client.get("/history?colour=blue&from=2026-11-01")
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "风险颜色" in text and 'value="2026-11-01"' in text


def test_a_hospital_sees_only_the_cases_offered_to_it(app: Flask, client: FlaskClient) -> None:
    world = web_world(app, client)
    made = refer_several(world, 1)
    login(client, "w-hosp", "en")  # H-A, asked first
    assert codes_on(client.get("/history").get_data(as_text=True)) == made
    client.post("/logout", data={})
    other = app.test_client()
    login(other, "w-hosp-b", "en")
    asked_b = world.get("admin", "/api/v1/referrals").get_json()["referrals"][0]["offers"]
    listed = codes_on(other.get("/history").get_data(as_text=True))
    assert listed == (made if any(o["facility"] == "H-B" for o in asked_b) else [])


def test_the_page_downloads_the_filtered_list(app: Flask, client: FlaskClient) -> None:
    world = web_world(app, client)
    made = refer_several(world, 2)
    login(client, "w-coord", "en")
    page = client.get(f"/history?q={made[0]}").get_data(as_text=True)
    link = re.search(r'href="(/history/export[^"]+format=csv[^"]*)"', page)
    assert link is not None
    answer = client.get(link.group(1).replace("&amp;", "&"))
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert [row["code"] for row in rows] == [made[0]]
    assert "register_number" not in rows[0]
