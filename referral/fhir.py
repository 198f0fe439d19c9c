"""A referral as FHIR R4: a ``Task`` with its ``ServiceRequest`` and a ``Patient`` contained.

Pure functions over the rows the API's documents are read from (:mod:`referral.documents`); no
Flask. The mapping (states, codes, what is left out and why) is docs/interoperability.md.

- The Task carries the ServiceRequest (``focus``) and the Patient (``for``) as contained
  resources: one GET answers with everything the case says and every reference resolves inside
  the answer, with no ServiceRequest or Patient endpoint to serve or to guard.
- Facilities are named by their registry identifier (a logical reference with the facility-code
  system of the registry export), which a platform that loaded the export resolves.
- The history is the timeline as ``Task.note`` (time, actor, what happened): a reader gets it
  in the same answer, in order; Provenance would need its own endpoint and ``_revinclude``.
- The Patient holds no name, register number, ID number, age or birth date: only the sex.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row, exists, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.fhir import BASE, instant, meta, pruned
from facilities.export import FHIR_CODE_SYSTEM
from referral import documents
from referral.documents import CaseRows, Place
from referral.models import OfferStatus, Referral, ReferralEvent, ReferralStatus
from referral.rules import Rules

REFERRAL_SYSTEM = f"{BASE}/NamingSystem/referral"
BUSINESS_STATUS_SYSTEM = f"{BASE}/CodeSystem/referral-status"
EVENT_SYSTEM = f"{BASE}/CodeSystem/referral-event"
REQUEST_SYSTEM = f"{BASE}/CodeSystem/referral-request"
CANCEL_REASON_SYSTEM = f"{BASE}/CodeSystem/cancel-reason"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

#: referral state → Task.status (docs/interoperability.md, "States"); ``businessStatus`` keeps
#: the referral's own state, which tells the cases apart that share a Task status.
TASK_STATUS: dict[ReferralStatus, str] = {
    ReferralStatus.REQUESTED: "requested",
    ReferralStatus.OFFERED: "requested",
    ReferralStatus.UNPLACED: "requested",
    ReferralStatus.ACCEPTED: "accepted",
    ReferralStatus.IN_TRANSIT: "in-progress",
    ReferralStatus.ARRIVED: "in-progress",
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.CANCELLED: "cancelled",
}
#: the Task statuses a search may ask for, each with the referral states it stands for
TASK_STATUSES: dict[str, frozenset[ReferralStatus]] = {
    status: frozenset(s for s, t in TASK_STATUS.items() if t == status)
    for status in (
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    )
}
REQUEST_STATUS: dict[ReferralStatus, str] = {
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.CANCELLED: "revoked",
}
PRIORITY = {"critical": "stat", "urgent": "asap"}  # anything else: routine
BUSINESS_STATUS_TEXT = {
    ReferralStatus.REQUESTED: "requested: being triaged and ranked",
    ReferralStatus.OFFERED: "offered: waiting for a hospital to accept",
    ReferralStatus.UNPLACED: "unplaced: no hospital accepted; coordinators are placing it",
    ReferralStatus.ACCEPTED: "accepted: a hospital will receive the patient",
    ReferralStatus.IN_TRANSIT: "in transit: the patient is on the way",
    ReferralStatus.ARRIVED: "arrived: the patient is at the receiving hospital",
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class FhirCase:
    """One case as read for FHIR: its document rows, the patient's sex, its last change."""

    rows: CaseRows
    sex: str
    last_updated: dt.datetime
    closed_at: dt.datetime | None = None

    @property
    def id(self) -> int:
        return self.rows.id


def load(session: Session, ids: Sequence[int]) -> list[FhirCase]:
    """The cases of ``ids`` in that order (ids with no case are left out): the documents'
    rows, plus the two things only FHIR needs (the sex, and the time of the last change)."""
    cases = documents.load(session, ids)
    if not cases:
        return []
    wanted = [case.id for case in cases]
    extra = {
        row.id: row
        for row in session.execute(
            select(Referral.id, Referral.patient, Referral.updated_at, Referral.closed_at).where(
                Referral.id.in_(wanted)
            )
        )
    }
    out = []
    for case in cases:
        row = extra[case.id]
        patient = row.patient if isinstance(row.patient, dict) else {}
        times = [row.updated_at, *(event.at for event in case.events)]
        out.append(
            FhirCase(
                rows=case,
                sex=str(patient.get("sex") or "unknown"),
                last_updated=max(times),
                closed_at=row.closed_at,
            )
        )
    return out


def last_updated_clause(prefix: str, when: dt.datetime) -> ColumnElement[bool]:
    """``Referral`` rows whose last change (:attr:`FhirCase.last_updated`: the case row or
    its newest timeline event) is ``prefix`` (``ge``, ``gt``, ``le``, ``lt``) ``when``."""
    changed = Referral.updated_at
    event_at = ReferralEvent.at

    def events(condition: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(ReferralEvent.referral_id == Referral.id, condition)

    if prefix == "ge":
        return (changed >= when) | events(event_at >= when)
    if prefix == "gt":
        return (changed > when) | events(event_at > when)
    if prefix == "le":
        return (changed <= when) & ~events(event_at > when)
    if prefix == "lt":
        return (changed < when) & ~events(event_at >= when)
    raise ValueError(f"unknown prefix {prefix!r}")


def _organization(place: Place) -> dict[str, Any]:
    """A facility as a logical reference: its registry identifier (docs/interoperability.md)."""
    return {
        "type": "Organization",
        "identifier": {"system": FHIR_CODE_SYSTEM, "value": place.code},
        "display": place.name,
    }


def _reason(code: str, rules: Rules) -> dict[str, Any]:
    condition = rules.conditions.get(code)
    if condition is None:  # a condition the region's rules no longer have: its code as text
        return {"text": code}
    coding = []
    if "snomed" in condition.codes:
        coding.append({"system": SNOMED, "code": condition.codes["snomed"]})
    if "icd10" in condition.codes:
        coding.append({"system": ICD10, "code": condition.codes["icd10"]})
    return {"coding": coding, "text": condition.name["en"]}


def _patient(case: FhirCase) -> dict[str, Any]:
    row = case.rows.referral
    if row.patient_kind == "mother":
        gender = "female"
    else:
        gender = case.sex if case.sex in ("male", "female") else "unknown"
    return {"resourceType": "Patient", "id": "patient", "gender": gender}


def _service_request(case: FhirCase, rules: Rules) -> dict[str, Any]:
    row = case.rows.referral
    conditions = row.case.get("conditions", []) if isinstance(row.case, dict) else []
    kind = "outreach" if row.outreach else "transfer"
    return {
        "resourceType": "ServiceRequest",
        "id": "request",
        "identifier": [{"system": REFERRAL_SYSTEM, "value": str(row.id)}],
        "status": REQUEST_STATUS.get(row.status, "active"),
        "intent": "order",
        "priority": PRIORITY.get(row.urgency, "routine"),
        "code": {
            "coding": [{"system": REQUEST_SYSTEM, "code": kind}],
            "text": "a team comes to the patient"
            if row.outreach
            else "transfer to a hospital able to treat the patient",
        },
        "subject": {"reference": "#patient"},
        "authoredOn": instant(row.created_at),
        "requester": _organization(case.rows.origin),
        "performer": [_organization(case.rows.destination)] if case.rows.destination else [],
        "reasonCode": [_reason(code, rules) for code in conditions],
    }


def _note(event: Row[Any], offers: Mapping[int, Place]) -> dict[str, Any]:
    """One timeline step as an Annotation: when, who, what (and which hospital). The details
    stay out: they may hold a clinic's free text."""
    where = offers.get(event.offer_id) if event.offer_id is not None else None
    text = event.kind.replace("_", " ")
    if where is not None:
        text = f"{text}: {where.code} {where.name}"
    return {
        "authorString": f"{event.actor} ({event.channel})",
        "time": instant(event.at),
        "text": text,
    }


def task(case: FhirCase, rules: Rules) -> dict[str, Any]:
    """The Task of one case (docs/interoperability.md), pruned of empty elements."""
    rows = case.rows
    row = rows.referral
    status = ReferralStatus(row.status)
    offered = {offer.id: place for offer, place in rows.offers}
    pending = [place for offer, place in rows.offers if offer.status is OfferStatus.PENDING]
    end = row.completed_at or case.closed_at
    resource = {
        "resourceType": "Task",
        "id": str(row.id),
        "meta": meta("Task", updated=case.last_updated),
        "contained": [_service_request(case, rules), _patient(case)],
        "identifier": [{"system": REFERRAL_SYSTEM, "value": str(row.id)}],
        "basedOn": [{"reference": "#request"}],
        "status": TASK_STATUS[status],
        "statusReason": {
            "coding": [{"system": CANCEL_REASON_SYSTEM, "code": row.cancel_reason}],
        }
        if status is ReferralStatus.CANCELLED and row.cancel_reason
        else None,
        "businessStatus": {
            "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": status.value}],
            "text": BUSINESS_STATUS_TEXT[status],
        },
        "intent": "order",
        "priority": PRIORITY.get(row.urgency, "routine"),
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/CodeSystem/task-code",
                    "code": "fulfill",
                    "display": "Fulfill the focal request",
                }
            ]
        },
        "focus": {"reference": "#request"},
        "for": {"reference": "#patient"},
        "executionPeriod": {
            "start": instant(row.created_at),
            "end": instant(end) if end is not None else None,
        },
        "authoredOn": instant(row.created_at),
        "lastModified": instant(case.last_updated),
        "requester": _organization(rows.origin),
        "owner": _organization(rows.destination) if rows.destination else None,
        "restriction": {"recipient": [_organization(place) for place in pending]},
        "note": [_note(event, offered) for event in rows.events],
    }
    return pruned(resource)


def task_json(case: FhirCase, rules: Rules) -> bytes:
    return orjson.dumps(task(case, rules))


def searchset(
    cases: Sequence[FhirCase], rules: Rules, *, base: str, now: dt.datetime, next_url: str | None
) -> dict[str, Any]:
    """A ``searchset`` Bundle of these cases' Tasks; ``base`` is the server's FHIR base URL
    (the entries' fullUrl), ``next_url`` the next page when there is one."""
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return pruned(
        {
            "resourceType": "Bundle",
            "meta": meta("Bundle"),
            "type": "searchset",
            "timestamp": instant(now),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/Task/{case.id}",
                    "resource": task(case, rules),
                    "search": {"mode": "match"},
                }
                for case in cases
            ],
        }
    )
