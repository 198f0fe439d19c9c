"""What the API says about a case: the JSON document of a referral, read in four queries.

A coordinator's board asks every couple of seconds for every open case with its offers and its
timeline. Loading those as ORM objects and dumping them through marshmallow cost about 80 ms
of a core per refresh for a hundred cases. Here it is one query each for the cases, their
offers, their timelines and the facilities they name, as plain rows; the JSON the database
already holds (requirements, reasons, event details) is passed through as text, never parsed
and re-encoded; orjson writes the answer. Every referral endpoint answers with these documents,
so a case reads the same whichever way it was reached. Their shape is ``ReferralOutSchema`` in
the OpenAPI description (the API tests and schemathesis hold them to it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from flask import Response
from sqlalchemy import Row, Text, cast, select
from sqlalchemy.orm import Session

from facilities.models import Facility
from referral import service
from referral.models import Offer, Referral, ReferralEvent
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
    places = {
        row.id: Place(row.id, row.code, row.name, row.province, row.city, row.county)
        for row in session.execute(_PLACES.where(Facility.id.in_(facility_ids)))
    }
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
            language: [rules.conditions[c].advice[language] for c in conditions]
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


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """The JSON answer of documents (nothing is left for marshmallow to dump)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        mimetype="application/json",
    )
