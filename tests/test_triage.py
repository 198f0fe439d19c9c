"""Every row of the default condition table triages as docs/domain.md says."""

from __future__ import annotations

import pytest

from referral.rules import Need, load_rules
from referral.triage import Case, TriageError, neonatal_level_for, triage

RULES = load_rules()
ALL = frozenset


# code → (maternal level, neonatal level, capabilities, urgency), straight from docs/domain.md.
DOMAIN_TABLE = {
    "PPH": (2, 0, {"caesarean_24h", "massive_transfusion"}, "critical"),
    "UTERINE_RUPTURE": (2, 0, {"caesarean_24h", "massive_transfusion"}, "critical"),
    "ECLAMPSIA": (3, 0, {"adult_icu"}, "critical"),
    "SEVERE_PE": (2, 0, set(), "urgent"),
    "SEPSIS": (3, 0, {"adult_icu"}, "critical"),
    "CARDIAC": (4, 0, {"adult_icu", "cardiac_surgery"}, "critical"),
    "AFE_ARREST": (3, 0, {"adult_icu", "massive_transfusion"}, "critical"),
    "PAS": (3, 0, {"interventional_radiology"}, "planned"),
    "SEVERE_ANAEMIA": (2, 0, {"blood_transfusion"}, "urgent"),
    "NB_ASPHYXIA": (0, 3, {"therapeutic_hypothermia"}, "critical"),
    "NB_RESP": (0, 2, {"neonatal_cpap"}, "urgent"),
    "NB_SEPSIS": (0, 2, set(), "urgent"),
    "NB_JAUNDICE": (0, 3, {"exchange_transfusion"}, "urgent"),
    "NB_SURGICAL": (0, 4, {"neonatal_surgery"}, "urgent"),
    "NB_SEIZURE": (0, 3, set(), "urgent"),
}


@pytest.mark.parametrize("code", sorted(DOMAIN_TABLE))
def test_a_condition_alone_needs_what_the_domain_table_says(code: str) -> None:
    maternal, neonatal, capabilities, urgency = DOMAIN_TABLE[code]
    result = triage(RULES, Case(conditions=(code,)))
    assert result.need == Need(maternal, neonatal, ALL(capabilities))
    assert result.urgency == urgency
    assert result.reasons and code in result.reasons[0]
    assert result.advice["zh"] and result.advice["en"]


@pytest.mark.parametrize(
    ("code", "weeks", "maternal", "neonatal", "capabilities"),
    [
        ("APH", 36, 2, 1, {"caesarean_24h", "blood_transfusion"}),
        ("APH", 30, 2, 3, {"caesarean_24h", "blood_transfusion"}),
        ("PRETERM_LABOUR", 33, 2, 2, set()),
        ("PRETERM_LABOUR", 31, 2, 3, set()),
        ("PRETERM_LABOUR", 27, 2, 4, set()),
    ],
)
def test_bleeding_before_birth_and_preterm_labour_also_need_the_babys_level(
    code: str, weeks: float, maternal: int, neonatal: int, capabilities: set[str]
) -> None:
    result = triage(RULES, Case(conditions=(code,), gestation_weeks=weeks))
    assert result.need == Need(maternal, neonatal, ALL(capabilities))
    assert result.patient == "mother"


def test_a_mother_in_preterm_labour_needs_both_her_and_her_babys_requirements() -> None:
    result = triage(RULES, Case(conditions=("PRETERM_LABOUR", "ECLAMPSIA"), gestation_weeks=29))
    assert result.need == Need(3, 3, ALL({"adult_icu"}))
    assert result.urgency == "critical"


@pytest.mark.parametrize(
    ("weeks", "grams", "level"),
    [
        (27.9, None, 4),
        (None, 999, 4),
        (28, 1000, 3),
        (31, 2000, 3),
        (34, 900, 4),
        (34, 1400, 3),
        (34, 2000, 2),
        (35, 2500, 1),
        (40, None, 1),
        (36, 1499, 3),
    ],
)
def test_the_neonatal_level_follows_gestation_and_weight_bands(
    weeks: float | None, grams: float | None, level: int
) -> None:
    assert neonatal_level_for(RULES, weeks=weeks, grams=grams) == level


def test_a_preterm_newborn_is_triaged_by_gestation_and_weight() -> None:
    result = triage(
        RULES, Case(conditions=("NB_PRETERM",), gestation_weeks=30, birth_weight_g=1300)
    )
    assert result.need == Need(0, 3, ALL())
    assert result.urgency == "urgent"


def test_pph_in_shock_needs_a_county_critical_centre() -> None:
    result = triage(RULES, Case(conditions=("PPH",), in_shock=True))
    assert result.need.maternal_level == 3
    assert "in shock" in result.reasons[0]
    assert result.window_minutes == 120
    assert result.stabilise == Need(2, 0, ALL({"blood_transfusion"}))


def test_a_ventilated_newborn_in_distress_needs_n3_and_ventilation() -> None:
    result = triage(RULES, Case(conditions=("NB_RESP",), ventilated=True))
    assert result.need == Need(0, 3, ALL({"neonatal_cpap", "neonatal_ventilation"}))


def test_asphyxia_carries_the_six_hour_cooling_window() -> None:
    assert triage(RULES, Case(conditions=("NB_ASPHYXIA",))).window_minutes == 360


@pytest.mark.parametrize(
    ("colour", "maternal"), [("green", 0), ("yellow", 2), ("orange", 3), ("red", 4)]
)
def test_the_risk_colour_sets_the_minimum_maternal_level(colour: str, maternal: int) -> None:
    result = triage(RULES, Case(risk_colour=colour))
    assert result.need.maternal_level == maternal


def test_the_highest_of_colour_and_condition_wins_and_purple_adds_isolation() -> None:
    result = triage(RULES, Case(conditions=("SEVERE_PE",), risk_colour="orange", purple=True))
    assert result.need == Need(3, 0, ALL({"infectious_isolation"}))
    assert any("purple" in reason for reason in result.reasons)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        (Case(conditions=("HEADACHE",)), "conditions"),
        (Case(), "conditions"),
        (Case(risk_colour="blue"), "risk_colour"),
        (Case(conditions=("PPH",), gestation_weeks=60), "gestation_weeks"),
        (Case(conditions=("NB_PRETERM",), birth_weight_g=20000), "birth_weight_g"),
        (Case(conditions=("PPH", "NB_SEPSIS")), "conditions"),
        (Case(conditions=("NB_SEPSIS",), risk_colour="red"), "risk_colour"),
    ],
)
def test_cases_that_cannot_be_triaged_name_the_field(case: Case, field: str) -> None:
    with pytest.raises(TriageError) as caught:
        triage(RULES, case)
    assert caught.value.field == field


def test_a_condition_that_needs_the_babys_size_answers_without_it_with_a_floor_and_a_warning() -> (
    None
):
    result = triage(RULES, Case(conditions=("PRETERM_LABOUR",)))
    assert result.need.neonatal_level == RULES.clinical.unknown_baby_level
    assert [w.code for w in result.warnings] == ["baby_size_unknown"]
