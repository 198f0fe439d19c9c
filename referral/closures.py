"""Road closures and slowdowns: one rule for what a coordinator may enter, whatever the door.

The API and the board page both call :func:`place_closure` and :func:`lift_closure`; the
ranges below are the only definition (the API's schema shows them in the OpenAPI description).
Routing reads the active rows at the very next query, in every process, and each one costs it
work: at most :data:`MAX_ACTIVE` are in effect at once. Placing and lifting a closure changes
every later route, so each is written to the audit trail (who, when, where; not the reason,
which is free text) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFoundError, ServiceError
from referral import audit
from referral.models import RoadClosure

KINDS = ("closed", "slow")
#: a closure smaller than a road crossing cannot be placed reliably; larger than a county is a typo
RADIUS_M = (10.0, 50_000.0)
#: a slowdown keeps this share of the speed: below 5 % it is a closure, at 100 % no slowdown
SPEED_FACTOR = (0.05, 0.95)
REASON_LENGTH = 500
#: closures in effect at once (a region's real closures are a handful; routing checks each one)
MAX_ACTIVE = 100


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
    by: audit.Who,
    now: dt.datetime,
    request_id: str = "",
) -> RoadClosure:
    """Validate and add a closure, and its audit row (not committed); routing uses it from the
    next query."""
    if kind not in KINDS:
        raise ServiceError(f"kind: expected one of {', '.join(KINDS)}", field="kind")
    active = session.scalar(
        select(func.count()).select_from(RoadClosure).where(RoadClosure.lifted_at.is_(None))
    )
    if (active or 0) >= MAX_ACTIVE:
        raise Conflict(
            f"{active} closures are already in effect (at most {MAX_ACTIVE}): lift one first",
            field="kind",
        )
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
        created_by=by.name,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _audit(session, by, "closure_placed", row, now=now, request_id=request_id)
    return row


def lift_closure(
    session: Session, *, closure_id: int, by: audit.Who, now: dt.datetime, request_id: str = ""
) -> RoadClosure:
    """Lift a closure, with its audit row (idempotent: lifting a lifted one changes nothing)."""
    row = session.get(RoadClosure, closure_id)
    if row is None:
        raise NotFoundError(f"no closure {closure_id}", field="id")
    if row.lifted_at is None:
        row.lifted_at = now
        row.lifted_by = by.name
        _audit(session, by, "closure_lifted", row, now=now, request_id=request_id)
    return row


def _audit(
    session: Session,
    who: audit.Who,
    action: str,
    row: RoadClosure,
    *,
    now: dt.datetime,
    request_id: str,
) -> None:
    audit.by(
        session,
        who,
        action=action,
        now=now,
        request_id=request_id,
        closure_id=row.id,
        kind=row.kind,
        lat=row.lat,
        lon=row.lon,
        radius_m=row.radius_m,
    )


def active_closures(session: Session) -> list[RoadClosure]:
    return list(
        session.scalars(
            select(RoadClosure).where(RoadClosure.lifted_at.is_(None)).order_by(RoadClosure.id)
        )
    )
