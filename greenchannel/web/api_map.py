"""Read-only map data for the coordinator board: the road network as a few polylines."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import defaultdict
from typing import Any

import numpy as np
from flask import Response, current_app, request, url_for
from marshmallow import Schema, fields

from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.auth import require_user
from referral.placement import router_for

blp = Blueprint(
    "map", __name__, url_prefix="/api/v1", description="Map data for the coordinator board"
)
MAX_SEGMENTS = 6000
_lock = threading.Lock()
_cache: list[tuple[Any, dict[str, Any]]] = []  # (network, its geometry): the last one


class GeometrySchema(Schema):
    polylines = fields.List(
        fields.List(fields.List(fields.Float())),
        required=True,
        metadata={"description": "each a list of [lat, lon] points"},
    )
    segments = fields.Integer(required=True, metadata={"description": "road segments drawn"})
    total_segments = fields.Integer(
        required=True, metadata={"description": "road segments in the network"}
    )
    simplified = fields.Boolean(
        required=True, metadata={"description": "true when only the fastest roads are drawn"}
    )


def road_geometry(network: Any, limit: int = MAX_SEGMENTS) -> dict[str, Any]:
    """The fastest ``limit`` undirected segments of ``network``, chained into polylines."""
    if network is None or network.arc_count == 0:
        return {"polylines": [], "segments": 0, "total_segments": 0, "simplified": False}
    tail = np.asarray(network.tail, dtype=np.int64)
    head = np.asarray(network.head, dtype=np.int64)
    low, high = np.minimum(tail, head), np.maximum(tail, head)
    speed = np.asarray(network.length, dtype=float) / np.maximum(
        np.asarray(network.travel_time, dtype=float), 1e-6
    )
    pairs, first = np.unique(low * network.node_count + high, return_index=True)
    total = int(pairs.size)
    order = first[np.argsort(-speed[first], kind="stable")][:limit]
    edges = list(zip(low[order].tolist(), high[order].tolist(), strict=True))
    adjacency: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        adjacency[a].append(b)
        adjacency[b].append(a)
    used: set[tuple[int, int]] = set()
    lat, lon = network.lat, network.lon

    def walk(start: int, nxt: int) -> list[int]:
        path = [start]
        previous, current = start, nxt
        used.add((min(previous, current), max(previous, current)))
        while True:
            path.append(current)
            if len(adjacency[current]) != 2:
                return path
            following = [n for n in adjacency[current] if n != previous]
            if not following:
                return path
            edge = (min(current, following[0]), max(current, following[0]))
            if edge in used:
                return path
            used.add(edge)
            previous, current = current, following[0]

    polylines: list[list[list[float]]] = []
    # Start at junctions and dead ends first, then whatever is left (closed loops).
    starts = sorted(adjacency, key=lambda n: len(adjacency[n]) == 2)
    for node in starts:
        for neighbour in adjacency[node]:
            if (min(node, neighbour), max(node, neighbour)) in used:
                continue
            path = walk(node, neighbour)
            polylines.append([[round(float(lat[n]), 5), round(float(lon[n]), 5)] for n in path])
    return {
        "polylines": polylines,
        "segments": len(edges),
        "total_segments": total,
        "simplified": len(edges) < total,
    }


def network_version(path: str) -> str:
    """The compiled network's identity as this process loads it (``router_for`` reloads a file
    whose modification time moved): its path, modification time and size, hashed."""
    try:
        found = os.stat(path) if path else None
    except OSError:
        found = None
    stamp = f"{path}:{found.st_mtime_ns}:{found.st_size}" if found else f"{path}:none"
    return hashlib.blake2b(f"{stamp}:{MAX_SEGMENTS}".encode(), digest_size=8).hexdigest()


def geometry_url() -> str:
    """The geometry's URL with the network's version in it (cached by the browser for good)."""
    return url_for("map.geometry", v=network_version(current_app.config["GREENCHANNEL_ROADS"]))


@blp.after_request
def _cache_versioned(response: Response) -> Response:
    # Asked with the network's current version, the geometry never changes: the browser keeps
    # it (private: it is served to logged-in users only). Any other version or none: no-store.
    path = current_app.config["GREENCHANNEL_ROADS"]
    if (
        request.endpoint == "map.geometry"
        and response.status_code == 200
        and request.args.get("v") == network_version(path)
    ):
        response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


@blp.route("/roads/geometry", methods=["GET"])
@blp.response(200, GeometrySchema)
def geometry() -> dict[str, Any]:
    """The road network for drawing: the fastest roads (at most 6000 segments) as polylines of
    ``[lat, lon]`` points. Any logged-in user. Asked with ``?v=`` the network's current version
    (the board's link), the answer may be kept by the browser for a year."""
    require_user()
    network = router_for(current_app.config["GREENCHANNEL_ROADS"]).network
    with _lock:
        if _cache and _cache[0][0] is network:
            return _cache[0][1]
    data = road_geometry(network)
    with _lock:
        _cache[:] = [(network, data)]
    return data
