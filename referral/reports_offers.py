"""Offers in the monthly report: answers by hospital, declines by reason, silent expiries,
first-offer acceptance, unplaced cases and safety-net assignments; and the flows of cases from
where they come to where they go (for the map)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import aliased

from facilities.models import Facility
from referral.models import Offer, OfferStatus, Referral, ReferralEvent, ReferralStatus
from referral.reports_scope import MAX_LISTED, MonthScope, spread_cells
from referral.reports_sql import Table, seconds_between, spreads

# ------------------------------------------------------------------------------------ offers


def offers_section(m: MonthScope, tables: dict[str, Table], summary: dict[str, Any]) -> None:
    hosp = aliased(Facility)
    status_count = {s: func.sum(case((Offer.status == s, 1), else_=0)) for s in OfferStatus}
    rows = m.session.execute(
        select(hosp.code, hosp.name, func.count(), *status_count.values())
        .select_from(Offer)
        .join(hosp, hosp.id == Offer.facility_id)
        .where(m.offers())
        .group_by(hosp.code, hosp.name)
        .order_by(hosp.code)
    ).all()
    answered = (
        select(
            hosp.code.label("facility"),
            seconds_between(m.dialect, Offer.offered_at, Offer.answered_at).label("v"),
        )
        .select_from(Offer)
        .join(hosp, hosp.id == Offer.facility_id)
        .where(
            m.offers(),
            Offer.kind != "safety_net",
            Offer.status.in_([OfferStatus.ACCEPTED, OfferStatus.DECLINED]),
        )
        .subquery()
    )
    answer = spreads(m.session, answered, ["facility"])
    statuses = list(OfferStatus)
    table_rows = []
    for code, name, total, *by_status in rows:
        counts = dict(zip(statuses, (int(x or 0) for x in by_status), strict=True))
        table_rows.append(
            (
                code,
                name,
                int(total),
                counts[OfferStatus.ACCEPTED],
                counts[OfferStatus.DECLINED],
                counts[OfferStatus.EXPIRED],
                counts[OfferStatus.WITHDRAWN],
                counts[OfferStatus.PENDING],
                *spread_cells(answer.get((code,)))[1:],
            )
        )
    tables["offers_by_hospital"] = Table(
        "offers_by_hospital",
        (
            "facility",
            "name",
            "offers",
            "accepted",
            "declined",
            "silent_expiries",
            "withdrawn",
            "pending",
            "median_answer_min",
            "p90_answer_min",
        ),
        table_rows,
    )
    summary["silent_expiries"] = sum(r[5] for r in table_rows)

    reason = func.coalesce(Offer.decline_reason, "OTHER")
    declined = and_(m.offers(), Offer.status == OfferStatus.DECLINED)
    tables["declines_by_reason"] = Table(
        "declines_by_reason",
        ("reason", "declines"),
        [
            (str(r), int(n))
            for r, n in m.session.execute(
                select(reason, func.count())
                .where(declined)
                .group_by(reason)
                .order_by(func.count().desc(), reason)
            )
        ],
    )
    tables["declines_by_hospital"] = Table(
        "declines_by_hospital",
        ("facility", "name", "reason", "declines"),
        [
            (c, nm, str(r), int(n))
            for c, nm, r, n in m.session.execute(
                select(hosp.code, hosp.name, reason, func.count())
                .select_from(Offer)
                .join(hosp, hosp.id == Offer.facility_id)
                .where(declined)
                .group_by(hosp.code, hosp.name, reason)
                .order_by(func.count().desc(), hosp.code, reason)
            )
        ],
    )
    summary["declines"] = sum(r[3] for r in tables["declines_by_hospital"].rows)

    # First-offer acceptance: the case was accepted on an offer of its first round (the
    # offers made at the case's first offer time; parallel offers share it).
    first_round = (
        select(Offer.referral_id.label("rid"), func.min(Offer.offered_at).label("first"))
        .where(Offer.referral_id.in_(select(Referral.id).where(m.cases())))
        .group_by(Offer.referral_id)
        .subquery()
    )
    accepted = aliased(Offer)
    offered_cases, first_accepted = m.session.execute(
        select(
            func.count(),
            func.sum(case((accepted.offered_at == first_round.c.first, 1), else_=0)),
        )
        .select_from(first_round)
        .join(Referral, Referral.id == first_round.c.rid)
        .outerjoin(accepted, accepted.id == Referral.accepted_offer_id)
    ).one()
    summary["cases_offered"] = int(offered_cases or 0)
    summary["first_offer_accepted"] = int(first_accepted or 0)
    summary["first_offer_acceptance"] = (
        round(int(first_accepted or 0) / int(offered_cases), 3) if offered_cases else None
    )

    in_month = select(Referral.id).where(m.cases())
    unplaced_cases = select(ReferralEvent.referral_id).where(
        ReferralEvent.kind == "unplaced", ReferralEvent.referral_id.in_(in_month)
    )
    unplaced_rows = m.session.execute(
        select(Referral.code, Referral.urgency, Referral.status)
        .where(Referral.id.in_(unplaced_cases))
        .order_by(Referral.created_at, Referral.id)
        .limit(MAX_LISTED)
    ).all()
    summary["unplaced_cases"] = int(
        m.session.scalar(select(func.count()).where(Referral.id.in_(unplaced_cases))) or 0
    )
    summary["still_unplaced"] = int(
        m.session.scalar(
            select(func.count()).where(m.cases(), Referral.status == ReferralStatus.UNPLACED)
        )
        or 0
    )
    summary["safety_net_assignments"] = int(
        m.session.scalar(
            select(func.count(func.distinct(Offer.referral_id))).where(
                m.offers(), Offer.kind == "safety_net", Offer.status == OfferStatus.ACCEPTED
            )
        )
        or 0
    )
    tables["unplaced_cases"] = Table(
        "unplaced_cases",
        ("case", "urgency", "status_now"),
        [(c, u, str(s.value if isinstance(s, ReferralStatus) else s)) for c, u, s in unplaced_rows],
    )


def flows_section(m: MonthScope, tables: dict[str, Table]) -> None:
    origin, dest = aliased(Facility), aliased(Facility)
    statement = (
        select(
            origin.code,
            origin.township,
            origin.lat,
            origin.lon,
            dest.code,
            dest.lat,
            dest.lon,
            func.count(),
        )
        .select_from(Referral)
        .join(origin, origin.id == Referral.origin_facility_id)
        .outerjoin(dest, dest.id == Referral.destination_facility_id)
        .where(m.cases())
        .group_by(
            origin.code, origin.township, origin.lat, origin.lon, dest.code, dest.lat, dest.lon
        )
        .order_by(func.count().desc(), origin.code)
        .limit(MAX_LISTED)
    )
    tables["flows"] = Table(
        "flows",
        (
            "origin",
            "township",
            "origin_lat",
            "origin_lon",
            "destination",
            "dest_lat",
            "dest_lon",
            "cases",
        ),
        [
            (o, t, lat, lon, d or "", dlat, dlon, int(n))
            for o, t, lat, lon, d, dlat, dlon, n in m.session.execute(statement)
        ],
    )
