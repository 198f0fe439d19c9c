"""Contraction Hierarchies preprocessing (numba).

Nodes are contracted one by one in the order of a lazily kept priority (edge difference + contracted
neighbours + hierarchy depth). Contracting ``v`` adds a shortcut ``u -> w`` for every pair of
neighbours whose only shortest connection in the remaining graph runs through ``v``; a bounded
witness Dijkstra decides that. A node's adjacency lists are frozen when it is contracted, so at the
end each node's out-list holds exactly its upward arcs and its in-list the upward arcs of the
reverse graph: those two lists are the search graphs of the query side.

Arc records: ``tail``, ``head``, ``w`` (seconds), ``ln`` (metres), ``c1``/``c2`` (the two arcs a
shortcut replaces, -1 for an original arc). Arc ids ``0..m-1`` are the original arcs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from routing import _heap

Array = Any
ProgressFn = Callable[[str, float], None]


@njit(cache=True)
def _grow_i(a: Array, need: int) -> Array:
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, a.shape[0] * 3 // 2 + 16), a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _grow_f(a: Array, need: int) -> Array:
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, a.shape[0] * 3 // 2 + 16), np.float64)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _list_append(
    start: Array, cnt: Array, cap: Array, nb: Array, arc: Array, end: int, v: int, x: int, a: int
) -> tuple[Array, Array, int]:
    if cnt[v] == cap[v]:
        newcap = cap[v] * 2 + 2
        nb = _grow_i(nb, end + newcap)
        arc = _grow_i(arc, end + newcap)
        s = start[v]
        for k in range(cnt[v]):
            nb[end + k] = nb[s + k]
            arc[end + k] = arc[s + k]
        start[v] = end
        cap[v] = newcap
        end += newcap
    p = start[v] + cnt[v]
    nb[p] = x
    arc[p] = a
    cnt[v] += 1
    return nb, arc, end


@njit(cache=True)
def _list_remove(start: Array, cnt: Array, nb: Array, arc: Array, v: int, x: int) -> None:
    s = start[v]
    k = 0
    while k < cnt[v]:
        if nb[s + k] == x:
            last = s + cnt[v] - 1
            nb[s + k] = nb[last]
            arc[s + k] = arc[last]
            cnt[v] -= 1
        else:
            k += 1


@njit(cache=True)
def _witness(
    src: int,
    skip: int,
    maxd: float,
    limit: int,
    o_start: Array,
    o_cnt: Array,
    o_nb: Array,
    o_arc: Array,
    a_w: Array,
    dist: Array,
    hk: Array,
    hv: Array,
    pos: Array,
    touched: Array,
) -> int:
    """Bounded Dijkstra from ``src`` avoiding ``skip``; returns the number of touched nodes."""
    ntouch = 0
    dist[src] = 0.0
    touched[ntouch] = src
    ntouch += 1
    size = _heap.push(hk, hv, pos, 0, src, 0.0)
    settled = 0
    while size > 0:
        v, d, size = _heap.pop(hk, hv, pos, size)
        if d > maxd:
            break
        settled += 1
        if settled > limit:
            break
        s = o_start[v]
        for k in range(o_cnt[v]):
            x = o_nb[s + k]
            if x == skip:
                continue
            nd = d + a_w[o_arc[s + k]]
            if nd < dist[x]:
                if dist[x] == np.inf:
                    touched[ntouch] = x
                    ntouch += 1
                dist[x] = nd
                size = _heap.push(hk, hv, pos, size, x, nd)
    _heap.clear(hv, pos, size)
    return ntouch


@njit(cache=True)
def _reset(dist: Array, touched: Array, ntouch: int) -> None:
    for i in range(ntouch):
        dist[touched[i]] = np.inf


@njit(cache=True)
def _simulate(
    v: int,
    limit: int,
    o_start: Array,
    o_cnt: Array,
    o_nb: Array,
    o_arc: Array,
    i_start: Array,
    i_cnt: Array,
    i_nb: Array,
    i_arc: Array,
    a_w: Array,
    dist: Array,
    hk: Array,
    hv: Array,
    pos: Array,
    touched: Array,
) -> int:
    """Number of shortcuts contracting ``v`` would add now."""
    added = 0
    maxout = 0.0
    so = o_start[v]
    for k in range(o_cnt[v]):
        wv = a_w[o_arc[so + k]]
        if wv > maxout:
            maxout = wv
    si = i_start[v]
    for j in range(i_cnt[v]):
        u = i_nb[si + j]
        wu = a_w[i_arc[si + j]]
        nt = _witness(
            u, v, wu + maxout, limit, o_start, o_cnt, o_nb, o_arc, a_w, dist, hk, hv, pos, touched
        )
        for k in range(o_cnt[v]):
            x = o_nb[so + k]
            if x == u:
                continue
            if dist[x] > wu + a_w[o_arc[so + k]]:
                added += 1
        _reset(dist, touched, nt)
    return added


@njit(cache=True)
def ch_init(n: int, tail: Array, head: Array) -> tuple[Array, ...]:
    """Adjacency pools for the contraction; see :func:`ch_contract`."""
    m = tail.shape[0]
    outdeg = np.zeros(n, np.int64)
    indeg = np.zeros(n, np.int64)
    for e in range(m):
        outdeg[tail[e]] += 1
        indeg[head[e]] += 1
    o_start = np.empty(n, np.int64)
    o_cap = np.empty(n, np.int64)
    i_start = np.empty(n, np.int64)
    i_cap = np.empty(n, np.int64)
    oe = 0
    ie = 0
    for v in range(n):
        o_start[v] = oe
        o_cap[v] = outdeg[v] + 2
        oe += o_cap[v]
        i_start[v] = ie
        i_cap[v] = indeg[v] + 2
        ie += i_cap[v]
    o_nb = np.empty(oe * 2, np.int64)
    o_arc = np.empty(oe * 2, np.int64)
    i_nb = np.empty(ie * 2, np.int64)
    i_arc = np.empty(ie * 2, np.int64)
    o_cnt = np.zeros(n, np.int64)
    i_cnt = np.zeros(n, np.int64)
    for e in range(m):
        u = tail[e]
        x = head[e]
        p = o_start[u] + o_cnt[u]
        o_nb[p] = x
        o_arc[p] = e
        o_cnt[u] += 1
        q = i_start[x] + i_cnt[x]
        i_nb[q] = u
        i_arc[q] = e
        i_cnt[x] += 1
    ends = np.array([oe, ie], np.int64)
    return o_start, o_cnt, o_cap, o_nb, o_arc, i_start, i_cnt, i_cap, i_nb, i_arc, ends


@njit(cache=True)
def ch_priorities(
    n: int,
    limit: int,
    o_start: Array,
    o_cnt: Array,
    o_nb: Array,
    o_arc: Array,
    i_start: Array,
    i_cnt: Array,
    i_nb: Array,
    i_arc: Array,
    a_w: Array,
) -> Array:
    dist = np.full(n, np.inf)
    hk = np.empty(n, np.float64)
    hv = np.empty(n, np.int64)
    pos = np.full(n, -1, np.int64)
    touched = np.empty(n, np.int64)
    pri = np.empty(n, np.float64)
    for v in range(n):
        sc = _simulate(
            v,
            limit,
            o_start,
            o_cnt,
            o_nb,
            o_arc,
            i_start,
            i_cnt,
            i_nb,
            i_arc,
            a_w,
            dist,
            hk,
            hv,
            pos,
            touched,
        )
        pri[v] = sc - (o_cnt[v] + i_cnt[v])
    return pri


@njit(cache=True)
def ch_contract(
    budget: int,
    limit_sim: int,
    limit_contract: int,
    o_start: Array,
    o_cnt: Array,
    o_cap: Array,
    o_nb: Array,
    o_arc: Array,
    i_start: Array,
    i_cnt: Array,
    i_cap: Array,
    i_nb: Array,
    i_arc: Array,
    ends: Array,
    a_tail: Array,
    a_head: Array,
    a_w: Array,
    a_ln: Array,
    a_c1: Array,
    a_c2: Array,
    narcs: int,
    pri: Array,
    deleted: Array,
    level: Array,
    rank: Array,
    ncontracted: int,
    pq_k: Array,
    pq_v: Array,
    pq_size: int,
) -> tuple[Any, ...]:
    """Contract up to ``budget`` nodes; all state goes in and comes back out (arrays may grow)."""
    n = o_start.shape[0]
    dist = np.full(n, np.inf)
    hk = np.empty(n, np.float64)
    hv = np.empty(n, np.int64)
    pos = np.full(n, -1, np.int64)
    touched = np.empty(n, np.int64)
    oe = ends[0]
    ie = ends[1]
    done = 0
    # The priority queue is a plain binary heap of (priority, node), updated lazily.
    while done < budget and pq_size > 0:
        v = pq_v[0]
        pq_size -= 1
        if pq_size > 0:
            lk = pq_k[pq_size]
            lv = pq_v[pq_size]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= pq_size:
                    break
                if c + 1 < pq_size and (
                    pq_k[c + 1] < pq_k[c] or (pq_k[c + 1] == pq_k[c] and pq_v[c + 1] < pq_v[c])
                ):
                    c += 1
                if pq_k[c] > lk or (pq_k[c] == lk and pq_v[c] > lv):
                    break
                pq_k[i] = pq_k[c]
                pq_v[i] = pq_v[c]
                i = c
            pq_k[i] = lk
            pq_v[i] = lv
        if rank[v] >= 0:
            continue
        # lazy update: recompute the priority; if it got worse than the next one, re-queue
        sc = _simulate(
            v,
            limit_sim,
            o_start,
            o_cnt,
            o_nb,
            o_arc,
            i_start,
            i_cnt,
            i_nb,
            i_arc,
            a_w,
            dist,
            hk,
            hv,
            pos,
            touched,
        )
        p = float(sc - (o_cnt[v] + i_cnt[v])) + deleted[v] + 0.5 * level[v]
        pri[v] = p
        if pq_size > 0 and (p > pq_k[0] or (p == pq_k[0] and v > pq_v[0])):
            i = pq_size
            pq_size += 1
            while i > 0:
                par = (i - 1) >> 1
                if pq_k[par] < p or (pq_k[par] == p and pq_v[par] < v):
                    break
                pq_k[i] = pq_k[par]
                pq_v[i] = pq_v[par]
                i = par
            pq_k[i] = p
            pq_v[i] = v
            continue
        # contract v
        so = o_start[v]
        si = i_start[v]
        maxout = 0.0
        for k in range(o_cnt[v]):
            wv = a_w[o_arc[so + k]]
            if wv > maxout:
                maxout = wv
        for j in range(i_cnt[v]):
            si = i_start[v]
            so = o_start[v]
            u = i_nb[si + j]
            a_uv = i_arc[si + j]
            wu = a_w[a_uv]
            nt = _witness(
                u,
                v,
                wu + maxout,
                limit_contract,
                o_start,
                o_cnt,
                o_nb,
                o_arc,
                a_w,
                dist,
                hk,
                hv,
                pos,
                touched,
            )
            for k in range(o_cnt[v]):
                x = o_nb[so + k]
                if x == u:
                    continue
                a_vx = o_arc[so + k]
                c = wu + a_w[a_vx]
                if dist[x] <= c:
                    continue
                # a shortcut u -> x is needed: update an existing arc or append a new one
                a_new = narcs
                a_tail = _grow_i(a_tail, narcs + 1)
                a_head = _grow_i(a_head, narcs + 1)
                a_w = _grow_f(a_w, narcs + 1)
                a_ln = _grow_f(a_ln, narcs + 1)
                a_c1 = _grow_i(a_c1, narcs + 1)
                a_c2 = _grow_i(a_c2, narcs + 1)
                a_tail[a_new] = u
                a_head[a_new] = x
                a_w[a_new] = c
                a_ln[a_new] = a_ln[a_uv] + a_ln[a_vx]
                a_c1[a_new] = a_uv
                a_c2[a_new] = a_vx
                narcs += 1
                found = False
                su = o_start[u]
                for q in range(o_cnt[u]):
                    if o_nb[su + q] == x:
                        found = True
                        o_arc[su + q] = a_new
                        break
                if found:
                    sx = i_start[x]
                    for q in range(i_cnt[x]):
                        if i_nb[sx + q] == u:
                            i_arc[sx + q] = a_new
                            break
                else:
                    o_nb, o_arc, oe = _list_append(
                        o_start, o_cnt, o_cap, o_nb, o_arc, oe, u, x, a_new
                    )
                    i_nb, i_arc, ie = _list_append(
                        i_start, i_cnt, i_cap, i_nb, i_arc, ie, x, u, a_new
                    )
                # a witness for a later pair may use this shortcut: keep dist valid for it
                if c < dist[x]:
                    if dist[x] == np.inf:
                        touched[nt] = x
                        nt += 1
                    dist[x] = c
            _reset(dist, touched, nt)
        # freeze v: remove it from its neighbours' lists
        so = o_start[v]
        si = i_start[v]
        for k in range(o_cnt[v]):
            _list_remove(i_start, i_cnt, i_nb, i_arc, o_nb[so + k], v)
        for j in range(i_cnt[v]):
            _list_remove(o_start, o_cnt, o_nb, o_arc, i_nb[si + j], v)
        rank[v] = ncontracted
        ncontracted += 1
        done += 1
        # update the neighbours' priorities
        for side in range(2):
            cntv = o_cnt[v] if side == 0 else i_cnt[v]
            for k in range(cntv):
                x = o_nb[so + k] if side == 0 else i_nb[si + k]
                if rank[x] >= 0:
                    continue
                deleted[x] += 1
                if level[v] + 1 > level[x]:
                    level[x] = level[v] + 1
    ends[0] = oe
    ends[1] = ie
    return (
        o_nb,
        o_arc,
        i_nb,
        i_arc,
        a_tail,
        a_head,
        a_w,
        a_ln,
        a_c1,
        a_c2,
        narcs,
        ncontracted,
        pq_k,
        pq_v,
        pq_size,
    )


@njit(cache=True)
def _heapify(pq_k: Array, pq_v: Array) -> None:
    size = pq_k.shape[0]
    for start in range(size // 2 - 1, -1, -1):
        i = start
        lk = pq_k[i]
        lv = pq_v[i]
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and (
                pq_k[c + 1] < pq_k[c] or (pq_k[c + 1] == pq_k[c] and pq_v[c + 1] < pq_v[c])
            ):
                c += 1
            if pq_k[c] > lk or (pq_k[c] == lk and pq_v[c] > lv):
                break
            pq_k[i] = pq_k[c]
            pq_v[i] = pq_v[c]
            i = c
        pq_k[i] = lk
        pq_v[i] = lv


def build_ch(
    n: int,
    tail: np.ndarray,
    head: np.ndarray,
    w: np.ndarray,
    ln: np.ndarray,
    *,
    progress: ProgressFn | None = None,
    limit_sim: int = 60,
    limit_contract: int = 300,
) -> dict[str, np.ndarray]:
    """Build a Contraction Hierarchy for the arcs ``tail -> head`` (no parallel arcs, no loops).

    Returns the arrays of the query side: ``rank``; upward forward graph ``up_ptr``/``up_nb``/
    ``up_w``/``up_arc``; upward backward graph ``dn_ptr``/``dn_nb``/``dn_w``/``dn_arc``; arc
    records ``arc_tail``/``arc_head``/``arc_w``/``arc_len``/``arc_c1``/``arc_c2`` and
    ``arc_orig`` (the original arc index, -1 for a shortcut).
    """
    m = int(tail.shape[0])
    t64 = tail.astype(np.int64)
    h64 = head.astype(np.int64)
    st = list(ch_init(n, t64, h64))
    o_start, o_cnt, o_cap, o_nb, o_arc, i_start, i_cnt, i_cap, i_nb, i_arc, ends = st
    cap = m * 2 + 16
    a_tail = np.empty(cap, np.int64)
    a_head = np.empty(cap, np.int64)
    a_w = np.empty(cap, np.float64)
    a_ln = np.empty(cap, np.float64)
    a_c1 = np.full(cap, -1, np.int64)
    a_c2 = np.full(cap, -1, np.int64)
    a_tail[:m] = t64
    a_head[:m] = h64
    a_w[:m] = w
    a_ln[:m] = ln
    if progress is not None:
        progress("ordering nodes", 0.0)
    pri = ch_priorities(n, limit_sim, o_start, o_cnt, o_nb, o_arc, i_start, i_cnt, i_nb, i_arc, a_w)
    pq_k = pri.copy()
    pq_v = np.arange(n, dtype=np.int64)
    _heapify(pq_k, pq_v)
    pq_size = n
    deleted = np.zeros(n, np.int64)
    level = np.zeros(n, np.int64)
    rank = np.full(n, -1, np.int64)
    narcs = m
    ncontracted = 0
    budget = max(1000, n // 50)
    while ncontracted < n:
        (
            o_nb,
            o_arc,
            i_nb,
            i_arc,
            a_tail,
            a_head,
            a_w,
            a_ln,
            a_c1,
            a_c2,
            narcs,
            ncontracted,
            pq_k,
            pq_v,
            pq_size,
        ) = ch_contract(
            budget,
            limit_sim,
            limit_contract,
            o_start,
            o_cnt,
            o_cap,
            o_nb,
            o_arc,
            i_start,
            i_cnt,
            i_cap,
            i_nb,
            i_arc,
            ends,
            a_tail,
            a_head,
            a_w,
            a_ln,
            a_c1,
            a_c2,
            narcs,
            pri,
            deleted,
            level,
            rank,
            ncontracted,
            pq_k,
            pq_v,
            pq_size,
        )
        if progress is not None:
            progress("contracting nodes", ncontracted / max(n, 1))
        if pq_size == 0 and ncontracted < n:  # pragma: no cover - defensive
            raise RuntimeError("contraction queue ran dry")
    return _finish(
        n,
        m,
        o_start,
        o_cnt,
        o_nb,
        o_arc,
        i_start,
        i_cnt,
        i_nb,
        i_arc,
        a_tail,
        a_head,
        a_w,
        a_ln,
        a_c1,
        a_c2,
        narcs,
        rank,
    )


def _finish(
    n: int,
    m: int,
    o_start: np.ndarray,
    o_cnt: np.ndarray,
    o_nb: np.ndarray,
    o_arc: np.ndarray,
    i_start: np.ndarray,
    i_cnt: np.ndarray,
    i_nb: np.ndarray,
    i_arc: np.ndarray,
    a_tail: np.ndarray,
    a_head: np.ndarray,
    a_w: np.ndarray,
    a_ln: np.ndarray,
    a_c1: np.ndarray,
    a_c2: np.ndarray,
    narcs: int,
    rank: np.ndarray,
) -> dict[str, np.ndarray]:
    up_ptr, up_arc_old = _gather(n, o_start, o_cnt, o_arc)
    dn_ptr, dn_arc_old = _gather(n, i_start, i_cnt, i_arc)
    used = np.zeros(narcs, bool)
    used[up_arc_old] = True
    used[dn_arc_old] = True
    new_id = np.full(narcs, -1, np.int64)
    keep = np.flatnonzero(used)
    new_id[keep] = np.arange(keep.shape[0])
    c1 = a_c1[:narcs][keep]
    c2 = a_c2[:narcs][keep]
    c1 = np.where(c1 >= 0, new_id[np.maximum(c1, 0)], -1)
    c2 = np.where(c2 >= 0, new_id[np.maximum(c2, 0)], -1)
    orig = np.where(keep < m, keep, -1)
    up_arc = new_id[up_arc_old]
    dn_arc = new_id[dn_arc_old]
    arc_tail = a_tail[:narcs][keep].astype(np.int32)
    arc_head = a_head[:narcs][keep].astype(np.int32)
    arc_w = a_w[:narcs][keep].copy()
    return {
        "rank": rank.astype(np.int32),
        "up_ptr": up_ptr,
        "up_nb": arc_head[up_arc].astype(np.int32),
        "up_w": arc_w[up_arc],
        "up_arc": up_arc.astype(np.int32),
        "dn_ptr": dn_ptr,
        "dn_nb": arc_tail[dn_arc].astype(np.int32),
        "dn_w": arc_w[dn_arc],
        "dn_arc": dn_arc.astype(np.int32),
        "arc_tail": arc_tail,
        "arc_head": arc_head,
        "arc_w": arc_w,
        "arc_len": a_ln[:narcs][keep].copy(),
        "arc_c1": c1.astype(np.int32),
        "arc_c2": c2.astype(np.int32),
        "arc_orig": orig.astype(np.int32),
    }


def _gather(
    n: int, start: np.ndarray, cnt: np.ndarray, arc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(cnt, out=ptr[1:])
    total = int(ptr[-1])
    idx = np.repeat(start - ptr[:-1], cnt) + np.arange(total)
    return ptr, arc[idx].astype(np.int64)
