"""Road closures and slowdowns as plain data, and what they do to the network's arcs.

A coordinator clicks a point on the map and gives a radius: every road segment (the straight line
between two consecutive way nodes) passing within the radius is closed or slowed. A circle is the
simplest shape that a click can make and that covers a bridge, a landslide or a flooded stretch;
longer stretches are several circles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from routing import _ch_query
from routing.errors import InvalidInputError
from routing.model import check_coordinates

CLOSURE_KINDS: tuple[str, ...] = ("closed", "slow")


@dataclass(frozen=True)
class Closure:
    """A closed or slowed stretch of road.

    Attributes
    ----------
    id
        The caller's identifier (database id); closures are compared by all fields.
    lat, lon
        Centre of the affected area.
    radius_m
        Segments passing within this distance of the centre are affected (> 0, at most 50 km).
    kind
        ``"closed"`` (never used) or ``"slow"`` (travel time divided by ``speed_factor``).
    speed_factor
        For ``"slow"``: the fraction of the normal speed that remains, in (0, 1].
    """

    id: str
    lat: float
    lon: float
    radius_m: float
    kind: str = "closed"
    speed_factor: float = 1.0

    def validate(self, prefix: str = "closure") -> None:
        """Raise :class:`~routing.errors.RoutingError` naming the bad field."""
        check_coordinates(self.lat, self.lon, prefix)
        if self.kind not in CLOSURE_KINDS:
            raise InvalidInputError(
                f"{prefix}.kind must be 'closed' or 'slow', got {self.kind!r}",
                field=f"{prefix}.kind",
            )
        r = self.radius_m
        if not isinstance(r, int | float) or not math.isfinite(r) or not 0 < r <= 50_000:
            raise InvalidInputError(
                f"{prefix}.radius_m must be in (0, 50000] metres, got {r!r}",
                field=f"{prefix}.radius_m",
            )
        f = self.speed_factor
        if self.kind == "slow" and (
            not isinstance(f, int | float) or not math.isfinite(f) or not 0 < f <= 1
        ):
            raise InvalidInputError(
                f"{prefix}.speed_factor must be in (0, 1], got {f!r}",
                field=f"{prefix}.speed_factor",
            )


def affected_arcs(
    closures: Iterable[Closure],
    *,
    tail: np.ndarray,
    head: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Arcs hit by the closures and the factor to divide their travel time by (0 = closed).

    Where closures overlap, closed wins and otherwise the slowest factor applies. Returns
    ``(arc indices, factors, arcs affected per closure id)``.
    """
    factor: dict[int, float] = {}
    per_closure: dict[str, int] = {}
    for c in closures:
        hit = _ch_query.edges_near(
            float(c.lat), float(c.lon), float(c.radius_m), tail, head, lat, lon
        )
        per_closure[c.id] = per_closure.get(c.id, 0) + int(hit.shape[0])
        value = 0.0 if c.kind == "closed" else float(c.speed_factor)
        for arc in hit.tolist():
            old = factor.get(arc)
            factor[arc] = value if old is None else min(old, value)
    arcs = np.fromiter(factor.keys(), np.int64, len(factor))
    factors = np.fromiter(factor.values(), np.float64, len(factor))
    return arcs, factors, per_closure
