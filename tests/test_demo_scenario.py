"""``greenchannel demo --scenario pph``: the whole story, in simulated time."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from greenchannel.demo.scenario import run_scenario


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
    from greenchannel.cli import main

    monkeypatch.setenv("GREENCHANNEL_DEMO_FAST", "1")
    result = CliRunner().invoke(main, ["demo", "--scenario", "pph"])
    assert result.exit_code == 0, result.output
    assert "Report card" in result.output
    unknown = CliRunner().invoke(main, ["demo", "--scenario", "eclampsia"])
    assert unknown.exit_code == 2 and "eclampsia" in unknown.output


def test_the_safety_net_scenario_assigns_the_designated_centre_and_tells_everyone() -> None:
    out = io.StringIO()
    state = run_scenario("safety-net", fast=True, stream=out)
    text = out.getvalue()
    # An eclamptic mother at 30 weeks, undelivered: M3 + adult ICU for her, N3 for her baby.
    assert state["status"] == "accepted" and state["destination"] == "YZ-CENTRE"
    offers = state["offers"]
    assert offers[-1] == ("YZ-CENTRE", "safety_net", "accepted")
    assert all(kind == "transfer" for _, kind, _ in offers[:-1])  # only capable ones asked
    assert {status for _, _, status in offers[:-1]} == {"declined", "expired"}
    assert state["timeline"][-1] == "safety_net_assigned"
    assert state["why"]["why"] == "nobody accepted" and state["why"]["rule"] == "assign"
    for seen in (
        "needs N3",  # the baby inside counts
        "SAFETY NET: to the designated centre's teams",
        "to the referring clinic: where to go",
        "to the coordinator: the safety net acted",
        "兜底",
    ):
        assert seen in text, seen
