"""The web pages without a browser: role scoping, the forms (no JavaScript needed), languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from greenchannel.web.api_map import road_geometry
from greenchannel.web.db import db
from referral import audit
from referral.models import Referral, RoadClosure
from routing import RoadNetwork
from tests.world import CJK, add_user, csrf_from, login, post_form, web_world


def refer(client: FlaskClient, **extra: object) -> str:
    data: dict[str, object] = {"conditions": ["PPH"], "gestation_weeks": "39", **extra}
    return post_form(client, "/clinic", "/clinic/referrals", data)


def logout(client: FlaskClient) -> None:
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})


@dataclass
class Case:
    id: int
    code: str
    status: str
    offers: dict[str, int]  # facility code → offer id


def only_case(app: Flask) -> Case:
    with app.app_context():
        r = db.session.query(Referral).one()
        return Case(r.id, r.code, r.status.value, {o.facility.code: o.id for o in r.offers})


def test_pages_are_scoped_to_roles_and_anonymous_users_go_to_login(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    response = client.get("/board")
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
    login(client, "w-clinic")
    assert client.get("/clinic").status_code == 200
    for page in ("/hospital", "/board", "/board/live", "/hospital/live"):
        refused = client.get(page)
        assert refused.status_code == 403 and "text/html" in refused.content_type
    logout(client)
    login(client, "w-hosp")
    assert client.get("/hospital").status_code == 200
    assert client.get("/clinic").status_code == 403
    assert client.get("/board").status_code == 403
    logout(client)
    login(client, "w-coord")
    assert client.get("/board").status_code == 200
    assert client.get("/clinic").status_code == 403


def test_every_form_needs_its_csrf_token(app: Flask, client: FlaskClient) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    response = client.post("/clinic/referrals", data={"conditions": ["PPH"]})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.query(Referral).count() == 0


def test_the_whole_story_through_the_forms_without_javascript(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    page = refer(client, in_shock="on")
    referral = only_case(app)
    assert referral.code in page and "产后出血" in page  # the answer page, in Chinese
    assert "正在联系医院" in page and "H-A 医院" in page
    assert "氨甲环酸" in page  # the stabilisation advice from the rules
    logout(client)

    login(client, "w-hosp")
    hospital = client.get("/hospital").get_data(as_text=True)
    assert referral.code in hospital and "接收" in hospital
    offer_id = referral.offers["H-A"]
    action = f"/cases/{referral.id}/offers/{offer_id}/accept"
    after = post_form(client, "/hospital", action, {"eta_minutes": "15", "back": "hospital"})
    assert "已接收" in after and "即将到达" in after
    logout(client)

    login(client, "w-clinic")
    answer = client.get(f"/cases/{referral.id}").get_data(as_text=True)
    assert "请前往" in answer and "H-A 医院" in answer and "023 0000 0010" in answer
    assert "15 分钟" in answer  # the team is ready in 15 minutes
    post_form(client, f"/cases/{referral.id}", f"/cases/{referral.id}/depart", {})
    logout(client)

    login(client, "w-hosp")
    post_form(client, "/hospital", f"/cases/{referral.id}/arrive", {"back": "hospital"})
    done = post_form(
        client, f"/cases/{referral.id}", f"/cases/{referral.id}/complete", {"outcome": "stable"}
    )
    assert "已结案" in done
    assert only_case(app).status == "completed"


def test_the_pages_write_the_same_audit_trail_as_the_api(app: Flask, client: FlaskClient) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    refer(client)
    referral = only_case(app)
    logout(client)
    login(client, "w-hosp")
    client.get("/hospital")  # lists the offer: a view of the case
    client.get(f"/cases/{referral.id}")
    for _ in range(3):  # the page's live refreshes continue that view: no row each time
        client.get(f"/cases/{referral.id}/live")
        client.get("/hospital/live")
    action = f"/cases/{referral.id}/offers/{referral.offers['H-A']}/accept"
    post_form(client, "/hospital", action, {"eta_minutes": "15", "back": "hospital"})
    logout(client)
    login(client, "w-coord")
    client.get("/board")
    with app.app_context():
        trail = [
            (row.action, row.actor, row.channel, row.role)
            for row in audit.trail(db.session, referral_id=referral.id)
        ]
        viewers = [
            (row.actor, row.detail.get("page"))
            for row in audit.viewers_of(db.session, referral_id=referral.id)
        ]
    assert trail == [
        ("create", "w-clinic", "web", "clinic"),
        ("view", "w-clinic", "web", "clinic"),  # the answer page the form leads to
        ("view", "w-hosp", "web", "hospital"),
        ("accept", "w-hosp", "web", "hospital"),
    ]
    # The pages that list the case (the hospital page after each answer reloads it, too).
    assert ("w-hosp", "/hospital") in viewers and ("w-coord", "/board") in viewers
    assert ("w-hosp", f"/cases/{referral.id}") in viewers
    assert not [page for _, page in viewers if page and page.endswith("/live")]


def test_a_decline_needs_a_reason_and_moves_the_case_on(app: Flask, client: FlaskClient) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    refer(client)  # urgent? PPH is critical: H-A and H-B are asked at once
    referral = only_case(app)
    logout(client)
    login(client, "w-hosp")
    offer_id = referral.offers["H-A"]
    action = f"/cases/{referral.id}/offers/{offer_id}/decline"
    refused = post_form(client, "/hospital", action, {"reason": "OTHER", "back": "hospital"})
    assert "请检查表单" in refused  # OTHER needs a note
    post_form(client, "/hospital", action, {"reason": "FULL", "back": "hospital"})
    with app.app_context():
        case = db.session.get(Referral, referral.id)
        assert case is not None
        statuses = {o.facility.code: o.status.value for o in case.offers}
    assert statuses["H-A"] == "declined" and "H-C" in statuses  # moved on by itself
    again = post_form(client, "/hospital", action, {"reason": "FULL", "back": "hospital"})
    assert "未作更改" in again  # the second answer changes nothing and says so


def test_the_capacity_form_reports_through_the_web_channel(app: Flask, client: FlaskClient) -> None:
    web_world(app, client)
    login(client, "w-hosp", lang="en")
    page = client.get("/hospital").get_data(as_text=True)
    assert "10 minutes ago" in page  # how old the current figures are
    data = {
        "obstetric": "2",
        "maternal_icu": "0",
        "nicu": "",
        "diversion": "advisory",
        "diversion_reason": "theatre cleaning",
        "unavailable": ["massive_transfusion"],
    }
    saved = post_form(client, "/hospital", "/hospital/capacity", data)
    assert "Capacity saved" in saved
    status = client.get("/api/v1/facilities/H-A").get_json()
    assert status["beds"] == {"obstetric": 2, "maternal_icu": 0, "nicu": 2}
    assert status["diversion"] == "advisory" and status["unavailable"] == ["massive_transfusion"]
    assert status["channel"] == "web"


def test_the_board_puts_unplaced_cases_on_top_and_can_reopen_and_redirect(
    app: Flask, client: FlaskClient
) -> None:
    world = web_world(app, client)
    login(client, "w-clinic")
    refer(client)
    referral = only_case(app)
    logout(client)
    for code in ("H-A", "H-B", "H-C", "H-D"):  # everyone declines: the case is unplaced
        case = world.get("coordinator", f"/api/v1/referrals/{referral.id}").get_json()
        for offer in case["offers"]:
            if offer["facility"] == code and offer["status"] == "pending":
                url = f"/api/v1/referrals/{referral.id}/offers/{offer['id']}/decline"
                world.post(code, url, {"reason": "FULL"})
    login(client, "w-coord", lang="en")
    board = client.get("/board").get_data(as_text=True)
    human = board.split('id="human-title"')[1].split('id="open-title"')[0]
    assert referral.code in human and "Nobody accepted: 4 asked, none accepted" in human
    post_form(client, "/board", f"/cases/{referral.id}/reopen", {"back": "board"})
    assert only_case(app).status == "offered"
    post_form(
        client,
        "/board",
        f"/cases/{referral.id}/redirect",
        {"facility": "H-D", "reason": "phoned the head of obstetrics", "back": "board"},
    )
    case = client.get(f"/cases/{referral.id}").get_data(as_text=True)
    assert "Redirected by coordinator" in case and "Timeline" in case


def test_road_closures_from_the_board(app: Flask, client: FlaskClient) -> None:
    web_world(app, client)
    login(client, "w-coord")
    data = {"lat": "29.85", "lon": "106.2", "radius_m": "800", "kind": "closed", "reason": "flood"}
    post_form(client, "/board", "/board/closures", data)
    with app.app_context():
        row = db.session.query(RoadClosure).one()
        closure_id = row.id
    assert client.get("/api/v1/roads/closures").get_json()["closures"][0]["reason"] == "flood"
    post_form(client, "/board", f"/board/closures/{closure_id}/lift", {})
    assert client.get("/api/v1/roads/closures").get_json()["closures"] == []


def test_english_pages_have_no_chinese_ui_words_and_chinese_pages_no_english(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    login(client, "w-clinic", lang="en")
    english = client.get("/clinic").get_data(as_text=True)
    assert 'lang="en"' in english and "Postpartum haemorrhage".lower() in english.lower()
    visible = re.sub(r"<[^>]+>", " ", english.split("<main", 1)[1])
    visible = visible.replace("T-1 医院", "")  # data: the facility's own name
    visible = visible.replace("Search: e.g. 出血", "")  # the hint shows a Chinese search word
    assert not CJK.findall(visible), CJK.findall(visible)
    chinese = client.get("/clinic?lang=zh").get_data(as_text=True)
    assert 'lang="zh-CN"' in chinese and "立即转诊" in chinese
    for english_word in ("Refer a patient", "Gestation", "Find a hospital", "Log out", "Mother"):
        assert english_word not in chinese
    assert client.get("/clinic").get_data(as_text=True).count("立即转诊") == 1  # remembered


def test_every_ui_string_has_a_chinese_translation() -> None:
    from pathlib import Path

    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[1] / "greenchannel" / "web" / "translations" / "zh"
    with open(root / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    untranslated = [m.id for m in catalog if m.id and (not m.string or m.fuzzy)]
    assert not untranslated
    # …and the catalogue knows every string the pages use (babel.cfg says where they are).
    from babel.messages.extract import extract_from_dir

    repo = root.parents[3]
    method_map = [
        ("greenchannel/web/*.py", "python"),
        ("greenchannel/web/templates/**.html", "jinja2"),
    ]
    keywords = {"_": None, "_l": None, "gettext": None}
    used = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(repo, method_map, keywords=keywords)
    }
    known = {m.id for m in catalog if m.id}
    assert not used - known, f"run pybabel extract/update: {sorted(used - known)}"
    assert (root / "LC_MESSAGES" / "messages.mo").stat().st_size > 1000


def test_the_road_geometry_is_a_capped_set_of_polylines(app: Flask, client: FlaskClient) -> None:
    # A straight road of 4 nodes both ways and a slow side street.
    lat = np.array([30.0, 30.01, 30.02, 30.03, 30.01])
    lon = np.array([110.0, 110.0, 110.0, 110.0, 110.01])
    tail = np.array([0, 1, 2, 1, 2, 3, 1, 4])
    head = np.array([1, 2, 3, 0, 1, 2, 4, 1])
    length = np.full(8, 1000.0)
    time = np.array([36, 36, 36, 36, 36, 36, 360, 360], dtype=float)
    network = RoadNetwork.from_arcs(
        node_id=np.arange(5),
        lat=lat,
        lon=lon,
        tail=tail,
        head=head,
        travel_time=time,
        length=length,
    )
    everything = road_geometry(network)
    assert everything["total_segments"] == 4 and not everything["simplified"]
    assert sorted(len(line) for line in everything["polylines"]) == [2, 2, 3]  # at the junction
    fast = road_geometry(network, limit=3)  # the side street is the slowest: left out
    assert fast["simplified"] and len(fast["polylines"]) == 1
    assert sorted(point[0] for point in fast["polylines"][0]) == [30.0, 30.01, 30.02, 30.03]
    web_world(app, client)
    login(client, "w-coord")
    answer = client.get("/api/v1/roads/geometry")
    assert answer.status_code == 200 and answer.get_json()["polylines"] == []  # no network here
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/roads/geometry" in spec["paths"]


@pytest.mark.parametrize(
    ("radius", "kind", "factor"),
    [
        ("800", "closed", ""),
        ("5", "closed", ""),  # smaller than a road crossing
        ("10", "closed", ""),
        ("60000", "closed", ""),
        ("500", "slow", "0.5"),
        ("500", "slow", "1.0"),  # keeps all the speed: no slowdown
        ("500", "slow", "0.96"),
        ("500", "slow", "0.01"),
        ("500", "slow", ""),  # a slowdown needs its factor
        ("500", "flooded", ""),
    ],
)
def test_the_board_page_and_the_api_accept_and_refuse_the_same_closures(
    app: Flask, client: FlaskClient, radius: str, kind: str, factor: str
) -> None:
    web_world(app, client)
    with app.app_context():
        token = add_user(db.session, "api-coord", "coordinator", area="云省")
        db.session.commit()
    body: dict[str, object] = {"lat": 29.85, "lon": 106.2, "radius_m": float(radius), "kind": kind}
    if factor:
        body["speed_factor"] = float(factor)
    api = client.post(
        "/api/v1/roads/closures", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    login(client, "w-coord")
    data = {
        "lat": "29.85",
        "lon": "106.2",
        "radius_m": radius,
        "kind": kind,
        "speed_factor": factor,
    }
    post_form(client, "/board", "/board/closures", data)
    with app.app_context():
        rows = db.session.query(RoadClosure).count()
    api_took = api.status_code == 201
    assert api.status_code in (201, 400, 422), api.get_json()
    assert rows == (2 if api_took else 0), (api.get_json(), rows)


def _board_statements(app: Flask, client: FlaskClient) -> int:
    engine = app.extensions["greenchannel.db"][0]
    count = 0

    def counted(*_: object) -> None:
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        assert client.get("/board/live").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_the_board_page_reads_a_constant_number_of_statements_however_many_cases_are_open(
    app: Flask, client: FlaskClient
) -> None:
    web_world(app, client)
    login(client, "w-clinic")
    refer(client)
    logout(client)
    login(client, "w-coord")
    few = _board_statements(app, client)
    logout(client)
    login(client, "w-clinic")
    for _ in range(6):
        refer(client)
    logout(client)
    login(client, "w-coord")
    many = _board_statements(app, client)
    page = client.get("/board/live").get_data(as_text=True)
    with app.app_context():
        codes = [r.code for r in db.session.query(Referral)]
    assert len(codes) == 7 and all(code in page for code in codes)
    assert many == few, (few, many)
