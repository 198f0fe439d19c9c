"""The board's strip: today's and this month's figures at a glance, in three statements
whatever the number of cases (the board is polled; this runs on the full page only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from facilities.areas import area_clause
from facilities.models import Facility
from referral.models import Offer, OfferStatus, Referral, ReferralStatus
from referral.reports_scope import not_by_origin_index
from referral.reports_sql import seconds_between, spreads
from referral.rules import Rules


def glance(session: Session, *, area: str | None, rules: Rules, now: dt.datetime) -> dict[str, Any]:
    """Cases and critical cases today and this month (on the region's clock), this month's
    median decision → accepted (minutes), declines, silent expiries and unplaced cases now; for
    the cases referred from ``area`` (None or "": everywhere), as the monthly report counts."""
    local = now.astimezone(rules.zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    in_month = Referral.created_at >= month_start.astimezone(dt.UTC)
    where = [in_month, Referral.created_at <= now]
    if area:
        where.append(
            not_by_origin_index().in_(select(Facility.id).where(area_clause(area, Facility)))
        )
    today = Referral.created_at >= day_start.astimezone(dt.UTC)
    critical = Referral.urgency == "critical"
    one = 1
    counts = session.execute(
        select(
            func.count(),
            func.sum(case((critical, one), else_=0)),
            func.sum(case((today, one), else_=0)),
            func.sum(case((and_(today, critical), one), else_=0)),
            func.sum(case((Referral.status == ReferralStatus.UNPLACED, one), else_=0)),
        ).where(*where)
    ).one()
    dialect = session.get_bind().dialect.name
    values = (
        select(seconds_between(dialect, Referral.created_at, Referral.accepted_at).label("v"))
        .where(*where)
        .subquery()
    )
    accept = spreads(session, values, []).get(())
    declined, silent = session.execute(
        select(
            func.sum(case((Offer.status == OfferStatus.DECLINED, one), else_=0)),
            func.sum(case((Offer.status == OfferStatus.EXPIRED, one), else_=0)),
        ).where(Offer.referral_id.in_(select(Referral.id).where(*where)))
    ).one()
    return {
        "month": local.strftime("%Y-%m"),
        "month_cases": int(counts[0] or 0),
        "month_critical": int(counts[1] or 0),
        "today_cases": int(counts[2] or 0),
        "today_critical": int(counts[3] or 0),
        "unplaced_now": int(counts[4] or 0),
        "median_decision_to_accepted_min": (
            round(accept.median / 60, 1) if accept and accept.median is not None else None
        ),
        "month_declines": int(declined or 0),
        "month_silent_expiries": int(silent or 0),
    }
