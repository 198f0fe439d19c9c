"""The demo region's road network, generated: no map file to download or commit.

A prefecture of about 110 × 115 km around the city, built the way Chinese roads are layered:

- 村道 village roads (``unclassified``): a jittered grid of about 2 km with some links missing;
- streets (``residential``, ``tertiary`` arterials) in the city and the three county towns;
- 县道 county roads (``secondary``): from each county town out to each of its townships;
- 乡道 township roads (``tertiary``): each township to its nearest neighbour;
- 省道 provincial roads (``primary``): a ring through the three county towns, and the road
  from Baiwan to the ferry pier;
- 国道 national roads (``trunk``): the old roads from the city to each county town;
- 高速 expressways (``motorway``): the city to each county town, joined to the other roads only
  at interchanges (``motorway_link``);
- a ferry (``ferry``) across the lake to the island township, about 35 minutes.

Every facility gets an access node at its own position, so nothing snaps far. Travel times
come from the region's speed table by road class (the rules' ``road_speeds_kmh``) on lengths
that include a winding factor per class (mountain roads are not straight lines). The result
goes through :meth:`routing.RoadNetwork.from_arcs` like any imported network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

import routing
from routing.geo import haversine_m

# Real roads wind: length along the road over straight-line length, by class.
WINDING = {
    "motorway": 1.04,
    "motorway_link": 1.3,
    "trunk": 1.12,
    "primary": 1.15,
    "secondary": 1.2,
    "tertiary": 1.25,
    "unclassified": 1.35,
    "residential": 1.15,
    "ferry": 1.0,
}
CLASS_NAMES = {
    "motorway": "expressway 高速",
    "trunk": "national road 国道",
    "primary": "provincial road 省道",
    "secondary": "county road 县道",
    "tertiary": "township road 乡道",
    "unclassified": "village road 村道",
    "residential": "street 街道",
    "ferry": "ferry 轮渡",
}

# The region's extent and the lake that holds the island township.
SOUTH, NORTH, WEST, EAST = 29.08, 30.10, 105.95, 107.16
GRID_KM = 2.0
LAKE_CENTRE = (29.70, 107.25)
LAKE_RADII = (0.07, 0.12)  # degrees of latitude and longitude (an ellipse)
ISLAND_RADIUS = 0.018  # degrees
MAINLAND_PIER = (29.70, 107.125)


@dataclass(frozen=True)
class Place:
    """A facility the roads must reach: code, position, and whether it is a town centre."""

    code: str
    lat: float
    lon: float
    kind: str


@dataclass(frozen=True)
class DemoRoads:
    network: routing.RoadNetwork
    km_by_class: dict[str, float]
    roads_by_class: dict[str, int]
    ferry_minutes: float

    def summary(self) -> str:
        counts = ", ".join(
            f"{self.roads_by_class.get(kind, 0)} {label}"
            for kind, label in (
                ("motorway", "expressways"),
                ("trunk", "national roads"),
                ("primary", "provincial roads"),
                ("secondary", "county roads"),
            )
        )
        report = self.network.report
        return (
            f"{report.nodes} nodes, {report.arcs} arcs, "
            f"{sum(self.km_by_class.values()):,.0f} km of road: {counts}, "
            f"{self.km_by_class.get('unclassified', 0):,.0f} km of village roads and a "
            f"{self.ferry_minutes:.0f}-minute ferry to the island"
        )


class _Builder:
    def __init__(self) -> None:
        self.lat: list[float] = []
        self.lon: list[float] = []
        self.tail: list[int] = []
        self.head: list[int] = []
        self.kind: list[str] = []
        self.roads: dict[str, int] = {}

    def node(self, lat: float, lon: float) -> int:
        self.lat.append(float(lat))
        self.lon.append(float(lon))
        return len(self.lat) - 1

    def link(self, a: int, b: int, kind: str) -> None:
        if a == b:
            return
        self.tail += [a, b]
        self.head += [b, a]
        self.kind += [kind, kind]

    def polyline(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        *,
        kind: str,
        step_km: float,
        wiggle: float,
        rng: np.random.Generator,
    ) -> list[int]:
        """Nodes from ``start`` to ``end`` (inclusive) every ``step_km``, bending gently."""
        (lat1, lon1), (lat2, lon2) = start, end
        km = float(haversine_m(lat1, lon1, lat2, lon2)) / 1000
        steps = max(2, math.ceil(km / step_km))
        t = np.linspace(0.0, 1.0, steps + 1)
        a, b = rng.uniform(-wiggle, wiggle, 2)
        bend = a * np.sin(np.pi * t) + b * np.sin(2 * np.pi * t)
        # perpendicular in degrees, scaled so the bend is a fraction of the road's length
        dlat, dlon = lat2 - lat1, (lon2 - lon1) * math.cos(math.radians(lat1))
        lats = lat1 + t * (lat2 - lat1) + bend * dlon
        lons = lon1 + t * (lon2 - lon1) - bend * dlat / math.cos(math.radians(lat1))
        nodes = [self.node(la, lo) for la, lo in zip(lats.tolist(), lons.tolist(), strict=True)]
        for a_node, b_node in itertools.pairwise(nodes):
            self.link(a_node, b_node, kind)
        self.roads[kind] = self.roads.get(kind, 0) + 1
        return nodes


class _Index:
    """Nearest-node lookups among a set of nodes, in a local flat projection (metres)."""

    def __init__(self, builder: _Builder, nodes: Sequence[int]) -> None:
        self.nodes = np.asarray(nodes, np.int64)
        lat = np.asarray(builder.lat)[self.nodes]
        lon = np.asarray(builder.lon)[self.nodes]
        self.tree = cKDTree(_project(lat, lon))

    def nearest(self, lat: float, lon: float, k: int = 1) -> list[tuple[int, float]]:
        dist, idx = self.tree.query(_project(np.array([lat]), np.array([lon]))[0], k=k)
        dists = np.atleast_1d(dist)
        idxs = np.atleast_1d(idx)
        return [(int(self.nodes[i]), float(d)) for d, i in zip(dists, idxs, strict=True)]


def _project(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    y = lat * 111_195.0
    x = lon * 111_195.0 * math.cos(math.radians((SOUTH + NORTH) / 2))
    return np.column_stack([x, y])


def _in_lake(lat: float, lon: float, margin: float = 1.0) -> bool:
    return ((lat - LAKE_CENTRE[0]) / LAKE_RADII[0]) ** 2 + (
        (lon - LAKE_CENTRE[1]) / LAKE_RADII[1]
    ) ** 2 < margin


def _street_grid(
    builder: _Builder,
    centre: tuple[float, float],
    *,
    half_km: float,
    step_km: float,
    arterial_every: int,
) -> list[int]:
    """A town's streets: a square grid, every ``arterial_every``-th line a faster arterial."""
    lat0, lon0 = centre
    n = round(2 * half_km / step_km)
    dlat = step_km / 111.195
    dlon = dlat / math.cos(math.radians(lat0))
    ids = np.empty((n + 1, n + 1), np.int64)
    for i in range(n + 1):
        for j in range(n + 1):
            ids[i, j] = builder.node(
                lat0 + (i - n / 2) * dlat,
                lon0 + (j - n / 2) * dlon,
            )
    for i in range(n + 1):
        for j in range(n + 1):
            if j < n:
                kind = (
                    "tertiary" if i % arterial_every == n // 2 % arterial_every else "residential"
                )
                builder.link(int(ids[i, j]), int(ids[i, j + 1]), kind)
            if i < n:
                kind = (
                    "tertiary" if j % arterial_every == n // 2 % arterial_every else "residential"
                )
                builder.link(int(ids[i, j]), int(ids[i + 1, j]), kind)
    perimeter = [int(x) for x in np.concatenate([ids[0], ids[-1], ids[:, 0], ids[:, -1]])]
    builder.roads["residential"] = builder.roads.get("residential", 0) + 1
    return perimeter


def build_demo_roads(
    places: Sequence[Place],
    *,
    city: tuple[float, float],
    towns: Mapping[str, tuple[float, float]],
    island: tuple[float, float],
    speeds: Mapping[str, float] | None = None,
    seed: int = 7,
) -> DemoRoads:
    """Generate the road network reaching every place (deterministic for a given seed).

    ``towns`` maps a county code ("LH") to its county town; townships are the places of kind
    ``township_health_centre`` whose code starts with that county code.
    """
    table = {**routing.DEFAULT_SPEEDS, "ferry": routing.DEFAULT_FERRY_SPEED_KMH, **(speeds or {})}
    rng = np.random.default_rng(seed)
    b = _Builder()

    # --- streets of the city and the county towns
    urban_boxes: list[tuple[tuple[float, float], float]] = [(city, 6.0)]
    edges_of_towns = _street_grid(b, city, half_km=6.0, step_km=0.6, arterial_every=4)
    for town in towns.values():
        urban_boxes.append((town, 2.0))
        edges_of_towns += _street_grid(b, town, half_km=2.0, step_km=0.5, arterial_every=3)
    urban_nodes = list(range(len(b.lat)))

    def in_town(lat: float, lon: float) -> bool:
        return any(
            abs(lat - c[0]) * 111.195 < half + 0.3
            and abs(lon - c[1]) * 111.195 * math.cos(math.radians(c[0])) < half + 0.3
            for c, half in urban_boxes
        )

    # --- village roads: a jittered grid with some links missing
    dlat = GRID_KM / 111.195
    dlon = dlat / math.cos(math.radians((SOUTH + NORTH) / 2))
    rows = int((NORTH - SOUTH) / dlat) + 1
    cols = int((EAST - WEST) / dlon) + 1
    grid = np.full((rows, cols), -1, np.int64)
    jitter = rng.uniform(-0.3, 0.3, size=(rows, cols, 2))
    for i in range(rows):
        for j in range(cols):
            lat = SOUTH + (i + jitter[i, j, 0]) * dlat
            lon = WEST + (j + jitter[i, j, 1]) * dlon
            if _in_lake(lat, lon, margin=1.15) or in_town(lat, lon):
                continue
            grid[i, j] = b.node(lat, lon)
    keep = rng.random((rows, cols, 2)) > 0.12
    for i in range(rows):
        for j in range(cols):
            if grid[i, j] < 0:
                continue
            if j + 1 < cols and grid[i, j + 1] >= 0 and keep[i, j, 0]:
                b.link(int(grid[i, j]), int(grid[i, j + 1]), "unclassified")
            if i + 1 < rows and grid[i + 1, j] >= 0 and keep[i, j, 1]:
                b.link(int(grid[i, j]), int(grid[i + 1, j]), "unclassified")
    village_nodes = [int(x) for x in grid.ravel() if x >= 0]
    b.roads["unclassified"] = 1
    village = _Index(b, village_nodes)
    for node in edges_of_towns:  # town streets run out into the countryside
        near, metres = village.nearest(b.lat[node], b.lon[node])[0]
        if metres < 2500:
            b.link(node, near, "tertiary")
    base = _Index(b, urban_nodes + village_nodes)

    def junction(node: int, kind: str, *, within_m: float = 1500) -> None:
        near, metres = base.nearest(b.lat[node], b.lon[node])[0]
        if metres < within_m:
            b.link(node, near, kind)

    def attach_ends(nodes: list[int], kind: str) -> None:
        for end in (nodes[0], nodes[-1]):
            junction(end, kind, within_m=4000)

    # --- expressways: city to each county town, joined only at interchanges
    for town in towns.values():
        line = b.polyline(city, town, kind="motorway", step_km=2.0, wiggle=0.08, rng=rng)
        attach_ends(line, "motorway_link")
        for index in range(5, len(line) - 3, 6):  # an interchange every ~12 km
            junction(line[index], "motorway_link", within_m=2500)
    # --- national roads: the older, slower roads to the same towns, junctions everywhere
    for town in towns.values():
        line = b.polyline(city, town, kind="trunk", step_km=1.5, wiggle=0.18, rng=rng)
        attach_ends(line, "trunk")
        for node in line[1:-1:2]:
            junction(node, "unclassified")
    # --- provincial roads: a ring through the county towns
    seats = list(towns.values())
    for first, second in zip(seats, seats[1:] + seats[:1], strict=True):
        line = b.polyline(first, second, kind="primary", step_km=1.5, wiggle=0.15, rng=rng)
        attach_ends(line, "primary")
        for node in line[1:-1:2]:
            junction(node, "unclassified")

    # --- county roads to the townships, township roads between neighbours
    townships = [p for p in places if p.kind == "township_health_centre"]
    township_node: dict[str, int] = {}
    for place in townships:
        county = place.code.split("-")[0]
        if county not in towns:
            continue
        line = b.polyline(
            towns[county],
            (place.lat, place.lon),
            kind="secondary",
            step_km=1.0,
            wiggle=0.2,
            rng=rng,
        )
        attach_ends(line, "secondary")
        for node in line[1:-1:3]:
            junction(node, "unclassified", within_m=1200)
        township_node[place.code] = line[-1]
    codes = sorted(township_node)
    if len(codes) > 1:
        points = np.array([[b.lat[township_node[c]], b.lon[township_node[c]]] for c in codes])
        tree = cKDTree(_project(points[:, 0], points[:, 1]))
        for index, code in enumerate(codes):
            _, near = tree.query(
                _project(points[index : index + 1, 0], points[index : index + 1, 1])[0], k=2
            )
            other = codes[int(near[1])]
            line = b.polyline(
                (b.lat[township_node[code]], b.lon[township_node[code]]),
                (b.lat[township_node[other]], b.lon[township_node[other]]),
                kind="tertiary",
                step_km=1.2,
                wiggle=0.2,
                rng=rng,
            )
            b.link(township_node[code], line[0], "residential")
            b.link(township_node[other], line[-1], "residential")

    # --- the lake: a provincial road to the pier, the ferry, the island's ring road
    nearest_town = min(
        towns.values(),
        key=lambda t: haversine_m(t[0], t[1], MAINLAND_PIER[0], MAINLAND_PIER[1]),
    )
    to_pier = b.polyline(
        nearest_town, MAINLAND_PIER, kind="primary", step_km=1.5, wiggle=0.1, rng=rng
    )
    attach_ends(to_pier, "primary")
    for node in to_pier[1:-1:2]:
        junction(node, "unclassified")
    ring = [
        b.node(
            island[0] + ISLAND_RADIUS * math.sin(2 * math.pi * k / 8),
            island[1]
            + ISLAND_RADIUS * math.cos(2 * math.pi * k / 8) / math.cos(math.radians(island[0])),
        )
        for k in range(8)
    ]
    for a_node, b_node in zip(ring, ring[1:] + ring[:1], strict=True):
        b.link(a_node, b_node, "unclassified")
    island_centre = b.node(*island)
    for spoke in ring[::2]:
        b.link(island_centre, spoke, "residential")
    island_pier = ring[4]  # the west side, facing the mainland
    b.link(to_pier[-1], island_pier, "ferry")
    b.roads["ferry"] = 1
    all_nodes = _Index(b, list(range(len(b.lat))))

    # --- every facility's gate, joined to the two nearest roads
    for place in places:
        gate = b.node(place.lat, place.lon)
        for near, metres in all_nodes.nearest(place.lat, place.lon, k=2):
            if metres < 3000:
                b.link(gate, near, "residential")

    lat = np.asarray(b.lat)
    lon = np.asarray(b.lon)
    tail = np.asarray(b.tail, np.int64)
    head = np.asarray(b.head, np.int64)
    kinds = np.asarray(b.kind)
    straight = haversine_m(lat[tail], lon[tail], lat[head], lon[head])
    winding = np.array([WINDING[k] for k in kinds.tolist()])
    length = np.asarray(straight, np.float64) * winding
    speed_ms = np.array([table[k] for k in kinds.tolist()]) / 3.6
    travel_time = length / speed_ms
    network = routing.RoadNetwork.from_arcs(
        node_id=np.arange(lat.shape[0], dtype=np.int64),
        lat=lat,
        lon=lon,
        tail=tail,
        head=head,
        travel_time=travel_time,
        length=length,
        source="demo region (generated)",
        ways=sum(b.roads.values()),
        ferries=1,
    )
    km_by_class: dict[str, float] = {}
    for kind in set(kinds.tolist()):
        km_by_class[kind] = float(length[kinds == kind].sum()) / 2000  # two arcs per road
    ferry = kinds == "ferry"
    return DemoRoads(
        network=network,
        km_by_class=km_by_class,
        roads_by_class=dict(b.roads),
        ferry_minutes=float(travel_time[ferry].max()) / 60,
    )


def save_network(network: routing.RoadNetwork, target: Path) -> None:
    """Write the compiled network atomically: a process reloading it sees the old file or the
    new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part.npz")
    network.save(partial)
    partial.replace(target)
