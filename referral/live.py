"""What the router reads from the database, kept per process under the routing revision.

Every route request needs every facility with its live status, and the road closures in effect.
Read and prepared afresh, that was most of a request's time (about 5 ms of 9 on the demo region:
rows, snapshots, validation and snapping). The database's triggers (migration 0010) move
``routing_revision.revision`` on every write to ``facilities``, ``facility_status`` and
``road_closures``, whoever writes: the pages, the API, SMS, the worker, another process, raw SQL.
A request reads that one number; while it is the one this process cached under, the rows, the
closures and the prepared facility table are reused, and only staleness (which moves with the
clock, not with writes) is worked out again, exactly as :func:`facilities.status.view_of` does,
in whole microseconds.

Why this is never stale: the revision is read *before* the rows, in the same transaction. A write
that commits between the two is either seen by the row read (the cache then holds data newer
than its revision, and the next request reloads) or not committed yet when the revision was read
(its commit moves the revision, and the next request reloads). A database without the row (made
by ``create_all``, or wiped) is read afresh on every request.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, String, cast, select
from sqlalchemy.orm import Session

import routing
from core import revisions
from facilities import areas, registry
from facilities.models import Facility, FacilityKind, FacilityStatus
from facilities.status import STATUS_COLUMNS, view_of
from referral.models import RoadClosure

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_NEVER = np.iinfo(np.int64).min  # "not reported" in the time arrays
_TABLES_KEPT = 8  # prepared tables per revision (one per staleness pattern and network)


def _micros(at: dt.datetime | None) -> int:
    if at is None:
        return int(_NEVER)
    if at.tzinfo is None:  # stored UTC without a zone (SQLite through a raw connection)
        at = at.replace(tzinfo=dt.UTC)
    return (at - _EPOCH) // _MICROSECOND


def current_revision(session: Session) -> int | None:
    """The routing revision (None when the database has no revision row: nothing is cached);
    read with the auth revision, once per transaction (``core.revisions``)."""
    return revisions.revision(session, revisions.ROUTING)


def _has_written(session: Session) -> bool:
    """Whether this session's transaction has written anything yet (not committed).

    What it reads then may include its own uncommitted writes, and the revision it sees may be
    rolled back and reached again by other writes: such a read is never shared.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        xid = connection.exec_driver_sql("SELECT txid_current_if_assigned()").scalar()
        return xid is not None
    dbapi = connection.connection.dbapi_connection
    # pysqlite opens a transaction before the first write only, never before a read
    return bool(getattr(dbapi, "in_transaction", True))


def _facility_rows(session: Session) -> list[Any]:
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
            # where it stands (facilities.areas.Placed): a route's origin is placed from here
            Facility.id,
            Facility.province,
            Facility.city,
            Facility.county,
            *STATUS_COLUMNS,
        )
        .outerjoin(FacilityStatus, FacilityStatus.facility_id == Facility.id)
        .order_by(Facility.code)
    )
    return list(session.execute(query))


def _closure_rows(session: Session) -> tuple[routing.Closure, ...]:
    rows = session.execute(
        select(
            RoadClosure.id,
            RoadClosure.lat,
            RoadClosure.lon,
            RoadClosure.radius_m,
            RoadClosure.kind,
            RoadClosure.speed_factor,
        ).where(RoadClosure.lifted_at.is_(None))
    )
    return tuple(
        routing.Closure(
            id=str(r.id),
            lat=r.lat,
            lon=r.lon,
            radius_m=r.radius_m,
            kind=r.kind,
            speed_factor=r.speed_factor,
        )
        for r in rows
    )


@dataclass(frozen=True)
class Centre:
    """An active facility designated as a centre (for the safety net), as read at a revision."""

    id: int
    code: str
    name: str
    name_en: str
    maternal_level: int
    neonatal_level: int
    capabilities: list[str]
    province: str
    city: str
    county: str
    kind: FacilityKind
    designated: list[str]


def _centre_rows(session: Session) -> tuple[Centre, ...]:
    """The active designated centres by code (the rows of :func:`areas.designated_centres`)."""
    rows = session.execute(
        select(
            Facility.id,
            Facility.code,
            Facility.name,
            Facility.name_en,
            Facility.maternal_level,
            Facility.neonatal_level,
            Facility.capabilities,
            Facility.province,
            Facility.city,
            Facility.county,
            Facility.kind,
            Facility.designated,
        )
        .where(Facility.active.is_(True), cast(Facility.designated, String) != "[]")
        .order_by(Facility.code)
    )
    return tuple(
        Centre(
            id=r.id,
            code=r.code,
            name=r.name,
            name_en=r.name_en,
            maternal_level=r.maternal_level,
            neonatal_level=r.neonatal_level,
            capabilities=list(r.capabilities),
            province=r.province,
            city=r.city,
            county=r.county,
            kind=r.kind,
            designated=list(r.designated or []),
        )
        for r in rows
    )


@dataclass
class LiveState:
    """The facilities' rows and the closures of one revision, with prepared tables.

    ``revision`` None: read for this request only, never shared.
    """

    revision: int | None
    rows: list[Any]
    closures: tuple[routing.Closure, ...]
    centres: tuple[Centre, ...] = ()
    has_status: np.ndarray = field(init=False)
    beds_at: np.ndarray = field(init=False)
    diversion_at: np.ndarray = field(init=False)
    unavailable_at: np.ndarray = field(init=False)
    _tables: OrderedDict[tuple[object, ...], tuple[Any, routing.FacilityTable]] = field(
        init=False, default_factory=OrderedDict
    )
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _by_code: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        rows = self.rows
        self._by_code = {r.code: r for r in rows}
        self.has_status = np.array([r.status_id is not None for r in rows], bool)
        self.beds_at = np.array([_micros(r.beds_reported_at) for r in rows], np.int64)
        self.diversion_at = np.array([_micros(r.diversion_reported_at) for r in rows], np.int64)
        self.unavailable_at = np.array([_micros(r.unavailable_reported_at) for r in rows], np.int64)

    def facility(self, code: str, *, field: str = "code") -> Any:
        """The registry row of that code, placed in its area (``id``, ``code``, ``lat``,
        ``lon``, ``province``, ``city``, ``county``, the live status columns): the facility a
        route starts from, without a query; :class:`~facilities.registry.NotFound` as
        :func:`facilities.registry.get_facility` raises it."""
        row = self._by_code.get(code)
        if row is None:
            raise registry.not_found(code, field=field)
        return row

    def nearest_active(self, lat: float, lon: float) -> Any:
        """The active facility nearest to a point, to place the point in an area (the rule of
        :func:`facilities.areas.nearest_facility`), or None."""
        return areas.nearest((r for r in self.rows if r.active), lat, lon)

    def stale(self, *, now: dt.datetime, grace: dt.timedelta) -> np.ndarray:
        """Which facilities are stale at ``now`` (the rule of :func:`facilities.status.view_of`)."""
        limit = _micros(now) - grace // _MICROSECOND  # stale when reported before this
        beds = (self.beds_at == _NEVER) | (self.beds_at < limit)
        diversion = (self.diversion_at != _NEVER) & (self.diversion_at < limit)
        unavailable = (self.unavailable_at != _NEVER) & (self.unavailable_at < limit)
        return np.asarray(~self.has_status | beds | diversion | unavailable)

    def snapshots(self, *, now: dt.datetime, grace: dt.timedelta) -> list[routing.FacilitySnapshot]:
        return [snapshot_of(row, now=now, grace=grace) for row in self.rows]

    def table(
        self,
        router: routing.Router,
        *,
        now: dt.datetime,
        grace: dt.timedelta,
        only: Sequence[str] | None = None,
    ) -> routing.FacilityTable:
        """The prepared facility table at ``now`` for this router's network (cached while the
        revision, the network and the staleness pattern are the same)."""
        if only is not None:
            wanted = set(only)
            every = self.snapshots(now=now, grace=grace)
            return router.prepare([s for s in every if s.code in wanted])
        key = (self.stale(now=now, grace=grace).tobytes(), grace)
        network = router.network
        with self._lock:
            hit = self._tables.get(key)
            if hit is not None and hit[0] is network:
                self._tables.move_to_end(key)
                return hit[1]
        table = router.prepare(self.snapshots(now=now, grace=grace))
        if self.revision is not None:
            with self._lock:
                self._tables[key] = (network, table)
                while len(self._tables) > _TABLES_KEPT:
                    self._tables.popitem(last=False)
        return table


_lock = threading.Lock()
_states: weakref.WeakKeyDictionary[Engine, LiveState] = weakref.WeakKeyDictionary()


def live_state(session: Session) -> LiveState:
    """The routing data of the database this session reads, from the process's cache when the
    revision has not moved (one ``SELECT`` of the revision), else read and cached."""
    revision = current_revision(session)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if revision is not None:
        with _lock:
            hit = _states.get(engine)
        if hit is not None and hit.revision == revision:
            return hit
    if revision is not None and _has_written(session):
        revision = None
    state = LiveState(
        revision, _facility_rows(session), _closure_rows(session), _centre_rows(session)
    )
    if revision is not None:
        with _lock:
            _states[engine] = state
    return state


def forget(engine: Engine | None = None) -> None:
    """Drop the cached state (of one engine, or all): the next request reads afresh."""
    with _lock:
        if engine is None:
            _states.clear()
        else:
            _states.pop(engine, None)


def snapshot_of(row: Any, *, now: dt.datetime, grace: dt.timedelta) -> routing.FacilitySnapshot:
    """What the router knows of one facility: a registry row joined with its live status
    (``STATUS_COLUMNS``; ``status_id`` None when it never reported), seen at ``now``."""
    view = view_of(row if row.status_id is not None else None, now=now, grace=grace)
    return routing.FacilitySnapshot(
        code=row.code,
        name=row.name,
        lat=row.lat,
        lon=row.lon,
        maternal_level=row.maternal_level,
        neonatal_level=row.neonatal_level,
        capabilities=frozenset(row.capabilities),
        unavailable=frozenset(view.unavailable),
        beds=dict(view.beds),
        diversion=view.diversion.value,
        diversion_reason=view.diversion_reason,
        stale=view.stale,
        active=row.active,
    )
