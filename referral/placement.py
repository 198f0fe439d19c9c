"""Glue between the database and the router: snapshots, closures, the road network per process.

The compiled road network is a file (``GREENCHANNEL_ROADS``); each process loads it once and
reloads it when the file changes, so a new ``greenchannel roads import`` reaches every web process
and worker without a restart. Closures and live status are kept per process under the routing
revision the database's triggers move on every write (``referral.live``): each query reads that
one number, so any process answers with what any other process has just written.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import routing
from facilities.models import Facility, FacilityKind, FacilityStatus
from facilities.status import STATUS_COLUMNS
from referral import live
from referral.rules import Need, Rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Placement:
    """What a service needs besides the session: the region rules, the road router, and the
    public address pre-alerts link to (``PUBLIC_BASE_URL``; empty: texts carry no link)."""

    rules: Rules
    router: Any
    public_base_url: str = ""


_lock = threading.Lock()
_routers: dict[str, tuple[float, routing.Router]] = {}


def router_for(path: str) -> routing.Router:
    """The process's router for the compiled network at ``path`` (estimates only if absent)."""
    file = Path(path)
    try:
        mtime = file.stat().st_mtime if path else -1.0
    except OSError:
        mtime = -1.0
    with _lock:
        hit = _routers.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        network = routing.RoadNetwork.load(file) if mtime >= 0 else None
        router = routing.Router(network)
        _routers[path] = (mtime, router)
        if network is None:
            log.warning("no road network at %s: travel times are straight-line estimates", path)
        return router


def snapshots(
    session: Session, *, rules: Rules, now: dt.datetime, only: Sequence[str] | None = None
) -> list[routing.FacilitySnapshot]:
    """Every facility as the router sees it right now (read as rows, not ORM objects: this runs
    for every referral and every move-on, and the registry and its live status change at any
    moment, so nothing is cached between calls)."""
    query = (
        select(
            Facility.code,
            Facility.name,
            Facility.lat,
            Facility.lon,
            Facility.maternal_level,
            Facility.neonatal_level,
            Facility.capabilities,
            Facility.active,
            *STATUS_COLUMNS,
        )
        .outerjoin(FacilityStatus, FacilityStatus.facility_id == Facility.id)
        .order_by(Facility.code)
    )
    if only is not None:
        query = query.where(Facility.code.in_(list(only)))
    grace = rules.stale_grace
    return [live.snapshot_of(row, now=now, grace=grace) for row in session.execute(query)]


def active_closures(session: Session) -> list[routing.Closure]:
    from referral.models import RoadClosure

    rows = session.scalars(select(RoadClosure).where(RoadClosure.lifted_at.is_(None)))
    return [
        routing.Closure(
            id=str(row.id),
            lat=row.lat,
            lon=row.lon,
            radius_m=row.radius_m,
            kind=row.kind,
            speed_factor=row.speed_factor,
        )
        for row in rows
    ]


def beds_needed(need: Need, patient: str) -> frozenset[str]:
    beds = set()
    if patient == "mother":
        beds.add("obstetric")
        if "adult_icu" in need.capabilities:
            beds.add("maternal_icu")
    if need.neonatal_level >= 2:
        beds.add("nicu")
    return frozenset(beds)


def requirements(need: Need, patient: str) -> routing.Requirements:
    return routing.Requirements(
        maternal_level=need.maternal_level,
        neonatal_level=need.neonatal_level,
        capabilities=need.capabilities,
        beds=beds_needed(need, patient),
    )


def policy(rules: Rules, *, window_minutes: float | None) -> routing.Policy:
    return routing.Policy(
        tolerance_minutes=rules.tolerance_minutes,
        time_window_minutes=window_minutes,
        top_k=rules.top_k,
        max_snap_m=rules.max_snap_km * 1000,
        detour_factor=rules.fallback_detour_factor,
        rural_speed_kmh=rules.fallback_speed_kmh,
    )


def rank_case(
    session: Session,
    *,
    rules: Rules,
    router: routing.Router,
    origin: tuple[float, float],
    need: Need,
    patient: str,
    window_minutes: float | None,
    stabilise: Need | None,
    now: dt.datetime,
    only: Sequence[str] | None = None,
    partial_k: int = 0,
    stay: bool = False,
    excluded_limit: int | None = None,
    state: live.LiveState | None = None,
) -> routing.Ranking:
    """The ranking for ``need`` from ``origin`` (``state``: the live state this request has
    already read, else it is read here)."""
    state = state or live.live_state(session)
    return routing.rank(
        origin,
        state.table(router, now=now, grace=rules.stale_grace, only=only),
        requirements(need, patient),
        router=router,
        policy=policy(rules, window_minutes=window_minutes),
        closures=state.closures,
        stabilise=requirements(stabilise, patient) if stabilise else None,
        partial_k=partial_k,
        stay=stay,
        excluded_limit=excluded_limit,
    )


def need_of(referral: Any) -> Need:
    """What a stored case needs, from its ``requirements`` (``"M3"`` → 3)."""
    req = referral.requirements
    return Need(
        maternal_level=int(str(req["maternal_level"])[1:]),
        neonatal_level=int(str(req["neonatal_level"])[1:]),
        capabilities=frozenset(req["capabilities"]),
    )


def rank_referral(
    session: Session, *, place: Any, referral: Any, now: dt.datetime
) -> routing.Ranking:
    """The ranking for a stored case, with its window measured from the window's own start."""
    stabilise = referral.requirements.get("stabilise")
    window = referral.requirements.get("window")
    left: float | None = referral.window_minutes
    if window and window.get("closes_at"):
        closes = dt.datetime.fromisoformat(window["closes_at"])
        left = max(0.0, (closes - now).total_seconds() / 60.0)
    return rank_case(
        session,
        rules=place.rules,
        router=place.router,
        origin=(referral.origin_lat, referral.origin_lon),
        need=need_of(referral),
        patient=referral.patient_kind,
        window_minutes=left,
        stabilise=Need(
            maternal_level=int(stabilise["maternal_level"][1:]),
            neonatal_level=int(stabilise["neonatal_level"][1:]),
            capabilities=frozenset(stabilise["capabilities"]),
        )
        if stabilise
        else None,
        now=now,
        partial_k=place.rules.clinical.partial_matches,
    )


def missing_requirements(need: Need, facility: Facility) -> list[str]:
    missing = []
    if facility.maternal_level < need.maternal_level:
        missing.append(f"maternal level M{facility.maternal_level} < M{need.maternal_level}")
    if facility.neonatal_level < need.neonatal_level:
        missing.append(f"neonatal level N{facility.neonatal_level} < N{need.neonatal_level}")
    missing += [f"lacks {c}" for c in sorted(need.capabilities - set(facility.capabilities))]
    return missing


def township_coverage(
    session: Session, *, place: Any, need: Need, now: dt.datetime
) -> tuple[routing.CoverageRow, ...]:
    """From every township health centre, the nearest facility meeting ``need``.

    Planning looks at capability, not at tonight's beds: there is no bed requirement here.
    """
    every = snapshots(session, rules=place.rules, now=now)
    townships = set(
        session.scalars(
            select(Facility.code).where(Facility.kind == FacilityKind.TOWNSHIP_HEALTH_CENTRE)
        )
    )
    return place.router.coverage(  # type: ignore[no-any-return]
        [(s.code, s.lat, s.lon) for s in every if s.code in townships],
        every,
        routing.Requirements(
            maternal_level=need.maternal_level,
            neonatal_level=need.neonatal_level,
            capabilities=need.capabilities,
        ),
        policy=policy(place.rules, window_minutes=None),
        closures=active_closures(session),
    )
