"""Coverage in the monthly report: the townships beyond 30, 60 and 120 minutes of a facility
that can take a critical case, from the one coverage computation
(:func:`referral.placement.township_coverage`).

Coverage is not stored month by month: the road network, the registry and the closures change
in place. The table is therefore the coverage **as of the time the report is made** (for the
current month, now; for a past month, also now: a statement about today's network and
facilities, not a reconstruction of that month). The report says so (``coverage_as_of``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facilities.areas import area_clause
from facilities.models import Facility, FacilityKind
from referral.decision import condition_need
from referral.placement import township_coverage
from referral.reports_sql import Table

#: The condition whose need defines "a capable facility" for coverage: a postpartum
#: haemorrhage needs comprehensive emergency obstetric care (caesarean, blood, ICU).
COVERAGE_CONDITION = "PPH"
BANDS = (30, 60, 120)
COLUMNS = ("township", "name", "nearest", "minutes", "band", "estimate")


def band_of(minutes: float | None) -> str:
    if minutes is None:
        return "unreachable"
    for limit in BANDS:
        if minutes <= limit:
            return f"<={limit}"
    return f">{BANDS[-1]}"


def coverage_table(
    session: Session,
    *,
    place: Any,
    area: str | None,
    now: dt.datetime,
    condition: str = COVERAGE_CONDITION,
) -> Table:
    """One row per township health centre of the area: its nearest capable facility, the
    minutes to it and the band; farthest first."""
    need = condition_need(place.rules, condition=condition, now=now)
    rows = township_coverage(session, place=place, need=need, now=now)
    names = dict(
        session.execute(
            select(Facility.code, Facility.name).where(
                Facility.kind == FacilityKind.TOWNSHIP_HEALTH_CENTRE,
                area_clause(area or "", Facility),
            )
        ).all()
    )
    out = []
    for row in rows:
        if row.origin not in names:
            continue
        minutes = round(row.eta_minutes, 1) if row.facility else None
        out.append(
            (
                row.origin,
                names[row.origin],
                row.facility or "",
                minutes,
                band_of(minutes),
                row.estimate,
            )
        )
    out.sort(key=lambda r: (-(r[3] if r[3] is not None else float("inf")), r[0]))
    return Table("coverage", COLUMNS, out)
