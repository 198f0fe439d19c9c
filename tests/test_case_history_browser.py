"""The case history and the printed referral form in a real browser: the filters as a form at
phone width in Chinese and at desk width in English, paging by link, and the case page printed
(print media: only the form, with dates, parties, patient block, timeline and signature lines).
Screenshots go to artifacts/screenshots/history-* and referral-form-print.png."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.browser import SHOTS, WAIT_MS, Person, browser, server
from tests.world import PPH_REQUEST, World, web_world

__all__ = ["browser", "server"]  # the fixtures this module's tests use
pytestmark = pytest.mark.slow


def refer(world: World, count: int) -> list[dict[str, Any]]:
    made = []
    for i in range(count):
        body = {**PPH_REQUEST, "patient": {"ref": f"T1-{i}", "age_years": 30}}
        if i % 2:
            body["case"] = {"conditions": ["ECLAMPSIA"], "risk_colour": "orange"}
        answer = world.post("clinic", "/api/v1/referrals", body)
        assert answer.status_code == 201, answer.get_json()
        made.append(answer.get_json())
        world.clock.advance(minutes=7)
    return made


@pytest.mark.parametrize(("lang", "phone"), [("zh", True), ("en", False)])
def test_the_coordinator_filters_and_pages_the_case_history(
    app: Flask, client: FlaskClient, server: str, browser: Any, lang: str, phone: bool
) -> None:
    from playwright.sync_api import expect

    world = web_world(app, client)
    made = refer(world, 5)
    coordinator = Person(browser, server, "w-coord", phone=phone, lang=lang)
    page = coordinator.page
    page.click("header.top nav a[href='/history']")
    expect(page.locator("h1")).to_have_text("病例查询" if lang == "zh" else "Case history")
    assert page.locator("table.history a.code").count() == 5
    page.select_option("select[name=condition]", "ECLAMPSIA")
    page.click("form.history-filters button[type=submit]")
    expect(page.locator("table.history a.code")).to_have_count(2, timeout=WAIT_MS)
    shown = page.locator("table.history a.code").all_inner_texts()
    assert shown == [made[3]["code"], made[1]["code"]]
    assert page.locator("select[name=condition]").input_value() == "ECLAMPSIA"
    coordinator.shot(f"history-{lang}")
    # Paging by link, two at a time, without gaps or repeats.
    page.goto(f"{server}/history?limit=2")
    seen = page.locator("table.history a.code").all_inner_texts()
    while page.locator("a[rel=next]").count():
        page.click("a[rel=next]")
        seen += page.locator("table.history a.code").all_inner_texts()
    assert seen == [case["code"] for case in reversed(made)]
    # The table fits a phone without sideways scrolling.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1
    assert not coordinator.errors, coordinator.errors


def test_the_case_page_prints_the_referral_form(
    app: Flask, client: FlaskClient, server: str, browser: Any
) -> None:
    world = web_world(app, client)
    (case,) = refer(world, 1)
    clinic = Person(browser, server, "w-clinic", phone=False, lang="zh")
    page = clinic.page
    page.goto(f"{server}/cases/{case['id']}")
    assert page.locator(".print-sheet").is_hidden()  # on screen, the form is not shown
    page.emulate_media(media="print")
    sheet = page.locator(".print-sheet")
    assert sheet.is_visible()
    assert page.locator("header.top").is_hidden() and page.locator(".sheet-links").is_hidden()
    text = sheet.inner_text()
    for words in ("转诊单", case["code"], "2026-11-24 16:00", "T1-0", "转出医生", "接收医生"):
        assert words in text, words
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "referral-form-print.png"), full_page=True)
    pdf_link = page.locator("a[href*='referral-form.pdf']")
    assert pdf_link.count() == 1
    answer = page.request.get(server + pdf_link.get_attribute("href"))
    assert answer.status == 200 and answer.body().startswith(b"%PDF-")
    assert not clinic.errors, clinic.errors
