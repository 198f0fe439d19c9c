"""``greenchannel demo --scenario pph``: the whole story, in simulated time."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from referral.scenario import run_scenario


def test_the_pph_scenario_shows_a_decline_a_silence_an_acceptance_and_the_arrival() -> None:
    out = io.StringIO()
    state = run_scenario("pph", fast=True, stream=out)
    text = out.getvalue()
    assert state["status"] == "completed"
    assert list(state["offers"].values()) == ["declined", "expired", "accepted", "withdrawn"]
    assert state["asked_first"] == ["LH-CH", "YZ-CENTRE"]
    assert state["destination"] == "YZ-MCH"
    intervals = state["intervals"]
    assert intervals["decision_to_first_alert"] == 0
    assert intervals["decision_to_accepted"] == pytest.approx(3 + 1 / 3, abs=0.01)
    assert intervals["decision_to_arrived"] > intervals["decision_to_accepted"]
    for moment in ("08:00:00", "08:01:30", "08:02:00", "08:03:00", "08:03:20"):
        assert f"\n{moment}  " in text, moment
    for seen in ("N FULL", "ESCALATED", "总机", "Received: you decline", "已到达", "Report card"):
        assert seen in text, seen
    assert "{" not in text  # no log lines in the story


def test_the_scenario_command_runs_fast_with_the_environment_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from referral.cli import main

    monkeypatch.setenv("GREENCHANNEL_DEMO_FAST", "1")
    result = CliRunner().invoke(main, ["demo", "--scenario", "pph"])
    assert result.exit_code == 0, result.output
    assert "Report card" in result.output
    unknown = CliRunner().invoke(main, ["demo", "--scenario", "eclampsia"])
    assert unknown.exit_code == 2 and "eclampsia" in unknown.output
