"""Indexed binary min-heap on plain arrays, for the numba kernels.

The heap holds node ids ``hv`` keyed by ``hk``; ``pos[v]`` is the slot of ``v`` in the heap or -1.
Keeping the position lets Dijkstra decrease a key in place, so the heap never holds more than one
entry per node and its arrays can be sized ``n`` once (no growth inside a query).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

Array = Any  # numba kernels take numpy arrays; precise dtypes are documented per kernel


@njit(cache=True, inline="always")
def sift_up(hk: Array, hv: Array, pos: Array, i: int) -> None:
    key = hk[i]
    v = hv[i]
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= key:
            break
        hk[i] = hk[p]
        hv[i] = hv[p]
        pos[hv[i]] = i
        i = p
    hk[i] = key
    hv[i] = v
    pos[v] = i


@njit(cache=True, inline="always")
def push(hk: Array, hv: Array, pos: Array, size: int, v: int, key: float) -> int:
    """Insert ``v`` or lower its key; returns the new heap size."""
    i = pos[v]
    if i < 0:
        i = size
        size += 1
        hv[i] = v
    hk[i] = key
    sift_up(hk, hv, pos, i)
    return size


@njit(cache=True, inline="always")
def pop(hk: Array, hv: Array, pos: Array, size: int) -> tuple[int, float, int]:
    """Remove the minimum; returns ``(node, key, new_size)``."""
    v = hv[0]
    key = hk[0]
    pos[v] = -1
    size -= 1
    if size > 0:
        lk = hk[size]
        lv = hv[size]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= size:
                break
            if c + 1 < size and hk[c + 1] < hk[c]:
                c += 1
            if hk[c] >= lk:
                break
            hk[i] = hk[c]
            hv[i] = hv[c]
            pos[hv[i]] = i
            i = c
        hk[i] = lk
        hv[i] = lv
        pos[lv] = i
    return v, key, size


@njit(cache=True, inline="always")
def clear(hv: Array, pos: Array, size: int) -> None:
    for i in range(size):
        pos[hv[i]] = -1


def new_heap(n: int, index: type[np.signedinteger] = np.int64) -> tuple[np.ndarray, ...]:
    """Arrays ``(hk, hv, pos)`` for a heap over ``n`` nodes (``index``: the dtype of node ids
    and heap slots, int32 when ``n`` fits)."""
    return (
        np.empty(max(n, 1), np.float64),
        np.empty(max(n, 1), index),
        np.full(max(n, 1), -1, index),
    )
