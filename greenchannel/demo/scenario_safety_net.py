"""``greenchannel demo --scenario safety-net``: everyone declines or is silent; the designated
centre is assigned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from alerts.inbound import handle_inbound
from facilities.models import Contact, Team
from greenchannel.demo.simulation import Narrator, Simulation
from greenchannel.runtime import Runtime
from referral.models import OfferStatus, Referral

SAFETY_NET_ORIGIN = "SS-T03"
DECLINES = ("NICU", "FULL", "STAFF", "THEATRE")


def run_safety_net(runtime: Runtime, narrator: Narrator, start: dt.datetime) -> dict[str, Any]:
    """Everyone declines or stays silent: the region's safety net assigns the designated centre.

    An eclamptic mother at 30 weeks, not yet delivered, is two patients: she needs a critical
    maternal centre (M3, adult ICU) and her baby a neonatal unit that can keep a 30-week baby
    (N3). Every capable hospital is asked; the nearer ones decline, one stays silent; when
    nobody is left the rule for critical cases (``assign``) makes the city's designated centre
    the receiving hospital: its teams, the clinic and the coordinator are told, and the
    timeline records why."""
    sim = Simulation(runtime, narrator, start)
    say = narrator.say
    state: dict[str, Any] = {"declined": [], "expired": []}
    with sim.factory() as session:
        origin, doctor = sim.duty_doctor(session, SAFETY_NET_ORIGIN)
        say(
            sim.now,
            f"{origin.name} ({origin.code}, {origin.name_en}): a woman at 30 weeks, not yet "
            "delivered, has an eclamptic fit. BP 172/118, HR 104. Magnesium sulphate 4 g IV is "
            "running. The duty doctor refers her by SMS.",
            pause=2,
        )
        body = "REF ECLAMPSIA 30W UNDEL BP 172/118 HR 104"
        say(None, f"Her SMS to the service: “{body}”")
        answer = handle_inbound(
            session,
            from_phone=doctor.phone,
            body=body,
            provider_id=None,
            now=sim.now,
            handlers=sim.handlers,
        )
        session.commit()
        referral = session.scalars(
            select(Referral).where(Referral.origin_facility_id == origin.id)
        ).one()
        state["referral_id"] = referral.id
        code = referral.code
        say(None, f"The service answers at once: “{answer}”")
        say(
            None,
            f"Case {code}, {referral.urgency}: {'; '.join(referral.reasons)}. Only facilities "
            "that meet every need are asked; the city centre YZ-CENTRE is the designated "
            "centre for the whole city (the safety net).",
            pause=1.5,
        )
    silent: list[str] = []

    def answer_all() -> None:
        """Each newly asked hospital declines by SMS, except the first, which stays silent."""
        with sim.factory() as session:
            referral = session.get_one(Referral, state["referral_id"])
            for offer in sorted(referral.offers, key=lambda o: o.id):
                if offer.status is not OfferStatus.PENDING:
                    continue
                facility = offer.facility
                if not silent:
                    silent.append(facility.code)
                    say(
                        sim.now,
                        f"{facility.code} does not answer: its team is in theatre.",
                    )
                    continue
                if facility.code in silent or facility.code in state["declined"]:
                    continue
                contact = session.scalars(
                    select(Contact)
                    .where(Contact.facility_id == facility.id, Contact.team == Team.OBSTETRICS)
                    .order_by(Contact.priority)
                ).first()
                assert contact is not None
                reason = DECLINES[len(state["declined"]) % len(DECLINES)]
                text = f"{code} N {reason}"
                reply = handle_inbound(
                    session,
                    from_phone=contact.phone,
                    body=text,
                    provider_id=None,
                    now=sim.now,
                    handlers=sim.handlers,
                )
                session.commit()
                state["declined"].append(facility.code)
                say(sim.now, f"{facility.code} replies “{text}”. The service: “{reply}”", pause=1)
                break

    t0 = sim.now
    events: dict[dt.datetime, Callable[[], None]] = {
        t0 + dt.timedelta(minutes=minute): answer_all for minute in (0.5, 1, 2, 3.5, 4, 5)
    }
    watched: dict[dt.datetime, str] = {
        t0 + dt.timedelta(minutes=1, seconds=30): (
            "Still no answer after 1.5 minutes: the next person on call of each team, the "
            "switchboard and the area coordinator are texted."
        ),
        t0 + dt.timedelta(minutes=3): (
            "3 minutes of silence: the offer expires. Nobody capable is left to ask, so the "
            "region's safety net decides (critical: assign the designated centre)."
        ),
    }
    sim.run_until(t0 + dt.timedelta(minutes=6), events, watched)
    with sim.factory() as session:
        referral = session.get_one(Referral, state["referral_id"])
        state["status"] = referral.status.value
        state["destination"] = referral.destination.code if referral.destination else None
        state["offers"] = [
            (o.facility.code, o.kind, o.status.value)
            for o in sorted(referral.offers, key=lambda o: o.id)
        ]
        state["timeline"] = [event.kind for event in referral.events]
        why = next((e.detail for e in referral.events if e.kind == "safety_net_assigned"), None)
        state["why"] = why
    say(None, "")
    if why is not None:
        say(
            None,
            f"Case {code} is {state['status']}: the safety net assigned {why['facility']} "
            f"({why['why']}; rule '{why['rule']}'). Timeline: {', '.join(state['timeline'])}.",
        )
    else:
        say(None, f"Case {code} is {state['status']}; timeline: {', '.join(state['timeline'])}.")
    say(
        None,
        "No hospital was proposed that lacks a need; the designated centre took the patient "
        "because the region's rule says so (不得推诿拒诊), and everyone was told.",
    )
    return state
