"""Who may see a case and who may act on it: the actor, and the access rules (docs/domain.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, select

from core.errors import Forbidden
from facilities.areas import Placed, area_clause, area_covers
from facilities.models import Facility, Role
from referral.models import (
    Offer,
    Referral,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who acts: a user (web/API), a contact answering by SMS, or the system."""

    name: str
    channel: str
    role: Role | None = None
    user_id: int | None = None
    facility_id: int | None = None
    area: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(name="system", channel="system")


def check_origin_scope(actor: Actor, origin: Facility) -> None:
    if actor.role is Role.ADMIN:
        return
    if actor.role is Role.COORDINATOR:
        if not area_covers(actor.area, origin):
            raise Forbidden(f"{origin.code} is outside your area", field="origin_facility")
        return
    if actor.role in (Role.CLINIC, Role.HOSPITAL) and actor.facility_id == origin.id:
        return
    raise Forbidden("you can refer only from your own facility", field="origin_facility")


def _check_answerer(actor: Actor, offer: Offer) -> None:
    if actor.channel in ("sms", "voice") or actor.role is Role.ADMIN:
        # SMS answers and keys pressed on a call are matched to the hospital's registered
        # contacts by alerts
        return
    if actor.role is Role.COORDINATOR:
        # The offered hospital's own coordinator answers for it; so may the case's own
        # coordinator (the area of its referring facility), who agreed it with that hospital by
        # phone (a redirect ``agreed_by_phone`` records the acceptance through here).
        if area_covers(actor.area, offer.facility) or area_covers(
            actor.area, offer.referral.origin
        ):
            return
        raise Forbidden("the offered hospital and the case are outside your area", field="offer_id")
    if actor.role is Role.HOSPITAL and actor.facility_id == offer.facility_id:
        return
    raise Forbidden("only the offered hospital or a coordinator may answer", field="offer_id")


def check_case_area(actor: Actor, origin: Placed, what: str) -> None:
    """Acting follows the case's own area: a coordinator may see a case because one of their
    hospitals was asked, but acts on it only when the referring facility is in their area."""
    if actor.role is Role.COORDINATOR and not area_covers(actor.area, origin):
        raise Forbidden(
            f"you may see this case but not {what} it: it belongs to another area", field="id"
        )


def _check_role(
    actor: Actor, allowed: set[Role], facility_id: int | None, what: str, *, origin: Placed
) -> None:
    if actor.role is Role.ADMIN or actor.channel == "system":
        return
    if actor.role is Role.COORDINATOR and Role.COORDINATOR in allowed:
        check_case_area(actor, origin, what)
        return
    if actor.role in allowed and actor.facility_id == facility_id:
        return
    raise Forbidden(f"you may not {what} this case", field="id")


class FacilityRef(Placed, Protocol):
    """A facility as far as seeing a case goes: its id and its place (a Facility or a row)."""

    @property
    def id(self) -> int: ...


def can_see(
    actor: Actor,
    *,
    origin: FacilityRef,
    destination: FacilityRef | None,
    offered: Sequence[FacilityRef],
) -> bool:
    """Who may see a case: admins; coordinators whose area holds the origin, the destination or
    an offered hospital; the referring facility's users; the offered hospitals' users."""
    if actor.role is Role.ADMIN:
        return True
    if actor.role is Role.COORDINATOR:
        return (
            area_covers(actor.area, origin)
            or (destination is not None and area_covers(actor.area, destination))
            or any(area_covers(actor.area, facility) for facility in offered)
        )
    if actor.facility_id == origin.id:
        return True
    return any(facility.id == actor.facility_id for facility in offered)


def can_view(actor: Actor, referral: Referral) -> bool:
    return can_see(
        actor,
        origin=referral.origin,
        destination=referral.destination,
        offered=[offer.facility for offer in referral.offers],
    )


S = TypeVar("S", bound="Select[*tuple[Any, ...]]")


def visible(statement: S, actor: Actor) -> S:
    """``statement`` (over :class:`Referral`) narrowed in SQL to the cases ``actor`` may see: the
    same rule as :func:`can_see`, for lists (the API's, the board's) that must not load every case
    to filter it in Python."""
    if actor.role is Role.ADMIN:
        return statement
    if actor.role is Role.COORDINATOR:
        if not actor.area:
            return statement
        here = select(Facility.id).where(area_clause(actor.area, Facility))
        offered = select(Offer.referral_id).where(Offer.facility_id.in_(here))
        return statement.where(
            Referral.origin_facility_id.in_(here)
            | Referral.destination_facility_id.in_(here)
            | Referral.id.in_(offered)
        )
    mine = select(Offer.referral_id).where(Offer.facility_id == actor.facility_id)
    return statement.where(
        (Referral.origin_facility_id == actor.facility_id) | Referral.id.in_(mine)
    )
