"""What an adapter does to a case: one command per action, with its audit row, in one place.

The API, the pages and SMS replies all call :func:`act`; each command runs the use case and
writes who did what to which case in the same transaction (the caller commits). The table is
explicit: an action that is not in it is a 404, never a silent no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from core.errors import NotFoundError
from referral import audit
from referral.access import Actor
from referral.coordination import redirect, reopen
from referral.journey import arrive, cancel, complete, depart
from referral.models import Referral
from referral.offers import accept_offer, decline_offer
from referral.placement import Placement

Command = Callable[..., Any]

#: action → the use case; each takes the session and keywords (``place`` only where it needs it)
ACTIONS: dict[str, tuple[Command, bool]] = {
    "accept": (accept_offer, True),
    "decline": (decline_offer, True),
    "depart": (depart, False),
    "arrive": (arrive, False),
    "complete": (complete, False),
    "cancel": (cancel, False),
    "redirect": (redirect, True),
    "reopen": (reopen, True),
}


def act(
    session: Session,
    action: str,
    *,
    place: Placement,
    referral: Referral,
    actor: Actor,
    now: dt.datetime,
    request_id: str | None = None,
    **arguments: Any,
) -> Referral:
    """Run ``action`` on the case and record it in the audit trail (not committed)."""
    found = ACTIONS.get(action)
    if found is None:
        raise NotFoundError(f"no action {action[:40]!r}", field="action")
    run, needs_place = found
    if needs_place:
        arguments["place"] = place
    run(session, referral=referral, actor=actor, now=now, **arguments)
    extra = {"request_id": request_id} if request_id else {}
    audit.by(session, actor, action=action, referral_id=referral.id, now=now, **extra)
    return referral
