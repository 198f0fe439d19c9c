"""The referral's life (docs/domain.md), one import away: create, offer, answer, move on, travel,
arrive, close. Each use case lives in its own module; this module names them for the adapters.

Services are plain functions: they take a session and keyword arguments (``now`` included),
never commit, and raise the core error family. Every state change is a conditional UPDATE on the
current state, so two answers racing for the same case cannot both win.
"""

from __future__ import annotations

from referral.access import (
    Actor,
    FacilityRef,
    _check_answerer,
    _check_role,
    can_see,
    can_view,
    check_origin_scope,
    visible,
)
from referral.coordination import redirect, reopen
from referral.creation import (
    CODE_ALPHABET,
    CODE_LENGTH,
    _request_hash,
    case_record,
    create_referral,
    new_code,
)
from referral.journey import arrive, cancel, complete, depart
from referral.locking import (
    _LOCKED,
    ReferralError,
    StateConflict,
    _event,
    _forget_locks,
    _load_case,
    _locked,
    _locking,
    _not_pending,
    _swap,
    _swap_offer,
    _swap_referral,
    get_offer,
    get_referral,
    lock_case,
    subject,
)
from referral.notices import (
    _clinic_recipients,
    _tell_clinic_accepted,
    _text_clinic,
    _text_coordinators,
    condition_text,
    local_name,
    teams_for,
)
from referral.offering import (
    OFFER_EXPIRY,
    _make_offer,
    _release_offers,
    _stop_all_alerts,
    _tried_facilities,
)
from referral.offers import accept_offer, decline_offer, expire_offer, offer_next
from referral.placement import Placement, need_of
from referral.report import Milestones, intervals
from referral.unplaced import _mark_unplaced, _partial_detail, _safety_net

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "OFFER_EXPIRY",
    "_LOCKED",
    "Actor",
    "FacilityRef",
    "Milestones",
    "Placement",
    "ReferralError",
    "StateConflict",
    "_check_answerer",
    "_check_role",
    "_clinic_recipients",
    "_event",
    "_forget_locks",
    "_load_case",
    "_locked",
    "_locking",
    "_make_offer",
    "_mark_unplaced",
    "_not_pending",
    "_partial_detail",
    "_release_offers",
    "_request_hash",
    "_safety_net",
    "_stop_all_alerts",
    "_swap",
    "_swap_offer",
    "_swap_referral",
    "_tell_clinic_accepted",
    "_text_clinic",
    "_text_coordinators",
    "_tried_facilities",
    "accept_offer",
    "arrive",
    "can_see",
    "can_view",
    "cancel",
    "case_record",
    "check_origin_scope",
    "complete",
    "condition_text",
    "create_referral",
    "decline_offer",
    "depart",
    "expire_offer",
    "get_offer",
    "get_referral",
    "intervals",
    "local_name",
    "lock_case",
    "need_of",
    "new_code",
    "offer_next",
    "redirect",
    "reopen",
    "subject",
    "teams_for",
    "visible",
]
