"""Province-size road networks: the mapped compiled file, grid snapping, collapsed shape nodes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from scipy.spatial import cKDTree

from routing import DEFAULT_SPEEDS, RoadNetwork, RoadNetworkError, Router
from routing.geo import chord_to_arc_m, to_xyz
from routing.network import _ARRAYS, _CH_ARRAYS
from routing.osm import read_pbf
from tests.routing_helpers import ANDORRA

ROOT = Path(__file__).resolve().parents[1]


def shaped_arcs(side: int, *, seed: int) -> dict[str, np.ndarray]:
    """A grid of junctions whose roads bend through 0-6 shape nodes each (a fifth one-way), with a
    loop road leaving and re-entering one junction and two roads between the same two junctions."""
    rng = np.random.default_rng(seed)
    lat: list[float] = []
    lon: list[float] = []
    tails: list[int] = []
    heads: list[int] = []

    def node(la: float, lo: float) -> int:
        lat.append(la)
        lon.append(lo)
        return len(lat) - 1

    def road(points: list[int], one_way: bool) -> None:
        for a, b in itertools.pairwise(points):
            tails.append(a)
            heads.append(b)
            if not one_way:
                tails.append(b)
                heads.append(a)

    def bend(a: int, b: int, k: int) -> list[int]:
        pts = [a]
        for i in range(1, k + 1):
            f = i / (k + 1)
            pts.append(
                node(
                    lat[a] + f * (lat[b] - lat[a]) + rng.normal(0, 2e-4),
                    lon[a] + f * (lon[b] - lon[a]) + rng.normal(0, 2e-4),
                )
            )
        return [*pts, b]

    grid = [[node(30 + 0.01 * r, 110 + 0.01 * c) for c in range(side)] for r in range(side)]
    for r in range(side):
        for c in range(side):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < side and c + dc < side:
                    pts = bend(grid[r][c], grid[r + dr][c + dc], int(rng.integers(0, 7)))
                    one_way = bool(rng.random() < 0.2)
                    road(pts if rng.random() < 0.5 else pts[::-1], one_way)
    hub = grid[0][0]
    loop = [hub, *(node(29.99 - 0.002 * i, 109.99 + 0.002 * (i % 3)) for i in range(5)), hub]
    road(loop, False)
    road(bend(grid[1][1], grid[1][2], 3), False)  # a second, bendier road beside the first
    n = len(lat)
    la, lo = np.asarray(lat), np.asarray(lon)
    t, h = np.asarray(tails), np.asarray(heads)
    length = np.hypot((la[t] - la[h]) * 111_000, (lo[t] - lo[h]) * 96_000)
    speed = rng.choice([30.0, 50.0, 80.0], t.size)
    return {
        "node_id": np.arange(n) + 10,
        "lat": la,
        "lon": lo,
        "tail": t,
        "head": h,
        "travel_time": length / (speed / 3.6),
        "length": length,
    }


def times_from(net: RoadNetwork, router: Router, source: int, targets: np.ndarray) -> np.ndarray:
    """Seconds from ``source`` to each target through the hierarchy (the route API's kernel)."""
    start = (float(net.lat[source]), float(net.lon[source]))
    return np.asarray([router.travel_time_to(start, int(t), state=None)[0] for t in targets])


def reference_seconds(net: RoadNetwork, source: int) -> dict[int, float]:
    graph: nx.DiGraph[int] = nx.DiGraph()
    for a, b, w in zip(net.tail.tolist(), net.head.tolist(), net.travel_time.tolist(), strict=True):
        graph.add_edge(a, b, weight=w)
    return dict(nx.single_source_dijkstra_path_length(graph, source))


# -- collapsing shape nodes --------------------------------------------------------------------
def test_collapsing_shape_nodes_keeps_every_travel_time_of_plain_dijkstra() -> None:
    arcs = shaped_arcs(9, seed=3)
    net = RoadNetwork.from_arcs(**arcs)
    assert net.report.ch_nodes < net.node_count / 2  # most nodes only shape a road
    router = Router(net)
    rng = np.random.default_rng(4)
    for source in rng.choice(net.node_count, 8, replace=False):
        ref = reference_seconds(net, int(source))
        targets = rng.choice(net.node_count, 60, replace=False)
        got = times_from(net, router, int(source), targets)
        want = np.asarray([ref[int(t)] for t in targets])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_a_ring_road_of_shape_nodes_only_still_routes() -> None:
    k = 12
    angle = np.arange(k) * 2 * np.pi / k
    tail = np.concatenate([np.arange(k), (np.arange(k) + 1) % k])
    head = np.concatenate([(np.arange(k) + 1) % k, np.arange(k)])
    net = RoadNetwork.from_arcs(
        node_id=np.arange(k),
        lat=30 + 0.01 * np.sin(angle),
        lon=110 + 0.01 * np.cos(angle),
        tail=tail,
        head=head,
        travel_time=np.concatenate([np.full(k, 10.0), np.full(k, 20.0)]),
        length=np.full(2 * k, 100.0),
    )
    got = times_from(net, Router(net), 0, np.arange(k))
    want = [min(10.0 * i, 20.0 * (k - i)) for i in range(k)]
    np.testing.assert_allclose(got, want)


def test_the_andorra_extract_collapses_to_its_junctions_with_the_same_travel_times() -> None:
    arcs = read_pbf(ANDORRA, speeds=DEFAULT_SPEEDS, ferry_speed_kmh=20.0)
    kwargs = {k: getattr(arcs, k) for k in (*_ARRAYS[:3], "tail", "head", "travel_time", "length")}
    kwargs["node_id"] = arcs.node_id
    collapsed = RoadNetwork.from_arcs(**kwargs)
    plain = RoadNetwork.from_arcs(**kwargs, collapse_chains=False)
    assert collapsed.node_count == plain.node_count  # every node stays for snapping and maps
    assert collapsed.report.ch_nodes < plain.node_count / 5
    assert plain.report.ch_nodes == plain.node_count
    rc, rp = Router(collapsed), Router(plain)
    rng = np.random.default_rng(18)
    for source in rng.choice(plain.node_count, 10, replace=False):
        targets = rng.choice(plain.node_count, 100, replace=False)
        np.testing.assert_allclose(
            times_from(collapsed, rc, int(source), targets),
            times_from(plain, rp, int(source), targets),
            rtol=1e-9,
        )


# -- the mapped file ---------------------------------------------------------------------------
def test_a_loaded_network_maps_the_file_read_only_and_routes_as_the_built_one(
    tmp_path: Path,
) -> None:
    built = RoadNetwork.from_arcs(**shaped_arcs(6, seed=5))
    path = tmp_path / "roads.npz"
    size = built.save(path, build={"speeds_kmh": {"primary": 60}})
    assert size == path.stat().st_size
    loaded = RoadNetwork.load(path, verify=True)
    assert loaded.mapped and not built.mapped
    for array in (loaded.lat, loaded.head, loaded.tail, loaded.snap_order, *loaded.ch.values()):
        assert isinstance(array, np.memmap) and not array.flags.writeable
        assert array.ctypes.data % 64 == 0  # aligned for numba
    with pytest.raises(ValueError):
        loaded.ch["up_w"][0] = 0.0
    assert loaded.report == built.report
    targets = np.arange(0, built.node_count, 7)
    np.testing.assert_array_equal(
        times_from(loaded, Router(loaded), 3, targets), times_from(built, Router(built), 3, targets)
    )
    with np.load(path) as plain_numpy:  # still an ordinary .npz for other tools
        np.testing.assert_array_equal(plain_numpy["ch_up_nb"], built.ch["up_nb"])
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["version"] == 2 and manifest["build"] == {"speeds_kmh": {"primary": 60}}
    assert manifest["arrays"]["lat"]["shape"] == [built.node_count]


def test_saving_over_a_mapped_file_replaces_it_whole_and_the_old_map_keeps_working(
    tmp_path: Path,
) -> None:
    path = tmp_path / "roads.npz"
    first = RoadNetwork.from_arcs(**shaped_arcs(4, seed=1))
    first.save(path)
    old = RoadNetwork.load(path)
    before = old.ch["up_w"].copy()
    RoadNetwork.from_arcs(**shaped_arcs(5, seed=2)).save(path)
    np.testing.assert_array_equal(old.ch["up_w"], before)
    assert RoadNetwork.load(path).node_count != old.node_count
    assert [p.name for p in tmp_path.iterdir()] == ["roads.npz"]  # no temporary file left


def test_a_version_one_file_is_still_read_into_memory(tmp_path: Path) -> None:
    net = RoadNetwork.from_arcs(**shaped_arcs(4, seed=7))
    payload = {k: getattr(net, k) for k in _ARRAYS}
    payload.update({f"ch_{k}": net.ch[k] for k in _CH_ARRAYS})
    meta = {"format": "greenchannel-roads", "version": 1, "report": asdict(net.report)}
    payload["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "old.npz"
    np.savez(path, **payload)
    old = RoadNetwork.load(path)
    assert not old.mapped
    targets = np.arange(net.node_count)
    np.testing.assert_array_equal(
        times_from(old, Router(old), 0, targets), times_from(net, Router(net), 0, targets)
    )


def test_a_truncated_file_tells_the_operator_to_import_again(tmp_path: Path) -> None:
    path = tmp_path / "roads.npz"
    RoadNetwork.from_arcs(**shaped_arcs(4, seed=8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RoadNetworkError, match="import the roads again"):
        RoadNetwork.load(path)


_CHILD = """
import sys
from routing import RoadNetwork
net = RoadNetwork.load(sys.argv[1])
total = sum(float(a.sum()) for a in (*net.ch.values(), net.lat, net.lon, net.head, net.tail))
print("ready", flush=True)
sys.stdin.readline()
"""


def _mapped_kb(pid: int, path: Path) -> tuple[int, int]:
    """(Rss, Pss) in kB of the mappings of ``path`` in process ``pid``."""
    rss = pss = 0
    current = False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                current = line.rstrip().endswith(str(path))
            elif current and first == "Rss:":
                rss += int(line.split()[1])
            elif current and first == "Pss:":
                pss += int(line.split()[1])
    return rss, pss


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="needs Linux /proc")
def test_two_processes_that_load_the_network_share_one_copy_of_its_arrays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "roads.npz"
    RoadNetwork.from_arcs(**shaped_arcs(30, seed=9)).save(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        usage = [_mapped_kb(child.pid, path) for child in children]
    finally:
        for child in children:
            child.communicate("\n", timeout=30)
    size_kb = path.stat().st_size / 1024
    for rss, pss in usage:
        assert rss > 0.5 * size_kb  # the arrays are read through the map...
        assert pss < 0.6 * rss  # ...and each process is charged about half: one shared copy


def test_the_warm_up_reads_every_page_of_the_mapped_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "roads.npz"
    RoadNetwork.from_arcs(**shaped_arcs(6, seed=4)).save(path)
    net = RoadNetwork.load(path)
    calls: list[float] = []
    real = RoadNetwork.prefault

    def prefault(self: RoadNetwork) -> float:
        assert not calls, "once"
        calls.append(real(self))
        return calls[-1]

    monkeypatch.setattr(RoadNetwork, "prefault", prefault)
    Router(net).warm_up()
    assert len(calls) == 1
    Router(None).warm_up()  # no network: nothing to read
    assert len(calls) == 1


# -- snapping ----------------------------------------------------------------------------------
def test_grid_snapping_finds_the_nearest_node_as_a_kd_tree_does() -> None:
    net = RoadNetwork.from_arcs(**shaped_arcs(8, seed=11))
    rng = np.random.default_rng(12)
    lat = rng.uniform(net.lat.min() - 0.05, net.lat.max() + 0.05, 3000)
    lon = rng.uniform(net.lon.min() - 0.05, net.lon.max() + 0.05, 3000)
    lat[:5], lon[:5] = 60.0, 10.0  # far away from every road
    idx, metres = net.nearest_nodes(lat, lon)
    chord, want = cKDTree(to_xyz(net.lat, net.lon)).query(to_xyz(lat, lon))
    np.testing.assert_allclose(metres, chord_to_arc_m(chord), rtol=1e-9, atol=1e-6)
    assert (idx == want).mean() > 0.999  # only exact ties may differ
    one, one_m = net.nearest_nodes([lat[7]], [lon[7]])
    assert one.tolist() == [idx[7]] and one_m[0] == metres[7]
