"""The facility registry: facilities, contacts, live status, and the people using the service."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import revisions
from core.db import Base, UTCDateTime, utcnow


def str_enum(cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: a VARCHAR with a CHECK constraint, the values stored as written."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class FacilityKind(enum.StrEnum):
    CLINIC = "clinic"
    TOWNSHIP_HEALTH_CENTRE = "township_health_centre"
    COMMUNITY_HEALTH_CENTRE = "community_health_centre"
    COUNTY_HOSPITAL = "county_hospital"
    COUNTY_MCH_HOSPITAL = "county_mch_hospital"
    CITY_HOSPITAL = "city_hospital"
    CITY_MCH_CENTRE = "city_mch_centre"
    PROVINCE_HOSPITAL = "province_hospital"
    PROVINCE_MCH_CENTRE = "province_mch_centre"
    OTHER = "other"


class Diversion(enum.StrEnum):
    NORMAL = "normal"
    ADVISORY = "advisory"
    CLOSED = "closed"


class Team(enum.StrEnum):
    OBSTETRICS = "obstetrics"
    NEONATOLOGY = "neonatology"
    ANAESTHESIA = "anaesthesia"
    BLOOD_BANK = "blood_bank"
    CAPACITY = "capacity"
    COORDINATOR = "coordinator"


class Role(enum.StrEnum):
    CLINIC = "clinic"
    HOSPITAL = "hospital"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Channel(enum.StrEnum):
    WEB = "web"
    API = "api"
    SMS = "sms"
    IMPORT = "import"
    SYSTEM = "system"


class Facility(Base):
    __tablename__ = "facilities"
    __table_args__ = (
        CheckConstraint("maternal_level BETWEEN 0 AND 4", name="maternal_level_range"),
        CheckConstraint("neonatal_level BETWEEN 0 AND 4", name="neonatal_level_range"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="location"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[FacilityKind] = mapped_column(str_enum(FacilityKind, "facility_kind"))
    province: Mapped[str] = mapped_column(String(100), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    county: Mapped[str] = mapped_column(String(100), default="")
    township: Mapped[str] = mapped_column(String(100), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    maternal_level: Mapped[int] = mapped_column(Integer, default=0)
    neonatal_level: Mapped[int] = mapped_column(Integer, default=0)
    # A sorted list of capability names (docs/domain.md); the vocabulary is checked on the way in.
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str] = mapped_column(String(32), default="")
    # Where the team receiving a case is, for the people bringing it: the street address (for
    # the driver and the map apps, Chinese only: it is what signs and drivers read), and the
    # department and the way in, in both languages like the name.
    address: Mapped[str] = mapped_column(String(200), default="", server_default="")
    department: Mapped[str] = mapped_column(String(100), default="", server_default="")
    department_en: Mapped[str] = mapped_column(String(100), default="", server_default="")
    entrance: Mapped[str] = mapped_column(String(100), default="", server_default="")
    entrance_en: Mapped[str] = mapped_column(String(100), default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Designated critical-care centre for its area: "maternal" and/or "neonatal" (the safety
    # net, docs/domain.md). The area it answers for follows its kind (facilities.registry).
    designated: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="facility",
        cascade="all, delete-orphan",
        order_by="(Contact.team, Contact.priority, Contact.id)",
    )
    status: Mapped[FacilityStatus | None] = relationship(
        back_populates="facility", cascade="all, delete-orphan", uselist=False
    )

    def __repr__(self) -> str:
        return f"<Facility {self.code}>"


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("facility_id", "team", "phone", name="uq_contacts_facility_team_phone"),
        CheckConstraint("language IN ('zh', 'en')", name="language"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    team: Mapped[Team] = mapped_column(str_enum(Team, "contact_team"))
    phone: Mapped[str] = mapped_column(String(32), index=True)
    language: Mapped[str] = mapped_column(String(2), default="zh")
    priority: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    facility: Mapped[Facility] = relationship(back_populates="contacts")


class FacilityStatus(Base):
    """The current live status of one facility; each group of values keeps its own report time."""

    __tablename__ = "facility_status"

    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True
    )
    beds_obstetric: Mapped[int | None] = mapped_column(Integer)
    beds_maternal_icu: Mapped[int | None] = mapped_column(Integer)
    beds_nicu: Mapped[int | None] = mapped_column(Integer)
    beds_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    diversion: Mapped[Diversion] = mapped_column(
        str_enum(Diversion, "diversion"), default=Diversion.NORMAL
    )
    diversion_reason: Mapped[str] = mapped_column(String(500), default="")
    diversion_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unavailable: Mapped[list[str]] = mapped_column(JSON, default=list)
    unavailable_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reported_by: Mapped[str] = mapped_column(String(100), default="")
    channel: Mapped[Channel | None] = mapped_column(str_enum(Channel, "status_channel"))

    facility: Mapped[Facility] = relationship(back_populates="status")


class StatusReport(Base):
    """Append-only history of every status report; fields a report did not mention are NULL."""

    __tablename__ = "status_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    reported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reported_by: Mapped[str] = mapped_column(String(100))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, "report_channel"))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role IN ('clinic', 'hospital') AND facility_id IS NOT NULL)"
            " OR role IN ('coordinator', 'admin')",
            name="facility_for_facility_roles",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(str_enum(Role, "user_role"))
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id"))
    # A coordinator's area: "Province", "Province/City" or "Province/City/County"; empty = all.
    area: Mapped[str] = mapped_column(String(300), default="")
    phone: Mapped[str] = mapped_column(String(32), default="")
    language: Mapped[str] = mapped_column(String(2), default="zh")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    facility: Mapped[Facility | None] = relationship()
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    sessions: Mapped[list[WebSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # sha256 of the token: tokens are 256 random bits, so a fast hash is safe and lets us look
    # a token up by its hash on every request.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters ("gc_" and 8 more), shown in lists and used to revoke one
    # token by name; too short to help a guess. Empty for tokens issued before it was kept.
    prefix: Mapped[str] = mapped_column(String(16), default="", server_default="", index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None: issued before tokens expired; such a token lives DEFAULT_TOKEN_LIFETIME from
    # created_at (facilities.accounts).
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")


class WebSession(Base):
    """A web login, checked on every request: the signed cookie carries only its random id,
    the database keeps the id's SHA-256 (like API tokens), so a logout, a password reset or a
    deactivation ends it at once, whoever holds a copy of the cookie."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remote_addr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Written at most once a minute (a poll every few seconds must not write each time).
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="sessions")


class LoginFailure(Base):
    """Failed web logins, kept in the database so every web process sees the same count, and
    kept after a success too (a record of guessing)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), default="", index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # Set when the same username then logged in from the same client: the row is kept (a
    # record), but no longer counts against that pair.
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RateCounter(Base):
    """A fixed-window request counter per key (a token, a phone) and window start.

    Incremented with one atomic upsert, so every web process counts against the same row.
    """

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class AuthRevision(Base):
    """One row whose ``revision`` the database's triggers move on every write to the users and
    their API tokens, so each web process can keep the tokens it has verified until the
    revision moves (``facilities.token_cache``, migration 0011)."""

    __tablename__ = revisions.AUTH

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger, server_default="0")
