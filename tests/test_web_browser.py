"""The whole story in a real browser: a clinic refers, the board sees it, a hospital accepts,
the clinic's answer page and the board update by themselves. Screenshots of every page at
phone (390 px) and desktop (1280 px) width go to artifacts/screenshots/.

Needs the ``playwright`` package and Debian's ``chromium`` (never ``playwright install``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.browser import WAIT_MS, Person, browser, server
from tests.world import road_grid, web_world

__all__ = ["browser", "server"]  # the fixtures this module's tests use
pytestmark = pytest.mark.slow


def test_refer_board_accept_and_live_updates_in_a_browser(
    app: Flask, client: FlaskClient, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    road_grid(app.config["GREENCHANNEL_ROADS"])  # so the map has roads to draw
    web_world(app, client)
    coordinator = Person(browser, server, "w-coord", phone=False, lang="zh")
    hospital = Person(browser, server, "w-hosp", phone=True, lang="zh")
    clinic = Person(browser, server, "w-clinic", phone=True, lang="zh")
    expect(coordinator.page.locator("#open-title")).to_be_visible()
    expect(hospital.page.locator("#offers-title")).to_be_visible()
    hospital.shot("hospital-empty")

    # The clinic: search the picker, tick PPH and shock, send.
    page = clinic.page
    expect(page.locator("#condition-search")).to_be_visible()  # JS reveals the search box
    clinic.shot("clinic-form")
    page.fill("#condition-search", "产后")
    expect(page.locator(".chip:has(input[value=NB_ASPHYXIA])")).to_be_hidden()
    page.check("input[name=conditions][value=PPH]")
    page.fill("#gestation_weeks", "39")
    page.check("input[name=in_shock]")
    page.click("button[type=submit].wide")
    expect(page.locator(".case-code")).to_be_visible()
    code = page.locator(".case-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{4}", code)
    expect(page.locator(".banner")).to_contain_text("正在联系医院")
    expect(page.locator(".advice")).to_contain_text("氨甲环酸")
    clinic.shot("clinic-waiting")

    # The board and the hospital see it by themselves (short polling).
    expect(coordinator.page.locator("table.cases")).to_contain_text(code, timeout=WAIT_MS)
    expect(coordinator.page.locator(".leaflet-interactive").first).to_be_attached(timeout=WAIT_MS)
    expect(coordinator.page.locator("#map path")).not_to_have_count(0)  # roads and cases drawn
    offer = hospital.page.locator("article.offer", has_text=code)
    expect(offer).to_be_visible(timeout=WAIT_MS)
    hospital.shot("hospital-offer")
    coordinator.shot("board-offered")

    # The hospital accepts: ready in 10 minutes.
    offer.locator("input[name=eta_minutes]").fill("10")
    offer.locator("button.accept").click()
    expect(hospital.page.locator(".flash-ok")).to_be_visible()
    expect(hospital.page.locator("#arrivals-title")).to_contain_text("1")
    hospital.shot("hospital-arrivals")

    # The clinic's answer page and the board change without a reload.
    expect(page.locator(".banner")).to_contain_text("请前往", timeout=WAIT_MS)
    expect(page.locator(".destination")).to_contain_text("H-A", timeout=WAIT_MS)
    expect(page.locator("#answer .facts")).to_contain_text("023 0000 0010")
    clinic.shot("clinic-answer")
    row = coordinator.page.locator("table.cases tr", has_text=code)
    expect(row).to_contain_text("已接收", timeout=WAIT_MS)
    coordinator.shot("board-accepted")

    # The case page with its timeline, and the English board, for the record.
    coordinator.page.click(f"a.code:text('{code}')")
    expect(coordinator.page.locator(".timeline-list")).to_contain_text("已接收")
    coordinator.shot("case-coordinator")
    coordinator.page.goto(f"{server}/board?lang=en")
    expect(coordinator.page.locator("#open-title")).to_contain_text("Open cases")
    coordinator.shot("board-english")
    clinic.page.goto(f"{server}/clinic")
    expect(clinic.page.locator("section[data-live]")).to_contain_text(code)
    clinic.shot("clinic-cases")

    for person in (coordinator, hospital, clinic):
        assert not person.errors, person.errors  # no CSP refusals, no script errors
        person.context.close()
