"""Chains of degree-two nodes contracted in bulk before the Contraction Hierarchy (numba).

Most nodes of an OSM road network only shape a road: ``a - v - b`` with no junction at ``v``. The
witness-searching contraction of :mod:`routing._ch_build` is wasted on them, and at a province's
10-20 M nodes it is what makes the build slow and big. Here every maximal chain of such nodes
(two-way: exactly the two neighbours ``a`` and ``b`` in and out; one-way: one arc in, one arc out,
to different nodes) between two junctions ``u`` and ``w`` is contracted directly, in the order of a
balanced binary tree over the chain positions (so a search climbs at most ``log2`` of the chain's
length), adding every shortcut, which keeps every distance exact (a contraction that adds all
shortcuts preserves all shortest paths). What is left is the *core*: the junctions, joined by their
direct arcs and by one arc per chain (``u -> w``: the chain's total time and length; the fastest of
parallel ones), which the ordinary contraction handles. The two hierarchies are then merged into the
arrays :func:`routing._ch_build.build_ch` returns, so the query side is unchanged, and every
original node (snapping, geometry, closures) stays in the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from routing._ch_build import ProgressFn, build_ch

Array = Any
CORE, TWO_WAY, ONE_WAY = 0, 1, 2


@njit(cache=True)
def _kinds(n: int, ptr: Array, head: Array, in_ptr: Array, in_tail: Array) -> Array:
    kind = np.zeros(n, np.int8)
    for v in range(n):
        od = ptr[v + 1] - ptr[v]
        idg = in_ptr[v + 1] - in_ptr[v]
        if od == 2 and idg == 2:
            a = head[ptr[v]]
            b = head[ptr[v] + 1]
            x = in_tail[in_ptr[v]]
            y = in_tail[in_ptr[v] + 1]
            if (a == x and b == y) or (a == y and b == x):
                kind[v] = TWO_WAY
        elif od == 1 and idg == 1 and head[ptr[v]] != in_tail[in_ptr[v]]:
            kind[v] = ONE_WAY
    return kind


@njit(cache=True)
def _next(kind: int, prev: int, cur: int, forward: bool, ptr: Array, head: Array,
          in_ptr: Array, in_tail: Array) -> int:  # fmt: skip
    if kind == TWO_WAY:
        h = int(head[ptr[cur]])
        return int(head[ptr[cur] + 1]) if h == prev else h
    if forward:
        return int(head[ptr[cur]])
    return int(in_tail[in_ptr[cur]])


@njit(cache=True)
def _find_arc(ptr: Array, head: Array, a: int, b: int) -> int:
    for j in range(ptr[a], ptr[a + 1]):
        if head[j] == b:
            return j
    return -1


@njit(cache=True)
def find_chains(
    n: int, ptr: Array, head: Array, in_ptr: Array, in_tail: Array
) -> tuple[Array, Array, Array, Array]:
    """Chains as ``seq`` (endpoints included, one-way chains in driving order), ``chain_ptr``
    into it, ``chain_kind``; and ``kind`` per node (a cycle of chain nodes keeps one as core)."""
    kind = _kinds(n, ptr, head, in_ptr, in_tail)
    ncol = 0
    for v in range(n):
        if kind[v] != CORE:
            ncol += 1
    seq = np.empty(3 * ncol + 2, np.int64)
    chain_ptr = np.zeros(ncol + 1, np.int64)
    chain_kind = np.zeros(ncol, np.int8)
    visited = np.zeros(n, np.bool_)
    left = np.empty(ncol + 1, np.int64)
    right = np.empty(ncol + 1, np.int64)
    nchains = 0
    fill = 0
    for v in range(n):
        if kind[v] == CORE or visited[v]:
            continue
        kv = kind[v]
        # backward (towards the first neighbour, or against the driving direction)
        nl = 0
        prev = v
        cur = head[ptr[v]] if kv == TWO_WAY else in_tail[in_ptr[v]]
        cycle = False
        while kind[cur] == kv:
            if cur == v:
                cycle = True
                break
            left[nl] = cur
            nl += 1
            nxt = _next(kv, prev, cur, False, ptr, head, in_ptr, in_tail)
            prev = cur
            cur = nxt
        if cycle:  # a ring of shape nodes only: v becomes its junction
            kind[v] = CORE
            continue
        start = cur
        nr = 0
        prev = v
        cur = head[ptr[v] + 1] if kv == TWO_WAY else head[ptr[v]]
        while kind[cur] == kv:
            right[nr] = cur
            nr += 1
            nxt = _next(kv, prev, cur, True, ptr, head, in_ptr, in_tail)
            prev = cur
            cur = nxt
        seq[fill] = start
        fill += 1
        for i in range(nl - 1, -1, -1):
            seq[fill] = left[i]
            visited[left[i]] = True
            fill += 1
        seq[fill] = v
        visited[v] = True
        fill += 1
        for i in range(nr):
            seq[fill] = right[i]
            visited[right[i]] = True
            fill += 1
        seq[fill] = cur
        fill += 1
        chain_kind[nchains] = kv
        nchains += 1
        chain_ptr[nchains] = fill
    return seq[:fill], chain_ptr[: nchains + 1], chain_kind[:nchains], kind


@njit(cache=True)
def contract_chains(
    seq: Array,
    chain_ptr: Array,
    chain_kind: Array,
    ptr: Array,
    head: Array,
    w: Array,
    ln: Array,
) -> tuple[Array, ...]:
    """Contract every chain; returns the arc records, the up/down entries and the chains' tops."""
    nch = chain_kind.shape[0]
    interior = seq.shape[0] - 2 * nch
    cap = 4 * interior + 2 * nch + 2
    # int32 throughout: a province's arcs and nodes stay below 2**31, and the build's peak
    # memory is mostly these records
    a_tail = np.empty(cap, np.int32)
    a_head = np.empty(cap, np.int32)
    a_w = np.empty(cap, np.float64)
    a_ln = np.empty(cap, np.float64)
    a_c1 = np.full(cap, -1, np.int32)
    a_c2 = np.full(cap, -1, np.int32)
    a_orig = np.full(cap, -1, np.int32)
    ecap = 2 * interior + 1
    up_node = np.empty(ecap, np.int32)
    up_nb = np.empty(ecap, np.int32)
    up_arc = np.empty(ecap, np.int32)
    dn_node = np.empty(ecap, np.int32)
    dn_nb = np.empty(ecap, np.int32)
    dn_arc = np.empty(ecap, np.int32)
    top_f = np.full(nch, -1, np.int64)
    top_b = np.full(nch, -1, np.int64)
    order = np.empty(interior, np.int64)  # the chain nodes in contraction order
    maxlen = 2
    for c in range(nch):
        maxlen = max(maxlen, chain_ptr[c + 1] - chain_ptr[c])
    lft = np.empty(maxlen, np.int64)
    rgt = np.empty(maxlen, np.int64)
    fl = np.empty(maxlen, np.int64)  # arc pos -> rgt[pos]
    bl = np.empty(maxlen, np.int64)  # arc rgt[pos] -> pos
    na = 0
    nu = 0
    nd = 0
    no = 0
    for c in range(nch):
        s0 = chain_ptr[c]
        size = chain_ptr[c + 1] - s0  # k + 2
        k = size - 2
        two = chain_kind[c] == TWO_WAY
        for p in range(size - 1):
            x = seq[s0 + p]
            y = seq[s0 + p + 1]
            o = _find_arc(ptr, head, x, y)
            a_tail[na] = x
            a_head[na] = y
            a_w[na] = w[o]
            a_ln[na] = ln[o]
            a_orig[na] = o
            fl[p] = na
            na += 1
            if two:
                o = _find_arc(ptr, head, y, x)
                a_tail[na] = y
                a_head[na] = x
                a_w[na] = w[o]
                a_ln[na] = ln[o]
                a_orig[na] = o
                bl[p] = na
                na += 1
            lft[p + 1] = p
            rgt[p] = p + 1
        step = 1
        while step <= k:
            for p in range(step, k + 1, 2 * step):
                lp = lft[p]
                rp = rgt[p]
                v = seq[s0 + p]
                order[no] = v
                no += 1
                f1 = fl[lp]
                f2 = fl[p]
                a_tail[na] = seq[s0 + lp]
                a_head[na] = seq[s0 + rp]
                a_w[na] = a_w[f1] + a_w[f2]
                a_ln[na] = a_ln[f1] + a_ln[f2]
                a_c1[na] = f1
                a_c2[na] = f2
                fl[lp] = na
                na += 1
                up_node[nu] = v
                up_nb[nu] = seq[s0 + rp]
                up_arc[nu] = f2
                nu += 1
                dn_node[nd] = v
                dn_nb[nd] = seq[s0 + lp]
                dn_arc[nd] = f1
                nd += 1
                if two:
                    b1 = bl[lp]  # p -> lp
                    b2 = bl[p]  # rp -> p
                    a_tail[na] = seq[s0 + rp]
                    a_head[na] = seq[s0 + lp]
                    a_w[na] = a_w[b2] + a_w[b1]
                    a_ln[na] = a_ln[b2] + a_ln[b1]
                    a_c1[na] = b2
                    a_c2[na] = b1
                    bl[lp] = na
                    na += 1
                    up_node[nu] = v
                    up_nb[nu] = seq[s0 + lp]
                    up_arc[nu] = b1
                    nu += 1
                    dn_node[nd] = v
                    dn_nb[nd] = seq[s0 + rp]
                    dn_arc[nd] = b2
                    nd += 1
                rgt[lp] = rp
                lft[rp] = lp
            step *= 2
        top_f[c] = fl[0]
        if two:
            top_b[c] = bl[0]
    return (
        a_tail[:na].copy(),
        a_head[:na].copy(),
        a_w[:na].copy(),
        a_ln[:na].copy(),
        a_c1[:na].copy(),
        a_c2[:na].copy(),
        a_orig[:na].copy(),
        up_node[:nu].copy(),
        up_nb[:nu].copy(),
        up_arc[:nu].copy(),
        dn_node[:nd].copy(),
        dn_nb[:nd].copy(),
        dn_arc[:nd].copy(),
        top_f,
        top_b,
        order,
    )


def build_ch_collapsed(
    n: int,
    tail: np.ndarray,
    head: np.ndarray,
    w: np.ndarray,
    ln: np.ndarray,
    *,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Like :func:`routing._ch_build.build_ch` (arcs sorted by tail, no parallels, no loops),
    with the chains contracted first; also returns the number of core nodes contracted there."""
    t64 = np.asarray(tail, np.int64)
    h64 = np.asarray(head, np.int64)
    m = int(t64.shape[0])
    if m and np.any(np.diff(t64) < 0):
        raise ValueError("arcs must be sorted by tail")
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(t64, minlength=n), out=ptr[1:])
    by_head = np.argsort(h64, kind="stable")
    in_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(h64, minlength=n), out=in_ptr[1:])
    in_tail = t64[by_head]
    if progress is not None:
        progress("collapsing chains of shape nodes", 0.0)
    seq, chain_ptr, chain_kind, kind = find_chains(n, ptr, h64, in_ptr, in_tail)
    core = np.flatnonzero(kind == CORE)
    if chain_kind.shape[0] == 0 or core.shape[0] < 2:
        return build_ch(n, tail, head, w, ln, progress=progress), n
    (
        a_tail,
        a_head,
        a_w,
        a_ln,
        a_c1,
        a_c2,
        a_orig,
        cu_node,
        cu_nb,
        cu_arc,
        cd_node,
        cd_nb,
        cd_arc,
        top_f,
        top_b,
        order,
    ) = contract_chains(seq, chain_ptr, chain_kind, ptr, h64, np.asarray(w), np.asarray(ln))
    del in_tail, by_head, in_ptr
    n_chain_arcs = int(a_tail.shape[0])
    core_index = np.full(n, -1, np.int64)
    core_index[core] = np.arange(core.shape[0])
    # the core graph: direct arcs between junctions, and each chain's top arcs
    direct = np.flatnonzero((kind[t64] == CORE) & (kind[h64] == CORE))
    tops = np.concatenate([top_f, top_b[top_b >= 0]])
    tops = tops[a_tail[tops] != a_head[tops]]
    c_tail = np.concatenate([core_index[t64[direct]], core_index[a_tail[tops]]])
    c_head = np.concatenate([core_index[h64[direct]], core_index[a_head[tops]]])
    c_w = np.concatenate([np.asarray(w)[direct], a_w[tops]])
    c_ln = np.concatenate([np.asarray(ln)[direct], a_ln[tops]])
    src_orig = np.concatenate([direct, np.full(tops.shape[0], -1, np.int64)])
    src_chain = np.concatenate([np.full(direct.shape[0], -1, np.int64), tops])
    nc = int(core.shape[0])
    key = c_tail * nc + c_head
    pick = np.lexsort((c_ln, c_w, key))
    first = np.ones(pick.shape[0], bool)
    first[1:] = key[pick][1:] != key[pick][:-1]
    pick = pick[first]
    pick = pick[np.lexsort((c_head[pick], c_tail[pick]))]
    c_tail, c_head, c_w, c_ln = c_tail[pick], c_head[pick], c_w[pick], c_ln[pick]
    src_orig, src_chain = src_orig[pick], src_chain[pick]
    del key, first, pick

    def core_progress(msg: str, frac: float) -> None:
        if progress is not None:
            progress(f"{msg} ({nc} junctions of {n} nodes)", frac)

    ch = build_ch(nc, c_tail, c_head, c_w, c_ln, progress=core_progress)
    shift = n_chain_arcs
    k_orig = ch["arc_orig"].astype(np.int64)
    is_input = k_orig >= 0
    via_chain = np.zeros(k_orig.shape[0], bool)
    via_chain[is_input] = src_chain[k_orig[is_input]] >= 0
    k_c1 = np.where(ch["arc_c1"] >= 0, ch["arc_c1"].astype(np.int64) + shift, -1)
    k_c2 = np.where(ch["arc_c2"] >= 0, ch["arc_c2"].astype(np.int64) + shift, -1)
    top = src_chain[k_orig[via_chain]]
    k_c1[via_chain] = a_c1[top]
    k_c2[via_chain] = a_c2[top]
    k_orig2 = np.full(k_orig.shape[0], -1, np.int64)
    k_orig2[is_input & ~via_chain] = src_orig[k_orig[is_input & ~via_chain]]
    arcs = {
        "arc_tail": np.concatenate([a_tail, core[ch["arc_tail"]].astype(np.int32)]),
        "arc_head": np.concatenate([a_head, core[ch["arc_head"]].astype(np.int32)]),
        "arc_w": np.concatenate([a_w, ch["arc_w"]]),
        "arc_len": np.concatenate([a_ln, ch["arc_len"]]),
        "arc_c1": np.concatenate([a_c1, k_c1.astype(np.int32)]),
        "arc_c2": np.concatenate([a_c2, k_c2.astype(np.int32)]),
        "arc_orig": np.concatenate([a_orig, k_orig2.astype(np.int32)]),
    }
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(order.shape[0])
    rank[core] = order.shape[0] + ch["rank"]
    out: dict[str, np.ndarray] = {"rank": rank.astype(np.int32)}
    for side, c_node, c_nb, c_arc in (
        ("up", cu_node, cu_nb, cu_arc),
        ("dn", cd_node, cd_nb, cd_arc),
    ):
        k_ptr = ch[f"{side}_ptr"]
        k_node = core[np.repeat(np.arange(nc), np.diff(k_ptr))]
        node = np.concatenate([c_node, k_node.astype(np.int32)])
        nb = np.concatenate([c_nb, core[ch[f"{side}_nb"]].astype(np.int32)])
        arc = np.concatenate([c_arc, (ch[f"{side}_arc"] + shift).astype(np.int32)])
        by = np.argsort(node, kind="stable")
        s_ptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(node, minlength=n), out=s_ptr[1:])
        out[f"{side}_ptr"] = s_ptr
        out[f"{side}_nb"] = nb[by]
        out[f"{side}_w"] = arcs["arc_w"][arc[by]]
        out[f"{side}_arc"] = arc[by]
    out.update(arcs)
    return out, nc
