"""``greenchannel demo --scenario pph``: a decline, a silence, an acceptance and the arrival."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.inbound import handle_inbound
from facilities.accounts import create_user
from facilities.models import Contact, Facility, FacilityKind, Team
from greenchannel.demo.region import STALE_HOSPITAL
from greenchannel.demo.simulation import Narrator, Simulation, actor_named, minutes_text
from greenchannel.runtime import Runtime
from referral import placement, service
from referral.models import OfferStatus, Referral
from referral.triage import Case


def run_pph(runtime: Runtime, narrator: Narrator, start: dt.datetime) -> dict[str, Any]:
    """The PPH case; returns what happened (for tests): offers by hospital, intervals."""
    sim = Simulation(runtime, narrator, start)
    say = narrator.say
    state: dict[str, Any] = {}

    # -- 08:00 the referral
    with sim.factory() as session:
        origin, doctor = sim.duty_doctor(session, "LH-T01")
        say(
            sim.now,
            f"{origin.name} ({origin.code}, {origin.name_en}): a woman is bleeding heavily "
            "20 minutes after giving birth at 39 weeks; about 1,000 mL lost. Uterine massage "
            "and oxytocin are under way. The duty doctor refers her on the web form: PPH.",
            pause=2,
        )
        referral, _ = service.create_referral(
            session,
            place=sim.place,
            actor=actor_named(session, "clinic"),
            callback_phone=doctor.phone,
            origin=origin,
            case=Case(conditions=("PPH",), gestation_weeks=39),
            patient={"ref": "LH-T01-2026-0117", "age_years": 31},
            now=sim.now,
        )
        ranking = placement.rank_referral(session, place=sim.place, referral=referral, now=sim.now)
        session.commit()
        state["referral_id"] = referral.id
        code = referral.code
        policy = sim.place.rules.urgency[referral.urgency]
        say(
            None,
            f"Case {code}, {referral.urgency}: {'; '.join(referral.reasons)}. "
            f"Each hospital has {policy.answer_timeout.total_seconds() / 60:.0f} min to answer; "
            f"{policy.parallel_offers} are asked at once.",
        )
        ranked = ", ".join(
            f"{c.facility} {c.eta_minutes:.0f} min ({c.distance_km:.0f} km)"
            + ("" if c.confirmed else " [figures unconfirmed]")
            for c in ranking.candidates
        )
        say(None, f"Capable hospitals by road time: {ranked}.")
        kinds = {f.code: f.kind for f in session.scalars(select(Facility))}
        skipped = [
            f"{e.facility} ({'; '.join(r.text for r in e.reasons)})"
            for e in ranking.excluded
            if kinds.get(e.facility) is not FacilityKind.TOWNSHIP_HEALTH_CENTRE
        ]
        say(None, "Not proposed: " + ", ".join(skipped) + ", and the township centres.")
        offers = [o for o in referral.offers if o.status is OfferStatus.PENDING]
        say(
            None,
            "Offered to "
            + " and ".join(f"{o.facility.code} ({o.eta_minutes:.0f} min)" for o in offers)
            + "; their teams get the pre-alert now:",
            pause=1.5,
        )
    first, second = offers[0].facility.code, offers[1].facility.code
    third = next(c.facility for c in ranking.candidates if c.facility not in (first, second))
    state["asked_first"] = [first, second]
    with sim.factory() as session:
        # The third hospital's obstetrician will answer on the web: she needs a login.
        create_user(
            session,
            username="scenario-on-call",
            role="hospital",
            facility_code=third,
            area="",
            password=None,
            now=sim.now,
        )
        session.commit()

    def first_declines() -> None:
        with sim.factory() as session:
            facility = session.scalars(select(Facility).where(Facility.code == first)).one()
            second_on_call = session.scalars(
                select(Contact)
                .where(Contact.facility_id == facility.id, Contact.team == Team.OBSTETRICS)
                .order_by(Contact.priority.desc())
            ).first()
            assert second_on_call is not None
            body = f"{code} N FULL"
            say(
                sim.now,
                f"At {first} the second obstetrician on call, texted at 1.5 min, replies by "
                f"SMS: “{body}” (the first is in theatre with a caesarean, and every "
                "obstetric bed is taken).",
            )
            answer = handle_inbound(
                session,
                from_phone=second_on_call.phone,
                body=body,
                provider_id=None,
                now=sim.now,
                handlers=sim.handlers,
            )
            session.commit()
            say(None, f"The service answers him: “{answer}”")
            say(
                None,
                f"{first} declined (FULL): the next capable hospital, "
                f"{_newest_pending(session, state['referral_id'])}, is asked at once.",
                pause=1.5,
            )

    def third_accepts() -> None:
        with sim.factory() as session:
            referral = session.get_one(Referral, state["referral_id"])
            offer = next(
                o
                for o in referral.offers
                if o.status is OfferStatus.PENDING and o.facility.code == third
            )
            say(
                sim.now,
                f"At {third} ({offer.facility.name_en}) the obstetrician on call opens the "
                "offer on the web and accepts: ready in 10 minutes.",
            )
            service.accept_offer(
                session,
                place=sim.place,
                referral=referral,
                offer=offer,
                actor=actor_named(session, "scenario-on-call"),
                minutes=10,
                now=sim.now,
            )
            session.commit()
            withdrawn = [
                o.facility.code for o in referral.offers if o.status is OfferStatus.WITHDRAWN
            ]
            say(
                None,
                f"Accepted by {third}, {offer.eta_minutes:.0f} min away. "
                + (f"The offer to {', '.join(withdrawn)} is withdrawn; " if withdrawn else "")
                + "every timer of the case stops; the clinic is told where to go:",
                pause=1.5,
            )
            state["destination"] = third
            state["eta"] = offer.eta_minutes

    t0 = sim.now
    events: dict[dt.datetime, Callable[[], None]] = {
        t0 + dt.timedelta(minutes=2): first_declines,
        t0 + dt.timedelta(minutes=3, seconds=20): third_accepts,
    }
    watched: dict[dt.datetime, str] = {
        t0 + dt.timedelta(minutes=1, seconds=30): (
            "Neither hospital has answered for 1.5 minutes: at each, the next person on call "
            "of every team is texted, the switchboard is asked to find the team, and the "
            "area coordinator is told."
        ),
        t0 + dt.timedelta(minutes=3): (
            f"{second} has been silent for 3 minutes: its offer expires and the next capable "
            "hospital is asked."
        ),
    }
    say(
        sim.now,
        f"The worker's first tick sends them, and a capacity reminder to {STALE_HOSPITAL}, "
        "whose bed figures have not been confirmed since yesterday:",
    )
    sim.run_until(t0 + dt.timedelta(minutes=3, seconds=40), events, watched)

    # -- departure, journey, arrival, outcome
    sim.now = t0 + dt.timedelta(minutes=6)
    with sim.factory() as session:
        referral = session.get_one(Referral, state["referral_id"])
        service.depart(
            session, referral=referral, actor=actor_named(session, "clinic"), now=sim.now
        )
        session.commit()
    say(
        sim.now,
        f"The ambulance leaves {origin.code} with the township doctor as escort "
        "(the clinic marks the departure).",
        pause=1,
    )
    road = round(state["eta"])
    say(None, f"… {road} minutes on the road (simulated) …", pause=2)
    sim.now += dt.timedelta(minutes=road)
    with sim.factory() as session:
        referral = session.get_one(Referral, state["referral_id"])
        service.arrive(
            session, referral=referral, actor=actor_named(session, "scenario-on-call"), now=sim.now
        )
        session.commit()
    say(
        sim.now,
        f"Arrived at {state['destination']}; the team is waiting at the door. The clinic is told:",
    )
    sim.tick()
    narrator.pause(1)
    sim.now += dt.timedelta(minutes=50)
    with sim.factory() as session:
        referral = session.get_one(Referral, state["referral_id"])
        service.complete(
            session,
            referral=referral,
            actor=actor_named(session, "scenario-on-call"),
            outcome="PPH from atony: uterotonics, balloon tamponade, 4 units red cells; stable",
            now=sim.now,
        )
        session.commit()
        say(sim.now, f"{state['destination']} closes the case: “{referral.outcome}”.")
        intervals = service.intervals(referral)
        state["intervals"] = intervals
        state["offers"] = {
            o.facility.code: o.status.value for o in sorted(referral.offers, key=lambda o: o.id)
        }
        state["status"] = referral.status.value
    say(None, "")
    say(None, f"Report card of case {code} (docs/domain.md):")
    labels = {
        "decision_to_first_alert": "decision → first pre-alert",
        "decision_to_first_answer": "decision → first answer",
        "decision_to_accepted": "decision → accepted destination",
        "accepted_to_departed": "accepted → departed",
        "departed_to_arrived": "departed → arrived",
        "decision_to_arrived": "decision → arrived",
        "arrived_to_completed": "arrived → case closed",
    }
    for key, label in labels.items():
        narrator.note(f"{label:<34} {minutes_text(intervals.get(key))}")
    offers_text = ", ".join(f"{code_} {status}" for code_, status in state["offers"].items())
    say(None, f"Offers: {offers_text}.")
    say(
        None,
        "Every step above went through the service's own code: the same referral services, "
        "SMS outbox, reply parser and worker as in production. Try it with your own hands: "
        "greenchannel demo",
    )
    return state


def _newest_pending(session: Session, referral_id: int) -> str:
    referral = session.get_one(Referral, referral_id)
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    newest = max(pending, key=lambda o: o.id)
    return f"{newest.facility.code} ({newest.eta_minutes:.0f} min)"
