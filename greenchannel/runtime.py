"""The composition root: what plugs into what, written in one place and built once.

The web app, the worker, the command line and the demo scenario all start here. A
:class:`Runtime` holds the settings, the engine and the session factory, the region rules, the
road network (per process, reloaded when its file changes), the SMS transport and the explicit
handler table of the alerts package. Nothing registers itself by being imported or by building
an app: two runtimes in one process are two independent tables (docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from alerts import calls, escalation
from alerts.handlers import Handlers
from alerts.models import Alert, OutboundMessage
from alerts.transports import SmsTransport, transport_from_config
from alerts.voice import VoiceConfigError, voice_transport_from_config
from core.db import make_engine, utcnow
from core.settings import load_config
from referral import offers, service, sms, voice
from referral.placement import router_for
from referral.rules import Rules, load_rules
from referral.service import Placement

#: Every timer kind the code can schedule; the start-up check holds the table against it.
TIMER_KINDS: frozenset[str] = frozenset(
    {escalation.STEP_KIND, service.OFFER_EXPIRY, calls.CALL_KIND}
)


class WiringError(RuntimeError):
    """The handler table leaves something the code can schedule or receive without a handler."""


@dataclass(frozen=True)
class Runtime:
    settings: Mapping[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    rules: Rules
    roads_path: str
    handlers: Handlers
    clock: Callable[[], dt.datetime] = utcnow

    def place(self) -> Placement:
        """The rules and the process's road network (reloaded when the file changes)."""
        return Placement(
            rules=self.rules,
            router=router_for(self.roads_path),
            public_base_url=str(self.settings.get("PUBLIC_BASE_URL") or ""),
        )

    def transport(self) -> SmsTransport:
        return transport_from_config(self.settings)

    def voice(self) -> calls.CallPlacer | None:
        """The worker's call placer (``VOICE_BACKEND``), or None when calls are off. The
        provider fetches each call's TwiML from ``PUBLIC_BASE_URL``, so it must be set."""
        transport = voice_transport_from_config(self.settings)
        if transport is None:
            return None
        base = str(self.settings.get("PUBLIC_BASE_URL") or "")
        if not base:
            raise VoiceConfigError(
                "VOICE_BACKEND=twilio needs PUBLIC_BASE_URL: the provider fetches each call's "
                "words and posts the keys pressed there"
            )
        return calls.CallPlacer(transport=transport, public_base_url=base)


def default_settings(instance_path: str | Path | None = None) -> dict[str, Any]:
    """The settings read from the environment once (``instance/`` beside the working directory
    unless given)."""
    return load_config(str(instance_path or Path(os.getcwd()) / "instance"))


def build_handlers(place: Callable[[], Placement], *, calls_on: bool = False) -> Handlers:
    """The handler table: the escalation's timers, then the referral's timer, reply and SMS
    command, the offer's clock that restarts when its pre-alert leaves late, and the call step
    with the case's record of its calls (``calls_on``: a deployment with ``VOICE_BACKEND`` set;
    otherwise the step queues nothing). Checked: every timer kind the code can schedule,
    replies and late alerts have a handler."""

    def on_late(
        session: Session, *, alert: Alert, message: OutboundMessage, now: dt.datetime
    ) -> None:
        offers.restart_clock(session, place=place(), alert=alert, message=message, now=now)

    table = (
        Handlers(timers=dict(escalation.TIMER_HANDLERS))
        .merged(sms.handlers(place))
        .merged(Handlers(late=on_late))
        .merged(Handlers(timers=calls.timer_handlers(calls_on=calls_on), call=voice.on_call))
    )
    gaps = table.missing(timer_kinds=set(TIMER_KINDS))
    if gaps:
        raise WiringError("nothing handles " + ", ".join(gaps))
    return table


def build_runtime(settings: Mapping[str, Any]) -> Runtime:
    """Engine, sessions, rules and handler table from ``settings`` (see :func:`default_settings`).

    Refuses to build on a broken rulebook: the error names the file, line and key."""
    engine = make_engine(settings["DATABASE_URL"])
    sessions = sessionmaker(engine, expire_on_commit=False)
    rules = load_rules(settings.get("GREENCHANNEL_RULES") or None)
    roads_path = str(settings["GREENCHANNEL_ROADS"])
    public_base_url = str(settings.get("PUBLIC_BASE_URL") or "")

    def place() -> Placement:
        return Placement(
            rules=rules, router=router_for(roads_path), public_base_url=public_base_url
        )

    return Runtime(
        settings=dict(settings),
        engine=engine,
        sessions=sessions,
        rules=rules,
        roads_path=roads_path,
        handlers=build_handlers(place, calls_on=calls_configured(settings)),
    )


def calls_configured(settings: Mapping[str, Any]) -> bool:
    """Whether this deployment places phone calls (``VOICE_BACKEND`` other than off)."""
    return str(settings.get("VOICE_BACKEND") or "off").strip().lower() != "off"
