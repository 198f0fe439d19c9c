"""What the alerts package hands work to: an explicit table, built once by the composition root.

Nothing registers itself by being imported or by building an app: the runtime
(:mod:`greenchannel.runtime`) puts the timer handlers, the reply handler and the SMS commands in
one :class:`Handlers` and passes it to the worker's tick and to the inbound reader. Building the
table twice gives two equal tables; neither changes the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session

from alerts.models import Alert, OutboundMessage, Timer, VoiceCall
from alerts.replies import OfferReply
from facilities.models import Contact

TimerHandler = Callable[[Session, Timer, dt.datetime], None]
"""Runs one due timer in the worker's transaction; it must not commit."""


class ReplyHandler(Protocol):
    """Takes a parsed answer to an open alert; returns the text sent back."""

    def __call__(
        self,
        session: Session,
        *,
        alert: Alert,
        contact: Contact,
        reply: OfferReply,
        now: dt.datetime,
    ) -> str: ...


class LateHandler(Protocol):
    """An alert's message asking for an answer leaves late (the worker or the SMS provider was
    down): the caller restarts its answer clock from ``now`` and may rewrite ``message.body``
    (the deadline it shows) before it goes. Runs in one transaction with the escalation's own
    postponement; it must not commit."""

    def __call__(
        self, session: Session, *, alert: Alert, message: OutboundMessage, now: dt.datetime
    ) -> None: ...


class CallHandler(Protocol):
    """A call about an alert was placed or has ended (``call.status`` says which): the caller
    writes it where its people read it (the case's timeline). Runs in the transaction that
    records the call; it must not commit."""

    def __call__(
        self, session: Session, *, alert: Alert, call: VoiceCall, now: dt.datetime
    ) -> None: ...


class CommandHandler(Protocol):
    """Takes an SMS its matcher recognised (e.g. ``REF …`` from a clinic phone)."""

    def __call__(
        self, session: Session, *, from_phone: str, body: str, now: dt.datetime
    ) -> str: ...


@dataclass(frozen=True)
class Command:
    name: str
    matches: Callable[[str], bool]
    handle: CommandHandler


@dataclass(frozen=True)
class Handlers:
    """Timer handlers by kind, the one reply handler, the SMS commands (checked in order), and
    the one handler of alerts that leave late."""

    timers: Mapping[str, TimerHandler] = field(default_factory=dict)
    reply: ReplyHandler | None = None
    commands: tuple[Command, ...] = ()
    late: LateHandler | None = None
    call: CallHandler | None = None

    def merged(self, other: Handlers) -> Handlers:
        """Both tables in one; a timer kind or a command named in both is a mistake."""
        twice = set(self.timers) & set(other.timers)
        if twice:
            raise ValueError(f"timer kind(s) handled twice: {', '.join(sorted(twice))}")
        names = {c.name for c in self.commands} & {c.name for c in other.commands}
        if names:
            raise ValueError(f"SMS command(s) handled twice: {', '.join(sorted(names))}")
        if self.reply is not None and other.reply is not None:
            raise ValueError("two reply handlers")
        if self.late is not None and other.late is not None:
            raise ValueError("two handlers of late alerts")
        if self.call is not None and other.call is not None:
            raise ValueError("two handlers of calls")
        return Handlers(
            timers={**self.timers, **other.timers},
            reply=self.reply or other.reply,
            commands=self.commands + other.commands,
            late=self.late or other.late,
            call=self.call or other.call,
        )

    def missing(self, *, timer_kinds: set[str]) -> list[str]:
        """What the code can schedule or receive that nothing here handles (empty: all set)."""
        gaps = [f"timer kind {kind!r}" for kind in sorted(timer_kinds - set(self.timers))]
        if self.reply is None:
            gaps.append("replies to alerts (Y/N answers)")
        if self.late is None:
            gaps.append("alerts that leave late (answer clocks)")
        return gaps
