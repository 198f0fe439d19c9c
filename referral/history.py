"""The case history: every case an actor may see, filtered, in keyset pages (docs/reports.md).

One validation of the filters (:func:`parse_filters`: a bad value raises
:class:`~core.errors.Invalid` naming the field), one definition of a case's *outcome*
(:data:`OUTCOME`, a SQL expression), one scope rule (:func:`referral.access.visible`, the API's
own). Everything is computed in SQL: a page reads at most ``limit + 1`` rows through the
indexes of migration 0010, never every case.

Paging is by keyset on ``(created_at, id)``: the cursor is the last row of a page, so a case
created while someone pages (newest first) lands before the first page, never as a duplicate or
a gap further down.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, not_, select, tuple_
from sqlalchemy.orm import Session, aliased

from core.errors import Invalid
from facilities.models import Facility, Role
from referral.access import Actor, visible
from referral.creation import CODE_LENGTH
from referral.models import OPEN_STATUSES, Offer, Referral, ReferralStatus
from referral.rules import COLOURS, URGENCIES, Rules

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: An export holds at most this many cases (and says so when there were more).
EXPORT_CAP = 50_000
SORTS = ("newest", "oldest")
#: ``status``: ``active`` = every open case, ``closed`` = completed or cancelled, or one state.
STATUS_CHOICES = ("active", "closed", *(s.value for s in ReferralStatus))
FILTERS: tuple[str, ...] = (
    *("from", "to", "condition", "colour", "urgency", "status", "origin", "destination"),
    *("outcome", "q"),
)
_CODE_TEXT = re.compile(r"^[A-Za-z0-9]{1,8}$")
_FACILITY_CODE = re.compile(r"^[\w.\-]{1,32}$")

# ---------------------------------------------------------------------------- the outcome

# A scalar subquery, not EXISTS: PostgreSQL would turn an EXISTS into a hashed scan of every
# offer on each page; this is one primary-key lookup per row read.
_placed_by_safety_net = (
    func.coalesce(
        select(Offer.kind).where(Offer.id == Referral.accepted_offer_id).scalar_subquery(), ""
    )
    == "safety_net"
)
#: How a case ended up, or where it stands while open, first match wins (docs/reports.md).
OUTCOME_RULES: tuple[tuple[str, ColumnElement[bool]], ...] = (
    ("cancelled", Referral.status == ReferralStatus.CANCELLED),
    ("unplaced", Referral.status == ReferralStatus.UNPLACED),
    ("safety_net", _placed_by_safety_net),
    ("arrived", Referral.status.in_([ReferralStatus.ARRIVED, ReferralStatus.COMPLETED])),
    ("accepted", Referral.status.in_([ReferralStatus.ACCEPTED, ReferralStatus.IN_TRANSIT])),
)
OUTCOMES = (*(name for name, _ in OUTCOME_RULES), "pending")


def outcome_clause(outcome: str) -> ColumnElement[bool]:
    """``OUTCOME == outcome`` written as its own rule and not the earlier ones, so that a
    state's index serves (``cancelled`` reads only cancelled cases)."""
    names = [name for name, _ in OUTCOME_RULES]
    earlier = OUTCOME_RULES[: names.index(outcome)] if outcome in names else OUTCOME_RULES
    own = [rule for name, rule in OUTCOME_RULES if name == outcome]
    return and_(*own, *(not_(rule) for _, rule in earlier))


OUTCOME = case(*((rule, name) for name, rule in OUTCOME_RULES), else_="pending")
"""The outcome of a case as a SQL expression: ``cancelled``, ``unplaced``, ``safety_net``
(placed by the region's safety net, whatever its stage), ``arrived`` (arrived or completed),
``accepted`` (accepted or on the way), else ``pending`` (asked, no hospital yet)."""


# ---------------------------------------------------------------------------- the filters


@dataclass(frozen=True)
class CaseFilters:
    """What to look for; every field optional. ``created_to`` is exclusive."""

    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    condition: str | None = None
    colour: str | None = None
    urgency: str | None = None
    status: str | None = None
    origin_id: int | None = None
    destination_id: int | None = None
    outcome: str | None = None
    q: str | None = None
    given: dict[str, str] = field(default_factory=dict, compare=False)
    """The filters as given (cleaned), to put back into links and forms."""


def parse_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; else :class:`Invalid` naming ``name``."""
    if value not in choices:
        raise Invalid(f"{name}: expected one of {', '.join(choices)}", field=name)
    return value


def _when(name: str, value: str, zone: dt.tzinfo, *, end: bool) -> dt.datetime:
    """A date (a whole day in ``zone``: ``to`` takes the day in) or an ISO 8601 time."""
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
            return (start + dt.timedelta(days=1) if end else start).astimezone(dt.UTC)
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name}: expected a date (YYYY-MM-DD) or a time", field=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if not 2000 <= moment.year <= 2100:
        raise Invalid(f"{name}: expected a year from 2000 to 2100", field=name)
    return moment.astimezone(dt.UTC)


def _facility_id(session: Session, name: str, code: str) -> int:
    if not _FACILITY_CODE.match(code):
        raise Invalid(f"{name}: expected a facility code", field=name)
    found = session.scalar(select(Facility.id).where(Facility.code == code))
    if found is None:
        raise Invalid(f"{name}: no facility {code}", field=name)
    return found


def parse_filters(
    session: Session, raw: Mapping[str, str], *, rules: Rules, timezone: str
) -> CaseFilters:
    """The filters of a query string or a form (empty values are no filter).

    ``from`` and ``to`` take a date (a day in the region's ``timezone``) or an ISO 8601 time
    (without an offset: in ``timezone``); ``from`` is inclusive, ``to`` exclusive for a time
    and inclusive for a date (``to=2026-11-30`` takes in the whole 30th).
    """
    zone = zoneinfo.ZoneInfo(timezone)
    given = {name: str(raw.get(name) or "").strip() for name in FILTERS}
    given = {name: value for name, value in given.items() if value}
    for name, value in given.items():
        if len(value) > 64:
            raise Invalid(f"{name}: at most 64 characters", field=name)
    start = _when("from", given["from"], zone, end=False) if "from" in given else None
    end = _when("to", given["to"], zone, end=True) if "to" in given else None
    if start and end and end <= start:
        raise Invalid("to: must come after from", field="to")
    condition = given.get("condition", "").upper() or None
    if condition is not None:
        parse_choice("condition", condition, list(rules.conditions))
        given["condition"] = condition
    q = given.get("q", "").upper() or None
    if q is not None and not _CODE_TEXT.match(q):
        raise Invalid("q: expected a case code or its start, letters and digits", field="q")

    def choice(name: str, choices: Sequence[str]) -> str | None:
        return parse_choice(name, given[name], choices) if name in given else None

    def facility(name: str) -> int | None:
        return _facility_id(session, name, given[name]) if name in given else None

    return CaseFilters(
        created_from=start,
        created_to=end,
        condition=condition,
        colour=choice("colour", COLOURS),
        urgency=choice("urgency", URGENCIES),
        status=choice("status", STATUS_CHOICES),
        origin_id=facility("origin"),
        destination_id=facility("destination"),
        outcome=choice("outcome", OUTCOMES),
        q=q,
        given=given,
    )


def statuses_for(wanted: str | None) -> set[ReferralStatus]:
    """The states ``status`` stands for (``active``, ``closed`` or one state)."""
    if wanted == "active":
        return set(OPEN_STATUSES)
    if wanted == "closed":
        return set(ReferralStatus) - set(OPEN_STATUSES)
    if wanted:
        return {ReferralStatus(wanted)}
    return set(ReferralStatus)


def parse_limit(raw: str | int | None, *, cap: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise Invalid("limit: expected a whole number", field="limit") from None
    if not 1 <= limit <= cap:
        raise Invalid(f"limit: expected 1 to {cap}", field="limit")
    return limit


def parse_sort(raw: str | None) -> str:
    return parse_choice("sort", raw or "newest", SORTS)


# ---------------------------------------------------------------------------- the cursor


def encode_cursor(created_at: dt.datetime, case_id: int, sort: str) -> str:
    """The position after a row, opaque to the caller (base64 of a small JSON)."""
    body = json.dumps([created_at.astimezone(dt.UTC).isoformat(), case_id, sort])
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[dt.datetime, int]:
    bad = Invalid("cursor: not a cursor of this list (start again from the first page)")
    bad.field = "cursor"
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, case_id, cursor_sort = json.loads(text)
        moment = dt.datetime.fromisoformat(when)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None
    if type(case_id) is not int or not 0 < case_id < 2**31 or cursor_sort != sort:
        raise bad
    if moment.tzinfo is None:
        raise bad
    return moment, case_id


# ---------------------------------------------------------------------------- the search

Sel = Select[*tuple[Any, ...]]
Origin = aliased(Facility, name="origin")
Destination = aliased(Facility, name="destination")

LINE: Select[*tuple[Any, ...]] = (
    select(
        Referral.id,
        Referral.revision,
        Referral.code,
        Referral.created_at,
        Referral.status,
        Referral.urgency,
        Referral.risk_colour,
        Referral.conditions_key,
        Referral.patient_kind,
        Referral.accepted_at,
        Referral.arrived_at,
        Referral.closed_at,
        Referral.origin_facility_id,
        Referral.destination_facility_id,
        Origin.code.label("origin_code"),
        Origin.name.label("origin_name"),
        Origin.name_en.label("origin_name_en"),
        Destination.code.label("destination_code"),
        Destination.name.label("destination_name"),
        Destination.name_en.label("destination_name_en"),
        OUTCOME.label("outcome"),
    )
    .select_from(Referral)
    .join(Origin, Origin.id == Referral.origin_facility_id)
    .outerjoin(Destination, Destination.id == Referral.destination_facility_id)
)
"""One line of the history per case: what the list, the page and the exports show."""


@dataclass(frozen=True)
class CaseLine:
    id: int
    revision: int
    code: str
    created_at: dt.datetime
    status: ReferralStatus
    urgency: str
    risk_colour: str
    conditions: tuple[str, ...]
    patient_kind: str
    accepted_at: dt.datetime | None
    arrived_at: dt.datetime | None
    closed_at: dt.datetime | None
    origin_facility_id: int
    destination_facility_id: int | None
    origin_code: str
    origin_name: str
    origin_name_en: str | None
    destination_code: str | None
    destination_name: str | None
    destination_name_en: str | None
    outcome: str


@dataclass(frozen=True)
class CasePage:
    lines: list[CaseLine]
    next_cursor: str | None


def _line(row: Any) -> CaseLine:
    values = row._asdict()
    values["conditions"] = tuple(c for c in values.pop("conditions_key").split("|") if c)
    return CaseLine(**values)


def filtered(statement: Sel, filters: CaseFilters) -> Sel:
    """``statement`` (over :class:`Referral`) narrowed by ``filters``, in SQL."""
    clauses: list[ColumnElement[bool]] = []
    if filters.created_from is not None:
        clauses.append(Referral.created_at >= filters.created_from)
    if filters.created_to is not None:
        clauses.append(Referral.created_at < filters.created_to)
    if filters.condition is not None:
        clauses.append(Referral.conditions_key.like(f"%|{filters.condition}|%"))
    if filters.colour is not None:
        clauses.append(Referral.risk_colour == filters.colour)
    if filters.urgency is not None:
        clauses.append(Referral.urgency == filters.urgency)
    if filters.status is not None:
        clauses.append(Referral.status.in_(statuses_for(filters.status)))
    if filters.origin_id is not None:
        clauses.append(Referral.origin_facility_id == filters.origin_id)
    if filters.destination_id is not None:
        clauses.append(Referral.destination_facility_id == filters.destination_id)
    if filters.outcome is not None:
        clauses.append(outcome_clause(filters.outcome))
    if filters.q is not None:
        # A whole code (what one reads off an SMS) through its index; a shorter one as a prefix.
        if len(filters.q) >= CODE_LENGTH:
            clauses.append(Referral.code == filters.q)
        else:
            clauses.append(Referral.code.like(f"{filters.q}%"))
    return statement.where(and_(*clauses)) if clauses else statement


def _ordered(statement: Sel, sort: str, after: tuple[dt.datetime, int] | None) -> Any:
    key = tuple_(Referral.created_at, Referral.id)
    if sort == "oldest":
        if after is not None:
            statement = statement.where(key > tuple_(*after))
        return statement.order_by(Referral.created_at.asc(), Referral.id.asc())
    if after is not None:
        statement = statement.where(key < tuple_(*after))
    return statement.order_by(Referral.created_at.desc(), Referral.id.desc())


def search_cases(
    session: Session,
    *,
    actor: Actor,
    filters: CaseFilters,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    sort: str = "newest",
    cap: int = MAX_LIMIT,
) -> CasePage:
    """One page of the cases ``actor`` may see that match ``filters``, and the cursor of the
    next page (``None`` on the last). ``cap`` bounds ``limit`` (exports ask for more)."""
    if not 1 <= limit <= cap:
        raise Invalid(f"limit: expected 1 to {cap}", field="limit")
    parse_sort(sort)
    after = decode_cursor(cursor, sort) if cursor else None
    statement = _ordered(filtered(visible(LINE, actor), filters), sort, after)
    # Core execution: plain rows, none of the ORM's per-row bookkeeping (a third of the time).
    lines = [_line(row) for row in session.connection().execute(statement.limit(limit + 1))]
    more = len(lines) > limit
    lines = lines[:limit]
    last = lines[-1] if more else None
    return CasePage(
        lines=lines,
        next_cursor=encode_cursor(last.created_at, last.id, sort) if last else None,
    )


def may_identify(actor: Actor, line: CaseLine) -> bool:
    """Whether an export for ``actor`` may carry the patient's register number and the note of
    this case: only the users of the referring or the receiving facility, who care for the
    patient; coordinators and administrators monitor and get the de-identified list."""
    return may_identify_ids(
        actor, origin_id=line.origin_facility_id, destination_id=line.destination_facility_id
    )


def may_identify_ids(actor: Actor, *, origin_id: int, destination_id: int | None) -> bool:
    """:func:`may_identify` for a case's referring and receiving facility ids."""
    if actor.role not in (Role.CLINIC, Role.HOSPITAL) or actor.facility_id is None:
        return False
    return actor.facility_id in (origin_id, destination_id)


def identifying(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The register number and the note of these cases, by id (for :func:`may_identify`)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Referral.id, Referral.patient_ref, Referral.case).where(Referral.id.in_(ids))
    )
    return {row.id: (row.patient_ref or "", str(row.case.get("note") or "")) for row in rows}
