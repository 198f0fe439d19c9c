"""Query kernels (numba): upward searches, facility buckets, tainted-path checks, plain Dijkstra.

All kernels take caller-owned scratch arrays sized ``n`` (lent to one search at a time by
``routing.query.ScratchPool``; the kernels hold the GIL) and leave them clean (``dist`` = inf,
``pos`` = -1) when they return, except :func:`bucket_query`, whose forward search state is kept
for :func:`trace_tainted` and cleared by :func:`reset_forward`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from routing import _heap

Array = Any


@njit(cache=True)
def upward(
    s: int,
    ptr: Array,
    nb: Array,
    w: Array,
    arc: Array,
    arc_len: Array,
    sptr: Array,
    snb: Array,
    sw: Array,
    dist: Array,
    lens: Array,
    par: Array,
    stalled: Array,
    order: Array,
    hk: Array,
    hv: Array,
    pos: Array,
) -> int:
    """Full upward Dijkstra with stall-on-demand; settled nodes go to ``order``, returns count.

    ``sptr/snb/sw`` is the opposite upward graph, used only for the stall test.
    """
    dist[s] = 0.0
    lens[s] = 0.0
    par[s] = -1
    size = _heap.push(hk, hv, pos, 0, s, 0.0)
    cnt = 0
    while size > 0:
        v, d, size = _heap.pop(hk, hv, pos, size)
        order[cnt] = v
        cnt += 1
        st = False
        for j in range(sptr[v], sptr[v + 1]):
            if dist[snb[j]] + sw[j] < d:
                st = True
                break
        stalled[v] = st
        if st:
            continue
        for j in range(ptr[v], ptr[v + 1]):
            x = nb[j]
            nd = d + w[j]
            if nd < dist[x]:
                dist[x] = nd
                a = arc[j]
                lens[x] = lens[v] + arc_len[a]
                par[x] = a
                size = _heap.push(hk, hv, pos, size, x, nd)
    return cnt


@njit(cache=True)
def reset_forward(dist: Array, order: Array, cnt: int) -> None:
    for i in range(cnt):
        dist[order[i]] = np.inf


@njit(cache=True)
def build_buckets(
    targets: Array,
    up_ptr: Array,
    up_nb: Array,
    up_w: Array,
    dn_ptr: Array,
    dn_nb: Array,
    dn_w: Array,
    dn_arc: Array,
    arc_len: Array,
    dist: Array,
    lens: Array,
    par: Array,
    stalled: Array,
    order: Array,
    hk: Array,
    hv: Array,
    pos: Array,
) -> tuple[Array, Array, Array, Array, Array]:
    """Backward upward search from every target; returns bucket entries (unsorted).

    Entry ``(node, slot, dist, len, arc)``: the target of ``slot`` is ``dist`` seconds (``len``
    metres) from ``node`` going down, and ``arc`` (``node -> next``) is the first arc of that path,
    -1 at the target itself.
    """
    cap = targets.shape[0] * 64 + 16
    e_node = np.empty(cap, np.int64)
    e_slot = np.empty(cap, np.int64)
    e_d = np.empty(cap, np.float64)
    e_l = np.empty(cap, np.float64)
    e_a = np.empty(cap, np.int64)
    ne = 0
    for f in range(targets.shape[0]):
        cnt = upward(
            targets[f],
            dn_ptr,
            dn_nb,
            dn_w,
            dn_arc,
            arc_len,
            up_ptr,
            up_nb,
            up_w,
            dist,
            lens,
            par,
            stalled,
            order,
            hk,
            hv,
            pos,
        )
        if ne + cnt > cap:
            cap = max(cap * 2, ne + cnt)
            n1 = np.empty(cap, np.int64)
            n1[:ne] = e_node[:ne]
            e_node = n1
            n2 = np.empty(cap, np.int64)
            n2[:ne] = e_slot[:ne]
            e_slot = n2
            n3 = np.empty(cap, np.float64)
            n3[:ne] = e_d[:ne]
            e_d = n3
            n4 = np.empty(cap, np.float64)
            n4[:ne] = e_l[:ne]
            e_l = n4
            n5 = np.empty(cap, np.int64)
            n5[:ne] = e_a[:ne]
            e_a = n5
        for i in range(cnt):
            v = order[i]
            if stalled[v]:
                continue
            e_node[ne] = v
            e_slot[ne] = f
            e_d[ne] = dist[v]
            e_l[ne] = lens[v]
            e_a[ne] = par[v]
            ne += 1
        reset_forward(dist, order, cnt)
    return e_node[:ne], e_slot[:ne], e_d[:ne], e_l[:ne], e_a[:ne]


@njit(cache=True)
def bucket_query(
    s: int,
    up_ptr: Array,
    up_nb: Array,
    up_w: Array,
    up_arc: Array,
    dn_ptr: Array,
    dn_nb: Array,
    dn_w: Array,
    arc_len: Array,
    b_ptr: Array,
    b_slot: Array,
    b_d: Array,
    b_l: Array,
    best: Array,
    best_len: Array,
    meet: Array,
    meet_entry: Array,
    dist: Array,
    lens: Array,
    par: Array,
    stalled: Array,
    order: Array,
    hk: Array,
    hv: Array,
    pos: Array,
) -> int:
    """Travel time from ``s`` to every bucket target (``best``, inf if unreachable).

    The forward search state stays in the scratch arrays (for :func:`trace_tainted`); the caller
    clears it with :func:`reset_forward` using the returned count.
    """
    best[:] = np.inf
    cnt = upward(
        s,
        up_ptr,
        up_nb,
        up_w,
        up_arc,
        arc_len,
        dn_ptr,
        dn_nb,
        dn_w,
        dist,
        lens,
        par,
        stalled,
        order,
        hk,
        hv,
        pos,
    )
    for i in range(cnt):
        v = order[i]
        if stalled[v]:
            continue
        dv = dist[v]
        for e in range(b_ptr[v], b_ptr[v + 1]):
            f = b_slot[e]
            nd = dv + b_d[e]
            if nd < best[f]:
                best[f] = nd
                best_len[f] = lens[v] + b_l[e]
                meet[f] = v
                meet_entry[f] = e
    return cnt


@njit(cache=True)
def trace_tainted(
    slots: Array,
    meet: Array,
    meet_entry: Array,
    par: Array,
    arc_tail: Array,
    arc_head: Array,
    b_ptr: Array,
    b_slot: Array,
    b_a: Array,
    tainted: Array,
) -> Array:
    """For each slot, whether the path found by :func:`bucket_query` uses a tainted arc."""
    out = np.zeros(slots.shape[0], np.bool_)
    for i in range(slots.shape[0]):
        f = slots[i]
        hit = False
        x = meet[f]
        while par[x] >= 0:
            a = par[x]
            if tainted[a]:
                hit = True
                break
            x = arc_tail[a]
        e = meet_entry[f]
        while not hit:
            a = b_a[e]
            if a < 0:
                break
            if tainted[a]:
                hit = True
                break
            y = arc_head[a]
            lo = b_ptr[y]
            hi = b_ptr[y + 1]
            while lo < hi:  # entries of a node are sorted by slot
                mid = (lo + hi) >> 1
                if b_slot[mid] < f:
                    lo = mid + 1
                else:
                    hi = mid
            e = lo
        out[i] = hit
    return out


@njit(cache=True)
def taint_arcs(affected_orig: Array, arc_orig: Array, arc_c1: Array, arc_c2: Array) -> Array:
    """CH arcs whose unpacked path contains an affected original arc (children precede parents)."""
    k = arc_orig.shape[0]
    out = np.zeros(k, np.bool_)
    for a in range(k):
        o = arc_orig[a]
        if o >= 0:
            out[a] = affected_orig[o]
        else:
            out[a] = out[arc_c1[a]] or out[arc_c2[a]]
    return out


@njit(cache=True)
def p2p(
    s: int,
    t: int,
    up_ptr: Array,
    up_nb: Array,
    up_w: Array,
    up_arc: Array,
    dn_ptr: Array,
    dn_nb: Array,
    dn_w: Array,
    dn_arc: Array,
    arc_len: Array,
    dist: Array,
    lens: Array,
    par: Array,
    stalled: Array,
    order: Array,
    dist2: Array,
    lens2: Array,
    par2: Array,
    stalled2: Array,
    order2: Array,
    hk: Array,
    hv: Array,
    pos: Array,
) -> tuple[float, float]:
    """Point-to-point CH query: ``(seconds, metres)``, inf if unreachable."""
    c1 = upward(
        s,
        up_ptr,
        up_nb,
        up_w,
        up_arc,
        arc_len,
        dn_ptr,
        dn_nb,
        dn_w,
        dist,
        lens,
        par,
        stalled,
        order,
        hk,
        hv,
        pos,
    )
    c2 = upward(
        t,
        dn_ptr,
        dn_nb,
        dn_w,
        dn_arc,
        arc_len,
        up_ptr,
        up_nb,
        up_w,
        dist2,
        lens2,
        par2,
        stalled2,
        order2,
        hk,
        hv,
        pos,
    )
    bd = np.inf
    bl = np.inf
    for i in range(c1):
        v = order[i]
        if stalled[v]:
            continue
        d = dist[v] + dist2[v]
        if d < bd and not stalled2[v]:
            bd = d
            bl = lens[v] + lens2[v]
    reset_forward(dist, order, c1)
    reset_forward(dist2, order2, c2)
    return bd, bl


@njit(cache=True)
def dijkstra(
    s: int,
    ptr: Array,
    head: Array,
    w: Array,
    ln: Array,
    targets: Array,
    bound: float,
    dist: Array,
    lens: Array,
    par: Array,
    mark: Array,
    touched: Array,
    hk: Array,
    hv: Array,
    pos: Array,
) -> tuple[Array, Array, Array]:
    """Plain Dijkstra on the original graph (weights ``w``; inf = closed) from ``s``.

    Stops once every target node is settled or the next distance exceeds ``bound``. Returns
    ``(seconds, metres, settled)`` per target; an unsettled target has inf and ``settled`` False
    (``settled`` False with the search exhausted means unreachable).
    Also returns the parent arc of each touched node through ``par`` for path extraction; the
    caller must read it before the next call.
    """
    nt = targets.shape[0]
    out_d = np.full(nt, np.inf)
    out_l = np.full(nt, np.inf)
    got = np.zeros(nt, np.bool_)
    remaining = 0
    for i in range(nt):
        if mark[targets[i]] < 0:
            remaining += 1
        mark[targets[i]] = 1
    ntouch = 0
    dist[s] = 0.0
    lens[s] = 0.0
    par[s] = -1
    touched[ntouch] = s
    ntouch += 1
    size = _heap.push(hk, hv, pos, 0, s, 0.0)
    while size > 0 and remaining > 0:
        v, d, size = _heap.pop(hk, hv, pos, size)
        if d > bound:
            break
        if mark[v] == 1:
            mark[v] = 2
            remaining -= 1
        for j in range(ptr[v], ptr[v + 1]):
            wj = w[j]
            if wj == np.inf:
                continue
            x = head[j]
            nd = d + wj
            if nd < dist[x]:
                if dist[x] == np.inf:
                    touched[ntouch] = x
                    ntouch += 1
                dist[x] = nd
                lens[x] = lens[v] + ln[j]
                par[x] = j
                size = _heap.push(hk, hv, pos, size, x, nd)
    exhausted = size == 0
    _heap.clear(hv, pos, size)
    for i in range(nt):
        t = targets[i]
        if mark[t] == 2:
            out_d[i] = dist[t]
            out_l[i] = lens[t]
            got[i] = True
        elif exhausted:
            got[i] = True  # unreachable: exact inf
    for i in range(nt):
        mark[targets[i]] = -1
    for i in range(ntouch):
        dist[touched[i]] = np.inf
    return out_d, out_l, got


@njit(cache=True)
def edges_near(
    lat0: float,
    lon0: float,
    radius_m: float,
    tail: Array,
    head: Array,
    lat: Array,
    lon: Array,
) -> Array:
    """Indices of arcs whose straight segment passes within ``radius_m`` of the point."""
    r_earth = 6371008.8
    kx = np.cos(np.radians(lat0)) * np.radians(1.0) * r_earth
    ky = np.radians(1.0) * r_earth
    out = np.empty(64, np.int64)
    cnt = 0
    r2 = radius_m * radius_m
    for e in range(tail.shape[0]):
        a = tail[e]
        b = head[e]
        ax = (lon[a] - lon0) * kx
        ay = (lat[a] - lat0) * ky
        bx = (lon[b] - lon0) * kx
        by = (lat[b] - lat0) * ky
        # quick reject on the bounding box
        if (ax > radius_m and bx > radius_m) or (ax < -radius_m and bx < -radius_m):
            continue
        if (ay > radius_m and by > radius_m) or (ay < -radius_m and by < -radius_m):
            continue
        dx = bx - ax
        dy = by - ay
        ll = dx * dx + dy * dy
        t = 0.0
        if ll > 0.0:
            t = -(ax * dx + ay * dy) / ll
            t = min(1.0, max(0.0, t))
        px = ax + t * dx
        py = ay + t * dy
        if px * px + py * py <= r2:
            if cnt == out.shape[0]:
                o2 = np.empty(cnt * 2, np.int64)
                o2[:cnt] = out
                out = o2
            out[cnt] = e
            cnt += 1
    return out[:cnt]
