"""Capacity reminders: a bed report older than the grace gets one reminder SMS, and if still
stale one grace later, the area coordinators are told. A fresh report resets the cycle.

Run by the worker's :func:`alerts.timers.tick`. Each facility is handled in a transaction of
its own whose change to :class:`~alerts.models.CapacityReminder` is an insert (unique per
facility) or a compare-and-swap on ``version``, so two workers never remind twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts import messages
from alerts._sql import rowcount
from alerts.models import CapacityReminder
from alerts.outbox import SessionFactory, queue_sms
from alerts.recipients import area_coordinators
from facilities.models import Contact, Facility, FacilityStatus, Team

log = logging.getLogger(__name__)

REMINDED_TEAMS = (Team.CAPACITY, Team.OBSTETRICS)


def sweep(
    session_factory: SessionFactory,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    second_grace: dt.timedelta | None = None,
) -> int:
    """Queue the reminders and coordinator notices now due; returns how many were queued.

    ``second_grace`` is how long after the reminder the coordinators are told (default: the
    same as ``grace``).
    """
    after_reminder = second_grace if second_grace is not None else grace
    has_contact = exists().where(
        Contact.facility_id == Facility.id,
        Contact.active.is_(True),
        Contact.team.in_(REMINDED_TEAMS),
    )
    with session_factory() as session:
        stale = session.execute(
            select(Facility.id, FacilityStatus.beds_reported_at)
            .outerjoin(FacilityStatus, FacilityStatus.facility_id == Facility.id)
            .where(
                Facility.active.is_(True),
                # Only receiving facilities keep bed figures: a township centre refers out.
                or_(Facility.maternal_level >= 2, Facility.neonatal_level >= 2),
                has_contact,
                or_(
                    FacilityStatus.beds_reported_at.is_(None),
                    FacilityStatus.beds_reported_at < now - grace,
                ),
            )
            .order_by(Facility.id)
        ).all()
    queued = 0
    for facility_id, reported_at in stale:
        try:
            with session_factory() as session, session.begin():
                queued += _facility(
                    session,
                    facility_id,
                    reported_at,
                    now=now,
                    grace=grace,
                    after_reminder=after_reminder,
                )
        except IntegrityError:
            pass  # another worker inserted the reminder first
    return queued


def _facility(
    session: Session,
    facility_id: int,
    reported_at: dt.datetime | None,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    after_reminder: dt.timedelta,
) -> int:
    reminder = session.get(CapacityReminder, facility_id)
    facility = session.get_one(Facility, facility_id)
    if reminder is None:
        session.add(
            CapacityReminder(
                facility_id=facility_id, report_marker=reported_at, reminded_at=now, version=1
            )
        )
        session.flush()
        return _remind(session, facility, now=now, age=_age(now, reported_at, grace))
    if reminder.report_marker != reported_at:
        # A report came in after the last reminder and has gone stale again: a new cycle.
        if not _swap(
            session, reminder, report_marker=reported_at, reminded_at=now, coordinators_told_at=None
        ):
            return 0
        return _remind(session, facility, now=now, age=_age(now, reported_at, grace))
    if reminder.coordinators_told_at is None and now >= reminder.reminded_at + after_reminder:
        if not _swap(session, reminder, coordinators_told_at=now):
            return 0
        return _tell_coordinators(session, facility, reported_at, now=now, grace=grace)
    return 0


def _swap(session: Session, reminder: CapacityReminder, **values: object) -> bool:
    result = rowcount(
        session,
        update(CapacityReminder)
        .where(
            CapacityReminder.facility_id == reminder.facility_id,
            CapacityReminder.version == reminder.version,
        )
        .values(version=reminder.version + 1, **values)
        .execution_options(synchronize_session=False),
    )
    return result == 1


def _hours(delta: dt.timedelta) -> int:
    return max(int(delta.total_seconds() // 3600), 1)


def _age(now: dt.datetime, reported_at: dt.datetime | None, grace: dt.timedelta) -> dt.timedelta:
    """How old the figures are, as the reminder says it (the grace when never reported)."""
    return now - reported_at if reported_at is not None else grace


def _remind(session: Session, facility: Facility, *, now: dt.datetime, age: dt.timedelta) -> int:
    for team in REMINDED_TEAMS:
        contact = session.scalars(
            select(Contact)
            .where(
                Contact.facility_id == facility.id,
                Contact.team == team,
                Contact.active.is_(True),
            )
            .order_by(Contact.priority, Contact.id)
        ).first()
        if contact is None:
            continue
        name = (facility.name_en or facility.name) if contact.language == "en" else facility.name
        queue_sms(
            session,
            to=contact.phone,
            body=messages.capacity_reminder(
                contact.language, facility_name=name, hours=_hours(age)
            ),
            purpose="capacity_reminder",
            subject=f"capacity:{facility.id}",
            contact_id=contact.id,
            facility_id=facility.id,
            language=contact.language,
            now=now,
        )
        log.info("capacity reminder queued for facility %s", facility.id)
        return 1
    return 0


def _tell_coordinators(
    session: Session,
    facility: Facility,
    reported_at: dt.datetime | None,
    *,
    now: dt.datetime,
    grace: dt.timedelta,
) -> int:
    hours = _hours(now - reported_at if reported_at is not None else 2 * grace)
    count = 0
    for recipient in area_coordinators(session, facility):
        name = (facility.name_en or facility.name) if recipient.language == "en" else facility.name
        queue_sms(
            session,
            to=recipient.phone,
            body=messages.coordinator_stale_capacity(
                recipient.language, facility_name=name, hours=hours
            ),
            purpose="coordinator_capacity",
            subject=f"capacity:{facility.id}",
            facility_id=facility.id,
            contact_id=recipient.contact_id,
            user_id=recipient.user_id,
            language=recipient.language,
            now=now,
        )
        count += 1
    log.info("stale capacity of facility %s told to %s coordinator(s)", facility.id, count)
    return count
