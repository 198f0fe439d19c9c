"""Triage: from a case to what the receiving facility must have, how urgent it is, and why.

Everything clinical comes from the region rules (DOMAIN.md §4); this module only combines them:
the highest requirement of every condition and colour wins, and purple adds isolation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facilities.vocabulary import level_label
from referral.rules import COLOURS, URGENCIES, Condition, Need, Rules

URGENCY_ORDER = {name: index for index, name in enumerate(URGENCIES)}  # critical first
COLOUR_ORDER = {"green": 0, "yellow": 1, "orange": 2, "red": 3}


class TriageError(ValueError):
    """A case that cannot be triaged; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Case:
    conditions: tuple[str, ...] = ()
    risk_colour: str | None = None
    purple: bool = False
    gestation_weeks: float | None = None
    birth_weight_g: float | None = None
    in_shock: bool = False
    ventilated: bool = False
    do_not_move: bool = False


@dataclass(frozen=True)
class Triage:
    need: Need
    urgency: str
    patient: str
    reasons: list[str]
    window_minutes: int | None
    stabilise: Need | None
    advice: dict[str, list[str]] = field(default_factory=dict)

    def requirements(self) -> dict[str, Any]:
        return need_as_dict(self.need)


def need_as_dict(need: Need) -> dict[str, Any]:
    return {
        "maternal_level": level_label("M", need.maternal_level),
        "neonatal_level": level_label("N", need.neonatal_level),
        "capabilities": sorted(need.capabilities),
    }


def describe(need: Need) -> str:
    parts = []
    if need.maternal_level:
        parts.append(level_label("M", need.maternal_level))
    if need.neonatal_level:
        parts.append(level_label("N", need.neonatal_level))
    parts.extend(sorted(need.capabilities))
    return ", ".join(parts) or "no particular level"


def neonatal_level_for(rules: Rules, *, weeks: float | None, grams: float | None) -> int:
    for band in rules.neonatal_bands:
        by_weeks = band.below_weeks is not None and weeks is not None and weeks < band.below_weeks
        by_grams = band.below_grams is not None and grams is not None and grams < band.below_grams
        if by_weeks or by_grams or (band.below_weeks is None and band.below_grams is None):
            return band.level
    return 1  # unreachable: the rules guarantee a last band without limits


def validate_case(rules: Rules, case: Case) -> None:
    if not case.conditions and case.risk_colour is None and not case.purple:
        raise TriageError(
            "conditions: name at least one condition or a risk colour", field="conditions"
        )
    for code in case.conditions:
        if code not in rules.conditions:
            known = ", ".join(sorted(rules.conditions))
            raise TriageError(
                f"conditions: unknown condition {code!r}; known: {known}", field="conditions"
            )
    if case.risk_colour is not None and case.risk_colour not in COLOURS:
        raise TriageError(
            f"risk_colour: expected one of {', '.join(COLOURS)}, got {case.risk_colour!r}",
            field="risk_colour",
        )
    if case.gestation_weeks is not None and not 20 <= case.gestation_weeks <= 44:
        raise TriageError(
            f"gestation_weeks: {case.gestation_weeks} is outside 20–44 weeks",
            field="gestation_weeks",
        )
    if case.birth_weight_g is not None and not 300 <= case.birth_weight_g <= 6500:
        raise TriageError(
            f"birth_weight_g: {case.birth_weight_g} is outside 300–6500 g", field="birth_weight_g"
        )
    patients = {rules.conditions[code].patient for code in case.conditions}
    if len(patients) > 1:
        raise TriageError(
            "conditions: a referral is for the mother or for the newborn, not both "
            "(refer the baby separately after birth)",
            field="conditions",
        )
    if patients == {"newborn"} and case.risk_colour is not None:
        raise TriageError(
            "risk_colour: the five-colour risk grades the mother, not a newborn",
            field="risk_colour",
        )


def triage(rules: Rules, case: Case) -> Triage:
    """Requirements, urgency class, time window, stabilisation need and reasons for a case."""
    validate_case(rules, case)
    conditions: list[Condition] = [rules.conditions[code] for code in case.conditions]
    patient = conditions[0].patient if conditions else "mother"
    need = Need()
    reasons: list[str] = []
    urgency = "planned"
    windows: list[int] = []
    stabilise: Need | None = None
    advice: dict[str, list[str]] = {"zh": [], "en": []}

    for condition in conditions:
        condition_need = condition.need
        why = f"{condition.code} ({condition.name['en']}) needs {describe(condition.need)}"
        if case.in_shock and condition.in_shock is not None:
            condition_need = condition_need.merge(condition.in_shock)
            why += f"; in shock: {describe(condition.in_shock)}"
        if case.ventilated and condition.ventilated is not None:
            condition_need = condition_need.merge(condition.ventilated)
            why += f"; ventilated: {describe(condition.ventilated)}"
        if condition.neonatal_by_gestation:
            if case.gestation_weeks is None and case.birth_weight_g is None:
                raise TriageError(
                    f"gestation_weeks: {condition.code} needs the gestation (or birth weight) "
                    "to choose the neonatal level",
                    field="gestation_weeks",
                )
            level = neonatal_level_for(rules, weeks=case.gestation_weeks, grams=case.birth_weight_g)
            condition_need = condition_need.merge(Need(neonatal_level=level))
            why += f"; the baby at {_gestation_text(case)} needs {level_label('N', level)}"
        need = need.merge(condition_need)
        reasons.append(why)
        if URGENCY_ORDER[condition.urgency] < URGENCY_ORDER[urgency]:
            urgency = condition.urgency
        if condition.window_minutes is not None:
            windows.append(condition.window_minutes)
        if condition.stabilise is not None:
            stabilise = (
                condition.stabilise if stabilise is None else stabilise.merge(condition.stabilise)
            )
        for language in ("zh", "en"):
            advice[language].append(condition.advice[language])

    if case.risk_colour is not None and case.risk_colour != "purple":
        colour_need = rules.colours[case.risk_colour]
        need = need.merge(colour_need)
        reasons.append(f"risk colour {case.risk_colour} needs {describe(colour_need)}")
    if case.purple or case.risk_colour == "purple":
        need = need.merge(rules.colours["purple"])
        reasons.append(f"purple (infectious) needs {describe(rules.colours['purple'])}")
    if case.do_not_move:
        reasons.append("marked do not move: the capable team is asked to come (outreach)")

    return Triage(
        need=need,
        urgency=urgency,
        patient=patient,
        reasons=reasons,
        window_minutes=min(windows) if windows else None,
        stabilise=stabilise,
        advice=advice,
    )


def _gestation_text(case: Case) -> str:
    parts = []
    if case.gestation_weeks is not None:
        parts.append(f"{case.gestation_weeks:g} weeks")
    if case.birth_weight_g is not None:
        parts.append(f"{case.birth_weight_g:g} g")
    return " and ".join(parts)
