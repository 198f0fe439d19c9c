"""Words and small views the pages share: translated labels and what a case needs shown."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import lazy_gettext as _l

from alerts.models import AttentionItem
from greenchannel.web.context import current_rules
from referral.models import OfferStatus, Referral, ReferralStatus

STATUS = {
    "requested": _l("Requested"),
    "offered": _l("Asking hospitals"),
    "accepted": _l("Accepted"),
    "in_transit": _l("On the way"),
    "arrived": _l("Arrived"),
    "completed": _l("Completed"),
    "cancelled": _l("Cancelled"),
    "unplaced": _l("Unplaced: needs a coordinator"),
}
STATUS_ICON = {
    "requested": "…",
    "offered": "…",
    "accepted": "✔",
    "in_transit": "➜",
    "arrived": "■",
    "completed": "✔",
    "cancelled": "✖",
    "unplaced": "⚠",
}
OFFER_STATUS = {
    "pending": _l("Waiting for answer"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "expired": _l("No answer in time"),
    "withdrawn": _l("Withdrawn"),
}
OFFER_ICON = {"pending": "…", "accepted": "✔", "declined": "✖", "expired": "⚠", "withdrawn": "–"}
URGENCY = {"critical": _l("Critical"), "urgent": _l("Urgent"), "planned": _l("Planned")}
URGENCY_ICON = {"critical": "‼", "urgent": "!", "planned": "·"}
COLOURS = {
    "green": _l("Green"),
    "yellow": _l("Yellow"),
    "orange": _l("Orange"),
    "red": _l("Red"),
    "purple": _l("Purple (infectious)"),
}
DECLINE = {
    "FULL": _l("No bed"),
    "THEATRE": _l("Theatre busy"),
    "BLOOD": _l("No blood"),
    "STAFF": _l("No staff"),
    "NICU": _l("NICU full"),
    "OTHER": _l("Other (say why)"),
}
CANCEL = {
    "stabilised": _l("Stabilised here"),
    "outreach": _l("Experts come instead"),
    "died": _l("Died"),
    "family_refused": _l("Family refused"),
    "duplicate": _l("Duplicate"),
    "other": _l("Other"),
}
BEDS = {
    "obstetric": _l("Obstetric beds"),
    "maternal_icu": _l("Maternal ICU beds"),
    "nicu": _l("NICU cots"),
}
DIVERSION = {
    "normal": _l("Normal: taking cases"),
    "advisory": _l("Advisory: only if needed"),
    "closed": _l("Closed to new cases"),
}
DIVERSION_ICON = {"normal": "●", "advisory": "◐", "closed": "✖"}
EVENTS = {
    "created": _l("Referral created"),
    "offered": _l("Offered"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "expired": _l("No answer in time"),
    "withdrawn": _l("Offer withdrawn"),
    "unplaced": _l("Nobody accepted"),
    "safety_net_assigned": _l("Assigned by the safety net"),
    "safety_net_offered": _l("Final offer under the safety net"),
    "redirected": _l("Redirected by coordinator"),
    "reopened": _l("Offers re-opened"),
    "departed": _l("Departed"),
    "arrived": _l("Arrived"),
    "completed": _l("Completed"),
    "cancelled": _l("Cancelled"),
    "call_placed": _l("Phoning the on-call contact"),
    "call_ended": _l("Phone call ended"),
}
CAPABILITY = {
    "caesarean_24h": _l("24-hour caesarean section"),
    "blood_transfusion": _l("Blood transfusion"),
    "massive_transfusion": _l("Massive transfusion"),
    "adult_icu": _l("Adult ICU"),
    "interventional_radiology": _l("Interventional radiology"),
    "cardiac_surgery": _l("Cardiac surgery"),
    "neonatal_cpap": _l("Neonatal CPAP"),
    "neonatal_ventilation": _l("Neonatal ventilation"),
    "hfov_ino": _l("HFOV / inhaled NO"),
    "therapeutic_hypothermia": _l("Therapeutic hypothermia"),
    "exchange_transfusion": _l("Exchange transfusion"),
    "neonatal_surgery": _l("Neonatal surgery"),
    "ecmo": _l("ECMO"),
    "infectious_isolation": _l("Infectious isolation"),
}
OPEN = {s.value for s in (ReferralStatus.REQUESTED, ReferralStatus.OFFERED)}


def condition_names(referral: Referral, lang: str) -> str:
    names = [
        current_rules().conditions[c].name[lang]
        for c in referral.case.get("conditions", [])
        if c in current_rules().conditions
    ]
    separator = "、" if lang == "zh" else ", "
    return separator.join(names)


def advice(referral: Referral, lang: str) -> list[str]:
    return [
        item
        for c in referral.case.get("conditions", [])
        if c in current_rules().conditions
        for item in current_rules().conditions[c].advice[lang]
    ]


def facility_name(facility: Any, lang: str) -> str:
    if facility is None:
        return "—"
    return str(facility.name if lang == "zh" else (facility.name_en or facility.name))


@dataclass(frozen=True)
class Attention:
    """Why a case needs a human now: its open attention items (``alerts.attention``), each
    one a text the coordinators were sent. Empty: the case runs by itself."""

    items: tuple[AttentionItem, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items)

    def reasons(self, lang: str) -> list[tuple[int, str]]:
        """(item id, the words the coordinators were texted) in ``lang``."""
        return [(item.id, item.words.get(lang) or item.words.get("zh", "")) for item in self.items]


def attention(items: Sequence[AttentionItem]) -> Attention:
    """A case needs a human exactly when it has open attention items: nothing else (a past
    target, an outreach request, an offer timer at zero) puts it there."""
    return Attention(tuple(items))


def past_target(referral: Referral, now: dt.datetime) -> bool:
    """Still without a destination after the urgency's target: shown on the case's row (the
    report card's interval), not a reason to call a human by itself."""
    policy = current_rules().urgency.get(referral.urgency)
    return (
        policy is not None
        and referral.status.value in OPEN | {"unplaced"}
        and now - referral.created_at > policy.target
    )


URGENCY_ORDER = {"critical": 0, "urgent": 1, "planned": 2}


def board_order(referral: Referral, flags: Attention) -> tuple[int, int, dt.datetime]:
    return (
        0 if flags else 1,
        URGENCY_ORDER.get(referral.urgency, 3),
        referral.created_at,
    )


def pending_offers(referral: Referral) -> list[Any]:
    return [o for o in referral.offers if o.status is OfferStatus.PENDING]


def accepted_offer(referral: Referral) -> Any:
    for offer in referral.offers:
        if offer.id == referral.accepted_offer_id:
            return offer
    return None


def template_globals() -> dict[str, Any]:
    return {
        "STATUS": STATUS,
        "STATUS_ICON": STATUS_ICON,
        "OFFER_STATUS": OFFER_STATUS,
        "OFFER_ICON": OFFER_ICON,
        "URGENCY": URGENCY,
        "URGENCY_ICON": URGENCY_ICON,
        "COLOURS": COLOURS,
        "DECLINE": DECLINE,
        "CANCEL": CANCEL,
        "BEDS": BEDS,
        "DIVERSION": DIVERSION,
        "DIVERSION_ICON": DIVERSION_ICON,
        "EVENTS": EVENTS,
        "CAPABILITY": CAPABILITY,
        "condition_names": condition_names,
        "advice": advice,
        "facility_name": facility_name,
        "pending_offers": pending_offers,
        "accepted_offer": accepted_offer,
        "past_target": past_target,
    }
