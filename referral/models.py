"""Referrals, the offers made to hospitals, the case timeline, and road closures."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import revisions
from core.db import Base, UTCDateTime
from facilities.models import Facility, str_enum


class ReferralStatus(enum.StrEnum):
    REQUESTED = "requested"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    IN_TRANSIT = "in_transit"
    ARRIVED = "arrived"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    UNPLACED = "unplaced"


OPEN_STATUSES = (
    ReferralStatus.REQUESTED,
    ReferralStatus.OFFERED,
    ReferralStatus.ACCEPTED,
    ReferralStatus.IN_TRANSIT,
    ReferralStatus.ARRIVED,
    ReferralStatus.UNPLACED,
)


class OfferStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class DeclineReason(enum.StrEnum):
    FULL = "FULL"
    THEATRE = "THEATRE"
    BLOOD = "BLOOD"
    STAFF = "STAFF"
    NICU = "NICU"
    OTHER = "OTHER"


class CancelReason(enum.StrEnum):
    STABILISED = "stabilised"
    OUTREACH = "outreach"
    DIED = "died"
    FAMILY_REFUSED = "family_refused"
    DUPLICATE = "duplicate"
    OTHER = "other"


def conditions_key(codes: Iterable[str]) -> str:
    """``Referral.conditions_key`` of these condition codes: ``|PPH|SEPSIS|`` (``""`` for none),
    so that one code is ``LIKE '%|PPH|%'`` and never a part of a longer one."""
    codes = [code for code in codes if code]
    return "|" + "|".join(codes) + "|" if codes else ""


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("created_by_id", "idempotency_key", name="uq_referrals_idempotency"),
        # One open referral per patient per clinic, guarded by the database itself.
        UniqueConstraint(
            "origin_facility_id", "open_patient_ref", name="uq_referrals_open_patient"
        ),
        Index("ix_referrals_status_created", "status", "created_at"),
        # The case history (referral.history): keyset pages newest first, narrowed by a filter.
        Index("ix_referrals_created_id", "created_at", "id"),
        Index("ix_referrals_origin_created", "origin_facility_id", "created_at"),
        Index("ix_referrals_destination_created", "destination_facility_id", "created_at"),
        Index("ix_referrals_colour_created", "risk_colour", "created_at"),
        Index("ix_referrals_urgency_created", "urgency", "created_at"),
        # The monthly report and the board's strip select cases by decision time (#19).
        Index("ix_referrals_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The short code used in SMS. ``open_code`` holds it only while the case is open, so the
    # code is unique among open cases (NULLs never collide) and may be reused later.
    code: Mapped[str] = mapped_column(String(8), index=True)
    open_code: Mapped[str | None] = mapped_column(String(8), unique=True)
    status: Mapped[ReferralStatus] = mapped_column(str_enum(ReferralStatus, "referral_status"))
    urgency: Mapped[str] = mapped_column(String(16))
    patient_kind: Mapped[str] = mapped_column(String(16))
    outreach: Mapped[bool] = mapped_column(Boolean, default=False)

    origin_facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    origin_lat: Mapped[float] = mapped_column(Float)
    origin_lon: Mapped[float] = mapped_column(Float)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_channel: Mapped[str] = mapped_column(String(16))
    callback_phone: Mapped[str] = mapped_column(String(32), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))

    # The case as given (conditions, colour, gestation, weight, toggles) and what triage made
    # of it; the patient block holds no name or ID number.
    case: Mapped[dict[str, Any]] = mapped_column(JSON)
    patient: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    patient_ref: Mapped[str | None] = mapped_column(String(64))
    open_patient_ref: Mapped[str | None] = mapped_column(String(64))
    # Copies of two fields of ``case`` as plain columns, so the case history filters them in
    # SQL on every database: the colour, and the condition codes as ``|PPH|SEPSIS|``.
    risk_colour: Mapped[str] = mapped_column(String(8), default="", server_default="")
    conditions_key: Mapped[str] = mapped_column(Text, default="", server_default="")
    requirements: Mapped[dict[str, Any]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    window_minutes: Mapped[int | None] = mapped_column(Integer)

    destination_facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"))
    accepted_offer_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str] = mapped_column(String(32), default="")
    note: Mapped[str] = mapped_column(Text, default="")

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    first_alert_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_answer_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    departed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    arrived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Changes with every change of the case, its offers or its timeline: the database's own
    # triggers add one (migration 0004), whatever wrote the change. A case's document is cached
    # under it (``referral.documents``). It starts at a random number, so a case id used again
    # (SQLite may reuse the highest id after a delete) never meets an old document. A database
    # restored from a backup rewinds revisions: restart the processes after a restore.
    revision: Mapped[int] = mapped_column(
        BigInteger, default=lambda: secrets.randbits(48), server_default="0"
    )

    origin: Mapped[Facility] = relationship(foreign_keys=[origin_facility_id])
    destination: Mapped[Facility | None] = relationship(foreign_keys=[destination_facility_id])
    offers: Mapped[list[Offer]] = relationship(
        back_populates="referral", order_by="Offer.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[ReferralEvent]] = relationship(
        back_populates="referral",
        order_by="(ReferralEvent.at, ReferralEvent.id)",
        cascade="all, delete-orphan",
    )


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_referral_status", "referral_id", "status"),
        # The cases offered to a facility (the scope of a hospital, of a coordinator's area),
        # read from the index alone (migration 0010).
        Index("ix_offers_facility_referral", "facility_id", "referral_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    status: Mapped[OfferStatus] = mapped_column(str_enum(OfferStatus, "offer_status"))
    kind: Mapped[str] = mapped_column(String(16), default="transfer")  # or "outreach"
    rank: Mapped[int | None] = mapped_column(Integer)
    eta_minutes: Mapped[float | None] = mapped_column(Float)
    distance_km: Mapped[float | None] = mapped_column(Float)
    estimate: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    offered_by: Mapped[str] = mapped_column(String(100), default="system")
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_by: Mapped[str] = mapped_column(String(100), default="")
    answer_channel: Mapped[str] = mapped_column(String(16), default="")
    answer_minutes: Mapped[int | None] = mapped_column(Integer)
    decline_reason: Mapped[DeclineReason | None] = mapped_column(
        str_enum(DeclineReason, "decline_reason")
    )
    decline_note: Mapped[str] = mapped_column(Text, default="")

    referral: Mapped[Referral] = relationship(back_populates="offers")
    facility: Mapped[Facility] = relationship()


class ReferralEvent(Base):
    """The case timeline: every step with its time, actor and channel."""

    __tablename__ = "referral_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    offer_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    referral: Mapped[Referral] = relationship(back_populates="events")


class RoadClosure(Base):
    """A coordinator's closure or slowdown around a point; routing reads the active ones."""

    __tablename__ = "road_closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))  # "closed" or "slow"
    speed_factor: Mapped[float] = mapped_column(Float, default=1.0)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    lifted_by: Mapped[str] = mapped_column(String(100), default="")


class AuditEntry(Base):
    """Append-only: who did or saw what to which case, written in the same transaction.

    The application only ever inserts rows (``referral.audit`` refuses updates and deletes).
    Rows carry ids, never patient fields, so retention scrubbing leaves them whole.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_referral_at", "referral_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # No foreign keys: the trail must outlive whatever it talks about.
    user_id: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default="")
    channel: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    referral_id: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CaseLink(Base):
    """A one-time link from a pre-alert to its case page, for one contact and one offer.

    Only the token's SHA-256 is kept (``token_hash``); the token itself lives in the SMS. The
    link opens once (``used_at``), not after ``expires_at`` (the offer's), never once revoked.
    Opening it starts a web session limited to this case, for this contact (``referral.links``).
    """

    __tablename__ = "case_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    referral_id: Mapped[int] = mapped_column(
        ForeignKey("referrals.id", ondelete="CASCADE"), index=True
    )
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RoutingRevision(Base):
    """One row whose ``revision`` the database's triggers move on every write to what the router
    reads (the registry, the live status, the road closures), so each web process can keep its
    facility table and closures until the revision moves (``referral.live``, migration 0010)."""

    __tablename__ = revisions.ROUTING

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")
