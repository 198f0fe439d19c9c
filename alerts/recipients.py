"""Who is told: a facility's contacts by team, and the coordinators who cover an area.

"Who covers a facility" has one definition in the whole service, the registry's area rule
(:func:`facilities.areas.area_covers`): exactly the coordinators who may open a case are the
ones texted about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.vocabulary import LANGUAGES
from facilities.areas import area_covers
from facilities.models import Contact, Facility, Role, Team, User


@dataclass(frozen=True)
class Recipient:
    phone: str
    language: str
    user_id: int | None = None
    contact_id: int | None = None


def contacts_of(
    session: Session, facility_id: int, teams: Iterable[str]
) -> dict[str, list[Contact]]:
    """The active contacts of each of ``teams``, in the order they are asked (one query)."""
    found: dict[str, list[Contact]] = {team: [] for team in teams}
    for contact in session.scalars(
        select(Contact)
        .where(
            Contact.facility_id == facility_id,
            Contact.team.in_([Team(team) for team in found]),
            Contact.active.is_(True),
        )
        .order_by(Contact.priority, Contact.id)
    ):
        found[contact.team.value].append(contact)
    return found


def area_coordinators(session: Session, facility: Facility) -> list[Recipient]:
    """Coordinators who cover the facility (users whose area covers it, by the registry's area
    rule) and the facility's own coordinator team, each phone once."""
    found: dict[str, Recipient] = {}
    users = session.scalars(
        select(User)
        .where(User.role == Role.COORDINATOR, User.active.is_(True), User.phone != "")
        .order_by(User.id)
    )
    for user in users:
        if not area_covers(user.area, facility):
            continue
        language = user.language if user.language in LANGUAGES else "zh"
        found.setdefault(user.phone, Recipient(user.phone, language, user_id=user.id))
    coordinator = Team.COORDINATOR.value
    for contact in contacts_of(session, facility.id, [coordinator])[coordinator]:
        language = contact.language if contact.language in LANGUAGES else "zh"
        found.setdefault(contact.phone, Recipient(contact.phone, language, contact_id=contact.id))
    return list(found.values())
