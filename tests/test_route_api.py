"""Routing through the API and CLI on a small road network: ETA, reasons, closures, coverage."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner
from flask import Flask

from routing import RoadNetwork
from routing.geo import haversine_m
from tests.world import CLINIC, World

ROWS, COLS = 12, 5  # a ladder of roads north of the clinic: a fast trunk and slow side roads
LAT0, LON0, STEP = CLINIC[1] - 0.01, CLINIC[2] - 0.02, 0.02


def ladder_network() -> RoadNetwork:
    lat, lon, tail, head, speed = [], [], [], [], []
    for r in range(ROWS):
        for c in range(COLS):
            lat.append(LAT0 + r * STEP)
            lon.append(LON0 + c * 0.01)
    for r in range(ROWS):
        for c in range(COLS):
            here = r * COLS + c
            neighbours = []
            if r + 1 < ROWS:
                neighbours.append((here + COLS, 80.0 if c == 2 else 30.0))  # column 2 is trunk
            if c + 1 < COLS:
                neighbours.append((here + 1, 30.0))
            for there, kmh in neighbours:
                for a, b in ((here, there), (there, here)):
                    tail.append(a)
                    head.append(b)
                    speed.append(kmh)
    lat_a, lon_a = np.array(lat), np.array(lon)
    t, h = np.array(tail), np.array(head)
    length = haversine_m(lat_a[t], lon_a[t], lat_a[h], lon_a[h])
    return RoadNetwork.from_arcs(
        node_id=np.arange(len(lat)),
        lat=lat_a,
        lon=lon_a,
        tail=t,
        head=h,
        travel_time=length / (np.array(speed) / 3.6),
        length=length,
    )


@pytest.fixture
def world(world: World) -> World:
    """The world on the ladder of roads."""
    ladder_network().save(world.app.config["GREENCHANNEL_ROADS"])
    return world


def route(world: World, body: dict[str, Any], who: str = "clinic") -> Any:
    return world.post(who, "/api/v1/route", body)


PPH = {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}}


def test_the_route_answer_ranks_by_road_time_with_reasons_and_exclusions(world: World) -> None:
    answer = route(world, PPH)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["urgency"] == "critical"
    assert body["requirements"]["maternal_level"] == "M2"
    codes = [c["facility"] for c in body["candidates"]]
    assert codes == ["H-A", "H-B", "H-C", "H-D"]
    etas = [c["eta_minutes"] for c in body["candidates"]]
    assert etas == sorted(etas) and all(c["estimate"] is False for c in body["candidates"])
    assert all(c["reasons"] for c in body["candidates"])
    excluded = {e["facility"]: e["reasons"] for e in body["excluded"]}
    assert "T-1" in excluded and any("M1" in r for r in excluded["T-1"])

    # The ETA equals networkx's shortest path on the same exported weights.
    net = ladder_network()
    graph = net.to_networkx()
    nodes, _ = net.nearest_nodes([CLINIC[1], CLINIC[1] + 0.05], [CLINIC[2], CLINIC[2]])
    expected = (
        nx.shortest_path_length(graph, int(nodes[0]), int(nodes[1]), weight="travel_time") / 60
    )
    assert body["candidates"][0]["eta_minutes"] == pytest.approx(expected, rel=1e-3, abs=0.05)


def test_a_closure_takes_effect_on_the_next_query_and_lifting_it_restores_the_answer(
    world: World,
) -> None:
    before = route(world, PPH).get_json()["candidates"][0]
    closure = world.post(
        "coordinator",
        "/api/v1/roads/closures",
        {"lat": CLINIC[1] + 0.03, "lon": CLINIC[2], "radius_m": 300, "reason": "landslide"},
    )
    assert closure.status_code == 201, closure.get_json()
    during = route(world, PPH).get_json()
    assert during["candidates"][0]["eta_minutes"] > before["eta_minutes"]
    assert any("closure" in w.lower() for w in during["warnings"])
    listed = world.get("clinic", "/api/v1/roads/closures").get_json()["closures"]
    assert [c["reason"] for c in listed] == ["landslide"]
    lifted = world.client.delete(
        f"/api/v1/roads/closures/{closure.get_json()['id']}", headers=world.headers("coordinator")
    )
    assert lifted.status_code == 200
    after = route(world, PPH).get_json()["candidates"][0]
    assert after == before


def test_only_coordinators_close_roads(world: World) -> None:
    body = {"lat": CLINIC[1], "lon": CLINIC[2]}
    assert world.post("clinic", "/api/v1/roads/closures", body).status_code == 403
    assert world.post("H-A", "/api/v1/roads/closures", body).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"origin": {"lat": 200, "lon": 106}, "case": {"conditions": ["PPH"]}}, "origin.lat"),
        ({"origin": {"facility": "T-1"}, "case": {"conditions": ["HEADACHE"]}}, "conditions"),
        (
            {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"], "gestation_weeks": 60}},
            "case.gestation_weeks",
        ),
        (
            {"origin": {"facility": "T-1"}, "requirements": {"capabilities": ["x"]}},
            "requirements.capabilities.0",
        ),
        (
            {"origin": {"facility": "T-1"}, "requirements": {"maternal_level": "M7"}},
            "requirements.maternal_level",
        ),
        ({"origin": {"facility": "NOPE"}, "case": {"conditions": ["PPH"]}}, "origin.facility"),
        ({"origin": {"lat": 29.8}, "case": {"conditions": ["PPH"]}}, "origin.facility"),
        ({"origin": {"facility": "T-1"}}, "case"),
    ],
)
def test_bad_route_requests_name_the_field(world: World, body: dict[str, Any], field: str) -> None:
    answer = route(world, body)
    assert answer.status_code in (400, 404, 422)
    assert answer.get_json()["field"] == field, answer.get_json()


def test_an_origin_far_from_any_road_gets_an_estimate_with_a_warning(world: World) -> None:
    body = {"origin": {"lat": CLINIC[1] - 1.0, "lon": CLINIC[2]}, "case": {"conditions": ["PPH"]}}
    answer = route(world, body).get_json()
    assert all(c["estimate"] for c in answer["candidates"])
    assert answer["warnings"]


def test_coverage_lists_each_township_with_its_nearest_capable_facility(world: World) -> None:
    answer = world.client.get(
        "/api/v1/coverage?maternal_level=M4", headers=world.headers("coordinator")
    )
    assert answer.status_code == 200, answer.get_json()
    rows = answer.get_json()["rows"]
    assert rows == [
        {
            "origin": "T-1",
            "facility": "H-D",
            "eta_minutes": rows[0]["eta_minutes"],
            "distance_km": rows[0]["distance_km"],
            "estimate": False,
        }
    ]
    assert world.client.get("/api/v1/coverage", headers=world.headers("clinic")).status_code == 403


def test_the_route_command_prints_the_ranking(
    world: World, app: Flask, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenchannel.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("GREENCHANNEL_ROADS", app.config["GREENCHANNEL_ROADS"])
    result = CliRunner().invoke(main, ["route", "--from-facility", "T-1", "--condition", "PPH"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("Best choice: H-A")
    assert lines[1].startswith("urgency critical")
    assert lines[2].startswith("window: 120 min from decision")
    assert lines[3].split()[:2] == ["1.", "H-A"]
    result = CliRunner().invoke(
        main, ["route", "--from", "29.8,106.2", "--condition", "PPH", "--json"]
    )
    assert result.exit_code == 0 and '"candidates"' in result.output
    bad = CliRunner().invoke(main, ["route", "--from", "299,106", "--condition", "PPH"])
    assert bad.exit_code == 1 and "lat" in bad.output
    unknown = CliRunner().invoke(main, ["route", "--from-facility", "T-1", "--condition", "X"])
    assert unknown.exit_code == 1 and "unknown condition" in unknown.output
