"""Region rules are data, validated in full at start with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from referral.rules import DEFAULT_RULES_PATH, RulesError, load_rules, parse_rules

DEFAULT = DEFAULT_RULES_PATH.read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_the_shipped_rules_hold_every_condition_of_the_domain_table() -> None:
    rules = load_rules()
    assert len(rules.conditions) == 21
    assert {"CORD_PROLAPSE", "OBSTRUCTED_LABOUR", "FETAL_DISTRESS"} <= set(rules.conditions)
    assert rules.stale_grace.total_seconds() == 12 * 3600
    assert rules.urgency["critical"].parallel_offers == 2
    assert rules.urgency["urgent"].answer_timeout.total_seconds() == 300
    assert rules.road_speeds_kmh["motorway"] == 100


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        (
            "capabilities: [caesarean_24h, massive_transfusion]\n    in_shock",
            "capabilities: [caesarian_24h, massive_transfusion]\n    in_shock",
            "conditions.PPH.capabilities[0]",
            "unknown capability",
        ),
        (
            "maternal_level: M3\n    capabilities: [adult_icu]\n    urgency: critical\n"
            "    window_minutes: 120",
            "maternal_level: M7\n    capabilities: [adult_icu]\n    urgency: critical\n"
            "    window_minutes: 120",
            "conditions.ECLAMPSIA.maternal_level",
            "M0–M4",
        ),
        ("  grace_hours: 12", "  grace_hourz: 12", "staleness.grace_hourz", "unknown key"),
        (
            "    parallel_offers: 2",
            "    parallel_offers: two",
            "urgency.critical.parallel_offers",
            "expected a number",
        ),
        (
            "    urgency: critical\n    window_minutes: 120\n    window_from: onset\n"
            "    stabilise: {maternal_level: M2, capabilities: [blood_transfusion]}",
            "    urgency: sometime\n    window_minutes: 120\n    window_from: onset\n"
            "    stabilise: {maternal_level: M2, capabilities: [blood_transfusion]}",
            "conditions.PPH.urgency",
            "expected one of",
        ),
    ],
)
def test_a_typo_is_reported_with_file_line_and_key(
    old: str, new: str, key: str, words: str
) -> None:
    assert old in DEFAULT, old
    broken = DEFAULT.replace(old, new, 1)
    with pytest.raises(RulesError) as caught:
        parse_rules(broken, source="region.yaml")
    message = str(caught.value)
    assert message.startswith("region.yaml, line ")
    assert f"key {key}:" in message and words in message
    line = int(message.split("line ")[1].split(",")[0])
    assert abs(line - line_of(broken, new.strip().split("\n")[0].strip())) <= 4


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "empty"), ("version: [", "not valid YAML"), ("version: 2\n", "missing key")],
)
def test_an_unusable_file_is_refused(text: str, words: str) -> None:
    with pytest.raises(RulesError, match=words):
        parse_rules(text, source="x.yaml")


def test_the_service_refuses_to_start_on_a_broken_rulebook(tmp_path: Path) -> None:
    from greenchannel.web.app import create_app

    broken = tmp_path / "rules.yaml"
    broken.write_text(DEFAULT.replace("grace_hours: 12", "grace_hours: -1"), encoding="utf-8")
    with pytest.raises(RulesError, match=r"staleness\.grace_hours"):
        create_app({"GREENCHANNEL_RULES": str(broken), "DATABASE_URL": "sqlite://"})


def test_a_region_can_raise_red_to_city_level_or_lower_it(tmp_path: Path) -> None:
    own = tmp_path / "rules.yaml"
    own.write_text(
        DEFAULT.replace("red: {maternal_level: M4}", "red: {maternal_level: M3}"), encoding="utf-8"
    )
    assert load_rules(own).colours["red"].maternal_level == 3


FIRST_VERSION = Path(__file__).parent / "data" / "rules-first-version.yaml"


def test_a_rules_file_written_for_the_first_version_still_loads_with_the_new_defaults() -> None:
    rules = load_rules(FIRST_VERSION)
    assert len(rules.conditions) == 18
    # advice written as one sentence is one checklist item
    assert len(rules.conditions["PPH"].advice["en"]) == 1
    assert rules.clinical.baby_inside_below_weeks == 37
    assert rules.clinical.shock_index == 1.0 and rules.clinical.shock_blood_loss_ml == 1500
    assert rules.safety_net == {"critical": "assign", "urgent": "offer", "planned": "off"}
    # APH and preterm labour took the baby into account: they are read as before birth
    assert rules.conditions["APH"].timing == "antepartum"
    assert rules.conditions["PPH"].timing == "any"


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("  shock_index: 1.0", "  shock_index: high", "clinical.shock_index", "expected a number"),
        ("  critical: assign", "  critical: always", "safety_net.critical", "expected one of"),
        ("    timing: postpartum", "    timing: later", "conditions.PPH.timing", "expected one of"),
        (
            "    window_from: birth",
            "    window_from: conception",
            "conditions.NB_ASPHYXIA.window_from",
            "expected one of",
        ),
        (
            "    do_not_move: true",
            "    do_not_move: maybe",
            "conditions.AFE_ARREST.do_not_move",
            "true or false",
        ),
    ],
)
def test_the_rules_across_the_table_are_validated_like_the_rest(
    old: str, new: str, key: str, words: str
) -> None:
    assert old in DEFAULT, old
    with pytest.raises(RulesError) as caught:
        parse_rules(DEFAULT.replace(old, new, 1), source="region.yaml")
    message = str(caught.value)
    assert f"key {key}:" in message and words in message, message


def test_an_advice_checklist_needs_the_same_items_in_both_languages() -> None:
    broken = DEFAULT.replace("        - Call for help; start the PPH drill\n", "", 1)
    with pytest.raises(RulesError) as caught:
        parse_rules(broken, source="region.yaml")
    assert "conditions.PPH.advice" in str(caught.value)
