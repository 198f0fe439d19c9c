"""The one area rule: which facilities a coordinator's area covers, and the area a designated
centre answers for. Access, notices and the safety net all ask here."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, String, and_, cast, false, select, true
from sqlalchemy.orm import Session

from facilities.models import Facility, FacilityKind


class Placed(Protocol):
    """Where a facility stands in the administrative tree (a Facility, or a row of one)."""

    @property
    def province(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def county(self) -> str: ...


class PlacedFacility(Placed, Protocol):
    """A registered facility as far as placing a case needs it (a Facility, or a row of one)."""

    @property
    def id(self) -> int: ...
    @property
    def code(self) -> str: ...


def _area_parts(area: str) -> list[str]:
    return [part for part in area.split("/") if part]


def area_covers(area: str, facility: Placed) -> bool:
    """A coordinator's area ("Province/City") covers facilities at or below it; "" covers all."""
    wanted = _area_parts(area)
    have = [facility.province, facility.city, facility.county]
    return have[: len(wanted)] == wanted


_PROVINCE_KINDS = {FacilityKind.PROVINCE_HOSPITAL, FacilityKind.PROVINCE_MCH_CENTRE}
_CITY_KINDS = {FacilityKind.CITY_HOSPITAL, FacilityKind.CITY_MCH_CENTRE}


class PlacedCentre(Placed, Protocol):
    """A facility that may be a designated centre (a Facility, or a snapshot of one)."""

    @property
    def kind(self) -> FacilityKind: ...
    @property
    def designated(self) -> list[str] | None: ...


C = TypeVar("C", bound=PlacedCentre)


def centre_area(centre: PlacedCentre) -> str:
    """The area a designated centre answers for: a province's centre its province, a city's
    its city, any other (a county hospital) its county."""
    parts = [centre.province, centre.city, centre.county]
    depth = 1 if centre.kind in _PROVINCE_KINDS else 2 if centre.kind in _CITY_KINDS else 3
    return "/".join(parts[:depth])


def nearest_facility(session: Session, lat: float, lon: float) -> Facility | None:
    """The active facility nearest to a point, in a straight line (to place a point in an area)."""
    return nearest(session.scalars(select(Facility).where(Facility.active.is_(True))), lat, lon)


class _Located(Protocol):
    @property
    def lat(self) -> float: ...
    @property
    def lon(self) -> float: ...


L = TypeVar("L", bound=_Located)


def nearest(facilities: Iterable[L], lat: float, lon: float) -> L | None:
    """Of ``facilities``, the nearest to a point in a straight line (None when there is none)."""
    scale = math.cos(math.radians(lat))
    return min(
        facilities,
        key=lambda f: (f.lat - lat) ** 2 + ((f.lon - lon) * scale) ** 2,
        default=None,
    )


def designated_centres(session: Session, origin: Placed, designation: str) -> list[Facility]:
    """The active centres designated for ``designation`` whose area covers ``origin``, the most
    local first (a county's centre before its city's before its province's), then by code."""
    rows = session.scalars(
        select(Facility)
        .where(Facility.active.is_(True), cast(Facility.designated, String) != "[]")
        .order_by(Facility.code)
    ).all()
    return most_local(rows, origin, designation)


def most_local(centres: Iterable[C], origin: Placed, designation: str) -> list[C]:
    """Of ``centres`` (active, by code), those designated for ``designation`` whose area
    covers ``origin``, the most local first (the rule of :func:`designated_centres`)."""
    found = [
        (len(_area_parts(centre_area(f))), f)
        for f in centres
        if designation in (f.designated or []) and area_covers(centre_area(f), origin)
    ]
    found.sort(key=lambda pair: -pair[0])
    return [f for _, f in found]


def area_clause(area: str, facility: Any) -> ColumnElement[bool]:
    """:func:`area_covers` as SQL, on ``facility`` (the Facility class or an alias of it)."""
    parts = _area_parts(area)
    if len(parts) > 3:
        return false()  # deeper than a county: no facility has that many levels
    columns = (facility.province, facility.city, facility.county)
    return and_(true(), *(column == part for column, part in zip(columns, parts, strict=False)))
