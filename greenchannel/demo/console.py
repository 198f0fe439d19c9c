"""What ``greenchannel demo`` prints: SMS with who they are for, the logins and a walkthrough."""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from alerts.segments import sms_segments
from alerts.transports import SendResult
from facilities.models import Contact, Facility, User

ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}
TEAM_LABELS = {
    "obstetrics": "obstetrics",
    "neonatology": "neonatology",
    "anaesthesia": "anaesthesia",
    "blood_bank": "blood bank",
    "capacity": "bed manager",
    "coordinator": "coordinator",
}


def phone_labels(session: Session) -> dict[str, str]:
    """Phone → who holds it ("LH-CH obstetrics, 1st on call"), for the printed SMS."""
    labels: dict[str, str] = {}
    for facility in session.scalars(select(Facility)):
        if facility.phone:
            labels.setdefault(facility.phone, f"{facility.code} switchboard")
    contacts = session.scalars(
        select(Contact).options(selectinload(Contact.facility)).where(Contact.active.is_(True))
    )
    for contact in contacts:
        code = contact.facility.code
        team = TEAM_LABELS.get(contact.team.value, contact.team.value)
        if contact.facility.maternal_level <= 1 and contact.facility.neonatal_level <= 1:
            label = f"{code} duty doctor"
        else:
            label = (
                f"{code} {team}, {ORDINALS.get(contact.priority, str(contact.priority))} on call"
            )
        labels[contact.phone] = label
    for user in session.scalars(select(User).where(User.phone != "")):
        where = f" at {user.facility.code}" if user.facility else ""
        role = "" if user.username == user.role.value else f"{user.role.value} "
        labels.setdefault(user.phone, f"{role}{user.username}{where} (demo user)")
    return labels


class LabelledConsoleTransport:
    """The console transport of the demo: each SMS in a box, headed by who it is for."""

    def __init__(self, labels: Mapping[str, str], stream: TextIO | None = None) -> None:
        self.labels = dict(labels)
        self.stream = stream
        self._count = 0
        self._lock = threading.Lock()

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        info = sms_segments(body)
        segments = f"{info.segments} segment{'s' if info.segments != 1 else ''}"
        who = self.labels.get(to, "an unregistered number")
        with self._lock:
            self._count += 1
            out = self.stream or sys.stdout
            print(
                f"  ┌─ SMS to {who} ({to}), {segments}\n"
                + "".join(f"  │ {line}\n" for line in body.splitlines() or [""])
                + "  └─",
                file=out,
                flush=True,
            )
            return SendResult(provider_id=f"CONSOLE{self._count:06d}", status="sent")


def walkthrough(base: str, tokens: Mapping[str, str]) -> str:
    """Five minutes through the service, by browser or by curl, in the order that tells the
    story: refer, decline, silence, accept, travel, arrive."""
    exports = " \\\n       ".join(
        f"{name.upper()}={tokens[user]}"
        for name, user in (
            ("clinic", "clinic"),
            ("county", "county"),
            ("hospital", "hospital"),
            ("coord", "coordinator"),
        )
        if user in tokens
    )
    auth = '-H "Authorization: Bearer $'
    json = "-H 'Content-Type: application/json'"
    return f"""\
  Walkthrough (five minutes; SMS appear in this window as they are sent)
  1. Browser: log in at {base}/login as clinic (青石镇卫生院 LH-T01, a Linhe township)
     and refer a PPH case (产后出血). It is offered at once to the two nearest capable
     hospitals, Linhe County People's Hospital (LH-CH, ~15 min) and the city centre
     (YZ-CENTRE, ~42 min): watch their teams' pre-alerts print here.
  2. In a private window log in as county (LH-CH) and decline: FULL. The next capable
     hospital is asked at once, and its pre-alert prints here.
  3. Leave one offer unanswered: after 1.5 min the next person on call gets an ESCALATED
     text and the switchboard and coordinator are told; at 3 min the offer expires and the
     next hospital is asked.
  4. Log in as hospital (YZ-CENTRE) and accept: every other offer is withdrawn and the
     clinic is texted where to go. The clinic marks the departure, the hospital the arrival
     and the outcome.
  5. Log in as coordinator: the board shows every open case with its timers; the stale
     (BW-MCH) and closed (SS-CH) hospitals show why they rank last or not at all.

  The same with curl (tokens issued for this run):
    export GC={base} \\
       {exports}
    curl -s {auth}CLINIC" {json} $GC/api/v1/route \\
      -d '{{"origin": {{"facility": "LH-T01"}}, "case": {{"conditions": ["PPH"]}}}}'
    curl -s {auth}CLINIC" {json} $GC/api/v1/referrals \\
      -d '{{"origin_facility": "LH-T01", "case": {{"conditions": ["PPH"], "gestation_weeks": 39}},
           "patient": {{"ref": "demo-1"}}}}'
    # note the referral "id" and the "offers" ids in the answer; below: referral 1, offers 1 and 2
    curl -s {auth}COUNTY" {json} $GC/api/v1/referrals/1/offers/1/decline -d '{{"reason": "FULL"}}'
    curl -s {auth}HOSPITAL" {json} $GC/api/v1/referrals/1/offers/2/accept -d '{{"eta_minutes": 10}}'
    curl -s {auth}CLINIC" {json} -X POST $GC/api/v1/referrals/1/depart -d '{{}}'
    curl -s {auth}HOSPITAL" {json} -X POST $GC/api/v1/referrals/1/arrive -d '{{}}'
    curl -s {auth}COORD" $GC/api/v1/referrals/1     # the timeline and the intervals
    curl -s {auth}COORD" $GC/api/v1/facilities/BW-MCH   # "stale": true

  The whole story in one minute, without a browser: greenchannel demo --scenario pph
"""
