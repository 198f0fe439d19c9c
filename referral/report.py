"""The report card of a case: its intervals in minutes (docs/domain.md, "The life of a
referral")."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Milestones(Protocol):
    """The times of a case's milestones (a Referral, or a row of one)."""

    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def first_alert_at(self) -> dt.datetime | None: ...
    @property
    def first_answer_at(self) -> dt.datetime | None: ...
    @property
    def accepted_at(self) -> dt.datetime | None: ...
    @property
    def departed_at(self) -> dt.datetime | None: ...
    @property
    def arrived_at(self) -> dt.datetime | None: ...
    @property
    def completed_at(self) -> dt.datetime | None: ...


def intervals(referral: Milestones) -> dict[str, float | None]:
    """The report card of docs/domain.md, in minutes (None while a milestone is missing)."""

    def minutes(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return round((end - start).total_seconds() / 60, 2)

    return {
        "decision_to_first_alert": minutes(referral.created_at, referral.first_alert_at),
        "decision_to_first_answer": minutes(referral.created_at, referral.first_answer_at),
        "decision_to_accepted": minutes(referral.created_at, referral.accepted_at),
        "accepted_to_departed": minutes(referral.accepted_at, referral.departed_at),
        "departed_to_arrived": minutes(referral.departed_at, referral.arrived_at),
        "decision_to_arrived": minutes(referral.created_at, referral.arrived_at),
        "arrived_to_completed": minutes(referral.arrived_at, referral.completed_at),
    }
