"""Polling cheaply: every polled fragment and JSON list answers 304 while nothing it shows has
changed, and 200 again after a write of any kind; answers are compressed; static files and the
road geometry carry a version in their URL and are kept by the browser for good."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text, update

from alerts.models import SmsProviderHealth
from facilities.models import Facility
from greenchannel.web.app import SECURITY_HEADERS
from greenchannel.web.db import db
from greenchannel.web.http_cache import IMMUTABLE
from tests.world import (
    PASSWORD,
    PPH_REQUEST,
    World,
    add_user,
    bearer,
    login,
    post_form,
    road_grid,
    web_world,
)


@pytest.fixture
def site(app: Flask, client: FlaskClient) -> World:
    return web_world(app, client)


def poll(client: FlaskClient, path: str, tag: str | None = None, **headers: str) -> tuple[int, str]:
    """One poll as live.js makes it: the last tag in If-None-Match. (status, the new tag)."""
    if tag:
        headers["If-None-Match"] = tag
    response = client.get(path, headers=headers)
    assert response.status_code in (200, 304), (path, response.status_code)
    if response.status_code == 304:
        assert response.data == b""
        assert response.headers["ETag"] == tag
        return 304, tag or ""
    return 200, response.headers["ETag"]


def unchanged(client: FlaskClient, path: str, tag: str) -> bool:
    return poll(client, path, tag)[0] == 304


def sql(app: Flask, statement: str, **params: object) -> None:
    with app.app_context():
        db.session.execute(text(statement), params)
        db.session.commit()


def provider_down(site: World) -> None:
    """What alerts.providers.health writes after repeated failures: the board's banner."""
    with site.app.app_context():
        db.session.add(
            SmsProviderHealth(
                provider="twilio",
                failures=3,
                window_started_at=site.clock.now,
                down_until=site.clock.now + dt.timedelta(minutes=10),
            )
        )
        db.session.commit()


def test_the_board_fragment_answers_304_until_any_write_it_shows(site: World) -> None:
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    client = site.client
    login(client, "w-coord")
    status, tag = poll(client, "/board/live")
    assert status == 200 and tag.startswith('W/"')
    assert unchanged(client, "/board/live", tag)

    writes = {
        "an answer by API": lambda: site.post(
            "H-A",
            f"/api/v1/referrals/{case['id']}/offers/{case['offers'][0]['id']}/decline",
            {"reason": "FULL"},
        ),
        "raw SQL on the case": lambda: sql(
            site.app, "UPDATE referrals SET callback_phone = '+8613800000009'"
        ),
        "raw SQL on a hospital's name": lambda: sql(
            site.app, "UPDATE facilities SET name = 'renamed' WHERE code = 'T-1'"
        ),
        "a status report": lambda: site.client.application.test_client().put(
            "/api/v1/facilities/H-D/status",
            headers=bearer(site.tokens["H-D"]),
            json={"beds": {"obstetric": 0}},
        ),
        "a road closure from the page": lambda: post_form(
            client,
            "/board",
            "/board/closures",
            {"lat": "29.85", "lon": "106.2", "radius_m": "800", "kind": "closed"},
        ),
        "a new case": lambda: site.post(
            "clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": {"ref": "T1-2026-0099"}}
        ),
        "an SMS provider marked down": lambda: provider_down(site),
        "a minute of the clock": lambda: site.clock.advance(minutes=1),
    }
    for what, write in writes.items():
        write()
        status, new = poll(client, "/board/live", tag)
        assert status == 200 and new != tag, what
        assert unchanged(client, "/board/live", new), what
        tag = new
    # Another language is another fragment.
    assert poll(client, "/board/live?lang=en", tag)[0] == 200


def test_the_304_is_short_and_private(site: World) -> None:
    client = site.client
    login(client, "w-coord")
    _, tag = poll(client, "/board/live")
    response = client.get("/board/live", headers={"If-None-Match": tag})
    assert response.status_code == 304
    assert response.headers["Cache-Control"] == "no-store"
    for name in ("Content-Security-Policy", "Content-Type", "Content-Length"):
        assert name not in response.headers
    # The full answer keeps every security header.
    full = client.get("/board/live")
    for name, value in SECURITY_HEADERS.items():
        assert full.headers[name] == value


def test_the_case_page_fragment_answers_304_until_the_case_moves(site: World) -> None:
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    path = f"/cases/{case['id']}/live"
    for username in ("w-clinic", "w-coord"):
        client = site.app.test_client()
        login(client, username)
        status, tag = poll(client, path)
        assert status == 200
        assert unchanged(client, path, tag)
        site.post(
            "H-A" if username == "w-clinic" else "H-B",
            f"/api/v1/referrals/{case['id']}/offers/"
            f"{case['offers'][0 if username == 'w-clinic' else 1]['id']}/decline",
            {"reason": "FULL"},
        )
        status, new = poll(client, path, tag)
        assert status == 200 and new != tag
        assert unchanged(client, path, new)
    # A coordinator of another area never sees the case, whatever tag it sends.
    with site.app.app_context():
        add_user(db.session, "w-far", "coordinator", area="别省", password=PASSWORD)
        db.session.commit()
    outsider = site.app.test_client()
    login(outsider, "w-far")
    assert outsider.get(path, headers={"If-None-Match": new}).status_code == 404


def test_the_clinic_and_hospital_fragments_answer_304_until_their_cases_move(
    site: World,
) -> None:
    clinic = site.app.test_client()
    login(clinic, "w-clinic")
    hospital = site.app.test_client()
    login(hospital, "w-hosp")
    _, clinic_tag = poll(clinic, "/clinic/live")
    _, hospital_tag = poll(hospital, "/hospital/live")
    assert unchanged(clinic, "/clinic/live", clinic_tag)
    assert unchanged(hospital, "/hospital/live", hospital_tag)
    site.post("clinic", "/api/v1/referrals", PPH_REQUEST)  # offered to H-A, among others
    assert poll(clinic, "/clinic/live", clinic_tag)[0] == 200
    status, hospital_tag = poll(hospital, "/hospital/live", hospital_tag)
    assert status == 200
    assert unchanged(hospital, "/hospital/live", hospital_tag)
    sql(site.app, "UPDATE facility_status SET beds_obstetric = 0")  # its own figures, raw
    assert poll(hospital, "/hospital/live", hospital_tag)[0] == 200


def test_the_lists_the_map_polls_answer_304_until_they_change(site: World) -> None:
    client = site.client
    login(client, "w-coord")
    paths = [
        "/api/v1/referrals?status=active&limit=200",
        "/api/v1/facilities?active=true",
        "/api/v1/roads/closures",
    ]
    tags = {path: poll(client, path)[1] for path in paths}
    assert all(unchanged(client, path, tag) for path, tag in tags.items())
    site.post("clinic", "/api/v1/referrals", PPH_REQUEST)
    assert poll(client, paths[0], tags[paths[0]])[0] == 200
    with site.app.app_context():
        db.session.execute(update(Facility).where(Facility.code == "H-A").values(name="new"))
        db.session.commit()
    assert poll(client, paths[1], tags[paths[1]])[0] == 200
    post_form(
        client,
        "/board",
        "/board/closures",
        {"lat": "29.85", "lon": "106.2", "radius_m": "800", "kind": "closed"},
    )
    assert poll(client, paths[2], tags[paths[2]])[0] == 200


def test_answers_are_compressed_and_keep_their_tag(site: World) -> None:
    for n in range(3):
        site.post("clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": {"ref": f"P{n}"}})
    client = site.client
    login(client, "w-coord")
    for path in ("/board/live", "/api/v1/referrals?status=active"):
        plain = client.get(path)
        assert "Content-Encoding" not in plain.headers
        for encoding in ("br", "gzip"):
            packed = client.get(path, headers={"Accept-Encoding": encoding})
            assert packed.headers["Content-Encoding"] == encoding, path
            assert len(packed.data) < len(plain.data) / 3, path
            assert packed.headers["ETag"] == plain.headers["ETag"], path  # weak: the content
            again = client.get(
                path, headers={"Accept-Encoding": encoding, "If-None-Match": plain.headers["ETag"]}
            )
            assert again.status_code == 304, path
    # A tiny body is sent as it is.
    tiny = client.get("/api/v1/roads/closures", headers={"Accept-Encoding": "br, gzip"})
    assert "Content-Encoding" not in tiny.headers


def test_static_files_carry_their_content_hash_and_are_kept_for_good(site: World) -> None:
    client = site.client
    login(client, "w-coord")
    page = client.get("/board").get_data(as_text=True)
    scripts = re.findall(r'src="(/static/[^"]+)"', page)
    assert "/static/live.js" in {s.split("?")[0] for s in scripts}
    for url in scripts:
        assert re.search(r"\?v=[0-9a-f]{12}$", url), url
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == IMMUTABLE, url
        response.close()
    # Another version (an old page after a release) is not kept for good.
    stale = client.get("/static/live.js?v=000000000000")
    assert stale.headers.get("Cache-Control") != IMMUTABLE
    stale.close()


def test_the_road_geometry_is_versioned_by_its_network(site: World, app: Flask) -> None:
    client = site.client
    login(client, "w-coord")
    road_grid(app.config["GREENCHANNEL_ROADS"])
    page = client.get("/board").get_data(as_text=True)
    url = re.search(r'data-geometry="([^"]+)"', page)
    assert url is not None
    versioned = url.group(1).replace("&amp;", "&")
    answer = client.get(versioned)
    assert answer.status_code == 200 and answer.get_json()["polylines"]
    assert answer.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert client.get("/api/v1/roads/geometry").headers["Cache-Control"] == "no-store"
    # A new network is a new URL.
    path = app.config["GREENCHANNEL_ROADS"]
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = re.search(r'data-geometry="([^"]+)"', client.get("/board").get_data(as_text=True))
    assert again is not None and again.group(1) != url.group(1)
    assert client.get(versioned).headers["Cache-Control"] == "no-store"
