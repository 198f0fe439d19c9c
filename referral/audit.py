"""The audit trail: every view and change of a case by a user, append-only.

A row is added to the caller's session, so it commits (or rolls back) with the change it
describes: a change that did not happen leaves no audit row, and a change that happened always
has one. The application never updates or deletes a row: the session guard below refuses it,
so a bug cannot quietly rewrite history. (In production the database role of the app can be
given INSERT and SELECT only on ``audit_log`` for the same guarantee at the database level.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from referral.models import AuditEntry


class AuditTampering(RuntimeError):
    """The application tried to change or delete an audit row."""


def record(
    session: Session,
    *,
    action: str,
    actor: str,
    channel: str,
    now: dt.datetime,
    user_id: int | None = None,
    role: str = "",
    referral_id: int | None = None,
    request_id: str = "",
    **detail: Any,
) -> AuditEntry:
    """Add one audit row to the session (committed with the caller's transaction)."""
    entry = AuditEntry(
        at=now,
        user_id=user_id,
        actor=actor[:100],
        role=role[:16],
        channel=channel[:16],
        action=action[:32],
        referral_id=referral_id,
        request_id=request_id[:64],
        detail=detail,
    )
    session.add(entry)
    return entry


class Who(Protocol):
    """Whoever acts (a ``service.Actor``): a user on the web or the API, or an SMS contact."""

    @property
    def name(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def role(self) -> Any: ...
    @property
    def user_id(self) -> int | None: ...


def by(
    session: Session,
    who: Who,
    *,
    action: str,
    now: dt.datetime,
    referral_id: int | None = None,
    request_id: str = "",
    **detail: Any,
) -> AuditEntry:
    """One audit row for what ``who`` did or saw (committed with the caller's transaction)."""
    return record(
        session,
        action=action,
        actor=who.name,
        channel=who.channel,
        role=who.role.value if who.role else "",
        user_id=who.user_id,
        referral_id=referral_id,
        request_id=request_id,
        now=now,
        **detail,
    )


def trail(session: Session, *, referral_id: int) -> list[AuditEntry]:
    """Every row about one case, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.referral_id == referral_id)
            .order_by(AuditEntry.at, AuditEntry.id)
        )
    )


def viewers_of(session: Session, *, referral_id: int) -> list[AuditEntry]:
    """Views of one case, single or in a list (list views name their cases in ``detail``)."""
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.action.in_(["view", "list"])).order_by(AuditEntry.id)
    )
    return [
        row
        for row in rows
        if row.referral_id == referral_id or referral_id in row.detail.get("referral_ids", [])
    ]


def _audit_rows(objects: Iterable[object]) -> list[AuditEntry]:
    return [obj for obj in objects if isinstance(obj, AuditEntry)]


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    changed = [row for row in _audit_rows(session.dirty) if session.is_modified(row)]
    if changed or _audit_rows(session.deleted):
        raise AuditTampering("audit rows are append-only: never updated or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEntry for mapper in state.all_mappers
    ):
        raise AuditTampering("audit rows are append-only: never updated or deleted")
