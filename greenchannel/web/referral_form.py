"""The clinic's referral form: from posted strings to the case the API also takes, and every
problem with it worded for the person next to the field at fault.

The form converts types only (a number, a clock time, a phone); what a value may be is decided
once, by :func:`referral.triage.case_problems`, for the API, the form and SMS alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from core.errors import ServiceError
from greenchannel.web import clock
from greenchannel.web.context import current_rules
from referral import triage
from referral.rules import COLOURS
from referral.triage import TriageError

#: the form's input name for a case field the domain names differently
FORM_NAME = {"born_at": "born_time", "onset_at": "onset_time"}
VITAL_FIELDS = ("sbp", "dbp", "hr", "spo2", "rr", "temp_c")
TEXT_FIELDS = ("gestation_weeks", "birth_weight_g", "estimated_fetal_weight_g", "blood_loss_ml")
PHONE_DIGITS = (7, 15)


#: what the person calls each field (the summary of errors above the form names them)
FIELD_LABELS = {
    "conditions": _l("Condition"),
    "risk_colour": _l("Risk colour"),
    "gestation_weeks": _l("Gestation (weeks)"),
    "birth_weight_g": _l("Birth weight (g)"),
    "delivered": _l("Delivered?"),
    "onset_time": _l("Onset (time)"),
    "born_time": _l("Time of birth"),
    "estimated_fetal_weight_g": _l("Estimated fetal weight (g)"),
    "sbp": _l("Systolic BP"),
    "dbp": _l("Diastolic BP"),
    "hr": _l("Heart rate"),
    "spo2": _l("SpO₂ (%%)"),
    "rr": _l("Breaths per minute"),
    "temp_c": _l("Temperature (°C)"),
    "blood_loss_ml": _l("Blood loss (ml)"),
    "avpu": _l("Consciousness (AVPU)"),
    "treatments": _l("Given so far"),
    "callback_phone": _l("Your call-back number"),
    "note": _l("Short note for the team (no name or ID)"),
}


def field_label(name: str) -> str:
    return str(FIELD_LABELS.get(name, name))


@dataclass
class FormReading:
    """What the form said, as the API's case body, and the problems found on the way."""

    body: dict[str, Any] = field(default_factory=dict)
    callback_phone: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def problem(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)


def form_name(case_field: str) -> str:
    name = case_field.rsplit(".", 1)[-1]
    return FORM_NAME.get(name, name)


def _number(form: MultiDict[str, str], name: str, reading: FormReading) -> float | None:
    raw = form.get(name, "").strip().replace(",", ".").replace("，", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        reading.problem(name, _("Enter a number."))
        return None
    if value != value or value in (float("inf"), float("-inf")):
        reading.problem(name, _("Enter a number."))
        return None
    return value


def _time_today(form: MultiDict[str, str], name: str, reading: FormReading) -> dt.datetime | None:
    """A clock time typed on the form (``14:05``), read in the region's time zone as the last
    such moment (today, or yesterday when today's would be in the future)."""
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        clock_time = dt.time.fromisoformat(raw)
    except ValueError:
        reading.problem(name, _("Enter a time such as 14:05."))
        return None
    zone = dt.timezone(dt.timedelta(hours=current_rules().working_hours[2]))
    now = clock.now().astimezone(zone)
    when = now.replace(hour=clock_time.hour, minute=clock_time.minute, second=0, microsecond=0)
    if when > now + triage.CLOCK_SLACK:
        when -= dt.timedelta(days=1)
    return when


def _yes_no(form: MultiDict[str, str], name: str) -> bool | None:
    return {"yes": True, "no": False}.get(form.get(name, ""))


def _phone(form: MultiDict[str, str], reading: FormReading) -> str:
    """The clinician's call-back number as typed (``139 1000 0002``, ``+86…``), in E.164; a
    Chinese mobile or landline without the country code counts as Chinese."""
    raw = form.get("callback_phone", "").strip()
    if not raw:
        return ""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if raw.startswith("+"):
        number = "+" + digits
    elif raw.startswith("00"):
        number = "+" + digits[2:]
    else:
        number = "+86" + digits.lstrip("0")
    allowed = set("0123456789+-() ")
    low, high = PHONE_DIGITS
    if set(raw) - allowed or not low <= len(number) - 1 <= high:
        reading.problem("callback_phone", _("Enter a phone number such as 139 1000 0002."))
        return ""
    return number


def read(form: MultiDict[str, str]) -> FormReading:
    """The posted form as the API's case body; type problems recorded per field."""
    reading = FormReading()
    known = current_rules().conditions
    treatments = current_rules().treatments
    colour = form.get("risk_colour") or None
    if colour is not None and colour not in COLOURS:
        reading.problem("risk_colour", _("Choose one of the colours."))
        colour = None
    # Known codes only, each once (a checkbox is sent once; a repeat is a forged or replayed
    # form): at most the rulebook's entries; the domain refuses more than its bound.
    avpu = form.get("avpu", "").strip().upper() or None
    if avpu is not None and avpu not in triage.AVPU:
        reading.problem("avpu", _("Choose one of A, V, P, U."))
        avpu = None
    reading.body = {
        "conditions": list(dict.fromkeys(c for c in form.getlist("conditions") if c in known)),
        "risk_colour": colour,
        "purple": form.get("purple") == "on",
        "in_shock": form.get("in_shock") == "on",
        "ventilated": form.get("ventilated") == "on",
        "do_not_move": True
        if form.get("do_not_move") == "on"
        else (False if form.get("move_anyway") == "on" else None),
        "delivered": _yes_no(form, "delivered"),
        "placenta_delivered": _yes_no(form, "placenta_delivered"),
        "born_at": _time_today(form, "born_time", reading),
        "onset_at": _time_today(form, "onset_time", reading),
        "vitals": {name: _number(form, name, reading) for name in VITAL_FIELDS} | {"avpu": avpu},
        "treatments": list(dict.fromkeys(t for t in form.getlist("treatments") if t in treatments)),
        "note": form.get("note", "").strip()[: triage.NOTE_LENGTH + 1],
    }
    for name in TEXT_FIELDS:
        reading.body[name] = _number(form, name, reading)
    reading.callback_phone = _phone(form, reading)
    return reading


def problem_text(problem: TriageError) -> str:
    """The domain's problem, in the person's language (the field is shown beside it)."""
    params = problem.params
    if problem.kind == "range":
        unit = str(params.get("unit", ""))
        return str(
            _(
                "Expected %(low)s to %(high)s %(unit)s.",
                low=format(params["low"], "g"),
                high=format(params["high"], "g"),
                unit=_("weeks") if unit == "weeks" else unit,
            )
        ).replace(" .", ".")
    texts: dict[str, str] = {
        "required": _("Choose at least one condition or a risk colour."),
        "too_many": _("At most %(high)s.", high=params.get("high", "")),
        "twice": _("Each only once."),
        "unknown": _("Not in the list."),
        "mother_and_newborn": _(
            "A referral is for the mother or for the newborn: refer the baby separately."
        ),
        "newborn_colour": _("The risk colour grades the mother, not a newborn."),
        "too_long": _("At most %(high)s characters.", high=params.get("high", "")),
        "future": _("That time is in the future."),
        "too_old": _("That time is more than 60 days ago."),
        "timing": _("This does not fit the condition: check delivered or not."),
    }
    return str(texts.get(problem.kind, str(problem)))


def check(reading: FormReading, case: triage.Case) -> None:
    """Every domain problem of the case, worded next to its field."""
    for problem in triage.case_problems(current_rules(), case, now=clock.now()):
        reading.problem(form_name(problem.field or ""), problem_text(problem))


def answer_arguments(answer: str, form: MultiDict[str, str], offer: Any) -> dict[str, Any]:
    """An answer to an offer from a page (the hospital's card, the link page): the keywords of
    ``referral.commands.act('accept' | 'decline', ...)``."""
    if answer == "accept":
        raw = form.get("eta_minutes", "").strip()
        minutes: int | None = None
        if raw:
            if not raw.isdecimal() or int(raw) > 24 * 60:
                raise ServiceError(_("Team ready in: 0 to 1440 minutes."), field="eta_minutes")
            minutes = int(raw)
        return {"offer": offer, "minutes": minutes}
    return {"offer": offer, "reason": form.get("reason", ""), "note": form.get("note", "")}


ANSWERED = {
    "accept": _l("Accepted: the clinic is told to come."),
    "decline": _l("Declined: the case moves to the next hospital."),
}
