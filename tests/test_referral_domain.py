"""A case's whole life through the domain services alone: no Flask, a session and a clock.

Creation, the offers, a decline, an acceptance, the journey, access and the notices, exactly as
the API, the pages and SMS drive them (they all call these services)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.models import OutboundMessage
from core.errors import Forbidden
from facilities.models import Role, Team
from referral import service
from referral.models import OfferStatus, ReferralStatus
from referral.placement import Placement
from referral.triage import Case
from tests.world import NOW, Region


def test_a_case_lives_from_referral_to_completion_through_the_services_alone(
    session: Session, place: Placement, region: Region
) -> None:
    clinic = region.facilities["T-1"]
    clinic_actor = service.Actor(
        name="王芳医生", channel="web", role=Role.CLINIC, facility_id=clinic.id
    )

    referral, created = service.create_referral(
        session,
        place=place,
        actor=clinic_actor,
        origin=clinic,
        case=Case(conditions=("PPH",), delivered=True),
        patient={},
        now=NOW,
    )
    assert created and referral.status is ReferralStatus.OFFERED
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    assert [o.facility.code for o in pending] == ["H-A", "H-B"]  # critical: the best two

    def actor_of(code: str) -> service.Actor:
        facility = region.facilities[code]
        return service.Actor(name=code, channel="web", role=Role.HOSPITAL, facility_id=facility.id)

    # Seeing is not acting: the third hospital was not asked and may not answer.
    assert not service.can_view(actor_of("H-C"), referral)
    with pytest.raises(Forbidden):
        service.accept_offer(
            session, place=place, referral=referral, offer=pending[0], actor=actor_of("H-C"),
            now=NOW,
        )  # fmt: skip

    service.decline_offer(
        session, place=place, referral=referral, offer=pending[0], actor=actor_of("H-A"),
        reason="FULL", now=NOW + dt.timedelta(minutes=1),
    )  # fmt: skip
    offers = {o.facility.code: o for o in referral.offers}
    assert offers["H-A"].status is OfferStatus.DECLINED
    assert offers["H-C"].status is OfferStatus.PENDING  # moved on by itself
    service.accept_offer(
        session, place=place, referral=referral, offer=offers["H-B"], actor=actor_of("H-B"),
        minutes=10, now=NOW + dt.timedelta(minutes=2),
    )  # fmt: skip
    assert referral.status is ReferralStatus.ACCEPTED and referral.destination.code == "H-B"
    assert offers["H-C"].status is OfferStatus.WITHDRAWN

    service.depart(
        session, referral=referral, actor=clinic_actor, now=NOW + dt.timedelta(minutes=6)
    )
    service.arrive(
        session, referral=referral, actor=actor_of("H-B"), now=NOW + dt.timedelta(minutes=30)
    )
    service.complete(
        session, referral=referral, actor=actor_of("H-B"), outcome="stable",
        now=NOW + dt.timedelta(minutes=80),
    )  # fmt: skip
    assert referral.status is ReferralStatus.COMPLETED
    kinds = [e.kind for e in referral.events]
    assert kinds == [
        "created", "offered", "offered", "declined", "offered", "accepted", "withdrawn",
        "departed", "arrived", "completed",
    ]  # fmt: skip
    intervals = service.intervals(referral)
    assert intervals["decision_to_accepted"] == 2 and intervals["departed_to_arrived"] == 24

    # Notices: pre-alerts to every hospital asked, the clinic told where to go, nobody's name.
    told = {(m.purpose, m.to_phone) for m in session.scalars(select(OutboundMessage))}
    asked = (region.phones["H-A:obstetrics"], region.phones["H-C:obstetrics"])
    assert all(("prealert", phone) in told for phone in asked)
    assert ("case_accepted", region.phones["T-1:obstetrics"]) in told
    bodies = [m.body for m in session.scalars(select(OutboundMessage))]
    assert bodies and not any("王芳" in body for body in bodies)  # no person's name in an SMS
    assert Team.OBSTETRICS in service.teams_for(referral)
