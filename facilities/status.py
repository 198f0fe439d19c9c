"""Live capacity: hospitals report beds, diversion and unavailable capabilities.

Each group of values (beds, diversion, unavailable services) keeps the time it was last
reported; a group older than the region's grace period is "unconfirmed" and shown as stale.
Every report is also appended to the history with who sent it and through which channel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.vocabulary import BED_TYPES, VocabularyError, parse_capabilities
from facilities.models import Channel, Diversion, Facility, FacilityStatus, StatusReport

MAX_BEDS = 10_000


@dataclass(frozen=True)
class StatusView:
    """The live status of one facility as users and the router see it."""

    beds: dict[str, int | None]
    diversion: Diversion
    diversion_reason: str
    unavailable: list[str]
    reported_at: dt.datetime | None
    reported_by: str
    channel: str | None
    beds_reported_at: dt.datetime | None
    stale: bool
    stale_fields: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "beds": dict(self.beds),
            "diversion": self.diversion.value,
            "diversion_reason": self.diversion_reason,
            "unavailable": list(self.unavailable),
            "reported_at": self.reported_at,
            "reported_by": self.reported_by,
            "channel": self.channel,
            "beds_reported_at": self.beds_reported_at,
            "stale": self.stale,
            "stale_fields": list(self.stale_fields),
        }


class StatusFields(Protocol):
    """The columns of ``facility_status`` (a FacilityStatus, or a row with the same names)."""

    @property
    def beds_obstetric(self) -> int | None: ...
    @property
    def beds_maternal_icu(self) -> int | None: ...
    @property
    def beds_nicu(self) -> int | None: ...
    @property
    def beds_reported_at(self) -> dt.datetime | None: ...
    @property
    def diversion(self) -> Diversion: ...
    @property
    def diversion_reason(self) -> str: ...
    @property
    def diversion_reported_at(self) -> dt.datetime | None: ...
    @property
    def unavailable(self) -> list[str]: ...
    @property
    def unavailable_reported_at(self) -> dt.datetime | None: ...
    @property
    def reported_at(self) -> dt.datetime | None: ...
    @property
    def reported_by(self) -> str: ...
    @property
    def channel(self) -> Channel | None: ...


# What a row must select for :func:`view_of` (``status_id`` is NULL when nothing was reported).
STATUS_COLUMNS = (
    FacilityStatus.facility_id.label("status_id"),
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
    FacilityStatus.reported_by,
    FacilityStatus.channel,
)


def status_view(facility: Facility, *, now: dt.datetime, grace: dt.timedelta) -> StatusView:
    """The facility's status, stale where figures are missing or older than ``grace``."""
    return view_of(facility.status, now=now, grace=grace)


def view_of(status: StatusFields | None, *, now: dt.datetime, grace: dt.timedelta) -> StatusView:
    """The status of these columns (None: never reported), stale past ``grace``.

    A facility that has never reported bed figures is stale: an unknown count is unconfirmed.
    Diversion and unavailable services only go stale once reported (their default, "normal" and
    "nothing unavailable", is the standing state of a working hospital).
    """
    if status is None:
        return StatusView(
            beds=dict.fromkeys(BED_TYPES),
            diversion=Diversion.NORMAL,
            diversion_reason="",
            unavailable=[],
            reported_at=None,
            reported_by="",
            channel=None,
            beds_reported_at=None,
            stale=True,
            stale_fields=["beds"],
        )
    stale_fields = []
    if status.beds_reported_at is None or now - status.beds_reported_at > grace:
        stale_fields.append("beds")
    for name, at in (
        ("diversion", status.diversion_reported_at),
        ("unavailable", status.unavailable_reported_at),
    ):
        if at is not None and now - at > grace:
            stale_fields.append(name)
    return StatusView(
        beds={
            "obstetric": status.beds_obstetric,
            "maternal_icu": status.beds_maternal_icu,
            "nicu": status.beds_nicu,
        },
        diversion=status.diversion,
        diversion_reason=status.diversion_reason,
        unavailable=list(status.unavailable),
        reported_at=status.reported_at,
        reported_by=status.reported_by,
        channel=status.channel.value if status.channel else None,
        beds_reported_at=status.beds_reported_at,
        stale=bool(stale_fields),
        stale_fields=stale_fields,
    )


def _clean_beds(beds: dict[str, Any]) -> dict[str, int]:
    clean: dict[str, int] = {}
    for name, value in beds.items():
        if name not in BED_TYPES:
            raise VocabularyError(
                f"beds.{name}: unknown bed type; known: {', '.join(BED_TYPES)}",
                field=f"beds.{name}",
            )
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BEDS:
            raise VocabularyError(
                f"beds.{name}: expected a whole number 0–{MAX_BEDS}, got {value!r}",
                field=f"beds.{name}",
            )
        clean[name] = value
    return clean


def report_status(
    session: Session,
    *,
    facility: Facility,
    beds: dict[str, Any] | None = None,
    diversion: str | None = None,
    diversion_reason: str | None = None,
    unavailable: list[str] | None = None,
    reported_by: str,
    user_id: int | None,
    channel: Channel,
    now: dt.datetime,
) -> FacilityStatus:
    """Record one status report. Values not given keep their current value and report time.

    Raises :class:`VocabularyError` (naming the field) before anything is written.
    """
    clean_beds = _clean_beds(beds) if beds is not None else None
    clean_diversion: Diversion | None = None
    if diversion is not None:
        try:
            clean_diversion = Diversion(diversion)
        except ValueError:
            raise VocabularyError(
                f"diversion: expected normal, advisory or closed, got {diversion!r}",
                field="diversion",
            ) from None
    reason = (diversion_reason or "").strip()
    if len(reason) > 500:
        raise VocabularyError(
            "diversion_reason: longer than 500 characters", field="diversion_reason"
        )
    if clean_diversion in (Diversion.ADVISORY, Diversion.CLOSED) and not reason:
        raise VocabularyError(
            "diversion_reason: say why the hospital is on advisory or closed",
            field="diversion_reason",
        )
    clean_unavailable = (
        parse_capabilities(unavailable, field="unavailable") if unavailable is not None else None
    )
    if clean_beds is None and clean_diversion is None and clean_unavailable is None:
        raise VocabularyError(
            "status: report at least one of beds, diversion or unavailable", field="beds"
        )

    status = facility.status or session.get(FacilityStatus, facility.id)
    if status is None:
        status = FacilityStatus(facility_id=facility.id, diversion=Diversion.NORMAL, unavailable=[])
        session.add(status)
        facility.status = status
    values: dict[str, Any] = {}
    if clean_beds is not None:
        # A report names the bed types it counts; the others keep their last value.
        for name, count in clean_beds.items():
            setattr(status, f"beds_{name}", count)
        status.beds_reported_at = now
        values["beds"] = clean_beds
    if clean_diversion is not None:
        status.diversion = clean_diversion
        status.diversion_reason = "" if clean_diversion is Diversion.NORMAL else reason
        status.diversion_reported_at = now
        values["diversion"] = clean_diversion.value
        values["diversion_reason"] = status.diversion_reason
    if clean_unavailable is not None:
        status.unavailable = clean_unavailable
        status.unavailable_reported_at = now
        values["unavailable"] = clean_unavailable
    status.reported_at = now
    status.reported_by = reported_by
    status.channel = channel
    session.add(
        StatusReport(
            facility_id=facility.id,
            reported_at=now,
            user_id=user_id,
            reported_by=reported_by,
            channel=channel,
            values=values,
        )
    )
    session.flush()
    return status


def status_history(session: Session, *, facility: Facility, limit: int = 50) -> list[StatusReport]:
    query = (
        select(StatusReport)
        .where(StatusReport.facility_id == facility.id)
        .order_by(StatusReport.reported_at.desc(), StatusReport.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
