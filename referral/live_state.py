"""What the polled pages show, read as a few light rows: the inputs of their ETags.

A page polls every few seconds and almost never finds anything new. Before it renders, the web
layer reads here the plain rows its fragment is made of (each case's ``revision``, which the
database's triggers move on every write to the case, its offers or its timeline, whoever
writes; the registry's names and live status; the closures; the open attention items) and
turns them into a tag (``greenchannel.web.http_cache``). Nothing here loads an ORM object: a
poll whose tag has not moved costs these statements and a hash, never a render. Every
function is one statement whatever the number of cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from alerts.models import AttentionItem
from facilities.models import Facility, FacilityStatus
from referral.access import visible
from referral.models import OPEN_STATUSES, Offer, OfferStatus, Referral, ReferralStatus, RoadClosure
from referral.service import Actor

Rows = list[tuple[Any, ...]]

BOARD_LIMIT = 500  # the board's own cap (greenchannel/web/pages_board.py)


def open_heads(session: Session, actor: Actor, *, limit: int = BOARD_LIMIT) -> Rows:
    """(id, revision) of the open cases ``actor`` may see, in the board's order."""
    statement = (
        select(Referral.id, Referral.revision)
        .where(Referral.status.in_(OPEN_STATUSES))
        .order_by(Referral.created_at)
        .limit(limit)
    )
    return [tuple(row) for row in session.execute(visible(statement, actor))]


def open_attention(session: Session, case_ids: Sequence[int]) -> Rows:
    """(id, subject) of the open attention items of these cases."""
    if not case_ids:
        return []
    subjects = [f"referral:{case_id}" for case_id in case_ids]
    statement = (
        select(AttentionItem.id, AttentionItem.subject)
        .where(AttentionItem.subject.in_(subjects), AttentionItem.cleared_at.is_(None))
        .order_by(AttentionItem.id)
    )
    return [tuple(row) for row in session.execute(statement)]


def registry(session: Session) -> Rows:
    """Every facility's shown columns and live status (names, place, phones, area, levels,
    where to go, beds and diversion with their times): what a page or the board's map names,
    draws or marks unconfirmed."""
    statement = (
        select(
            Facility.id,
            Facility.code,
            Facility.name,
            Facility.name_en,
            Facility.kind,
            Facility.lat,
            Facility.lon,
            Facility.phone,
            Facility.active,
            Facility.province,
            Facility.city,
            Facility.county,
            Facility.maternal_level,
            Facility.neonatal_level,
            Facility.capabilities,
            Facility.address,
            Facility.department,
            Facility.department_en,
            Facility.entrance,
            Facility.entrance_en,
            Facility.updated_at,
            FacilityStatus.beds_obstetric,
            FacilityStatus.beds_maternal_icu,
            FacilityStatus.beds_nicu,
            FacilityStatus.beds_reported_at,
            FacilityStatus.diversion,
            FacilityStatus.diversion_reason,
            FacilityStatus.diversion_reported_at,
            FacilityStatus.unavailable,
            FacilityStatus.unavailable_reported_at,
            FacilityStatus.reported_at,
        )
        .outerjoin(FacilityStatus, FacilityStatus.facility_id == Facility.id)
        .order_by(Facility.id)
    )
    return [tuple(row) for row in session.execute(statement)]


def closures(session: Session) -> Rows:
    """The closures in effect, as shown."""
    statement = (
        select(
            RoadClosure.id,
            RoadClosure.lat,
            RoadClosure.lon,
            RoadClosure.radius_m,
            RoadClosure.kind,
            RoadClosure.speed_factor,
            RoadClosure.reason,
        )
        .where(RoadClosure.lifted_at.is_(None))
        .order_by(RoadClosure.id)
    )
    return [tuple(row) for row in session.execute(statement)]


def case_head(session: Session, actor: Actor, referral_id: int) -> tuple[Any, ...] | None:
    """(id, revision, status) of the case if ``actor`` may see it, else None."""
    statement = select(Referral.id, Referral.revision, Referral.status).where(
        Referral.id == referral_id
    )
    row = session.execute(visible(statement, actor)).first()
    return tuple(row) if row is not None else None


def clinic_heads(session: Session, facility_id: int, *, recent: int = 10) -> Rows:
    """(id, revision, open) of the clinic's open cases and its ``recent`` last closed ones."""
    mine = select(Referral.id, Referral.revision, Referral.status.in_(OPEN_STATUSES)).where(
        Referral.origin_facility_id == facility_id
    )
    open_ids = mine.where(Referral.status.in_(OPEN_STATUSES))
    closed = (
        mine.where(Referral.status.not_in(OPEN_STATUSES))
        .order_by(Referral.created_at.desc())
        .limit(recent)
    )
    both = open_ids.union_all(select(closed.subquery()))
    return sorted(tuple(row) for row in session.execute(both))


def hospital_heads(session: Session, facility_id: int) -> Rows:
    """(offer id or 0, case id, revision) of the offers waiting for the hospital's answer and
    of the cases on their way to it."""
    offered = (
        select(Offer.id, Referral.id, Referral.revision)
        .join(Referral, Offer.referral_id == Referral.id)
        .where(
            Offer.facility_id == facility_id,
            Offer.status == OfferStatus.PENDING,
            Referral.status.in_([ReferralStatus.OFFERED, ReferralStatus.UNPLACED]),
        )
    )
    coming = select(literal(0).label("offer"), Referral.id, Referral.revision).where(
        Referral.destination_facility_id == facility_id,
        Referral.status.in_(
            [ReferralStatus.ACCEPTED, ReferralStatus.IN_TRANSIT, ReferralStatus.ARRIVED]
        ),
    )
    rows = session.execute(offered.union_all(coming))
    return sorted(tuple(row) for row in rows)
