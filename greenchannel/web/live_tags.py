"""The ETags of the case page's, the clinic's and the hospital's live fragments.

Each is read before the fragment (a write in between makes the next poll render again) from
the light rows of ``referral.live_state``; see ``greenchannel/web/http_cache.py`` for the why.
Anything a fragment template starts to show belongs in its tag.
"""

from __future__ import annotations

from flask import current_app

from facilities.models import Role, User
from greenchannel.web import http_cache
from greenchannel.web.api_map import network_version
from greenchannel.web.api_referrals import actor_for
from greenchannel.web.db import db
from greenchannel.web.pages import language
from referral import live_state
from referral.models import ReferralStatus

# The states in which a coordinator's case page lists where to redirect (pages_cases.py).
REDIRECTABLE = ("requested", "offered", "unplaced", "accepted")


def _who(user: User) -> tuple[object, ...]:
    return (user.id, user.role.value, user.facility_id, user.area, language())


def case_tag(user: User, referral_id: int) -> str | None:
    """The case page's fragment; None when the user may not see the case (the page says so)."""
    head = live_state.case_head(db.session, actor_for(user), referral_id)
    if head is None:
        return None
    status = head[2]
    parts: list[object] = ["case", *_who(user), head, live_state.registry(db.session)]
    if status is ReferralStatus.ACCEPTED:
        parts.append(http_cache.minute())  # "arrival if she leaves now" follows the clock
    if user.role in (Role.COORDINATOR, Role.ADMIN) and status.value in REDIRECTABLE:
        # The redirect list ranks the hospitals by road (closures, the network) and by beds
        # (the registry rows above), whose figures go stale with the clock.
        parts.append(live_state.closures(db.session))
        parts.append(network_version(current_app.config.get("GREENCHANNEL_ROADS", "")))
        parts.append(http_cache.minute())
    return http_cache.key(*parts)


def clinic_tag(user: User) -> str:
    """The clinic's open and recent cases (no word of it follows the clock)."""
    assert user.facility_id is not None
    heads = live_state.clinic_heads(db.session, user.facility_id)
    return http_cache.key("clinic", *_who(user), heads, live_state.registry(db.session))


def hospital_tag(user: User) -> str:
    """The hospital's offers and arrivals, and whether its own figures are unconfirmed."""
    assert user.facility_id is not None
    heads = live_state.hospital_heads(db.session, user.facility_id)
    return http_cache.key(
        "hospital", *_who(user), heads, live_state.registry(db.session), http_cache.minute()
    )
