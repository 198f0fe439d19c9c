"""What the current request's app was built with: its rules and its placement (rules + roads)."""

from __future__ import annotations

from flask import current_app

from referral.rules import Rules
from referral.service import Placement


def current_rules() -> Rules:
    """The rules the app's runtime loaded (docs/domain.md's tables, as data)."""
    found: Rules = current_app.extensions["greenchannel.rules"]
    return found


def current_placement() -> Placement:
    """The rules and the process's road network (a :class:`referral.service.Placement`)."""
    place: Placement = current_app.extensions["greenchannel.place"]()
    return place
