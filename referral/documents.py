"""What the API says about a case: the JSON document of a referral, read in four queries.

A coordinator's board asks every couple of seconds for every open case with its offers and its
timeline. Loading those as ORM objects and dumping them through marshmallow cost about 80 ms
of a core per refresh for a hundred cases. Here it is one query each for the cases, their
offers, their timelines and the facilities they name, as plain rows; the JSON the database
already holds (requirements, reasons, event details) is passed through as text, never parsed
and re-encoded; orjson writes the answer. Every referral endpoint answers with these documents,
so a case reads the same whichever way it was reached. Their shape is ``ReferralOutSchema`` in
the OpenAPI description (the API tests and schemathesis hold them to it). The list endpoint
keeps each document it wrote, as JSON, until the case's revision moves (:func:`cached`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Row, Text, cast, select
from sqlalchemy.orm import Session

from facilities.models import Facility
from referral import service
from referral.models import Offer, Referral, ReferralEvent, ReferralStatus
from referral.rules import Rules


@dataclass(frozen=True)
class Place:
    """The facility columns a case document names (and visibility checks read)."""

    id: int
    code: str
    name: str
    province: str
    city: str
    county: str


@dataclass
class CaseRows:
    """One case as rows: enough to decide who may see it and to write its document."""

    referral: Row[Any]
    origin: Place
    destination: Place | None
    offers: list[tuple[Row[Any], Place]] = field(default_factory=list)
    events: list[Row[Any]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.referral.id)

    def visible_to(self, actor: service.Actor) -> bool:
        return service.can_see(
            actor,
            origin=self.origin,
            destination=self.destination,
            offered=[place for _, place in self.offers],
        )


def _text(column: Any) -> Any:
    """A JSON column as its stored text (labelled with its own name)."""
    return cast(column, Text).label(column.key)


# Built once: constructing a select of many columns costs more than running it.
REFERRALS = select(
    Referral.id,
    Referral.code,
    Referral.status,
    Referral.urgency,
    Referral.patient_kind,
    Referral.outreach,
    Referral.origin_facility_id,
    Referral.destination_facility_id,
    Referral.case,
    _text(Referral.requirements),
    _text(Referral.reasons),
    Referral.window_minutes,
    Referral.outcome,
    Referral.cancel_reason,
    Referral.created_at,
    Referral.first_alert_at,
    Referral.first_answer_at,
    Referral.accepted_at,
    Referral.departed_at,
    Referral.arrived_at,
    Referral.completed_at,
    Referral.revision,
)
_OFFERS = select(
    Offer.id,
    Offer.referral_id,
    Offer.facility_id,
    Offer.status,
    Offer.kind,
    Offer.rank,
    Offer.eta_minutes,
    Offer.distance_km,
    Offer.estimate,
    _text(Offer.reasons),
    Offer.offered_at,
    Offer.expires_at,
    Offer.answered_at,
    Offer.answered_by,
    Offer.answer_minutes,
    Offer.decline_reason,
    Offer.decline_note,
).order_by(Offer.id)
_EVENTS = select(
    ReferralEvent.referral_id,
    ReferralEvent.at,
    ReferralEvent.kind,
    ReferralEvent.actor,
    ReferralEvent.channel,
    ReferralEvent.offer_id,
    _text(ReferralEvent.detail),
).order_by(ReferralEvent.at, ReferralEvent.id)
_PLACES = select(
    Facility.id, Facility.code, Facility.name, Facility.province, Facility.city, Facility.county
)


def load(session: Session, ids: Sequence[int]) -> list[CaseRows]:
    """The cases of ``ids``, in that order (ids with no case are left out)."""
    if not ids:
        return []
    by_id = {row.id: row for row in session.execute(REFERRALS.where(Referral.id.in_(ids)))}
    return complete(session, [by_id[i] for i in dict.fromkeys(ids) if i in by_id])


def _places(session: Session, ids: set[int]) -> dict[int, Place]:
    """The registry's current entries for these facility ids."""
    return {
        row.id: Place(row.id, row.code, row.name, row.province, row.city, row.county)
        for row in session.execute(_PLACES.where(Facility.id.in_(ids)))
    }


def complete(session: Session, rows: Sequence[Row[Any]]) -> list[CaseRows]:
    """The cases of these rows of :data:`REFERRALS` (in their order) with offers and timeline."""
    if not rows:
        return []
    wanted = [row.id for row in rows]
    offers = session.execute(_OFFERS.where(Offer.referral_id.in_(wanted))).all()
    events = session.execute(_EVENTS.where(ReferralEvent.referral_id.in_(wanted))).all()
    facility_ids = {row.origin_facility_id for row in rows}
    facility_ids |= {row.destination_facility_id for row in rows} - {None}
    facility_ids |= {row.facility_id for row in offers}
    places = _places(session, facility_ids)
    offers_of: dict[int, list[tuple[Row[Any], Place]]] = defaultdict(list)
    for row in offers:
        offers_of[row.referral_id].append((row, places[row.facility_id]))
    events_of: dict[int, list[Row[Any]]] = defaultdict(list)
    for row in events:
        events_of[row.referral_id].append(row)
    return [
        CaseRows(
            referral=row,
            origin=places[row.origin_facility_id],
            destination=(
                places[row.destination_facility_id]
                if row.destination_facility_id is not None
                else None
            ),
            offers=offers_of[row.id],
            events=events_of[row.id],
        )
        for row in rows
    ]


def _raw(text: str | None) -> orjson.Fragment | None:
    """Stored JSON text, written into the answer as it is."""
    return orjson.Fragment(text) if text is not None else None


def _offer(row: Row[Any], place: Place) -> dict[str, Any]:
    return {
        "id": row.id,
        "facility": place.code,
        "facility_name": place.name,
        "status": row.status.value,
        "kind": row.kind,
        "rank": row.rank,
        "eta_minutes": row.eta_minutes,
        "distance_km": row.distance_km,
        "estimate": row.estimate,
        "reasons": _raw(row.reasons),
        "offered_at": row.offered_at,
        "expires_at": row.expires_at,
        "answered_at": row.answered_at,
        "answered_by": row.answered_by,
        "answer_minutes": row.answer_minutes,
        "decline_reason": row.decline_reason.value if row.decline_reason else None,
        "decline_note": row.decline_note,
    }


def document(case: CaseRows, rules: Rules) -> dict[str, Any]:
    """The document of one case (``ReferralOutSchema``), ready for :func:`json_response` (its
    stored JSON is still text and its times are datetimes: orjson writes them as ISO 8601)."""
    row = case.referral
    conditions = [c for c in row.case.get("conditions", []) if c in rules.conditions]
    return {
        "id": row.id,
        "code": row.code,
        "status": row.status.value,
        "urgency": row.urgency,
        "patient_kind": row.patient_kind,
        "outreach": row.outreach,
        "origin_facility": case.origin.code,
        "origin_name": case.origin.name,
        "destination": case.destination.code if case.destination else None,
        "destination_name": case.destination.name if case.destination else None,
        "case": row.case,
        "requirements": _raw(row.requirements),
        "reasons": _raw(row.reasons),
        "advice": {
            language: [item for c in conditions for item in rules.conditions[c].advice[language]]
            for language in ("zh", "en")
        },
        "window_minutes": row.window_minutes,
        "offers": [_offer(offer, place) for offer, place in case.offers],
        "timeline": [
            {
                "at": event.at,
                "kind": event.kind,
                "actor": event.actor,
                "channel": event.channel,
                "offer_id": event.offer_id,
                "detail": _raw(event.detail),
            }
            for event in case.events
        ],
        "intervals": service.intervals(row),
        "created_at": row.created_at,
        "accepted_at": row.accepted_at,
        "departed_at": row.departed_at,
        "arrived_at": row.arrived_at,
        "completed_at": row.completed_at,
        "outcome": row.outcome,
        "cancel_reason": row.cancel_reason,
    }


# ---------------------------------------------------------------------------- the documents cache
# The board asks every few seconds for about a hundred cases, and between two asks only a few
# of them change. Each process keeps the JSON of the documents it wrote, under the case's
# ``revision`` (which the database's triggers change with every write to the case, its offers or
# its timeline), and writes again only the cases whose revision moved. Nothing is shared between
# processes: a process that has not seen a case yet reads it from the database, as before.

HEADS = select(Referral.id, Referral.revision)
"""The list endpoints filter and order this; :func:`cached` does the rest."""


@dataclass(frozen=True)
class Written:
    """One case's document as JSON, with the revision and the registry entries it was made of."""

    id: int
    revision: int
    status: ReferralStatus
    origin: Place
    destination: Place | None
    offered: tuple[Place, ...]
    body: bytes

    @property
    def places(self) -> tuple[Place, ...]:
        named = (self.origin, self.destination, *self.offered)
        return tuple(place for place in named if place is not None)

    def visible_to(self, actor: service.Actor) -> bool:
        return service.can_see(
            actor, origin=self.origin, destination=self.destination, offered=list(self.offered)
        )


class DocumentCache:
    """The documents one process wrote, by case id: at most ``size``, the least recently read
    leave first. Threads of the process share it; a lost race only writes a document twice."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: OrderedDict[int, Written] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, case_id: int, revision: int) -> Written | None:
        with self._lock:
            entry = self._entries.get(case_id)
            if entry is None or entry.revision != revision:
                return None
            self._entries.move_to_end(case_id)
            return entry

    def put(self, entry: Written) -> None:
        with self._lock:
            self._entries[entry.id] = entry
            self._entries.move_to_end(entry.id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def written(case: CaseRows, rules: Rules) -> Written:
    return Written(
        id=case.id,
        revision=int(case.referral.revision),
        status=case.referral.status,
        origin=case.origin,
        destination=case.destination,
        offered=tuple(place for _, place in case.offers),
        body=orjson.dumps(document(case, rules), option=orjson.OPT_NON_STR_KEYS),
    )


def cached(
    session: Session, heads: Sequence[Row[int, int]], rules: Rules, cache: DocumentCache
) -> list[Written]:
    """The documents of the cases of ``heads`` (rows of :data:`HEADS`, in their order).

    A cached document serves when its revision is the one just read and every facility it
    names still has the code, name and area it had (a renamed hospital rewrites its cases);
    the rest are read in one batch (:func:`load`) and cached.
    """
    found: dict[int, Written] = {}
    for head in heads:
        entry = cache.get(head.id, head.revision)
        if entry is not None:
            found[head.id] = entry
    if found:
        current = _places(session, {place.id for e in found.values() for place in e.places})
        for case_id, entry in list(found.items()):
            if any(current.get(place.id) != place for place in entry.places):
                del found[case_id]
    for case in load(session, [head.id for head in heads if head.id not in found]):
        entry = written(case, rules)
        cache.put(entry)
        found[case.id] = entry
    return [found[head.id] for head in heads if head.id in found]
