"""``greenchannel demo --scenario pph``: one postpartum haemorrhage, end to end, in a minute.

The scenario builds the demo region (facilities and roads) in a temporary SQLite database, so
the demo database is never touched, then drives the real services (:mod:`referral.service`),
the real SMS reply path (:func:`alerts.inbound.handle_inbound`) and the real worker tick
(:func:`alerts.timers.tick`) with a simulated clock that steps 5 s at a time. Real time runs
at about one simulated minute per second, with short pauses at the moments worth reading;
``fast`` (``--fast`` or ``GREENCHANNEL_DEMO_FAST=1``) skips every pause.

The script: a township clinic refers a PPH case → the two nearest capable hospitals are asked
at once → the nearer stays silent (its next person on call, switchboard and coordinator are
told at 1.5 min; the offer expires at 3 min and the next hospital is asked) → the other
declines by SMS (FULL) and the next one is asked → that one accepts on the web → the clinic is
told, departs, the patient arrives, the case closes with its report card.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from greenchannel.demo.console import phone_labels
from greenchannel.demo.region import build_demo_region, demo_road_network
from greenchannel.demo.roads import save_network
from greenchannel.demo.scenario_pph import run_pph
from greenchannel.demo.scenario_safety_net import run_safety_net
from greenchannel.demo.simulation import CHINA, SCENARIOS, Narrator
from greenchannel.runtime import build_runtime, default_settings


def run_scenario(name: str, *, fast: bool = False, stream: TextIO | None = None) -> dict[str, Any]:
    """Build the demo region in a temporary database and play scenario ``name``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: expected one of {', '.join(SCENARIOS)}")
    out = stream or sys.stdout
    narrator = Narrator(out, fast=fast)
    # The story is told on stdout; the services' own INFO logs would drown it.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        return _run(name, narrator, out)
    finally:
        logging.disable(previous)


def _run(name: str, narrator: Narrator, out: TextIO) -> dict[str, Any]:
    from migrations import upgrade

    today = dt.datetime.now(CHINA).date()
    start = dt.datetime(today.year, today.month, today.day, 8, 0, tzinfo=CHINA).astimezone(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="greenchannel-scenario-") as folder:
        url = f"sqlite:///{Path(folder) / 'scenario.sqlite'}"
        roads = Path(folder) / "roads.npz"
        runtime = build_runtime(
            {
                **default_settings(folder),
                "DATABASE_URL": url,
                "GREENCHANNEL_ROADS": str(roads),
                "SMS_BACKEND": "console",
            }
        )
        print(
            "Building the demo region (facilities and roads) in a temporary database; your "
            "demo database is not touched ...",
            file=out,
            flush=True,
        )
        upgrade(url)
        save_network(demo_road_network(speeds=runtime.rules.road_speeds_kmh).network, roads)
        with runtime.sessions() as session:
            build_demo_region(session, now=start)
            session.commit()
            narrator.labels = phone_labels(session)
        title = {
            "pph": "Scenario PPH: postpartum haemorrhage at a township health centre.",
            "safety-net": "Scenario safety net: every capable hospital declines or stays silent.",
        }[name]
        print(
            f"\n{title} Clock simulated (China time), about one minute per second; every "
            "step goes through the real services, SMS outbox and worker.\n",
            file=out,
            flush=True,
        )
        play = run_pph if name == "pph" else run_safety_net
        state = play(runtime, narrator, start)
        runtime.engine.dispose()
    return state
