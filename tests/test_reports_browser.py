"""The monthly report page in a real browser: the charts draw (ECharts, served by the app), no
script or CSP error, readable on a phone; screenshots at phone and desktop width go to
artifacts/screenshots/report-*.png, to be looked at."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from facilities.models import Facility
from greenchannel.web.db import db
from tests.browser import Person, browser, server
from tests.report_month import build_month
from tests.world import web_world

__all__ = ["browser", "server"]  # the fixtures this module's tests use
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_report_page_draws_its_charts(
    app: Flask, client: FlaskClient, server: str, browser: Any, lang: str
) -> None:
    from playwright.sync_api import expect

    web_world(app, client)  # its clock stands at NOW (2026-11-24), inside the month
    with app.app_context():
        rows = db.session.scalars(select(Facility)).all()
        build_month(db.session, {f.code: f for f in rows})
        db.session.commit()
    coordinator = Person(browser, server, "w-coord", phone=lang == "zh", lang=lang)
    page = coordinator.page
    page.goto(f"{server}/reports?month=2026-11")
    for chart in ("#chart-days", "#chart-declines", "#chart-flows"):
        expect(page.locator(f"{chart} svg")).to_be_attached()
        expect(page.locator(f"{chart} svg path").first).to_be_attached()
    # the flows map names its origins and destinations
    expect(page.locator("#chart-flows")).to_contain_text("T-2")
    expect(page.locator("#chart-flows")).to_contain_text("H-D")
    expect(page.locator("#glance-title")).to_be_visible()
    # a phone shows the page without sideways scrolling of the page itself
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1
    coordinator.shot(f"report-{lang}")
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    page.emulate_media(media="print")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    page.screenshot(path=str(_shots() / f"report-{lang}-print.png"), full_page=True)
    assert not coordinator.errors, coordinator.errors


def _shots() -> Any:
    from tests.browser import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
