"""The month and the scope of a monthly report: which cases, offers and facilities it counts,
and the SQL pieces every section shares (see :mod:`referral.reports`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core.errors import Forbidden, Invalid
from facilities.areas import area_clause
from facilities.models import Facility, Role
from referral.models import Offer, Referral
from referral.reports_sql import Spread, seconds_between
from referral.rules import Rules

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
#: Long lists (missed targets, flows) stop here; the summary keeps the full count.
MAX_LISTED = 500


def parse_month(
    text: str | None, *, rules: Rules, now: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """``YYYY-MM`` → the month's first instant and the next month's, on the region's clock.

    A month that has not begun yet is refused; the current month runs to ``now``'s month end
    (the figures are those so far)."""
    match = MONTH.match((text or "").strip())
    if not match:
        raise Invalid("month must be given as YYYY-MM (for example 2026-11)", field="month")
    year, month = int(match.group(1)), int(match.group(2))
    if not 2000 <= year <= 2100 or not 1 <= month <= 12:
        raise Invalid(f"{text} is not a month between 2000-01 and 2100-12", field="month")
    start = dt.datetime(year, month, 1, tzinfo=rules.zone)
    end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=rules.zone)
    if start > now:
        raise Invalid(f"{text} has not begun yet", field="month")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def minutes_of(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60.0, 1)


def spread_cells(spread: Spread | None) -> tuple[int, float | None, float | None]:
    if spread is None:
        return (0, None, None)
    return (spread.count, minutes_of(spread.median), minutes_of(spread.p90))


class MonthScope:
    """The month's cases in scope, and the SQL pieces every section shares."""

    def __init__(
        self,
        session: Session,
        *,
        rules: Rules,
        start: dt.datetime,
        end: dt.datetime,
        area: str | None,
        facility_id: int | None,
        now: dt.datetime,
    ) -> None:
        self.session = session
        self.rules = rules
        self.start, self.end, self.now = start, end, now
        self.area, self.facility_id = area, facility_id
        self.dialect = session.get_bind().dialect.name

    def facilities_here(self) -> Any:
        """The facilities in scope: those of the area, or the one hospital."""
        if self.facility_id is not None:
            return select(Facility.id).where(Facility.id == self.facility_id)
        return select(Facility.id).where(area_clause(self.area or "", Facility))

    def cases(self) -> ColumnElement[bool]:
        """The month's cases in scope: decided this month; of the area by their referring
        facility (the area rule), or a hospital's own share (it referred or was asked)."""
        when = and_(Referral.created_at >= self.start, Referral.created_at < self.end)
        if self.facility_id is not None:
            asked = select(Offer.referral_id).where(Offer.facility_id == self.facility_id)
            return and_(
                when,
                # ``+ 0``: the month leads the plan, not the hospital's cases of every month
                or_(not_by_origin_index() == self.facility_id, (Referral.id + 0).in_(asked)),
            )
        if self.area:
            return and_(when, not_by_origin_index().in_(self.facilities_here()))
        return when

    def offers(self) -> ColumnElement[bool]:
        """The offers of the month's cases (a hospital sees its own offers only)."""
        mine = Offer.referral_id.in_(select(Referral.id).where(self.cases()))
        if self.facility_id is not None:
            return and_(mine, Offer.facility_id == self.facility_id)
        return mine

    def seconds(self, start: str, end: str) -> ColumnElement[float]:
        return seconds_between(self.dialect, getattr(Referral, start), getattr(Referral, end))

    def target_seconds(self) -> Any:
        whens = [
            (Referral.urgency == name, policy.target.total_seconds())
            for name, policy in self.rules.urgency.items()
        ]
        return case(*whens, else_=None)

    def count_by(self, column: Any, *joins: Any) -> list[tuple[Any, int]]:
        statement = select(column, func.count()).select_from(Referral)
        for target, on in joins:
            statement = statement.join(target, on)
        statement = statement.where(self.cases()).group_by(column).order_by(func.count().desc())
        return [(key, int(n)) for key, n in self.session.execute(statement)]


def _parts(area: str) -> list[str]:
    return [p for p in area.split("/") if p]


def report_scope(
    session: Session, *, role: Role, own_area: str, own_facility_id: int | None, area: str | None
) -> tuple[str | None, Facility | None]:
    """Whose report a user may have: an administrator any area's; a coordinator their area's or
    a part of it (the single area rule); a hospital user its own hospital's share (no area).
    Returns (area, facility); raises :class:`Forbidden` naming ``area`` otherwise."""
    asked = (area or "").strip() or None
    if asked is not None and len(asked) > 300:
        raise Invalid("area: at most 300 characters", field="area")
    if role is Role.ADMIN:
        return asked, None
    if role is Role.COORDINATOR:
        if asked is None:
            return own_area or None, None
        if _parts(asked)[: len(_parts(own_area))] != _parts(own_area):
            raise Forbidden(f"{asked} is outside your area {own_area}", field="area")
        return asked, None
    if role is Role.HOSPITAL and own_facility_id is not None:
        if asked is not None:
            raise Forbidden("a hospital's report is its own share: no area", field="area")
        return None, session.get(Facility, own_facility_id)
    raise Forbidden("monthly reports are for coordinators, hospitals and administrators")


def not_by_origin_index() -> Any:
    """The referring facility's id as an expression (``+ 0``), so that the month's time range
    leads the plan: an area holds most facilities, and SQLite, given ``origin IN (…)``, would
    otherwise walk the origin index over every case of every month (0.5 s at 50,000 cases,
    against a scan of the table in 15 ms)."""
    return Referral.origin_facility_id + 0
