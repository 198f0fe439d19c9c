"""Helpers for the web page tests: a region with password users, and logging in by the form."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from greenchannel.web.db import db
from routing import RoadNetwork
from tests.conftest import add_user
from tests.referral_world import World, build_world

PASSWORD = "web-pass-123"
CJK = re.compile(r"[\u3400-\u9fff]")


def csrf_from(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no csrf_token in the page"
    return match.group(1)


def web_world(app: Flask, client: FlaskClient) -> World:
    """The referral test region plus one web login per role (password ``PASSWORD``)."""
    world = build_world(app, client)
    with app.app_context():
        add_user(db.session, "w-clinic", "clinic", facility="T-1", password=PASSWORD)
        add_user(db.session, "w-hosp", "hospital", facility="H-A", password=PASSWORD)
        add_user(db.session, "w-hosp-b", "hospital", facility="H-B", password=PASSWORD)
        add_user(db.session, "w-coord", "coordinator", area="云省", password=PASSWORD)
        db.session.commit()
    return world


def login(client: FlaskClient, username: str, lang: str = "zh") -> None:
    page = client.get(f"/login?lang={lang}").get_data(as_text=True)
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_from(page)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def post_form(client: FlaskClient, page_url: str, action: str, data: dict[str, object]) -> str:
    """Post a form the way the browser would: the token from the page, then follow redirects."""
    token = csrf_from(client.get(page_url).get_data(as_text=True))
    response = client.post(action, data={**data, "csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def road_grid(path: str | Path) -> None:
    """A small road grid around the test region (a fast north-south road through the clinic
    and the hospitals, slower side roads), compiled to ``path`` for the map and the router."""
    rows, cols, step = 26, 17, 0.01
    lat = np.repeat(29.78 + np.arange(rows) * step, cols)
    lon = np.tile(106.12 + np.arange(cols) * step, rows)
    index = np.arange(rows * cols).reshape(rows, cols)
    a = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    b = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    length = np.hypot((lat[a] - lat[b]) * 111_000, (lon[a] - lon[b]) * 96_500)
    main_road = (np.abs(lon[a] - 106.20) < 1e-6) & (np.abs(lon[b] - 106.20) < 1e-6)
    speed = np.where(main_road, 80.0, 30.0) / 3.6
    network = RoadNetwork.from_arcs(
        node_id=np.arange(rows * cols),
        lat=lat,
        lon=lon,
        tail=np.concatenate([a, b]),
        head=np.concatenate([b, a]),
        travel_time=np.concatenate([length / speed, length / speed]),
        length=np.concatenate([length, length]),
    )
    network.save(path)
