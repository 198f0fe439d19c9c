"""Shared builders for the routing tests: small synthetic networks and the networkx reference."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from routing import CAPABILITIES, FacilitySnapshot, Policy, Ranking, Requirements, RoadNetwork

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
ANDORRA = DATA_DIR / "andorra.osm.pbf"
CAPS = sorted(CAPABILITIES)


def grid_network(
    width: int,
    height: int,
    *,
    seed: int,
    keep: float = 0.8,
    oneway: float = 0.1,
    spacing_deg: float = 0.003,
) -> RoadNetwork:
    """A perturbed grid of roads with random speeds, some one-way arcs and missing links."""
    rng = np.random.default_rng(seed)
    n = width * height
    idx = np.arange(n).reshape(height, width)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    m = rng.random(a.size) < keep
    a, b = a[m], b[m]
    lat = 30.0 + (idx // width).ravel() * spacing_deg + rng.normal(0, spacing_deg / 10, n)
    lon = 110.0 + (idx % width).ravel() * spacing_deg + rng.normal(0, spacing_deg / 10, n)
    length = np.hypot((lat[a] - lat[b]) * 111_000, (lon[a] - lon[b]) * 96_000)
    speed = rng.choice([30.0, 40.0, 60.0, 100.0], a.size, p=[0.5, 0.3, 0.15, 0.05])
    tt = length / (speed / 3.6)
    one = rng.random(a.size) < oneway
    flip = rng.random(a.size) < 0.5
    fwd_t = np.where(one & flip, b, a)
    fwd_h = np.where(one & flip, a, b)
    tail = np.concatenate([fwd_t, b[~one]])
    head = np.concatenate([fwd_h, a[~one]])
    return RoadNetwork.from_arcs(
        node_id=np.arange(n) + 1000,
        lat=lat,
        lon=lon,
        tail=tail,
        head=head,
        travel_time=np.concatenate([tt, tt[~one]]),
        length=np.concatenate([length, length[~one]]),
    )


def reference_graph(net: RoadNetwork, tmp_path: Path) -> nx.DiGraph:  # type: ignore[type-arg]
    """The network exported to GraphML and read back by plain networkx."""
    path = tmp_path / "roads.graphml"
    net.to_graphml(path)
    return nx.read_graphml(path)


def random_facilities(
    net: RoadNetwork, count: int, *, seed: int, offset_deg: float = 0.0002
) -> list[FacilitySnapshot]:
    rng = np.random.default_rng(seed)
    nodes = rng.integers(0, net.node_count, count)
    out = []
    for i, node in enumerate(nodes.tolist()):
        beds = {
            "obstetric": [None, 0, 1, 3][int(rng.integers(0, 4))],
            "maternal_icu": [None, 0, 2][int(rng.integers(0, 3))],
        }
        out.append(
            FacilitySnapshot(
                code=f"F{i:03d}",
                name=f"Hospital {i}",
                lat=float(net.lat[node]) + float(rng.normal(0, offset_deg)),
                lon=float(net.lon[node]) + float(rng.normal(0, offset_deg)),
                maternal_level=int(rng.integers(0, 5)),
                neonatal_level=int(rng.integers(0, 5)),
                capabilities=frozenset(rng.choice(CAPS, int(rng.integers(0, 8)), replace=False)),
                unavailable=frozenset(rng.choice(CAPS, int(rng.integers(0, 2)), replace=False)),
                beds=beds,
                diversion=["normal", "normal", "advisory", "closed"][int(rng.integers(0, 4))],
                diversion_reason="theatre full",
                stale=bool(rng.random() < 0.25),
                active=bool(rng.random() < 0.95),
            )
        )
    return out


def node_key(net: RoadNetwork, index: int) -> str:
    """The GraphML node key of a network node."""
    return str(int(net.node_id[index]))


def meets(f: FacilitySnapshot, req: Requirements) -> bool:
    """Independent statement of "meets every requirement and is open"."""
    return (
        f.active
        and f.maternal_level >= req.maternal_level
        and f.neonatal_level >= req.neonatal_level
        and req.capabilities <= f.capabilities
        and not (req.capabilities & f.unavailable)
        and f.diversion != "closed"
        and all(f.beds.get(bed) != 0 for bed in req.beds)
    )


def check_ranking(
    result: Ranking,
    facilities: list[FacilitySnapshot],
    req: Requirements,
    policy: Policy,
    reference: dict[str, float],
) -> None:
    """Assert the ranking's invariants against reference ETAs (seconds, by facility code;
    missing = unreachable)."""
    by_code = {f.code: f for f in facilities}
    tol = policy.tolerance_minutes
    keys = []
    for c in result.candidates:
        f = by_code[c.facility]
        assert meets(f, req), f"{c.facility} proposed but does not meet {req}"
        assert c.facility in reference
        assert c.eta_minutes * 60 == pytest.approx(reference[c.facility], rel=1e-3, abs=1e-6)
        confirmed = not (f.stale or f.diversion == "advisory")
        assert c.confirmed == confirmed
        keys.append(reference[c.facility] / 60 + (0 if confirmed else tol))
    assert keys == sorted(keys) or np.allclose(keys, sorted(keys))
    listed = {c.facility for c in result.candidates}
    eligible_reachable = [f for f in facilities if meets(f, req) and f.code in reference]
    assert len(listed) == min(policy.top_k, len(eligible_reachable))
    if keys:
        for f in eligible_reachable:
            if f.code not in listed:
                confirmed = not (f.stale or f.diversion == "advisory")
                key = reference[f.code] / 60 + (0 if confirmed else tol)
                assert key >= keys[-1] - 1e-6
    excluded = {e.facility for e in result.excluded}
    assert not excluded & listed
    for e in result.excluded:
        assert e.reasons
        if meets(by_code[e.facility], req):
            assert [r.code for r in e.reasons] == ["unreachable"]
    assert len(listed) + len(excluded) + result.more_candidates == len(facilities)
