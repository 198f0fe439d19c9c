"""The router: travel times from an origin to facilities, under the closures of the moment.

How a query works
-----------------
1. The origin is snapped to its nearest road node (k-d tree). Farther than ``policy.max_snap_m``,
   or with no network at all, every ETA is a straight-line estimate (geodesic × detour factor at a
   rural speed), marked ``estimate=True``.
2. Base travel times to *every* facility node come from one Contraction Hierarchy many-to-many
   query: an upward search from the origin meets the facilities' precomputed "buckets" (a backward
   upward search from each facility node, cached per facility node set).
3. Closures only make arcs slower or unusable, so base times are lower bounds. Candidates are taken
   in order of lower bound; one whose base path (the one the CH found) touches no affected arc
   keeps its base time exactly; the others get an exact Dijkstra in the closure metric, bounded by
   the k-th best exact key found so far. The scan stops when the k best exact keys are all below
   the next lower bound. Everything derived from a closure set is cached by that set, so a new
   closure shows on the very next query and lifting it restores the base answer bit for bit.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from geopy.distance import geodesic

from routing import _ch_query as Q
from routing._heap import new_heap
from routing.closures import Closure, affected_arcs
from routing.errors import InvalidInputError
from routing.facility_table import FacilityTable, prepare_facilities
from routing.model import (
    DIVERSIONS,
    CoverageRow,
    FacilitySnapshot,
    Policy,
    Requirements,
    Route,
    check_coordinates,
)
from routing.network import RoadNetwork

_ADVISORY = DIVERSIONS.index("advisory")


class _Scratch:
    """Per-thread work arrays sized to the network (the kernels leave them clean)."""

    def __init__(self, n: int) -> None:
        self.dist = np.full(n, np.inf)
        self.lens = np.zeros(n)
        self.par = np.full(n, -1, np.int64)
        self.stalled = np.zeros(n, np.bool_)
        self.order = np.zeros(n, np.int64)
        self.dist2 = np.full(n, np.inf)
        self.lens2 = np.zeros(n)
        self.par2 = np.full(n, -1, np.int64)
        self.stalled2 = np.zeros(n, np.bool_)
        self.order2 = np.zeros(n, np.int64)
        self.hk, self.hv, self.pos = new_heap(n)
        self.mark = np.full(n, -1, np.int64)
        self.touched = np.zeros(n, np.int64)


@dataclass(frozen=True)
class _Buckets:
    slot_nodes: np.ndarray
    ptr: np.ndarray
    slot: np.ndarray
    d: np.ndarray
    length: np.ndarray
    arc: np.ndarray
    seconds: float


@dataclass(frozen=True)
class _ClosureState:
    closures: tuple[Closure, ...]
    arcs: np.ndarray  # affected original arcs
    weights: np.ndarray  # travel time per original arc in the closure metric (inf = closed)
    tainted: np.ndarray  # CH arcs whose unpacked path holds an affected arc
    per_closure: dict[str, int]
    seconds: float


@dataclass
class Hit:
    """Internal: a facility reached by a query."""

    index: int
    eta_s: float
    length_m: float
    estimate: bool
    base_eta_s: float


@dataclass
class TopResult:
    """Internal: the best facilities of a mask, plus what is known of the rest."""

    hits: list[Hit]
    more: int  # eligible facilities not listed (reachable or not yet known)
    unreachable: list[int]  # eligible facilities known to be unreachable by road


class Router:
    """Answers routing queries on one road network (or none: estimates only).

    Create one per process and keep it: it caches the facility buckets (by facility node set) and
    the closure-derived data (by closure set). Thread-safe: work arrays are per thread.

    Parameters
    ----------
    network
        The compiled network, or None to answer with straight-line estimates only.
    cache_size
        How many facility node sets and closure sets to keep derived data for.
    """

    def __init__(self, network: RoadNetwork | None, *, cache_size: int = 4) -> None:
        self.network = network
        self._cache_size = cache_size
        self._local = threading.local()
        self._lock = threading.Lock()
        self._buckets: OrderedDict[bytes, _Buckets] = OrderedDict()
        self._closures: OrderedDict[frozenset[Closure], _ClosureState] = OrderedDict()

    def warm_up(self) -> float:
        """Compile (or load from numba's on-disk cache) every kernel; returns seconds taken.

        Call it at process start so that the first real query is fast.
        """
        from routing.model import FacilitySnapshot

        t0 = time.perf_counter()
        net = self.network
        if net is None:
            return 0.0
        lat, lon = float(net.lat[0]), float(net.lon[0])
        probe = Router(net, cache_size=1)
        table = probe.prepare([FacilitySnapshot(code="warm-up", name="warm-up", lat=lat, lon=lon)])
        policy = Policy()
        closure = Closure("warm-up", lat, lon, radius_m=1.0)
        for state in (None, probe.closure_state([closure])):
            with probe.query(lat, lon, table, policy=policy, state=state) as q:
                q.top(np.ones(1, bool), np.zeros(1), 1)
            probe.travel_time_to((lat, lon), 0, state=state)
        probe.route((lat, lon), (lat, lon), closures=[closure])
        return time.perf_counter() - t0

    # -- caches --------------------------------------------------------------------------------
    def _scratch(self) -> _Scratch:
        scratch: _Scratch | None = getattr(self._local, "scratch", None)
        if scratch is None:
            assert self.network is not None
            scratch = _Scratch(self.network.node_count)
            self._local.scratch = scratch
        return scratch

    def prepare(self, facilities: Sequence[FacilitySnapshot] | FacilityTable) -> FacilityTable:
        """Validate and snap facility snapshots (reuse the result while nothing changes)."""
        if isinstance(facilities, FacilityTable):
            if facilities.network is self.network:
                return facilities
            facilities = facilities.facilities
        return prepare_facilities(facilities, network=self.network)

    def buckets(self, table: FacilityTable) -> _Buckets:
        """The facility buckets of a table's node set (built once, then cached)."""
        key = table.slot_nodes.tobytes()
        with self._lock:
            hit = self._buckets.get(key)
            if hit is not None:
                self._buckets.move_to_end(key)
                return hit
        built = self._build_buckets(table.slot_nodes)
        with self._lock:
            self._buckets[key] = built
            while len(self._buckets) > self._cache_size:
                self._buckets.popitem(last=False)
        return built

    def _build_buckets(self, slot_nodes: np.ndarray) -> _Buckets:
        net = self.network
        assert net is not None
        t0 = time.perf_counter()
        s = self._scratch()
        ch = net.ch
        e_node, e_slot, e_d, e_l, e_a = Q.build_buckets(
            slot_nodes,
            ch["up_ptr"],
            ch["up_nb"],
            ch["up_w"],
            ch["dn_ptr"],
            ch["dn_nb"],
            ch["dn_w"],
            ch["dn_arc"],
            ch["arc_len"],
            s.dist,
            s.lens,
            s.par,
            s.stalled,
            s.order,
            s.hk,
            s.hv,
            s.pos,
        )
        order = np.lexsort((e_slot, e_node))
        ptr = np.zeros(net.node_count + 1, np.int64)
        np.cumsum(np.bincount(e_node, minlength=net.node_count), out=ptr[1:])
        return _Buckets(
            slot_nodes=slot_nodes,
            ptr=ptr,
            slot=e_slot[order].astype(np.int32),
            d=e_d[order],
            length=e_l[order],
            arc=e_a[order].astype(np.int32),
            seconds=time.perf_counter() - t0,
        )

    def closure_state(self, closures: Iterable[Closure]) -> _ClosureState | None:
        """Derived data of a closure set (None when no closure); validated, cached by the set."""
        items = tuple(closures)
        for i, c in enumerate(items):
            if not isinstance(c, Closure):
                raise InvalidInputError(f"closures[{i}] is not a Closure", field=f"closures[{i}]")
            c.validate(f"closures[{i}]")
        if not items or self.network is None:
            return None
        key = frozenset(items)
        with self._lock:
            hit = self._closures.get(key)
            if hit is not None:
                self._closures.move_to_end(key)
                return hit
        state = self._build_closure_state(tuple(sorted(key, key=lambda c: c.id)))
        with self._lock:
            self._closures[key] = state
            while len(self._closures) > self._cache_size:
                self._closures.popitem(last=False)
        return state

    def _build_closure_state(self, closures: tuple[Closure, ...]) -> _ClosureState:
        net = self.network
        assert net is not None
        t0 = time.perf_counter()
        arcs, factors, per_closure = affected_arcs(
            closures, tail=net.tail, head=net.head, lat=net.lat, lon=net.lon
        )
        weights = net.travel_time.copy()
        with np.errstate(divide="ignore"):
            weights[arcs] = np.where(
                factors > 0, weights[arcs] / np.maximum(factors, 1e-300), np.inf
            )
        affected = np.zeros(net.arc_count, np.bool_)
        affected[arcs] = True
        ch = net.ch
        tainted = Q.taint_arcs(affected, ch["arc_orig"], ch["arc_c1"], ch["arc_c2"])
        return _ClosureState(
            closures, arcs, weights, tainted, per_closure, time.perf_counter() - t0
        )

    # -- queries -------------------------------------------------------------------------------
    def query(
        self,
        lat: float,
        lon: float,
        table: FacilityTable,
        *,
        policy: Policy,
        state: _ClosureState | None,
    ) -> _OriginQuery:
        """Start a query from a point; use as a context manager (it holds work arrays)."""
        return _OriginQuery(self, lat, lon, table, policy, state)

    def route(
        self,
        origin: tuple[float, float],
        destination: tuple[float, float],
        *,
        closures: Iterable[Closure] = (),
        policy: Policy | None = None,
    ) -> Route:
        """The fastest road route between two points (for a map), or an estimate.

        Raises
        ------
        RoutingError
            Bad coordinates or closures.
        """
        policy = policy or Policy()
        policy.validate()
        olat, olon = check_coordinates(origin[0], origin[1], "origin")
        dlat, dlon = check_coordinates(destination[0], destination[1], "destination")
        state = self.closure_state(closures)
        net = self.network
        if net is not None:
            nodes, snap = net.nearest_nodes([olat, dlat], [olon, dlon])
            if float(snap.max()) <= policy.max_snap_m:
                s = self._scratch()
                weights = net.travel_time if state is None else state.weights
                target = np.asarray([nodes[1]], np.int64)
                d, length, _ = Q.dijkstra(
                    int(nodes[0]),
                    net.ptr,
                    net.head,
                    weights,
                    net.length,
                    target,
                    np.inf,
                    s.dist2,
                    s.lens2,
                    s.par2,
                    s.mark,
                    s.touched,
                    s.hk,
                    s.hv,
                    s.pos,
                )
                if np.isfinite(d[0]):
                    path = [int(nodes[1])]
                    while path[-1] != int(nodes[0]):
                        path.append(int(net.tail[s.par2[path[-1]]]))
                    path.reverse()
                    coords = tuple((float(net.lat[i]), float(net.lon[i])) for i in path)
                    return Route(float(d[0]) / 60.0, float(length[0]) / 1000.0, False, coords)
                return Route(float("inf"), float("inf"), False, ())
        km = estimate_km(olat, olon, dlat, dlon, policy)
        return Route(km / policy.rural_speed_kmh * 60.0, km, True, ())

    def travel_time_to(
        self,
        start: tuple[float, float],
        end_node: int,
        *,
        state: _ClosureState | None,
    ) -> tuple[float, float]:
        """Road ``(seconds, metres)`` from a point's nearest node to ``end_node`` (inf if none)."""
        net = self.network
        assert net is not None
        node, _ = net.nearest_nodes([start[0]], [start[1]])
        s = self._scratch()
        if state is None:
            ch = net.ch
            d, length = Q.p2p(
                int(node[0]),
                int(end_node),
                ch["up_ptr"],
                ch["up_nb"],
                ch["up_w"],
                ch["up_arc"],
                ch["dn_ptr"],
                ch["dn_nb"],
                ch["dn_w"],
                ch["dn_arc"],
                ch["arc_len"],
                s.dist,
                s.lens,
                s.par,
                s.stalled,
                s.order,
                s.dist2,
                s.lens2,
                s.par2,
                s.stalled2,
                s.order2,
                s.hk,
                s.hv,
                s.pos,
            )
            return float(d), float(length)
        target = np.asarray([end_node], np.int64)
        dd, ll, _ = Q.dijkstra(
            int(node[0]),
            net.ptr,
            net.head,
            state.weights,
            net.length,
            target,
            np.inf,
            s.dist2,
            s.lens2,
            s.par2,
            s.mark,
            s.touched,
            s.hk,
            s.hv,
            s.pos,
        )
        return float(dd[0]), float(ll[0])

    def coverage(
        self,
        origins: Sequence[tuple[str, float, float]],
        facilities: Sequence[FacilitySnapshot] | FacilityTable,
        requirements: Requirements,
        *,
        policy: Policy | None = None,
        closures: Iterable[Closure] = (),
    ) -> tuple[CoverageRow, ...]:
        """See :func:`routing.coverage`."""
        policy = policy or Policy()
        policy.validate()
        requirements.validate()
        table = self.prepare(facilities)
        state = self.closure_state(closures)
        mask = table.eligible(requirements)
        zero = np.zeros(len(table))
        rows: list[CoverageRow] = []
        for i, item in enumerate(origins):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise InvalidInputError(
                    f"origins[{i}] must be (code, lat, lon), got {item!r}", field=f"origins[{i}]"
                )
            code, lat, lon = item
            lat, lon = check_coordinates(lat, lon, f"origins[{i}]")
            with self.query(lat, lon, table, policy=policy, state=state) as q:
                top = q.top(mask, zero, 1)
            if top.hits:
                h = top.hits[0]
                rows.append(
                    CoverageRow(
                        str(code),
                        table.facilities[h.index].code,
                        h.eta_s / 60.0,
                        h.length_m / 1000.0,
                        h.estimate,
                    )
                )
            else:
                rows.append(CoverageRow(str(code), None, float("inf"), float("inf"), False))
        return tuple(rows)


def estimate_km(lat1: float, lon1: float, lat2: float, lon2: float, policy: Policy) -> float:
    """Straight-line estimate of the road distance: geodesic × detour factor, in km."""
    return float(geodesic((lat1, lon1), (lat2, lon2)).km) * policy.detour_factor


class _OriginQuery:
    """Distances from one origin to a facility table (holds the thread's work arrays)."""

    def __init__(
        self,
        router: Router,
        lat: float,
        lon: float,
        table: FacilityTable,
        policy: Policy,
        state: _ClosureState | None,
    ) -> None:
        self.router = router
        self.lat = lat
        self.lon = lon
        self.table = table
        self.policy = policy
        self.state = state
        self.snap_m: float | None = None
        self.node = -1
        self.road = False
        self._count = 0
        self.base_s = np.full(len(table), np.inf)
        self.base_len = np.full(len(table), np.inf)
        net = router.network
        if net is None or len(table) == 0:
            if net is not None:
                node, snap = net.nearest_nodes([lat], [lon])
                self.node, self.snap_m = int(node[0]), float(snap[0])
            return
        node, snap = net.nearest_nodes([lat], [lon])
        self.node, self.snap_m = int(node[0]), float(snap[0])
        if self.snap_m > policy.max_snap_m:
            return
        self.road = True
        self.buckets = router.buckets(table)
        self.scratch = router._scratch()
        s = self.scratch
        ch = net.ch
        b = self.buckets
        nslots = b.slot_nodes.shape[0]
        self.best = np.empty(nslots)
        self.best_len = np.empty(nslots)
        self.meet = np.empty(nslots, np.int64)
        self.meet_entry = np.empty(nslots, np.int64)
        self._count = Q.bucket_query(
            self.node,
            ch["up_ptr"],
            ch["up_nb"],
            ch["up_w"],
            ch["up_arc"],
            ch["dn_ptr"],
            ch["dn_nb"],
            ch["dn_w"],
            ch["arc_len"],
            b.ptr,
            b.slot,
            b.d,
            b.length,
            self.best,
            self.best_len,
            self.meet,
            self.meet_entry,
            s.dist,
            s.lens,
            s.par,
            s.stalled,
            s.order,
            s.hk,
            s.hv,
            s.pos,
        )
        self.base_s = self.best[table.slot]
        self.base_len = self.best_len[table.slot]

    def __enter__(self) -> _OriginQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Clear the forward search state from the work arrays."""
        if self._count:
            Q.reset_forward(self.scratch.dist, self.scratch.order, self._count)
            self._count = 0

    def on_road(self, index: np.ndarray) -> np.ndarray:
        """Which of these facilities get a road ETA (else an estimate)."""
        if not self.road:
            return np.zeros(index.shape[0], bool)
        return np.asarray(self.table.snap_m[index] <= self.policy.max_snap_m)

    def top(self, mask: np.ndarray, penalty_s: np.ndarray, k: int) -> TopResult:
        """The ``k`` facilities of ``mask`` with the smallest ``eta + penalty`` (exact ETAs).

        Ties go to the unpenalised facility, then the shorter ETA, then the code.
        """
        table = self.table
        idx = np.flatnonzero(mask)
        road = self.on_road(idx)
        hits: list[Hit] = []
        unreachable: list[int] = []
        not_computed = 0
        # straight-line estimates
        for i in idx[~road].tolist():
            km = estimate_km(
                self.lat, self.lon, float(table.lat[i]), float(table.lon[i]), self.policy
            )
            eta = km / self.policy.rural_speed_kmh * 3600.0
            hits.append(Hit(i, eta, km * 1000.0, True, eta))
        ridx = idx[road]
        if ridx.shape[0]:
            lb = self.base_s[ridx]
            if self.state is None:
                # vectorised: only the best k (and ties) become objects
                keys = lb + penalty_s[ridx]
                if ridx.shape[0] > k:
                    kth = np.partition(keys, k - 1)[k - 1]
                    sel = np.flatnonzero(keys <= kth)
                else:
                    sel = np.arange(ridx.shape[0])
                not_computed = ridx.shape[0] - sel.shape[0]
                for j in sel.tolist():
                    i = int(ridx[j])
                    hits.append(Hit(i, float(lb[j]), float(self.base_len[i]), False, float(lb[j])))
            else:
                exact_hits, unreachable, not_computed = self._exact(ridx, lb, penalty_s, k)
                hits.extend(exact_hits)
        hits.sort(
            key=lambda h: (
                h.eta_s + float(penalty_s[h.index]),
                penalty_s[h.index] > 0,
                h.eta_s,
                table.facilities[h.index].code,
            )
        )
        more = len(hits) - min(k, len(hits)) + not_computed
        return TopResult(hits[:k], more, unreachable)

    def _exact(
        self, ridx: np.ndarray, lb: np.ndarray, penalty_s: np.ndarray, k: int
    ) -> tuple[list[Hit], list[int], int]:
        """Exact closure-metric ETAs for the candidates that can reach the top ``k``."""
        assert self.state is not None
        net = self.router.network
        assert net is not None
        state = self.state
        table = self.table
        s = self.scratch
        b = self.buckets
        ch = net.ch
        key = lb + penalty_s[ridx]
        order = np.argsort(key, kind="stable")
        kth_heap: list[float] = []  # negated keys of the k best exact keys
        kth = np.inf
        hits: list[Hit] = []
        pending: list[int] = []
        tainted = np.zeros(0, np.bool_)
        chunk_end = 0
        visited = 0
        for pos_i in order.tolist():
            if key[pos_i] > kth:
                break
            visited += 1
            if visited > chunk_end:
                lo = chunk_end
                chunk_end = min(order.shape[0], max(2 * chunk_end, 4 * k, 32))
                slots = table.slot[ridx[order[lo:chunk_end]]]
                part = Q.trace_tainted(
                    slots,
                    self.meet,
                    self.meet_entry,
                    s.par,
                    ch["arc_tail"],
                    ch["arc_head"],
                    b.ptr,
                    b.slot,
                    b.arc,
                    state.tainted,
                )
                tainted = np.concatenate([tainted, part])
            i = int(ridx[pos_i])
            if tainted[visited - 1]:
                pending.append(pos_i)
                continue
            hits.append(Hit(i, float(lb[pos_i]), float(self.base_len[i]), False, float(lb[pos_i])))
            exact_key = float(key[pos_i])
            if len(kth_heap) < k:
                heapq.heappush(kth_heap, -exact_key)
            elif exact_key < -kth_heap[0]:
                heapq.heapreplace(kth_heap, -exact_key)
            if len(kth_heap) == k:
                kth = -kth_heap[0]
        not_computed = order.shape[0] - visited
        unreachable: list[int] = []
        if pending:
            targets = table.node[ridx[pending]]
            d, length, got = Q.dijkstra(
                self.node,
                net.ptr,
                net.head,
                state.weights,
                net.length,
                targets,
                kth,
                s.dist2,
                s.lens2,
                s.par2,
                s.mark,
                s.touched,
                s.hk,
                s.hv,
                s.pos,
            )
            for j, pos_i in enumerate(pending):
                i = int(ridx[pos_i])
                if not got[j]:
                    not_computed += 1
                elif np.isinf(d[j]):
                    unreachable.append(i)
                else:
                    hits.append(Hit(i, float(d[j]), float(length[j]), False, float(lb[pos_i])))
        return hits, unreachable, not_computed
