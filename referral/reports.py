"""The monthly report of an area (or of one hospital's share): what the MCH office monitors.

Every figure is computed by the database (GROUP BY, window functions; see
:mod:`referral.reports_sql`); only aggregated rows come back. The definitions of every figure
are in docs/reports.md. The report is a set of named tables (:class:`Table`) and a summary of
headline figures, so the page, the API, the exports and the CLI all show the same thing.

The month is a calendar month on the region's clock (``rules.zone``); a case belongs to the
month in which it was decided (``created_at``). Offers, intervals and outcomes are those of
the month's cases, as the database holds them when the report is made.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, true
from sqlalchemy.orm import Session, aliased

from core.db import UTCDateTime
from facilities.models import Facility
from referral.history import OUTCOME
from referral.models import Referral, ReferralStatus
from referral.reports_capacity import capacity_table
from referral.reports_coverage import coverage_table
from referral.reports_offers import flows_section, offers_section
from referral.reports_scope import (
    MAX_LISTED,
    MonthScope,
    minutes_of,
    parse_month,
    spread_cells,
)
from referral.reports_sql import Table, json_list_elements, local_day, seconds_between, spreads
from referral.rules import Rules

__all__ = ["INTERVALS", "MonthlyReport", "Table", "monthly_report", "parse_month"]

#: The report card's intervals (docs/domain.md), as (name, start column, end column).
INTERVALS: tuple[tuple[str, str, str], ...] = (
    ("decision_to_first_alert", "created_at", "first_alert_at"),
    ("decision_to_first_answer", "created_at", "first_answer_at"),
    ("decision_to_accepted", "created_at", "accepted_at"),
    ("accepted_to_departed", "accepted_at", "departed_at"),
    ("departed_to_arrived", "departed_at", "arrived_at"),
    ("decision_to_arrived", "created_at", "arrived_at"),
)


@dataclass(frozen=True)
class MonthlyReport:
    month: str
    area: str | None
    facility: str | None
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    summary: dict[str, Any]
    tables: dict[str, Table] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "area": self.area,
            "facility": self.facility,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "summary": dict(self.summary),
            "tables": {name: t.as_dict() for name, t in self.tables.items()},
        }


def monthly_report(
    session: Session,
    *,
    month: str,
    area: str | None = None,
    facility: Facility | None = None,
    rules: Rules,
    now: dt.datetime,
    coverage: Table | None = None,
) -> MonthlyReport:
    """The monthly report of ``area`` (None or "": everywhere) or of one hospital's share.

    ``coverage`` is the table of :func:`referral.reports_coverage.coverage_table` (it needs the
    road network, which the caller holds); without it the report has no coverage section.
    """
    start, end = parse_month(month, rules=rules, now=now)
    m = MonthScope(
        session,
        rules=rules,
        start=start,
        end=end,
        area=area,
        facility_id=facility.id if facility is not None else None,
        now=now,
    )
    tables: dict[str, Table] = {}
    summary: dict[str, Any] = {}
    _counts(m, tables, summary)
    _daily(m, tables)
    _interval_card(m, tables, summary)
    offers_section(m, tables, summary)
    tables["capacity"] = capacity_table(
        session,
        facilities=m.facilities_here(),
        start=start,
        end=min(end, now),
        grace=rules.stale_grace,
        dialect=m.dialect,
    )
    if coverage is not None:
        tables["coverage"] = coverage
        minutes = [r[3] for r in coverage.rows]
        for limit in (30, 60, 120):
            summary[f"townships_beyond_{limit}_min"] = sum(
                1 for x in minutes if x is None or x > limit
            )
    flows_section(m, tables)
    return MonthlyReport(
        month=month.strip(),
        area=area,
        facility=facility.code if facility is not None else None,
        start=start,
        end=end,
        generated_at=now,
        summary=summary,
        tables=tables,
    )


# ------------------------------------------------------------------------------------ counts


def _counts(m: MonthScope, tables: dict[str, Table], summary: dict[str, Any]) -> None:
    by_urgency = m.count_by(Referral.urgency)
    summary["cases"] = sum(n for _, n in by_urgency)
    summary["critical_cases"] = sum(n for u, n in by_urgency if u == "critical")
    tables["cases_by_urgency"] = Table("cases_by_urgency", ("urgency", "cases"), by_urgency)

    elements = json_list_elements(m.dialect, Referral.case, "conditions")
    statement = (
        select(elements.c.value, func.count())
        .select_from(Referral)
        .join(elements, true())
        .where(m.cases())
        .group_by(elements.c.value)
        .order_by(func.count().desc(), elements.c.value)
    )
    tables["cases_by_condition"] = Table(
        "cases_by_condition",
        ("condition", "cases"),
        [(str(c), int(n)) for c, n in m.session.execute(statement)],
    )

    colour = func.coalesce(Referral.case["risk_colour"].as_string(), "")
    tables["cases_by_colour"] = Table("cases_by_colour", ("colour", "cases"), m.count_by(colour))

    origin = aliased(Facility)
    tables["cases_by_origin_county"] = Table(
        "cases_by_origin_county",
        ("county", "cases"),
        m.count_by(origin.county, (origin, origin.id == Referral.origin_facility_id)),
    )

    dest = aliased(Facility)
    statement = (
        select(dest.code, dest.name, func.count())
        .select_from(Referral)
        .join(dest, dest.id == Referral.destination_facility_id)
        .where(m.cases())
        .group_by(dest.code, dest.name)
        .order_by(func.count().desc(), dest.code)
    )
    tables["cases_by_destination"] = Table(
        "cases_by_destination",
        ("facility", "name", "cases"),
        [(c, nm, int(n)) for c, nm, n in m.session.execute(statement)],
    )

    # The outcome is the one definition the case history filters by (referral.history.OUTCOME),
    # with the cancel reason (a code) for cancelled cases: the free-text outcome note is never
    # counted or exported.
    outcome = case(
        (Referral.status == ReferralStatus.CANCELLED, "cancelled:" + Referral.cancel_reason),
        else_=OUTCOME,
    )
    tables["cases_by_outcome"] = Table(
        "cases_by_outcome",
        ("outcome", "cases"),
        [(str(o), n) for o, n in m.count_by(outcome)],
    )


def _daily(m: MonthScope, tables: dict[str, Table]) -> None:
    day = local_day(m.dialect, Referral.created_at, m.rules.working_hours[2])
    critical = func.sum(case((Referral.urgency == "critical", 1), else_=0))
    counts = {
        d: (int(n), int(c or 0))
        for d, n, c in m.session.execute(
            select(day, func.count(), critical).where(m.cases()).group_by(day)
        )
    }
    values = (
        select(day.label("day"), m.seconds("created_at", "accepted_at").label("v"))
        .where(m.cases())
        .subquery()
    )
    accept = spreads(m.session, values, ["day"])
    rows = []
    for d in sorted(counts):
        n, c = counts[d]
        s = accept.get((d,))
        rows.append((str(d), n, c, *spread_cells(s)[1:]))
    tables["cases_by_day"] = Table(
        "cases_by_day",
        (
            "day",
            "cases",
            "critical",
            "median_decision_to_accepted_min",
            "p90_decision_to_accepted_min",
        ),
        rows,
    )


# ------------------------------------------------------------------------ the interval card


def _interval_card(m: MonthScope, tables: dict[str, Table], summary: dict[str, Any]) -> None:
    rows: list[tuple[Any, ...]] = []
    facility_rows: list[tuple[Any, ...]] = []
    dest = aliased(Facility)
    target = m.target_seconds()
    accept_seconds = m.seconds("created_at", "accepted_at")
    missed_accept = or_(
        # whole seconds: SQLite's julian days are not exact to the microsecond
        and_(Referral.accepted_at.is_not(None), func.round(accept_seconds) > target),
        and_(
            Referral.accepted_at.is_(None),
            Referral.status != ReferralStatus.CANCELLED,
            func.round(
                seconds_between(
                    m.dialect,
                    Referral.created_at,
                    func.coalesce(Referral.closed_at, literal(m.now, UTCDateTime())),
                )
            )
            > target,
        ),
    )
    missed_by_urgency = dict(
        m.session.execute(
            select(Referral.urgency, func.count())
            .where(m.cases(), missed_accept)
            .group_by(Referral.urgency)
        ).all()
    )
    for name, start, end in INTERVALS:
        values = (
            select(Referral.urgency.label("urgency"), m.seconds(start, end).label("v"))
            .where(m.cases())
            .subquery()
        )
        by_urgency = spreads(m.session, values, ["urgency"])
        overall = spreads(m.session, values, []).get(())
        for urgency in m.rules.urgency:
            policy = m.rules.urgency[urgency]
            is_accept = name == "decision_to_accepted"
            goal = round(policy.target.total_seconds() / 60, 1) if is_accept else None
            missed = int(missed_by_urgency.get(urgency, 0)) if is_accept else None
            rows.append((name, urgency, *spread_cells(by_urgency.get((urgency,))), goal, missed))
        rows.append((name, "all", *spread_cells(overall), None, None))
        if name == "decision_to_accepted":
            summary["median_decision_to_accepted_min"] = minutes_of(
                overall.median if overall else None
            )
            summary["p90_decision_to_accepted_min"] = minutes_of(overall.p90 if overall else None)
        per_facility = (
            select(dest.code.label("facility"), m.seconds(start, end).label("v"))
            .select_from(Referral)
            .join(dest, dest.id == Referral.destination_facility_id)
            .where(m.cases())
            .subquery()
        )
        for (code,), spread in sorted(spreads(m.session, per_facility, ["facility"]).items()):
            facility_rows.append((code, name, *spread_cells(spread)))
    tables["intervals"] = Table(
        "intervals",
        ("interval", "urgency", "cases", "median_min", "p90_min", "target_min", "missed_target"),
        rows,
    )
    tables["intervals_by_facility"] = Table(
        "intervals_by_facility",
        ("facility", "interval", "cases", "median_min", "p90_min"),
        facility_rows,
    )
    summary["missed_target"] = sum(int(n) for n in missed_by_urgency.values())
    missed_rows = m.session.execute(
        select(
            Referral.code,
            Referral.urgency,
            Referral.created_at,
            accept_seconds,
            target,
            dest.code,
        )
        .outerjoin(dest, dest.id == Referral.destination_facility_id)
        .where(m.cases(), missed_accept)
        .order_by(Referral.created_at, Referral.id)
        .limit(MAX_LISTED)
    )
    tables["missed_targets"] = Table(
        "missed_targets",
        ("case", "urgency", "decided_at", "decision_to_accepted_min", "target_min", "destination"),
        [
            (
                code,
                urgency,
                created.astimezone(m.rules.zone).strftime("%Y-%m-%d %H:%M")
                if isinstance(created, dt.datetime)
                else str(created),
                minutes_of(secs),
                minutes_of(goal),
                where or "",
            )
            for code, urgency, created, secs, goal, where in missed_rows
        ],
    )


def report_with_coverage(
    session: Session,
    *,
    place: Any,
    month: str,
    area: str | None = None,
    facility: Facility | None = None,
    now: dt.datetime,
) -> MonthlyReport:
    """:func:`monthly_report` with the coverage of the area's townships (an area's report; a
    hospital's share has none), as the page, the API and the CLI give it."""
    parse_month(month, rules=place.rules, now=now)  # a bad month fails before routing
    coverage = None
    if facility is None:
        coverage = coverage_table(session, place=place, area=area, now=now)
    return monthly_report(
        session,
        month=month,
        area=area,
        facility=facility,
        rules=place.rules,
        now=now,
        coverage=coverage,
    )
