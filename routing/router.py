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

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import numpy as np

from routing import _ch_query as Q
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
from routing.query import OriginQuery, ScratchPool, _Buckets, _ClosureState, estimate_km

_ADVISORY = DIVERSIONS.index("advisory")


class Router:
    """Answers routing queries on one road network (or none: estimates only).

    Create one per process and keep it: it caches the facility buckets (by facility node set) and
    the closure-derived data (by closure set). Thread-safe: searches borrow work arrays from a
    pool (:class:`~routing.query.ScratchPool`), which holds as many sets as searches ran at once.

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
        self._pool = (
            ScratchPool(
                network.node_count,
                largest_id=max(network.arc_count, network.ch["arc_len"].shape[0]),
            )
            if network is not None
            else None
        )
        self._lock = threading.Lock()
        self._buckets: OrderedDict[bytes, _Buckets] = OrderedDict()
        self._closures: OrderedDict[frozenset[Closure], _ClosureState] = OrderedDict()

    def warm_up(self) -> float:
        """Read every page of a mapped network file (:meth:`RoadNetwork.prefault`) and compile
        (or load from numba's on-disk cache) every kernel; returns the seconds taken.

        Call it at process start so that the first real query is fast: it waits neither on the
        disk nor on the compiler. The pages go to the machine's page cache, shared by every
        process that maps the file (a server forked after its warm-up finds them there); a network
        held in memory (built here, or a version-1 file) has nothing to read.
        """
        from routing.model import FacilitySnapshot

        t0 = time.perf_counter()
        net = self.network
        if net is None:
            return 0.0
        net.prefault()
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
    @property
    def scratch_pool(self) -> ScratchPool:
        """The work arrays the searches borrow (a router with a network only)."""
        assert self._pool is not None
        return self._pool

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
        ch = net.ch
        with self.scratch_pool.lend() as s:
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
                *s.forward,
                *s.heap,
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
    ) -> OriginQuery:
        """Start a query from a point; use as a context manager (it holds work arrays)."""
        return OriginQuery(self, lat, lon, table, policy, state)

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
                with self.scratch_pool.lend() as s:
                    weights = net.travel_time if state is None else state.weights
                    target = np.asarray([nodes[1]], np.int64)
                    d, length, _ = s.dijkstra(net, int(nodes[0]), weights, target)
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
        with self.scratch_pool.lend() as s:
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
            dd, ll, _ = s.dijkstra(net, int(node[0]), state.weights, target)
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
