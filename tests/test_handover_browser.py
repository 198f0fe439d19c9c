"""The handover in a real browser, at phone and desk width, in Chinese and English: the
referral form keeps its draft and brings the eye to its errors, the obstetrician decides from
the offer card, the clinic is told where and when, a closed case stops, the board counts what
needs a human in its title. Screenshots go to artifacts/screenshots/handover-*."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from alerts import attention
from greenchannel.web.db import db
from referral.locking import case_subject
from referral.models import Referral
from tests.browser import WAIT_MS, Person, browser, server
from tests.world import PASSWORD, PPH_REQUEST, road_grid, web_world

__all__ = ["browser", "server"]  # the fixtures this module's tests use
pytestmark = pytest.mark.slow

LANGS = [("zh", True), ("en", False)]  # (language, on a phone)


def _words(lang: str) -> dict[str, str]:
    zh = lang == "zh"
    return {
        "not_sent": "转诊尚未发出" if zh else "The referral was not sent",
        "number": "请输入数字" if zh else "Enter a number",
        "range": "应在20至250" if zh else "Expected 20 to 250",
        "asking": "正在联系医院" if zh else "Asking hospitals",
        "call_back": "转出医生回拨电话" if zh else "Referring clinician (call-back)",
        "arrive_now": "现在出发预计到达" if zh else "Arrival if you leave now",
        "closed": "页面不再自动更新" if zh else "the page no longer updates",
        "intervals": "结局与各环节用时" if zh else "Outcome and intervals",
    }


@pytest.mark.parametrize(("lang", "phone"), LANGS)
def test_the_referral_form_keeps_its_draft_and_brings_the_eye_to_its_errors(
    app: Flask, client: FlaskClient, server: str, browser: Any, lang: str, phone: bool
) -> None:
    from playwright.sync_api import expect

    web_world(app, client)
    words = _words(lang)
    clinic = Person(browser, server, "w-clinic", phone=phone, lang=lang)
    page = clinic.page
    page.check("input[name=conditions][value=PPH]")
    page.check("input[name=delivered][value=yes]")
    page.click("details.handover summary")
    page.fill("#sbp", "80")
    page.fill("#note", "uterus boggy")
    page.check("input[name=treatments][value=oxytocin]")
    page.wait_for_timeout(200)

    page.reload()  # a reload, a lost signal, a phone call: the draft is still there
    expect(page.locator("input[name=conditions][value=PPH]")).to_be_checked()
    expect(page.locator("#sbp")).to_have_value("80")
    expect(page.locator("#note")).to_have_value("uterus boggy")
    expect(page.locator("input[name=treatments][value=oxytocin]")).to_be_checked()
    expect(page.locator("details.handover")).to_have_attribute("open", "")

    # A value the browser lets through but the service refuses (the phone's keyboard has no
    # range): the form comes back whole, the summary in view, the field marked.
    page.evaluate("document.getElementById('hr').removeAttribute('max')")
    page.fill("#hr", "300")
    page.click("#referral-form button[type=submit]")
    expect(page.locator("#form-errors")).to_contain_text(words["not_sent"])
    expect(page.locator("#form-errors")).to_be_focused()
    expect(page.locator("label[for=hr] .field-error")).to_contain_text(words["range"])
    expect(page.locator("#sbp")).to_have_value("80")
    expect(page.locator("#note")).to_have_value("uterus boggy")
    clinic.shot(f"handover-form-error-{lang}")

    page.fill("#hr", "130")
    page.click("#referral-form button[type=submit]")
    expect(page.locator(".banner")).to_contain_text(words["asking"])
    page.goto(f"{server}/clinic")
    expect(page.locator("#sbp")).to_have_value("")  # sent: the draft is gone
    expect(page.locator("input[name=conditions][value=PPH]")).not_to_be_checked()
    # A shared ward computer: logging out leaves no half-typed case behind.
    page.click("details.handover summary")
    page.fill("#sbp", "70")
    page.wait_for_timeout(200)
    page.click("form[data-logout] button")
    page.wait_for_load_state()
    page.goto(f"{server}/login?lang={lang}")
    page.fill("#username", "w-clinic")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.goto(f"{server}/clinic")
    expect(page.locator("#sbp")).to_have_value("")
    # The refused form is answered 400 (as it should be); nothing else went wrong.
    assert [e for e in clinic.errors if "status of 400" not in e] == [], clinic.errors


@pytest.mark.parametrize(("lang", "phone"), LANGS)
def test_the_obstetrician_decides_from_the_offer_card_and_the_clinic_is_told_where_and_when(
    app: Flask, client: FlaskClient, server: str, browser: Any, lang: str, phone: bool
) -> None:
    from playwright.sync_api import expect

    road_grid(app.config["GREENCHANNEL_ROADS"])
    web_world(app, client)
    words = _words(lang)
    clinic = Person(browser, server, "w-clinic", phone=phone, lang=lang)
    page = clinic.page
    page.check("input[name=conditions][value=PPH]")
    page.check("input[name=delivered][value=yes]")
    page.click("details.handover summary")
    for field, value in (("sbp", "80"), ("dbp", "50"), ("hr", "130"), ("blood_loss_ml", "1600")):
        page.fill(f"#{field}", value)
    page.fill("#callback_phone", "139 1000 0002")
    page.check("input[name=treatments][value=tranexamic_acid]")
    page.click("#referral-form button[type=submit]")
    expect(page.locator(".banner")).to_contain_text(words["asking"])
    code = page.locator(".case-code").inner_text().strip()

    hospital = Person(browser, server, "w-hosp", phone=not phone, lang=lang)
    card = hospital.page.locator("article.offer", has_text=code)
    expect(card).to_be_visible(timeout=WAIT_MS)
    for shown in ("80/50 mmHg", "130/min", "1600 ml", "139 1000 0002"):
        expect(card).to_contain_text(shown)
    expect(card.locator("a[href='tel:+8613910000002']")).to_be_visible()
    hospital.shot(f"handover-offer-card-{lang}")
    card.locator("input[name=eta_minutes]").fill("10")
    card.locator("button.accept").click()

    expect(page.locator(".banner")).to_contain_text(words["arrive_now"], timeout=WAIT_MS)
    expect(page.locator(".nav-links:not(.sheet-links) a")).to_have_count(4)  # the maps
    expect(page.locator(".banner")).not_to_contain_text(words["call_back"])
    clinic.shot(f"handover-case-accepted-{lang}")
    assert not clinic.errors and not hospital.errors, clinic.errors + hospital.errors


def test_a_closed_case_stops_polling_and_its_clocks(
    app: Flask, client: FlaskClient, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    world = web_world(app, client)
    created = world.post("coordinator", "/api/v1/referrals", PPH_REQUEST)
    assert created.status_code == 201, created.get_json()
    referral_id = created.get_json()["id"]
    coordinator = Person(browser, server, "w-coord", phone=True, lang="zh")
    page = coordinator.page
    page.goto(f"{server}/cases/{referral_id}")
    polls: list[str] = []
    page.on(
        "request", lambda request: polls.append(request.url) if "/live" in request.url else None
    )
    cancelled = world.post(
        "coordinator", f"/api/v1/referrals/{referral_id}/cancel", {"reason": "duplicate"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    expect(page.locator(".banner")).to_contain_text(_words("zh")["closed"], timeout=WAIT_MS)
    page.wait_for_timeout(500)
    seen = len(polls)
    page.wait_for_timeout(6000)  # more than two polling periods
    assert len(polls) == seen, "the page still polls a closed case"
    assert page.locator(".timer").count() == 0
    coordinator.shot("handover-case-closed")


def test_the_board_title_counts_the_cases_that_need_a_human(
    app: Flask, client: FlaskClient, server: str, browser: Any
) -> None:
    from playwright.sync_api import expect

    world = web_world(app, client)
    coordinator = Person(browser, server, "w-coord", phone=False, lang="en")
    page = coordinator.page
    title = page.title()
    assert not title.startswith("(")
    created = world.post("coordinator", "/api/v1/referrals", PPH_REQUEST)
    assert created.status_code == 201
    with app.app_context():
        referral = db.session.get(Referral, created.get_json()["id"])
        assert referral is not None
        attention.raise_item(
            db.session,
            subject=case_subject(referral),
            code=referral.code,
            reason="unplaced",
            area_of=referral.origin,
            words=lambda language: "nobody accepted",
            render=lambda language: "nobody accepted",
            clinic_phone=referral.callback_phone,
            purpose="coordinator_unplaced",
            now=dt.datetime.now(dt.UTC),
        )
        db.session.commit()
    expect(page).to_have_title(f"(1) {title}", timeout=WAIT_MS)
    expect(page.locator("link[rel=icon]")).to_have_attribute("href", re.compile("^data:"))
    coordinator.shot("handover-board-attention")
