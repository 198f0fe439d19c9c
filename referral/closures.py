"""Road closures and slowdowns: one rule for what a coordinator may enter, whatever the door.

The API and the board page both call :func:`place_closure` and :func:`lift_closure`; the
ranges below are the only definition (the API's schema shows them in the OpenAPI description).
Routing reads the active rows at the very next query, in every process.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFoundError, ServiceError
from referral.models import RoadClosure

KINDS = ("closed", "slow")
#: a closure smaller than a road crossing cannot be placed reliably; larger than a county is a typo
RADIUS_M = (10.0, 50_000.0)
#: a slowdown keeps this share of the speed: below 5 % it is a closure, at 100 % no slowdown
SPEED_FACTOR = (0.05, 0.95)
REASON_LENGTH = 500


def _in(value: float, bounds: tuple[float, float], field: str) -> float:
    low, high = bounds
    if not isinstance(value, int | float) or not math.isfinite(value) or not low <= value <= high:
        raise ServiceError(f"{field}: expected {low:g} to {high:g}, got {value!r}", field=field)
    return float(value)


def place_closure(
    session: Session,
    *,
    lat: float,
    lon: float,
    radius_m: float,
    kind: str,
    speed_factor: float | None,
    reason: str,
    by: str,
    now: dt.datetime,
) -> RoadClosure:
    """Validate and add a closure (not committed); routing uses it from the next query."""
    if kind not in KINDS:
        raise ServiceError(f"kind: expected one of {', '.join(KINDS)}", field="kind")
    row = RoadClosure(
        lat=_in(lat, (-90.0, 90.0), "lat"),
        lon=_in(lon, (-180.0, 180.0), "lon"),
        radius_m=_in(radius_m, RADIUS_M, "radius_m"),
        kind=kind,
        speed_factor=_in(
            speed_factor if speed_factor is not None else -1.0, SPEED_FACTOR, "speed_factor"
        )
        if kind == "slow"
        else 1.0,
        reason=reason.strip()[:REASON_LENGTH],
        created_by=by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def lift_closure(session: Session, *, closure_id: int, by: str, now: dt.datetime) -> RoadClosure:
    """Lift a closure (idempotent: lifting a lifted one changes nothing)."""
    row = session.get(RoadClosure, closure_id)
    if row is None:
        raise NotFoundError(f"no closure {closure_id}", field="id")
    if row.lifted_at is None:
        row.lifted_at = now
        row.lifted_by = by
    return row


def active_closures(session: Session) -> list[RoadClosure]:
    return list(
        session.scalars(
            select(RoadClosure).where(RoadClosure.lifted_at.is_(None)).order_by(RoadClosure.id)
        )
    )
