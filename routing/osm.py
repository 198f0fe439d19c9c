"""Reading drivable roads and ferries from an OpenStreetMap PBF file (pyosmium).

The reader keeps every way node (not only junctions) so that snapping and closures see the road's
real shape. It returns plain arrays (one record per directed segment) for
:meth:`routing.network.RoadNetwork.from_arcs`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from routing.errors import RoadNetworkError
from routing.geo import haversine_m
from routing.speeds import parse_duration, parse_maxspeed

ProgressFn = Callable[[str, float], None]

_NO = frozenset({"no", "private", "agricultural", "forestry", "delivery", "customers"})
_YES = frozenset({"yes", "designated", "permissive", "destination", "emergency"})


class _Tags(Protocol):
    """What we use of a tag list (osmium's ``TagList`` or a plain dict)."""

    def get(self, key: str, default: str | None = None, /) -> str | None: ...


@dataclass(frozen=True)
class OsmArcs:
    """Directed segments read from OSM: node arrays and one record per arc."""

    node_id: np.ndarray  # int64 OSM ids, index = node number
    lat: np.ndarray
    lon: np.ndarray
    tail: np.ndarray  # int64 node numbers
    head: np.ndarray
    travel_time: np.ndarray  # seconds
    length: np.ndarray  # metres
    ways: int
    ferries: int


def _direction(tags: _Tags, highway: str | None) -> tuple[bool, bool]:
    """(forward allowed, backward allowed) for a way."""
    oneway = (tags.get("oneway") or "").strip().lower()
    if oneway in ("yes", "true", "1"):
        return True, False
    if oneway in ("-1", "reverse"):
        return False, True
    if oneway in ("no", "false", "0"):
        return True, True
    junction = (tags.get("junction") or "").lower()
    if junction in ("roundabout", "circular"):
        return True, False
    if highway in ("motorway", "motorway_link"):
        return True, False
    return True, True


def _drivable(tags: _Tags) -> bool:
    for key in ("emergency", "motorcar", "motor_vehicle", "vehicle", "access"):
        value = (tags.get(key) or "").strip().lower()
        if value in _YES:
            return True
        if value in _NO:
            return False
    return tags.get("area") != "yes"


def read_pbf(
    path: str | os.PathLike[str],
    *,
    speeds: Mapping[str, float],
    ferry_speed_kmh: float,
    progress: ProgressFn | None = None,
) -> OsmArcs:
    """Read the drivable ways and ferries of a PBF (or .osm/.o5m) file.

    Raises
    ------
    RoadNetworkError
        The file is missing, empty or unreadable, or holds no drivable road.
    """
    import osmium

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise RoadNetworkError(f"road network file not found: {p}", field="path")
    if os.path.getsize(p) == 0:
        raise RoadNetworkError(f"road network file is empty: {p}", field="path")

    refs: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    way_start: list[int] = [0]
    fwd_speed: list[float] = []  # km/h, 0 = direction not allowed
    bwd_speed: list[float] = []
    duration: list[float] = []  # ferry seconds, nan = use speed
    ferries = 0
    try:
        fp = (
            osmium.FileProcessor(p)
            .with_locations()
            .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
            .with_filter(osmium.filter.KeyFilter("highway", "route"))
        )
        for way in fp:
            if not isinstance(way, osmium.osm.Way):
                continue
            tags = way.tags
            highway = tags.get("highway")
            is_ferry = tags.get("route") == "ferry"
            if is_ferry:
                base = ferry_speed_kmh
            elif highway is not None and highway in speeds:
                base = float(speeds[highway])
            else:
                continue
            if not _drivable(tags):
                continue
            fwd, bwd = _direction(tags, None if is_ferry else highway)
            sp_f = sp_b = base
            if not is_ferry:
                generic = parse_maxspeed(tags.get("maxspeed"))
                f_tag = parse_maxspeed(tags.get("maxspeed:forward"))
                b_tag = parse_maxspeed(tags.get("maxspeed:backward"))
                sp_f = f_tag or generic or base
                sp_b = b_tag or generic or base
            n_before = len(refs)
            for node in way.nodes:
                loc = node.location
                if not loc.valid():
                    continue  # a node cut off by the extract: the way continues without it
                refs.append(node.ref)
                lons.append(loc.lon)
                lats.append(loc.lat)
            if len(refs) - n_before < 2:
                del refs[n_before:], lons[n_before:], lats[n_before:]
                continue
            way_start.append(len(refs))
            fwd_speed.append(sp_f if fwd else 0.0)
            bwd_speed.append(sp_b if bwd else 0.0)
            dur = parse_duration(tags.get("duration")) if is_ferry else None
            duration.append(dur if dur is not None else math.nan)
            ferries += int(is_ferry)
            if progress is not None and len(fwd_speed) % 200_000 == 0:
                progress(f"reading OSM ways ({len(fwd_speed)} so far)", 0.0)
    except RuntimeError as exc:  # libosmium reports format and decoding errors this way
        raise RoadNetworkError(f"cannot read OSM file {p}: {exc}", field="path") from exc
    if not fwd_speed:
        raise RoadNetworkError(f"no drivable road or ferry found in {p}", field="path")
    return _segments(refs, lons, lats, way_start, fwd_speed, bwd_speed, duration, ferries)


def _segments(
    refs: list[int],
    lons: list[float],
    lats: list[float],
    way_start: list[int],
    fwd_speed: list[float],
    bwd_speed: list[float],
    duration: list[float],
    ferries: int,
) -> OsmArcs:
    ref = np.asarray(refs, np.int64)
    lon = np.asarray(lons, np.float64)
    lat = np.asarray(lats, np.float64)
    starts = np.asarray(way_start, np.int64)
    nways = starts.shape[0] - 1
    seg_count = np.diff(starts) - 1
    way_of_seg = np.repeat(np.arange(nways), seg_count)
    # segment k joins flat positions a -> a+1, skipping each way's last node
    a = np.arange(ref.shape[0] - 1)
    last = np.zeros(ref.shape[0], bool)
    last[starts[1:] - 1] = True
    a = a[~last[:-1]]
    b = a + 1
    node_id, inverse = np.unique(ref, return_inverse=True)
    node_lat = np.empty(node_id.shape[0])
    node_lon = np.empty(node_id.shape[0])
    node_lat[inverse] = lat
    node_lon[inverse] = lon
    seg_len = haversine_m(lat[a], lon[a], lat[b], lon[b])
    fs = np.asarray(fwd_speed)[way_of_seg]
    bs = np.asarray(bwd_speed)[way_of_seg]
    dur = np.asarray(duration)[way_of_seg]
    way_len = np.bincount(way_of_seg, weights=seg_len, minlength=nways)[way_of_seg]
    has_dur = ~np.isnan(dur)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(way_len > 0, seg_len / way_len, 1.0 / np.maximum(seg_count[way_of_seg], 1))
        tt_f = np.where(has_dur, dur * share, seg_len / (np.maximum(fs, 1e-9) / 3.6))
        tt_b = np.where(has_dur, dur * share, seg_len / (np.maximum(bs, 1e-9) / 3.6))
    ia = inverse[a]
    ib = inverse[b]
    mf = fs > 0
    mb = bs > 0
    tail = np.concatenate([ia[mf], ib[mb]])
    head = np.concatenate([ib[mf], ia[mb]])
    tt = np.concatenate([tt_f[mf], tt_b[mb]])
    ln = np.concatenate([seg_len[mf], seg_len[mb]])
    return OsmArcs(node_id, node_lat, node_lon, tail, head, tt, ln, nways, ferries)
