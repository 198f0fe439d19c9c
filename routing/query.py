"""One origin's query: distances to a facility table under the closures of the moment.

The :class:`~routing.router.Router` opens it (``router.query(...)``); ranking asks it for the best
``k`` facilities of a mask (:meth:`OriginQuery.top`), exact under closures (see the router's
module text for how a query works).
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from geopy.distance import geodesic

from routing import _ch_query as Q
from routing._heap import new_heap
from routing.closures import Closure
from routing.facility_table import FacilityTable
from routing.model import (
    Policy,
)
from routing.network import RoadNetwork


class _Scratch:
    """Work arrays sized to the network, for one search at a time (the kernels leave them clean:
    every ``dist`` at inf and the heap empty).

    Distances stay float64 (they decide the answers); node and arc ids are ``index`` (int32
    when they fit: 74 bytes per node instead of 106).
    """

    def __init__(self, n: int, index: type[np.signedinteger] = np.int64) -> None:
        self.dist = np.full(n, np.inf)
        self.lens = np.zeros(n)
        self.par = np.full(n, -1, index)
        self.stalled = np.zeros(n, np.bool_)
        self.order = np.zeros(n, index)
        self.dist2 = np.full(n, np.inf)
        self.lens2 = np.zeros(n)
        self.par2 = np.full(n, -1, index)
        self.stalled2 = np.zeros(n, np.bool_)
        self.order2 = np.zeros(n, index)
        self.hk, self.hv, self.pos = new_heap(n, index)
        self.mark = np.full(n, -1, index)
        self.touched = np.zeros(n, index)

    @property
    def forward(self) -> tuple[np.ndarray, ...]:
        """The forward search's arrays, in the kernels' order (dist, lens, par, stalled, order)."""
        return (self.dist, self.lens, self.par, self.stalled, self.order)

    @property
    def heap(self) -> tuple[np.ndarray, ...]:
        """The heap's arrays, in the kernels' order (keys, values, positions)."""
        return (self.hk, self.hv, self.pos)

    def dijkstra(
        self,
        net: RoadNetwork,
        source: int,
        weights: np.ndarray,
        targets: np.ndarray,
        bound: float = np.inf,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plain Dijkstra on the original arcs under ``weights`` (closures) from ``source`` to
        ``targets``, stopped past ``bound`` seconds: per target its time, length and whether it
        was settled; the tree is left in ``par2`` (the kernel cleans the rest)."""
        return Q.dijkstra(  # type: ignore[no-any-return]
            source,
            net.ptr,
            net.head,
            weights,
            net.length,
            targets,
            bound,
            self.dist2,
            self.lens2,
            self.par2,
            self.mark,
            self.touched,
            *self.heap,
        )


class ScratchPool:
    """Work arrays lent to one search at a time, so that a process holds as many sets as it runs
    searches at once, not one per thread (a set costs ~100 bytes per node: ~1.2 GB at 12 M).

    The kernels hold the GIL (numba without ``nogil``), so two of them never run at once in one
    process; a query holds its set for its kernel only, or, under closures, until it closes (the
    exact search re-reads the forward search). A serving process with 8 threads thus makes one
    set, two when closure queries overlap. A set given back after an exception is dropped, not
    reused: it may hold a half-done search.
    """

    def __init__(self, node_count: int, *, largest_id: int | None = None) -> None:
        self.node_count = node_count
        # int32 ids when every node and arc id fits (the numba kernels compile for either)
        biggest = max(node_count, largest_id or 0)
        self.index: type[np.signedinteger] = np.int32 if biggest < 2**31 - 1 else np.int64
        self._free: list[_Scratch] = []
        self._lock = threading.Lock()
        self.sets = 0  # sets alive (lent or free): at most the searches that ran at once

    def take(self) -> _Scratch:
        """A clean set (made when none is free); give it back with :meth:`give_back`."""
        with self._lock:
            if self._free:
                return self._free.pop()
            self.sets += 1
        return _Scratch(self.node_count, self.index)

    def give_back(self, scratch: _Scratch, *, clean: bool = True) -> None:
        """Return a set: ``clean=False`` (after an exception) drops it."""
        with self._lock:
            if clean:
                self._free.append(scratch)
            else:
                self.sets -= 1

    @contextmanager
    def lend(self) -> Iterator[_Scratch]:
        """A set for the ``with`` block (dropped if the block raises)."""
        scratch = self.take()
        try:
            yield scratch
        except BaseException:
            self.give_back(scratch, clean=False)
            raise
        self.give_back(scratch)


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


class QuerySource(Protocol):
    """What a query needs of its router: the network, the facility buckets, work arrays."""

    @property
    def network(self) -> RoadNetwork | None: ...

    @property
    def scratch_pool(self) -> ScratchPool: ...

    def buckets(self, table: FacilityTable) -> _Buckets: ...


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


def estimate_km(lat1: float, lon1: float, lat2: float, lon2: float, policy: Policy) -> float:
    """Straight-line estimate of the road distance: geodesic × detour factor, in km."""
    return float(geodesic((lat1, lon1), (lat2, lon2)).km) * policy.detour_factor


class OriginQuery:
    """Distances from one origin to a facility table.

    Under closures it holds a set of work arrays from the router's pool until it closes (use it
    as a context manager); without closures it gives the set back before its constructor returns.
    """

    def __init__(
        self,
        router: QuerySource,
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
        self.scratch: _Scratch | None = None
        net = router.network
        if net is None or len(table) == 0:
            self.base_s = self.base_len = np.full(len(table), np.inf)
            if net is not None:
                node, snap = net.nearest_nodes([lat], [lon])
                self.node, self.snap_m = int(node[0]), float(snap[0])
            return
        node, snap = net.nearest_nodes([lat], [lon])
        self.node, self.snap_m = int(node[0]), float(snap[0])
        if self.snap_m > policy.max_snap_m:
            self.base_s = self.base_len = np.full(len(table), np.inf)
            return
        self.road = True
        self.buckets = router.buckets(table)
        pool = router.scratch_pool
        s = pool.take()
        ch = net.ch
        b = self.buckets
        nslots = b.slot_nodes.shape[0]
        self.best = np.empty(nslots)
        self.best_len = np.empty(nslots)
        self.meet = np.empty(nslots, np.int64)
        self.meet_entry = np.empty(nslots, np.int64)
        try:
            count = Q.bucket_query(
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
                *s.forward,
                *s.heap,
            )
        except BaseException:
            pool.give_back(s, clean=False)
            raise
        if state is None:
            # nothing after this reads the forward search: clear it and free the set now
            Q.reset_forward(s.dist, s.order, count)
            pool.give_back(s)
        else:
            self.scratch, self._count = s, count
        self.base_s = self.best[table.slot]
        self.base_len = self.best_len[table.slot]

    def __enter__(self) -> OriginQuery:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(clean=exc_type is None)

    def close(self, *, clean: bool = True) -> None:
        """Clear the forward search from the work arrays and give them back to the pool
        (``clean=False``, after an exception: drop them)."""
        scratch, self.scratch = self.scratch, None
        if scratch is not None:
            Q.reset_forward(scratch.dist, scratch.order, self._count)
            self._count = 0
            self.router.scratch_pool.give_back(scratch, clean=clean)

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
                near = ridx[sel]
                for i, eta, length in zip(
                    near.tolist(), lb[sel].tolist(), self.base_len[near].tolist(), strict=True
                ):
                    hits.append(Hit(i, eta, length, False, eta))
            else:
                exact_hits, unreachable, not_computed = self._exact(ridx, lb, penalty_s, k)
                hits.extend(exact_hits)
        pen = penalty_s[[h.index for h in hits]].tolist() if hits else []
        facilities = table.facilities
        ranked = sorted(
            zip(hits, pen, strict=True),
            key=lambda hp: (
                hp[0].eta_s + hp[1],
                hp[1] > 0,
                hp[0].eta_s,
                facilities[hp[0].index].code,
            ),
        )
        more = len(hits) - min(k, len(hits)) + not_computed
        return TopResult([h for h, _ in ranked[:k]], more, unreachable)

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
        assert s is not None  # held under closures until close()
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
            d, length, got = s.dijkstra(net, self.node, state.weights, targets, kth)
            for j, pos_i in enumerate(pending):
                i = int(ridx[pos_i])
                if not got[j]:
                    not_computed += 1
                elif np.isinf(d[j]):
                    unreachable.append(i)
                else:
                    hits.append(Hit(i, float(d[j]), float(length[j]), False, float(lb[pos_i])))
        return hits, unreachable, not_computed
