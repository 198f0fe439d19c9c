"""What the case page and the hospital's offer card show beyond the case's state: the handover
in SBAR order, the numbers to call, where exactly and when, and the report card of a closed
case. Built from the stored case; worded in the reader's language."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from core import phones
from facilities import navigation
from greenchannel.web.context import current_rules
from referral import report
from referral.models import Referral, ReferralStatus

AVPU_WORDS = {
    "A": _l("alert"),
    "V": _l("responds to voice"),
    "P": _l("responds to pain"),
    "U": _l("unresponsive"),
}


@dataclass
class Row:
    label: str
    value: str
    flag: bool = False


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)


def _time(value: str | None) -> str | None:
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return str(format_datetime(when, "HH:mm"))


def _g(value: Any) -> str:
    return format(float(value), "g")


def handover(referral: Referral, lang: str) -> list[Section]:
    """The handover block in SBAR order; only what the clinic gave (empty sections dropped)."""
    case: dict[str, Any] = referral.case or {}
    rules = current_rules()
    situation = Section(str(_("Situation")))
    onset = _time(case.get("onset_at"))
    if onset:
        situation.rows.append(Row(str(_("Onset")), onset))
    if referral.requirements.get("in_shock"):
        situation.rows.append(Row(str(_("Shock")), str(_("yes")), flag=True))
    loss = case.get("blood_loss_ml")
    if loss is not None:
        massive = loss >= rules.clinical.shock_blood_loss_ml
        situation.rows.append(Row(str(_("Blood loss")), f"{_g(loss)} ml", flag=massive))

    background = Section(str(_("Background")))
    delivered = case.get("delivered")
    if delivered is not None:
        text = _("delivered") if delivered else _("not delivered: baby inside")
        background.rows.append(Row(str(_("Delivered?")), str(text), flag=not delivered))
    born = _time(case.get("born_at"))
    if born:
        background.rows.append(Row(str(_("Time of birth")), born))
    placenta = case.get("placenta_delivered")
    if placenta is not None:
        background.rows.append(
            Row(str(_("Placenta out?")), str(_("out") if placenta else _("not yet")))
        )
    if case.get("estimated_fetal_weight_g") is not None:
        background.rows.append(
            Row(str(_("Estimated fetal weight")), f"{_g(case['estimated_fetal_weight_g'])} g")
        )

    assessment = Section(str(_("Assessment")))
    vitals: dict[str, Any] = case.get("vitals") or {}
    if vitals.get("sbp") is not None:
        bp = _g(vitals["sbp"]) + (f"/{_g(vitals['dbp'])}" if vitals.get("dbp") is not None else "")
        assessment.rows.append(Row(str(_("BP")), f"{bp} mmHg"))
    for key, label, unit in (
        ("hr", _("Heart rate"), "/min"),
        ("spo2", _("SpO₂"), "%"),
        ("rr", _("Breaths"), "/min"),
        ("temp_c", _("Temperature"), "°C"),
    ):
        if vitals.get(key) is not None:
            assessment.rows.append(Row(str(label), f"{_g(vitals[key])}{unit}"))
    if vitals.get("avpu"):
        word = AVPU_WORDS.get(vitals["avpu"], vitals["avpu"])
        assessment.rows.append(
            Row(str(_("Consciousness")), f"{vitals['avpu']} · {word}", flag=vitals["avpu"] != "A")
        )

    given = Section(str(_("Given so far")))
    names = [rules.treatments.get(code, {}).get(lang, code) for code in case.get("treatments", [])]
    if names:
        given.rows.append(Row(str(_("Treatments")), ("、" if lang == "zh" else ", ").join(names)))
    if case.get("note"):
        given.rows.append(Row(str(_("Note")), str(case["note"])))
    return [s for s in (situation, background, assessment, given) if s.rows]


def phone_link(number: str | None) -> Markup:
    """A number to call: grouped for reading, a ``tel:`` link."""
    if not number:
        return Markup("—")
    shown = escape(phones.display(number))
    return Markup(f'<a class="phone" href="{escape(phones.tel_uri(number))}">{shown}</a>')


def arrival(referral: Referral, now: dt.datetime) -> tuple[dt.datetime, bool] | None:
    """The expected arrival time and whether the patient is on the road (after departure the
    clock starts at departure; before it, "if she leaves now")."""
    offer = next((o for o in referral.offers if o.id == referral.accepted_offer_id), None)
    if offer is None or offer.eta_minutes is None:
        return None
    if referral.status is ReferralStatus.IN_TRANSIT and referral.departed_at is not None:
        return referral.departed_at + dt.timedelta(minutes=offer.eta_minutes), True
    if referral.status is ReferralStatus.ACCEPTED:
        return now + dt.timedelta(minutes=offer.eta_minutes), False
    return None


def journey_advice(referral: Referral, lang: str) -> tuple[str, ...]:
    return current_rules().journey.get(referral.patient_kind or "mother", {}).get(lang, ())


def map_links(facility: Any, lang: str) -> list[tuple[str, str]]:
    if facility is None:
        return []
    english = lang != "zh"
    name = (facility.name_en or facility.name) if english else facility.name
    address = getattr(facility, "address_en" if english else "address", "") or getattr(
        facility, "address", ""
    )
    try:
        links = navigation.navigation_links(
            lat=facility.lat, lon=facility.lon, name=name, address=address or ""
        )
    except ValueError:
        return []
    return [(link.label_en if english else link.label_zh, link.url) for link in links]


INTERVALS = (
    ("decision_to_first_alert", _l("Decision → first pre-alert")),
    ("decision_to_first_answer", _l("Decision → first answer")),
    ("decision_to_accepted", _l("Decision → accepted")),
    ("accepted_to_departed", _l("Accepted → left")),
    ("departed_to_arrived", _l("Left → arrived")),
    ("decision_to_arrived", _l("Decision → arrived")),
    ("arrived_to_completed", _l("Arrived → completed")),
)


def report_card(referral: Referral) -> list[dict[str, Any]]:
    """The case's intervals with the urgency target where the rules set one."""
    values = report.intervals(referral)
    policy = current_rules().urgency.get(referral.urgency)
    target = policy.target.total_seconds() / 60 if policy is not None else None
    rows = []
    for key, label in INTERVALS:
        minutes = values[key]
        goal = target if key == "decision_to_accepted" else None
        rows.append(
            {
                "label": str(label),
                "minutes": minutes,
                "target": goal,
                "missed": goal is not None and minutes is not None and minutes > goal,
            }
        )
    return rows
