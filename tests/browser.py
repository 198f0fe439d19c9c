"""The browser the page tests drive: Debian's Chromium through Playwright (never ``playwright
install``), a live server on loopback, and a person per browser context with the script errors
they met. Screenshots of every page at phone (390 px) and desktop (1280 px) width go to
artifacts/screenshots/, to be looked at."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.world import PASSWORD

SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 15_000


def _missing(what: str) -> NoReturn:
    # CI sets GREENCHANNEL_REQUIRE_BROWSER: there a missing browser is a failure, not a skip.
    if os.environ.get("GREENCHANNEL_REQUIRE_BROWSER"):
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install playwright")
    chromium = shutil.which("chromium")
    if chromium is None:
        _missing("chromium is not installed: apt-get install -y chromium fonts-noto-cjk")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=5)


class Person:
    """One browser context (its own cookies), with the CSP and script errors it met."""

    def __init__(self, browser: Any, base: str, username: str, *, phone: bool, lang: str) -> None:
        self.context = browser.new_context(viewport=PHONE if phone else DESKTOP, locale="zh-CN")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base
        self.page.goto(f"{base}/login?lang={lang}")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("button[type=submit].primary")
        self.page.wait_for_load_state()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def shot(self, name: str) -> None:
        """Both widths, full page; the viewport is put back afterwards."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        original = self.page.viewport_size
        for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
            self.page.set_viewport_size(size)
            self.page.wait_for_timeout(300)
            self.page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        self.page.set_viewport_size(original)
