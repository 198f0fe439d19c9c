"""Facility snapshots compiled into arrays (validated once, snapped once, filtered vectorised)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from routing.errors import InvalidInputError
from routing.model import (
    BED_TYPES,
    CAPABILITIES,
    DIVERSIONS,
    FacilitySnapshot,
    Requirements,
    check_capabilities,
    check_coordinates,
    check_level,
)
from routing.network import RoadNetwork

T = TypeVar("T")

_DERIVED_KEPT = 64  # values derived per table (one per requirement set and policy, say)

CAP_BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(sorted(CAPABILITIES))}


def capability_mask(names: frozenset[str] | set[str]) -> int:
    """Bit mask of capability names (names must be valid)."""
    mask = 0
    for name in names:
        mask |= CAP_BIT[name]
    return mask


@dataclass(frozen=True)
class FacilityTable:
    """Validated facilities as arrays, snapped to a network (see :func:`prepare_facilities`).

    Keep one per process and rebuild it when the facility list or a live status changes; the
    expensive per-network work (the facility buckets) is cached by the router by facility node set,
    so a status change does not redo it.
    """

    facilities: tuple[FacilitySnapshot, ...]
    network: RoadNetwork | None
    lat: np.ndarray
    lon: np.ndarray
    maternal: np.ndarray
    neonatal: np.ndarray
    caps: np.ndarray
    unavailable: np.ndarray
    beds: np.ndarray  # (n, len(BED_TYPES)); -1 = unknown
    diversion: np.ndarray  # index in DIVERSIONS
    stale: np.ndarray
    active: np.ndarray
    node: np.ndarray  # nearest road node (-1 without network)
    snap_m: np.ndarray  # distance to it (inf without network)
    slot: np.ndarray  # index of the node in ``slot_nodes``
    slot_nodes: np.ndarray  # unique nodes, sorted: the router's bucket key
    code_rank: np.ndarray  # position of each facility in code order (ties of ETA go by code)
    _derived: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, computed once per ``key`` for this table (which never changes).

        For what the queries of a requirement set share (what is out, and why). Holds a few
        dozen keys; two threads may compute the same value at once (both are right).
        """
        memo = self._derived
        try:
            value: T = memo[key]
        except KeyError:
            value = make()
            if len(memo) >= _DERIVED_KEPT:
                memo.clear()
            memo[key] = value
        return value

    def __len__(self) -> int:
        return len(self.facilities)

    def eligible(self, req: Requirements) -> np.ndarray:
        """Facilities meeting every requirement and open to new cases."""
        need = capability_mask(req.capabilities)
        ok = self.active & (self.maternal >= req.maternal_level)
        ok &= self.neonatal >= req.neonatal_level
        ok &= (self.caps & need) == need
        ok &= (self.unavailable & need) == 0
        ok &= self.diversion != DIVERSIONS.index("closed")
        for bed in req.beds:
            ok &= self.beds[:, BED_TYPES.index(bed)] != 0
        return ok


def prepare_facilities(
    facilities: Sequence[FacilitySnapshot], *, network: RoadNetwork | None
) -> FacilityTable:
    """Validate facility snapshots and snap each to its nearest road node.

    Raises
    ------
    RoutingError
        (a ``ValueError``) naming the field at fault, e.g. ``facilities[3].maternal_level``.
    """
    items = tuple(facilities)
    n = len(items)
    lat = np.empty(n)
    lon = np.empty(n)
    maternal = np.empty(n, np.int64)
    neonatal = np.empty(n, np.int64)
    caps = np.zeros(n, np.int64)
    unav = np.zeros(n, np.int64)
    beds = np.full((n, len(BED_TYPES)), -1, np.int64)
    diversion = np.zeros(n, np.int64)
    stale = np.zeros(n, bool)
    active = np.zeros(n, bool)
    seen: set[str] = set()
    for i, f in enumerate(items):
        where = f"facilities[{i}]"
        if not isinstance(f, FacilitySnapshot):
            raise InvalidInputError(f"{where} is not a FacilitySnapshot", field=where)
        if not isinstance(f.code, str) or not f.code:
            raise InvalidInputError(
                f"{where}.code must be a non-empty string", field=f"{where}.code"
            )
        if f.code in seen:
            raise InvalidInputError(f"{where}.code {f.code!r} is repeated", field=f"{where}.code")
        seen.add(f.code)
        lat[i], lon[i] = check_coordinates(f.lat, f.lon, where)
        check_level(f.maternal_level, f"{where}.maternal_level")
        check_level(f.neonatal_level, f"{where}.neonatal_level")
        check_capabilities(f.capabilities, f"{where}.capabilities")
        check_capabilities(f.unavailable, f"{where}.unavailable")
        maternal[i] = f.maternal_level
        neonatal[i] = f.neonatal_level
        caps[i] = capability_mask(frozenset(f.capabilities))
        unav[i] = capability_mask(frozenset(f.unavailable))
        for bed, count in f.beds.items():
            if bed not in BED_TYPES:
                raise InvalidInputError(
                    f"{where}.beds: unknown bed type {bed!r}; known: {', '.join(BED_TYPES)}",
                    field=f"{where}.beds",
                )
            if count is None:
                continue
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise InvalidInputError(
                    f"{where}.beds[{bed!r}] must be an integer >= 0 or None, got {count!r}",
                    field=f"{where}.beds",
                )
            beds[i, BED_TYPES.index(bed)] = count
        if f.diversion not in DIVERSIONS:
            raise InvalidInputError(
                f"{where}.diversion must be one of {', '.join(DIVERSIONS)}, got {f.diversion!r}",
                field=f"{where}.diversion",
            )
        diversion[i] = DIVERSIONS.index(f.diversion)
        stale[i] = bool(f.stale)
        active[i] = bool(f.active)
    if network is not None and n:
        node, snap_m = network.nearest_nodes(lat, lon)
        slot_nodes, slot = np.unique(node, return_inverse=True)
    else:
        node = np.full(n, -1, np.int64)
        snap_m = np.full(n, np.inf)
        slot_nodes = np.empty(0, np.int64)
        slot = np.full(n, -1, np.int64)
    code_rank = np.empty(n, np.int64)
    code_rank[np.asarray(sorted(range(n), key=lambda i: items[i].code), np.int64)] = np.arange(n)
    return FacilityTable(
        facilities=items,
        network=network,
        lat=lat,
        lon=lon,
        maternal=maternal,
        neonatal=neonatal,
        caps=caps,
        unavailable=unav,
        beds=beds,
        diversion=diversion,
        stale=stale,
        active=active,
        node=node,
        snap_m=snap_m,
        slot=np.asarray(slot, np.int64).reshape(n),
        slot_nodes=np.asarray(slot_nodes, np.int64),
        code_rank=code_rank,
    )
