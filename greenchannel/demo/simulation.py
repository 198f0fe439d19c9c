"""What every scripted scenario runs on: a simulated clock stepping the real worker, a narrator
that prints the story and the SMS, the temporary database."""

from __future__ import annotations

import datetime as dt
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.models import OutboundMessage
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.worker import tick
from facilities.models import Contact, Facility, User
from greenchannel.runtime import Runtime
from referral import service

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
    "clinic_unplaced": "to the referring clinic: nobody accepts yet, whom to call",
    "clinic_safety_net": "to the referring clinic: where to go (safety net)",
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

    @staticmethod
    def duty_doctor(session: Session, code: str) -> tuple[Facility, Contact]:
        """The clinic of that code and its first contact on call (who refers in a scenario)."""
        origin = session.scalars(select(Facility).where(Facility.code == code)).one()
        doctor = session.scalars(
            select(Contact).where(Contact.facility_id == origin.id).order_by(Contact.priority)
        ).first()
        assert doctor is not None, f"the demo clinic {code} has no contact"
        return origin, doctor

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

    def run_until(
        self,
        until: dt.datetime,
        events: dict[dt.datetime, Callable[[], None]],
        watched: dict[dt.datetime, str] | None = None,
    ) -> None:
        """Step the clock to ``until``: scripted events at their times, a worker tick each step
        (one simulated minute per real second); ``watched`` moments are told before their tick."""
        watched = dict(watched or {})
        while self.now <= until:
            event = events.pop(self.now, None)
            if event is not None:
                event()
            text = watched.pop(self.now, None)
            if text:
                self.narrator.say(self.now, text, pause=1)
            self.tick()
            self.narrator.pause(STEP.total_seconds() / 60)
            self.now += STEP
        self.now -= STEP


def actor_named(session: Session, username: str) -> service.Actor:
    user = session.scalars(select(User).where(User.username == username)).one()
    return service.Actor(
        name=user.username,
        channel="web",
        role=user.role,
        user_id=user.id,
        facility_id=user.facility_id,
        area=user.area,
    )


def minutes_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} min"
