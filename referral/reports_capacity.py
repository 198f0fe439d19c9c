"""Capacity in the monthly report: how long each hospital's bed report was stale, and how long
it was on diversion, from the history of status reports (``status_reports``).

There is no stored history of staleness; it follows from the reports' times. A bed report
stays fresh for the region's grace period (``rules.stale_grace``, the same one the live status
uses); from then until the next bed report the hospital's beds were stale. Diversion holds from
the report that set it until the next report that says something about diversion. Both are
clipped to the month (to now, for the current month). Each report's successor comes from
``lead()`` over the hospital's reports, in the database; only one row per hospital comes back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, select, union_all
from sqlalchemy.orm import Session

from facilities.models import Facility, FacilityStatus, StatusReport
from referral.reports_sql import Table, epoch

COLUMNS = (
    "facility",
    "name",
    "reports",
    "stale_hours",
    "stale_share",
    "stale_spells",
    "diversion_closed_hours",
    "diversion_advisory_hours",
)


def _timeline(dialect: str, key: str, facilities: Any, start: dt.datetime, end: dt.datetime) -> Any:
    """Per hospital: the last report carrying ``key`` before the window and those inside it,
    each with its time ``t`` (epoch seconds), the next one's ``nxt``, and the value ``state``."""
    carries = StatusReport.values[key].is_not(None)
    here = StatusReport.facility_id.in_(facilities)
    before = (
        select(
            StatusReport.facility_id.label("fid"),
            func.max(StatusReport.reported_at).label("at"),
        )
        .where(here, carries, StatusReport.reported_at < start)
        .group_by(StatusReport.facility_id)
        .subquery()
    )
    value = StatusReport.values[key].as_string() if key == "diversion" else literal("")
    prior = (
        select(
            StatusReport.facility_id.label("fid"),
            epoch(dialect, StatusReport.reported_at).label("t"),
            value.label("state"),
            literal(1).label("prior"),
        )
        .join(
            before,
            and_(before.c.fid == StatusReport.facility_id, before.c.at == StatusReport.reported_at),
        )
        .where(carries)
    )
    inside = select(
        StatusReport.facility_id.label("fid"),
        epoch(dialect, StatusReport.reported_at).label("t"),
        value.label("state"),
        literal(0).label("prior"),
    ).where(here, carries, StatusReport.reported_at >= start, StatusReport.reported_at < end)
    rows = union_all(prior, inside).subquery()
    return select(
        rows.c.fid,
        rows.c.t,
        rows.c.state,
        rows.c.prior,
        func.lead(rows.c.t).over(partition_by=rows.c.fid, order_by=rows.c.t).label("nxt"),
    ).subquery()


def _clip(lo: Any, hi: Any) -> Any:
    """``max(0, hi - lo)`` in portable SQL."""
    return case((hi > lo, hi - lo), else_=0.0)


def _later(a: Any, b: float) -> Any:
    return case((a > b, a), else_=b)


def capacity_table(
    session: Session,
    *,
    facilities: Any,
    start: dt.datetime,
    end: dt.datetime,
    grace: dt.timedelta,
    dialect: str,
) -> Table:
    """One row per reporting hospital in ``facilities`` (a select of ids): reports in the
    window, stale hours, their share of the window, stale spells, hours on diversion."""
    s0, s1 = start.timestamp(), end.timestamp()
    span = max(s1 - s0, 0.0)
    g = grace.total_seconds()

    beds = _timeline(dialect, "beds", facilities, start, end)
    nxt = func.coalesce(beds.c.nxt, s1)
    stale = _clip(_later(beds.c.t + g, s0), nxt)
    stale_rows = {
        fid: (int(reports or 0), float(secs or 0.0), int(spells or 0), first, int(prior or 0))
        for fid, reports, secs, spells, first, prior in session.execute(
            select(
                beds.c.fid,
                func.sum(case((beds.c.prior == 0, 1), else_=0)),
                func.sum(stale),
                func.sum(case((stale > 0, 1), else_=0)),
                func.min(beds.c.t),
                func.max(beds.c.prior),
            ).group_by(beds.c.fid)
        )
    }

    div = _timeline(dialect, "diversion", facilities, start, end)
    held = _clip(_later(div.c.t, s0), func.coalesce(div.c.nxt, s1))
    diversion: dict[tuple[int, str], float] = {
        (fid, str(state)): float(secs or 0.0)
        for fid, state, secs in session.execute(
            select(div.c.fid, div.c.state, func.sum(cast(held, Float)))
            .where(div.c.state.in_(["closed", "advisory"]))
            .group_by(div.c.fid, div.c.state)
        )
    }

    hospitals = session.execute(
        select(Facility.id, Facility.code, Facility.name)
        .join(FacilityStatus, FacilityStatus.facility_id == Facility.id)
        .where(Facility.id.in_(facilities))
        .order_by(Facility.code)
    ).all()
    rows: list[tuple[Any, ...]] = []
    for fid, code, name in hospitals:
        reports, secs, spells, first, prior = stale_rows.get(fid, (0, 0.0, 0, None, 0))
        if first is None:  # never reported beds: stale all along
            secs, spells = span, 1 if span > 0 else 0
        elif not prior and float(first) > s0:  # nothing before the month: stale until the first
            secs += float(first) - s0
            spells += 1
        rows.append(
            (
                code,
                name,
                reports,
                round(secs / 3600, 2),
                round(secs / span, 3) if span else None,
                spells,
                round(diversion.get((fid, "closed"), 0.0) / 3600, 2),
                round(diversion.get((fid, "advisory"), 0.0) / 3600, 2),
            )
        )
    return Table("capacity", COLUMNS, rows)
