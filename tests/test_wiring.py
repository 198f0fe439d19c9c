"""One composition root: the handler table is explicit, checked at start, and the same however
many apps a process builds (nothing registers itself by being imported or by building an app)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import calls, escalation
from alerts.handlers import Handlers
from greenchannel.runtime import TIMER_KINDS, WiringError, build_handlers, build_runtime
from greenchannel.web.app import create_app
from referral import service, sms
from referral.placement import router_for
from referral.rules import load_rules
from referral.service import Placement


def settings(tmp_path: Path, name: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / name}.sqlite",
        "GREENCHANNEL_ROADS": str(tmp_path / f"{name}.npz"),
        "GREENCHANNEL_RULES": "",
        "SMS_BACKEND": "recording",
        "SECRET_KEY": "x",
        "PUBLIC_BASE_URL": "https://gc.test",
    }


def test_ten_apps_in_one_process_each_keep_their_own_handlers(tmp_path: Path) -> None:
    apps = [create_app(settings(tmp_path, f"app{n}")) for n in range(10)]
    tables = [app.extensions["greenchannel.handlers"] for app in apps]
    for table in tables:
        assert set(table.timers) == set(TIMER_KINDS)
        assert [command.name for command in table.commands] == ["REF"]  # one, not ten
        assert table.reply is not None
    # Each app's handlers use its own road network: the first app's is not the last's.
    places = [app.extensions["greenchannel.place"]() for app in apps]
    assert len({id(place.router) for place in places}) == len(apps)
    assert apps[0].extensions["greenchannel.runtime"].roads_path.endswith("app0.npz")
    assert apps[9].extensions["greenchannel.runtime"].roads_path.endswith("app9.npz")


def test_building_the_runtime_twice_gives_equal_tables_and_changes_neither(
    tmp_path: Path,
) -> None:
    first = build_runtime(settings(tmp_path, "a"))
    second = build_runtime(settings(tmp_path, "b"))
    assert set(first.handlers.timers) == set(second.handlers.timers) == set(TIMER_KINDS)
    assert (
        first.handlers.timers[service.OFFER_EXPIRY]
        is not second.handlers.timers[service.OFFER_EXPIRY]
    )


def test_the_start_up_check_refuses_a_table_that_leaves_a_timer_kind_or_replies_unhandled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = load_rules()

    def place() -> Placement:
        return Placement(rules=rules, router=router_for(""))

    assert build_handlers(place).missing(timer_kinds=set(TIMER_KINDS)) == []
    # The referral part forgets its offer expiry: the check names the kind.
    real = sms.handlers
    monkeypatch.setattr(sms, "handlers", lambda place: Handlers(reply=real(place).reply))
    with pytest.raises(WiringError, match=r"offer\.expiry"):
        build_handlers(place)


def test_a_timer_kind_handled_twice_is_a_wiring_mistake() -> None:
    table = Handlers(timers=dict(escalation.TIMER_HANDLERS))
    with pytest.raises(ValueError, match=r"alert\.step"):
        table.merged(Handlers(timers=dict(escalation.TIMER_HANDLERS)))


def test_every_timer_kind_the_code_schedules_is_in_the_checked_list() -> None:
    """A new timer kind must join TIMER_KINDS, or the start-up check would not cover it."""
    root = Path(__file__).resolve().parents[1]
    scheduled = set()
    for package in ("alerts", "referral", "facilities", "greenchannel"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "timers.schedule(" in text:
                scheduled.add(path.relative_to(root).as_posix())
    # the modules that schedule timers, each with its kinds in TIMER_KINDS
    assert scheduled == {"alerts/escalation.py", "referral/offering.py", "alerts/calls.py"}
    assert {escalation.STEP_KIND, service.OFFER_EXPIRY, calls.CALL_KIND} == set(TIMER_KINDS)
