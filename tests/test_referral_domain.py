"""A case's whole life through the domain services alone: no Flask, a session and a clock.

Creation, the offers, a decline, an acceptance, the journey, access and the notices, exactly as
the API, the pages and SMS drive them (they all call these services)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import routing
from alerts.models import OutboundMessage
from core.errors import Forbidden
from facilities.models import Channel, FacilityKind, Role, Team
from facilities.status import report_status
from referral import service
from referral.models import OfferStatus, ReferralStatus
from referral.placement import Placement
from referral.rules import load_rules
from referral.triage import Case
from tests.world import NOW, add_facility, make_contact

PPH_CAPS = ["caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"]


@pytest.fixture
def place() -> Placement:
    return Placement(rules=load_rules(), router=routing.Router(None))


def test_a_case_lives_from_referral_to_completion_through_the_services_alone(
    session: Session, place: Placement
) -> None:
    clinic = add_facility(
        session,
        "T-1",
        kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        maternal_level=1,
        neonatal_level=1,
        capabilities=[],
        lat=29.80,
        lon=106.20,
    )
    make_contact(session, clinic, "+8613911110000")
    hospitals = []
    for n, dlat in enumerate((0.05, 0.10, 0.15)):
        hospital = add_facility(
            session, f"H-{n}", maternal_level=3, capabilities=PPH_CAPS, lat=29.80 + dlat, lon=106.2
        )
        make_contact(session, hospital, f"+86139000000{n:02d}")
        report_status(
            session,
            facility=hospital,
            beds={"obstetric": 2, "maternal_icu": 1, "nicu": 1},
            reported_by="test",
            user_id=None,
            channel=Channel.API,
            now=NOW - dt.timedelta(minutes=5),
        )
        hospitals.append(hospital)
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
    assert [o.facility.code for o in pending] == ["H-0", "H-1"]  # critical: the best two

    def actor_of(code: str) -> service.Actor:
        facility = next(h for h in hospitals if h.code == code)
        return service.Actor(name=code, channel="web", role=Role.HOSPITAL, facility_id=facility.id)

    # Seeing is not acting: the third hospital was not asked and may not answer.
    assert not service.can_view(actor_of("H-2"), referral)
    with pytest.raises(Forbidden):
        service.accept_offer(
            session, place=place, referral=referral, offer=pending[0], actor=actor_of("H-2"),
            now=NOW,
        )  # fmt: skip

    service.decline_offer(
        session, place=place, referral=referral, offer=pending[0], actor=actor_of("H-0"),
        reason="FULL", now=NOW + dt.timedelta(minutes=1),
    )  # fmt: skip
    offers = {o.facility.code: o for o in referral.offers}
    assert offers["H-0"].status is OfferStatus.DECLINED
    assert offers["H-2"].status is OfferStatus.PENDING  # moved on by itself
    service.accept_offer(
        session, place=place, referral=referral, offer=offers["H-1"], actor=actor_of("H-1"),
        minutes=10, now=NOW + dt.timedelta(minutes=2),
    )  # fmt: skip
    assert referral.status is ReferralStatus.ACCEPTED and referral.destination.code == "H-1"
    assert offers["H-2"].status is OfferStatus.WITHDRAWN

    service.depart(
        session, referral=referral, actor=clinic_actor, now=NOW + dt.timedelta(minutes=6)
    )
    service.arrive(
        session, referral=referral, actor=actor_of("H-1"), now=NOW + dt.timedelta(minutes=30)
    )
    service.complete(
        session, referral=referral, actor=actor_of("H-1"), outcome="stable",
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
    assert ("prealert", "+8613900000000") in told and ("prealert", "+8613900000002") in told
    assert ("case_accepted", "+8613911110000") in told
    bodies = [m.body for m in session.scalars(select(OutboundMessage))]
    assert bodies and not any("王芳" in body for body in bodies)  # no person's name in an SMS
    assert Team.OBSTETRICS in service.teams_for(referral)
