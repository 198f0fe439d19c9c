"""``greenchannel demo --scenario pph``: one postpartum haemorrhage, end to end, in a minute.

The scenario builds the demo region (facilities and roads) in a temporary SQLite database, so
the demo database is never touched, then drives the real services (:mod:`referral.service`),
the real SMS reply path (:func:`alerts.inbound.handle_inbound`) and the real worker tick
(:func:`alerts.timers.tick`) with a simulated clock that steps 5 s at a time. Real time runs
at about one simulated minute per second, with short pauses at the moments worth reading;
``fast`` (``--fast`` or ``GREENCHANNEL_DEMO_FAST=1``) skips every pause.

The script: a township clinic refers a PPH case → the two nearest capable hospitals are asked
at once → the nearer stays silent (its next person on call, switchboard and coordinator are
told at 1.5 min; the offer expires at 3 min and the next hospital is asked) → the other
declines by SMS (FULL) and the next one is asked → that one accepts on the web → the clinic is
told, departs, the patient arrives, the case closes with its report card.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.inbound import handle_inbound
from alerts.models import OutboundMessage
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import tick
from facilities.accounts import create_user
from facilities.models import Contact, Facility, FacilityKind, Team, User
from greenchannel.demo.console import phone_labels
from greenchannel.demo.region import STALE_HOSPITAL, build_demo_region, demo_road_network
from greenchannel.demo.roads import save_network
from greenchannel.runtime import Runtime, build_runtime, default_settings
from referral import placement, service
from referral.models import OfferStatus, Referral
from referral.triage import Case

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")
STEP = dt.timedelta(seconds=5)
SCENARIOS = ("pph", "safety-net")

PURPOSE_TEXT = {
    "prealert": "pre-alert",
    "escalation": "escalation to the next person on call",
    "switchboard": "to the switchboard: find the team",
    "coordinator": "to the coordinator: a hospital is not answering",
    "case_accepted": "to the referring clinic: where to go",
    "patient_arrived": "to the referring clinic: arrived",
    "capacity_reminder": "capacity reminder",
    "coordinator_unplaced": "to the coordinator: nobody accepts",
    "coordinator_capacity": "to the coordinator: stale capacity",
    "safety_net_assigned": "SAFETY NET: to the designated centre's teams",
    "coordinator_safety_net": "to the coordinator: the safety net acted",
    "clinic_unplaced": "to the referring clinic: nobody accepts yet",
    "stand_down": "stand down",
}


@dataclass
class Narrator:
    stream: TextIO
    fast: bool
    labels: dict[str, str] = field(default_factory=dict)
    paused: float = 0.0

    def pause(self, seconds: float) -> None:
        if not self.fast and seconds > 0:
            time.sleep(seconds)
            self.paused += seconds

    def say(self, when: dt.datetime | None, text: str, *, pause: float = 0.0) -> None:
        stamp = when.astimezone(CHINA).strftime("%H:%M:%S") if when else " " * 8
        lines = textwrap.wrap(text, width=88, subsequent_indent=" " * 11) or [""]
        print(f"{stamp}  {lines[0]}", file=self.stream)
        for line in lines[1:]:
            print(line, file=self.stream)
        self.stream.flush()
        self.pause(pause)

    def note(self, text: str) -> None:
        for line in textwrap.wrap(
            text, width=88, initial_indent=" " * 10, subsequent_indent=" " * 10
        ):
            print(line, file=self.stream)

    def sms(self, rows: list[OutboundMessage]) -> None:
        """The SMS one tick sent, identical texts shown once with all their recipients."""
        groups: dict[tuple[str, str], list[OutboundMessage]] = {}
        for row in rows:
            groups.setdefault((row.purpose, row.body), []).append(row)
        for (purpose, body), members in groups.items():
            who = "; ".join(
                f"{self.labels.get(m.to_phone, m.to_phone)} ({m.to_phone})" for m in members
            )
            segments = members[0].segments
            print(
                f"          ┌─ SMS, {PURPOSE_TEXT.get(purpose, purpose)}, "
                f"{segments} segment{'s' if segments != 1 else ''}\n"
                + "".join(
                    f"          │ {line}\n"
                    for line in textwrap.wrap(f"to {who}", width=78, subsequent_indent="   ")
                )
                + "".join(f"          │   {line}\n" for line in _body_lines(body))
                + "          └─",
                file=self.stream,
            )
        self.stream.flush()


def _body_lines(body: str) -> list[str]:
    """English wrapped at spaces; Chinese (no spaces to wrap at) one sentence a line."""
    if body.isascii():
        return textwrap.wrap(body, width=76) or [""]
    for mark in ("。", "；"):
        body = body.replace(mark, mark + "\n")
    return [line for line in body.splitlines() if line] or [""]


class Simulation:
    """The clock, the worker and the database of one scenario run."""

    def __init__(self, runtime: Runtime, narrator: Narrator, start: dt.datetime) -> None:
        self.runtime = runtime
        self.narrator = narrator
        self.now = start
        self.factory: Callable[[], Session] = runtime.sessions
        self.place: service.Placement = runtime.place()
        self.handlers = runtime.handlers
        self.transport = RecordingTransport()
        rules = self.place.rules
        self.settings = WorkerSettings(
            capacity_grace=rules.stale_grace, capacity_second_grace=rules.second_grace
        )
        self.seen = 0

    def tick(self) -> None:
        tick(
            self.factory,
            now=self.now,
            transport=self.transport,
            handlers=self.handlers,
            worker_id="scenario",
            settings=self.settings,
        )
        sent = self.transport.sent[self.seen :]
        self.seen = len(self.transport.sent)
        if not sent:
            return
        ids = [sms.provider_id for sms in sent]
        with self.factory() as session:
            rows = list(
                session.scalars(
                    select(OutboundMessage)
                    .where(OutboundMessage.provider_id.in_(ids))
                    .order_by(OutboundMessage.id)
                )
            )
            session.expunge_all()
        self.narrator.sms(rows)

    def run_until(self, until: dt.datetime, events: dict[dt.datetime, Callable[[], None]]) -> None:
        """Step the clock to ``until``: scripted events at their times, a worker tick each step
        (one simulated minute per real second)."""
        while self.now <= until:
            event = events.pop(self.now, None)
            if event is not None:
                event()
            self.tick()
            self.narrator.pause(STEP.total_seconds() / 60)
            self.now += STEP
        self.now -= STEP


def _actor(session: Session, username: str) -> service.Actor:
    user = session.scalars(select(User).where(User.username == username)).one()
    return service.Actor(
        name=user.username,
        channel="web",
        role=user.role,
        user_id=user.id,
        facility_id=user.facility_id,
        area=user.area,
    )


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} min"


def run_pph(runtime: Runtime, narrator: Narrator, start: dt.datetime) -> dict[str, Any]:
    """The PPH case; returns what happened (for tests): offers by hospital, intervals."""
    sim = Simulation(runtime, narrator, start)
    say = narrator.say
    state: dict[str, Any] = {}

    # -- 08:00 the referral
    with sim.factory() as session:
        origin = session.scalars(select(Facility).where(Facility.code == "LH-T01")).one()
        say(
            sim.now,
            f"{origin.name} ({origin.code}, {origin.name_en}): a woman is bleeding heavily "
            "20 minutes after giving birth at 39 weeks; about 1,000 mL lost. Uterine massage "
            "and oxytocin are under way. The duty doctor refers her on the web form: PPH.",
            pause=2,
        )
        doctor = session.scalars(
            select(Contact).where(Contact.facility_id == origin.id).order_by(Contact.priority)
        ).first()
        assert doctor is not None
        referral, _ = service.create_referral(
            session,
            place=sim.place,
            actor=_actor(session, "clinic"),
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
                actor=_actor(session, "scenario-on-call"),
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
    original_tick = sim.tick

    def narrated_tick() -> None:
        text = watched.pop(sim.now, None)
        if text:
            say(sim.now, text, pause=1)
        original_tick()

    sim.tick = narrated_tick  # type: ignore[method-assign]
    say(
        sim.now,
        f"The worker's first tick sends them, and a capacity reminder to {STALE_HOSPITAL}, "
        "whose bed figures have not been confirmed since yesterday:",
    )
    sim.run_until(t0 + dt.timedelta(minutes=3, seconds=40), events)

    # -- departure, journey, arrival, outcome
    sim.now = t0 + dt.timedelta(minutes=6)
    with sim.factory() as session:
        referral = session.get_one(Referral, state["referral_id"])
        service.depart(session, referral=referral, actor=_actor(session, "clinic"), now=sim.now)
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
            session, referral=referral, actor=_actor(session, "scenario-on-call"), now=sim.now
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
            actor=_actor(session, "scenario-on-call"),
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
        narrator.note(f"{label:<34} {_minutes(intervals.get(key))}")
    offers_text = ", ".join(f"{code_} {status}" for code_, status in state["offers"].items())
    say(None, f"Offers: {offers_text}.")
    say(
        None,
        "Every step above went through the service's own code: the same referral services, "
        "SMS outbox, reply parser and worker as in production. Try it with your own hands: "
        "greenchannel demo",
    )
    return state


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
        origin = session.scalars(select(Facility).where(Facility.code == SAFETY_NET_ORIGIN)).one()
        say(
            sim.now,
            f"{origin.name} ({origin.code}, {origin.name_en}): a woman at 30 weeks, not yet "
            "delivered, has an eclamptic fit. BP 172/118, HR 104. Magnesium sulphate 4 g IV is "
            "running. The duty doctor refers her by SMS.",
            pause=2,
        )
        doctor = session.scalars(
            select(Contact).where(Contact.facility_id == origin.id).order_by(Contact.priority)
        ).first()
        assert doctor is not None
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
    original_tick = sim.tick

    def narrated_tick() -> None:
        text = watched.pop(sim.now, None)
        if text:
            say(sim.now, text, pause=1)
        original_tick()

    sim.tick = narrated_tick  # type: ignore[method-assign]
    sim.run_until(t0 + dt.timedelta(minutes=6), events)
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


def _newest_pending(session: Session, referral_id: int) -> str:
    referral = session.get_one(Referral, referral_id)
    pending = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    newest = max(pending, key=lambda o: o.id)
    return f"{newest.facility.code} ({newest.eta_minutes:.0f} min)"


def run_scenario(name: str, *, fast: bool = False, stream: TextIO | None = None) -> dict[str, Any]:
    """Build the demo region in a temporary database and play scenario ``name``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: expected one of {', '.join(SCENARIOS)}")
    out = stream or sys.stdout
    narrator = Narrator(out, fast=fast)
    # The story is told on stdout; the services' own INFO logs would drown it.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        return _run(name, narrator, out)
    finally:
        logging.disable(previous)


def _run(name: str, narrator: Narrator, out: TextIO) -> dict[str, Any]:
    from migrations import upgrade

    today = dt.datetime.now(CHINA).date()
    start = dt.datetime(today.year, today.month, today.day, 8, 0, tzinfo=CHINA).astimezone(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="greenchannel-scenario-") as folder:
        url = f"sqlite:///{Path(folder) / 'scenario.sqlite'}"
        roads = Path(folder) / "roads.npz"
        runtime = build_runtime(
            {
                **default_settings(folder),
                "DATABASE_URL": url,
                "GREENCHANNEL_ROADS": str(roads),
                "SMS_BACKEND": "console",
            }
        )
        print(
            "Building the demo region (facilities and roads) in a temporary database; your "
            "demo database is not touched ...",
            file=out,
            flush=True,
        )
        upgrade(url)
        save_network(demo_road_network(speeds=runtime.rules.road_speeds_kmh).network, roads)
        with runtime.sessions() as session:
            build_demo_region(session, now=start)
            session.commit()
            narrator.labels = phone_labels(session)
        title = {
            "pph": "Scenario PPH: postpartum haemorrhage at a township health centre.",
            "safety-net": "Scenario safety net: every capable hospital declines or stays silent.",
        }[name]
        print(
            f"\n{title} Clock simulated (China time), about one minute per second; every "
            "step goes through the real services, SMS outbox and worker.\n",
            file=out,
            flush=True,
        )
        play = run_pph if name == "pph" else run_safety_net
        state = play(runtime, narrator, start)
        runtime.engine.dispose()
    return state
