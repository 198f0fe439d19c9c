"""The road network: import (OSM PBF, GraphML, networkx), the compiled file, snapping.

A :class:`RoadNetwork` is a directed graph in CSR form (arcs sorted by tail) restricted to its
largest strongly connected component, with travel time (seconds) and length (metres) per arc, node
coordinates, and the Contraction Hierarchy (CH) that the router queries. networkx is the model and
the interchange format (:meth:`RoadNetwork.to_networkx`, :meth:`RoadNetwork.to_graphml`); the arrays
do the work.

The compiled file (:mod:`routing._store`) is mapped read-only by every process that loads it, so a
machine holds one copy of a province's arrays however many workers serve it; snapping uses a grid
saved in the same file (:mod:`routing._snap`) rather than a k-d tree built per process.
"""

from __future__ import annotations

import ast
import json
import math
import os
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from routing import _snap, _store
from routing._ch_build import build_ch
from routing._collapse import build_ch_collapsed
from routing.errors import RoadNetworkError
from routing.geo import haversine_m
from routing.speeds import (
    DEFAULT_FERRY_SPEED_KMH,
    DEFAULT_SPEEDS,
    parse_maxspeed,
    validate_speeds,
)

ProgressFn = Callable[[str, float], None]

FORMAT_VERSION = 2
"""Version 2: one aligned, memory-mapped ``.npy`` member per array (see :mod:`routing._store`).
Version 1 (``np.savez``, copied into each process) is still read."""
_ARRAYS = ("node_id", "lat", "lon", "ptr", "head", "travel_time", "length")
_SNAP_ARRAYS = ("snap_order", "snap_ptr")
_CH_ARRAYS = (
    "rank",
    "up_ptr",
    "up_nb",
    "up_w",
    "up_arc",
    "dn_ptr",
    "dn_nb",
    "dn_w",
    "dn_arc",
    "arc_tail",
    "arc_head",
    "arc_w",
    "arc_len",
    "arc_c1",
    "arc_c2",
    "arc_orig",
)


@dataclass(frozen=True)
class ImportReport:
    """What an import kept and dropped.

    Attributes
    ----------
    source
        File name or ``"networkx"``/``"arrays"``.
    nodes_read, arcs_read
        Nodes and directed arcs before cleaning.
    nodes, arcs
        Nodes and arcs of the routable network (largest strongly connected component).
    nodes_dropped, arcs_dropped
        Nodes and arcs outside the largest strongly connected component.
    components_dropped
        Number of other strongly connected components dropped.
    parallel_arcs_merged
        Parallel arcs merged into the fastest one; ``self_loops_dropped`` likewise.
    ways, ferries
        OSM ways (and ferry routes among them) that contributed arcs (0 for other sources).
    import_seconds, ch_seconds
        Wall time of reading/cleaning and of building the Contraction Hierarchy.
    ch_nodes
        Nodes left for the witness-searching contraction once the chains of degree-two (shape)
        nodes were collapsed (``nodes`` when nothing was collapsed; 0 in files of version 1).
    """

    source: str
    nodes_read: int
    arcs_read: int
    nodes: int
    arcs: int
    nodes_dropped: int
    arcs_dropped: int
    components_dropped: int
    parallel_arcs_merged: int
    self_loops_dropped: int
    ways: int = 0
    ferries: int = 0
    import_seconds: float = 0.0
    ch_seconds: float = 0.0
    ch_nodes: int = 0


class RoadNetwork:
    """A routable road network (see module docstring). Build it with a ``from_*`` constructor."""

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        ch: Mapping[str, np.ndarray],
        report: ImportReport,
        *,
        snap: Mapping[str, Any] | None = None,
        max_arc_m: float | None = None,
    ) -> None:
        """``arrays`` may hold ``tail`` and the snapping grid (``snap_order``, ``snap_ptr`` with
        ``snap`` its parameters), as a loaded file does; else they are computed here."""
        self.node_id: np.ndarray = arrays["node_id"]
        self.lat: np.ndarray = arrays["lat"]
        self.lon: np.ndarray = arrays["lon"]
        self.ptr: np.ndarray = arrays["ptr"]
        self.head: np.ndarray = arrays["head"]
        self.travel_time: np.ndarray = arrays["travel_time"]
        self.length: np.ndarray = arrays["length"]
        self.tail: np.ndarray = (
            arrays["tail"]
            if "tail" in arrays
            else np.repeat(np.arange(self.node_count, dtype=np.int32), np.diff(self.ptr))
        )
        self.ch: dict[str, np.ndarray] = dict(ch)
        self.report = report
        if snap is not None and all(k in arrays for k in _SNAP_ARRAYS):
            self.snap_grid = _snap.GridParams(**snap)
            self.snap_order: np.ndarray = arrays["snap_order"]
            self.snap_ptr: np.ndarray = arrays["snap_ptr"]
        else:
            self.snap_grid, self.snap_order, self.snap_ptr = _snap.build_grid(self.lat, self.lon)
        if max_arc_m is None:
            max_arc_m = float(self.length.max()) if self.length.size else 0.0
        self.max_arc_m = max_arc_m
        self.path: str | None = None
        """The file this network was loaded from (``None`` when built in memory)."""

    # -- basic facts ---------------------------------------------------------------------------
    @property
    def node_count(self) -> int:
        """Number of nodes."""
        return int(self.lat.shape[0])

    @property
    def arc_count(self) -> int:
        """Number of directed arcs."""
        return int(self.head.shape[0])

    def __repr__(self) -> str:
        return f"RoadNetwork(nodes={self.node_count}, arcs={self.arc_count})"

    @property
    def mapped(self) -> bool:
        """Whether the arrays are read-only maps of the compiled file (shared between processes)."""
        return isinstance(self.ch["up_nb"], np.memmap)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_arcs(
        cls,
        *,
        node_id: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        tail: np.ndarray,
        head: np.ndarray,
        travel_time: np.ndarray,
        length: np.ndarray,
        source: str = "arrays",
        ways: int = 0,
        ferries: int = 0,
        progress: ProgressFn | None = None,
        collapse_chains: bool = True,
    ) -> RoadNetwork:
        """Build from plain arrays: nodes ``0..n-1`` and directed arcs ``tail[i] -> head[i]``.

        Parallel arcs are merged (the fastest wins), self-loops dropped, and only the largest
        strongly connected component is kept; then the Contraction Hierarchy is built, with the
        chains of degree-two nodes contracted in bulk first unless ``collapse_chains`` is false
        (same travel times either way; see :mod:`routing._collapse`).

        Raises
        ------
        RoadNetworkError
            No arc, inconsistent array lengths, negative or non-finite travel times or coordinates.
        """
        t0 = time.perf_counter()
        node_id = np.asarray(node_id, np.int64)
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        tail = np.asarray(tail, np.int64)
        head = np.asarray(head, np.int64)
        tt = np.asarray(travel_time, np.float64)
        ln = np.asarray(length, np.float64)
        n = int(lat.shape[0])
        m = int(tail.shape[0])
        if not (node_id.shape[0] == lon.shape[0] == n):
            raise RoadNetworkError("node arrays differ in length", field="nodes")
        if not (head.shape[0] == tt.shape[0] == ln.shape[0] == m):
            raise RoadNetworkError("arc arrays differ in length", field="arcs")
        if m == 0 or n == 0:
            raise RoadNetworkError(f"no routable road in {source}", field="arcs")
        if tail.min() < 0 or head.min() < 0 or tail.max() >= n or head.max() >= n:
            raise RoadNetworkError("arc endpoint out of node range", field="arcs")
        if not (np.all(np.isfinite(tt)) and np.all(tt >= 0)):
            raise RoadNetworkError("travel times must be finite and >= 0 seconds", field="arcs")
        if not (np.all(np.isfinite(ln)) and np.all(ln >= 0)):
            raise RoadNetworkError("lengths must be finite and >= 0 metres", field="arcs")
        bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
        if bad.any():
            raise RoadNetworkError(
                f"node {int(node_id[np.argmax(bad)])} has invalid coordinates", field="nodes"
            )
        if progress is not None:
            progress("cleaning graph", 0.3)
        loops = tail == head
        n_loops = int(loops.sum())
        tail, head, tt, ln = tail[~loops], head[~loops], tt[~loops], ln[~loops]
        key = tail * n + head
        order = np.lexsort((ln, tt, key))
        key = key[order]
        first = np.ones(key.shape[0], bool)
        first[1:] = key[1:] != key[:-1]
        sel = order[first]
        merged = int(key.shape[0] - sel.shape[0])
        tail, head, tt, ln = tail[sel], head[sel], tt[sel], ln[sel]
        if tail.shape[0] == 0:
            raise RoadNetworkError(f"no routable road in {source}", field="arcs")
        graph = csr_matrix((np.ones(tail.shape[0]), (tail, head)), shape=(n, n))
        ncomp, labels = connected_components(graph, directed=True, connection="strong")
        biggest = int(np.argmax(np.bincount(labels)))
        keep = labels == biggest
        new_index = np.full(n, -1, np.int64)
        new_index[keep] = np.arange(int(keep.sum()))
        arc_keep = keep[tail] & keep[head]
        tail, head, tt, ln = (
            new_index[tail[arc_keep]],
            new_index[head[arc_keep]],
            tt[arc_keep],
            ln[arc_keep],
        )
        n2 = int(keep.sum())
        if tail.shape[0] == 0:
            raise RoadNetworkError(
                f"no two road nodes of {source} are connected both ways", field="arcs"
            )
        order = np.lexsort((head, tail))
        tail, head, tt, ln = tail[order], head[order], tt[order], ln[order]
        ptr = np.zeros(n2 + 1, np.int64)
        np.cumsum(np.bincount(tail, minlength=n2), out=ptr[1:])
        arrays = {
            "node_id": node_id[keep],
            "lat": lat[keep],
            "lon": lon[keep],
            "ptr": ptr,
            "head": head.astype(np.int32),
            "travel_time": tt,
            "length": ln,
        }
        t1 = time.perf_counter()

        def ch_progress(msg: str, frac: float) -> None:
            if progress is not None:
                progress(msg, 0.35 + 0.65 * frac)

        if collapse_chains:
            ch, ch_nodes = build_ch_collapsed(n2, tail, head, tt, ln, progress=ch_progress)
        else:
            ch, ch_nodes = build_ch(n2, tail, head, tt, ln, progress=ch_progress), n2
        t2 = time.perf_counter()
        report = ImportReport(
            source=source,
            nodes_read=n,
            arcs_read=m,
            nodes=n2,
            arcs=int(tail.shape[0]),
            nodes_dropped=n - n2,
            arcs_dropped=int((~arc_keep).sum()),
            components_dropped=int(ncomp) - 1,
            parallel_arcs_merged=merged,
            self_loops_dropped=n_loops,
            ways=ways,
            ferries=ferries,
            import_seconds=t1 - t0,
            ch_seconds=t2 - t1,
            ch_nodes=ch_nodes,
        )
        if progress is not None:
            progress("done", 1.0)
        return cls(arrays, ch, report)

    @classmethod
    def from_pbf(
        cls,
        path: str | os.PathLike[str],
        *,
        speeds: Mapping[str, float] = DEFAULT_SPEEDS,
        ferry_speed_kmh: float = DEFAULT_FERRY_SPEED_KMH,
        progress: ProgressFn | None = None,
    ) -> RoadNetwork:
        """Import an OpenStreetMap PBF file.

        Parameters
        ----------
        path
            ``.osm.pbf`` file (``.osm``/``.o5m`` work too).
        speeds
            km/h by OSM ``highway`` class; a class missing from the table is not routable. An arc's
            ``maxspeed`` (``maxspeed:forward``/``:backward``) tag wins over its class speed.
        ferry_speed_kmh
            Speed of ``route=ferry`` ways without a usable ``duration`` tag.
        progress
            Called as ``progress(message, fraction_done)`` during the import.

        Raises
        ------
        RoadNetworkError
            Missing, empty or corrupt file; no drivable road.
        """
        from routing.osm import read_pbf

        table = validate_speeds(speeds)
        t0 = time.perf_counter()
        if progress is not None:
            progress("reading OSM ways", 0.0)
        arcs = read_pbf(path, speeds=table, ferry_speed_kmh=ferry_speed_kmh, progress=progress)
        read_s = time.perf_counter() - t0
        net = cls.from_arcs(
            node_id=arcs.node_id,
            lat=arcs.lat,
            lon=arcs.lon,
            tail=arcs.tail,
            head=arcs.head,
            travel_time=arcs.travel_time,
            length=arcs.length,
            source=os.path.basename(os.fspath(path)),
            ways=arcs.ways,
            ferries=arcs.ferries,
            progress=progress,
        )
        net.report = _with_seconds(net.report, read_s)
        return net

    @classmethod
    def from_networkx(
        cls,
        graph: nx.Graph[Any],
        *,
        speeds: Mapping[str, float] = DEFAULT_SPEEDS,
        source: str = "networkx",
        progress: ProgressFn | None = None,
    ) -> RoadNetwork:
        """Import a networkx graph (osmnx-style attributes).

        Nodes need ``x`` (longitude) and ``y`` (latitude). An edge's ``travel_time`` (seconds) is
        used as given; otherwise it is computed from ``length`` (metres; the great-circle distance
        between the endpoints when absent) at the edge's ``maxspeed`` or else its ``highway`` class
        speed from ``speeds`` (the ``road`` speed, else 30 km/h, for an edge with neither). An
        undirected graph is taken as two-way roads; parallel edges keep the fastest.

        Raises
        ------
        RoadNetworkError
            A node without valid coordinates, an unusable attribute, no edge.
        """
        table = validate_speeds(speeds)
        fallback = table.get("road", 30.0)
        nodes = list(graph.nodes)
        if not nodes:
            raise RoadNetworkError(f"{source} has no node", field="nodes")
        index = {node: i for i, node in enumerate(nodes)}
        lat = np.empty(len(nodes))
        lon = np.empty(len(nodes))
        for i, node in enumerate(nodes):
            data = graph.nodes[node]
            try:
                lon[i] = float(data["x"])
                lat[i] = float(data["y"])
            except (KeyError, TypeError, ValueError):
                raise RoadNetworkError(
                    f"node {node!r} of {source} lacks numeric 'x' (lon) and 'y' (lat)",
                    field="nodes",
                ) from None
        try:
            node_id = np.asarray([int(str(node)) for node in nodes], np.int64)
        except (ValueError, OverflowError):
            node_id = np.arange(len(nodes), dtype=np.int64)
        tails: list[int] = []
        heads: list[int] = []
        tts: list[float] = []
        lns: list[float] = []
        two_way = not graph.is_directed()
        for u, v, data in graph.edges(data=True):
            iu, iv = index[u], index[v]
            length = _number(data.get("length"), f"length of edge {u!r}->{v!r}")
            if length is None:
                length = float(haversine_m(lat[iu], lon[iu], lat[iv], lon[iv]))
            tt = _number(data.get("travel_time"), f"travel_time of edge {u!r}->{v!r}")
            if tt is None:
                kmh = parse_maxspeed(_first(data.get("maxspeed")))
                if kmh is None:
                    kmh = _class_speed(data.get("highway"), table, fallback)
                tt = length / (kmh / 3.6)
            tails.append(iu)
            heads.append(iv)
            tts.append(tt)
            lns.append(length)
            if two_way:
                tails.append(iv)
                heads.append(iu)
                tts.append(tt)
                lns.append(length)
        return cls.from_arcs(
            node_id=node_id,
            lat=lat,
            lon=lon,
            tail=np.asarray(tails, np.int64),
            head=np.asarray(heads, np.int64),
            travel_time=np.asarray(tts, np.float64),
            length=np.asarray(lns, np.float64),
            source=source,
            progress=progress,
        )

    @classmethod
    def from_graphml(
        cls,
        path: str | os.PathLike[str],
        *,
        speeds: Mapping[str, float] = DEFAULT_SPEEDS,
        progress: ProgressFn | None = None,
    ) -> RoadNetwork:
        """Import a GraphML file (as written by :meth:`to_graphml` or osmnx); see
        :meth:`from_networkx` for the attributes used.

        Raises
        ------
        RoadNetworkError
            Missing, empty or malformed file, or unusable attributes.
        """
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise RoadNetworkError(f"road network file not found: {p}", field="path")
        if progress is not None:
            progress("reading GraphML", 0.0)
        try:
            graph = nx.read_graphml(p)
        except (ET.ParseError, nx.NetworkXError, KeyError, ValueError, TypeError) as exc:
            raise RoadNetworkError(f"cannot read GraphML {p}: {exc}", field="path") from exc
        return cls.from_networkx(
            graph, speeds=speeds, source=os.path.basename(p), progress=progress
        )

    # -- compiled file -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, build: Mapping[str, Any] | None = None) -> int:
        """Write the compiled network to ``path`` atomically (a temporary file beside it, then a
        rename: a process reading the old file keeps its map); returns the size in bytes.

        ``build`` (e.g. the speeds table) is recorded in the manifest beside the import report.
        """
        payload: dict[str, np.ndarray] = {k: getattr(self, k) for k in _ARRAYS}
        payload["tail"] = self.tail
        payload.update({k: getattr(self, k) for k in _SNAP_ARRAYS})
        payload.update({f"ch_{k}": self.ch[k] for k in _CH_ARRAYS})
        meta = {
            "format": "greenchannel-roads",
            "version": FORMAT_VERSION,
            "report": asdict(self.report),
            "build": dict(build or {}),
            "snap": self.snap_grid.to_dict(),
            "max_arc_m": self.max_arc_m,
            "nodes": self.node_count,
            "arcs": self.arc_count,
        }
        return _store.write(path, payload, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = False) -> RoadNetwork:
        """Map a file written by :meth:`save` read-only (no copy: the page cache is shared by every
        process that maps it). ``verify`` also checks every array's CRC (reads the whole file).
        A version-1 file (``np.savez``) is read into memory as before.

        Raises
        ------
        RoadNetworkError
            Missing file, not a compiled network, a truncated or altered file, an unknown version.
        """
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise RoadNetworkError(f"compiled road network not found: {p}", field="path")
        try:
            manifest = _store.read_manifest(p)
            if manifest is None:
                net = cls._load_v1(p)
            else:
                if manifest.get("format") != "greenchannel-roads":
                    raise RoadNetworkError(f"{p} is not a compiled road network", field="path")
                if manifest.get("version") != FORMAT_VERSION:
                    raise RoadNetworkError(
                        f"{p} has format version {manifest.get('version')}, expected "
                        f"{FORMAT_VERSION}: import the roads again (greenchannel roads import)",
                        field="path",
                    )
                if verify:
                    _store.verify(p)
                mapped = _store.map_arrays(p, manifest)
                arrays = {k: mapped[k] for k in (*_ARRAYS, "tail", *_SNAP_ARRAYS)}
                ch = {k: mapped[f"ch_{k}"] for k in _CH_ARRAYS}
                net = cls(
                    arrays,
                    ch,
                    ImportReport(**manifest["report"]),
                    snap=manifest["snap"],
                    max_arc_m=float(manifest["max_arc_m"]),
                )
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            if isinstance(exc, RoadNetworkError):
                raise
            raise RoadNetworkError(
                f"cannot read compiled road network {p}: {exc}: import the roads again "
                "(greenchannel roads import)",
                field="path",
            ) from exc
        net.path = p
        return net

    def prefault(self) -> float:
        """Read one byte of every page of the mapped arrays, so that the first queries do not
        wait on page faults; returns the seconds it took. The pages are the machine's page
        cache: the first process reads them from disk, the others only map them."""
        t0 = time.perf_counter()
        page = 4096
        for array in (*self.ch.values(), self.snap_ptr, self.snap_order, self.lat, self.lon,
                      self.ptr, self.head, self.travel_time, self.length, self.tail):  # fmt: skip
            if isinstance(array, np.memmap) and array.nbytes:
                np.asarray(array).reshape(-1).view(np.uint8)[::page].max()
        return time.perf_counter() - t0

    @classmethod
    def _load_v1(cls, p: str) -> RoadNetwork:
        """A version-1 file: arrays copied into this process, the grid built here."""
        with np.load(p, allow_pickle=False) as data:
            if "meta" not in data.files:
                raise RoadNetworkError(f"{p} is not a compiled road network", field="path")
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != "greenchannel-roads":
                raise RoadNetworkError(f"{p} is not a compiled road network", field="path")
            if meta.get("version") != 1:
                raise RoadNetworkError(
                    f"{p} has format version {meta.get('version')}, expected "
                    f"{FORMAT_VERSION}: import the roads again (greenchannel roads import)",
                    field="path",
                )
            arrays = {k: data[k] for k in _ARRAYS}
            ch = {k: data[f"ch_{k}"] for k in _CH_ARRAYS}
        return cls(arrays, ch, ImportReport(**meta["report"]))

    # -- interchange ---------------------------------------------------------------------------
    def to_networkx(self) -> nx.DiGraph[int]:
        """A ``DiGraph`` keyed by node id: node ``x``/``y``, edge ``travel_time``/``length``."""
        graph: nx.DiGraph[int] = nx.DiGraph()
        ids = self.node_id.tolist()
        graph.add_nodes_from(
            (i, {"x": x, "y": y})
            for i, x, y in zip(ids, self.lon.tolist(), self.lat.tolist(), strict=True)
        )
        tails = self.node_id[self.tail].tolist()
        heads = self.node_id[self.head].tolist()
        graph.add_edges_from(
            (u, v, {"travel_time": t, "length": ln})
            for u, v, t, ln in zip(
                tails, heads, self.travel_time.tolist(), self.length.tolist(), strict=True
            )
        )
        return graph

    def to_graphml(self, path: str | os.PathLike[str]) -> None:
        """Write the routable network as GraphML (see :meth:`to_networkx`)."""
        nx.write_graphml(self.to_networkx(), os.fspath(path))

    # -- snapping ------------------------------------------------------------------------------
    def nearest_nodes(
        self, lat: Iterable[float] | np.ndarray, lon: Iterable[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node of each point and its great-circle distance in metres."""
        la = np.atleast_1d(np.asarray(lat, np.float64))
        lo = np.atleast_1d(np.asarray(lon, np.float64))
        g = self.snap_grid
        idx, metres = _snap.nearest(
            la,
            lo,
            self.lat,
            self.lon,
            self.snap_order,
            self.snap_ptr,
            g.lat0,
            g.lon0,
            g.dlat,
            g.dlon,
            g.rows,
            g.cols,
            g.cos_min,
        )
        return idx, metres


def _with_seconds(report: ImportReport, read_seconds: float) -> ImportReport:
    data = asdict(report)
    data["import_seconds"] = report.import_seconds + read_seconds
    return ImportReport(**data)


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
        if value is None:
            return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        text = str(value).strip()
        if text.startswith("["):
            try:
                return _number(ast.literal_eval(text), what)
            except (ValueError, SyntaxError):
                pass
        raise RoadNetworkError(f"{what} is not a number: {value!r}", field="edges") from None
    if not math.isfinite(number) or number < 0:
        raise RoadNetworkError(f"{what} must be finite and >= 0, got {value!r}", field="edges")
    return number


def _first(value: object) -> str | None:
    """First value of an osmnx list attribute (``"['50', '60']"``) or the value itself."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return str(value[0]) if value else None
    text = str(value)
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(parsed, list | tuple) and parsed:
            return str(parsed[0])
    return text


def _class_speed(highway: object, table: Mapping[str, float], fallback: float) -> float:
    if highway is None:
        return fallback
    values: list[str]
    if isinstance(highway, list | tuple):
        values = [str(h) for h in highway]
    else:
        text = str(highway)
        values = [text]
        if text.startswith("["):
            try:
                parsed = ast.literal_eval(text)
                if isinstance(parsed, list | tuple):
                    values = [str(h) for h in parsed]
            except (ValueError, SyntaxError):
                pass
    speeds = [table[h] for h in values if h in table]
    return max(speeds) if speeds else fallback
