"""Inbound SMS: log it, work out who wrote and about what, and hand it to whoever handles it.

Order of reading: the SMS commands of the handler table (e.g. ``REF ...`` from clinic phones),
then capacity replies (``CAP ...``), then answers to open alerts. An answer counts only when
its sender is an active contact of the alerted facility; anything else is logged, changes
nothing and gets a polite explanation. After the table's reply handler accepts an answer the
alert is closed, so the escalation stops. The table comes from the caller
(:class:`alerts.handlers.Handlers`): nothing is registered globally.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import messages
from alerts.escalation import close_alert, open_alerts_for_facilities
from alerts.handlers import Handlers, ReplyHandler
from alerts.models import Alert, AlertStatus, InboundMessage
from alerts.replies import (
    ReplyParseError,
    is_capacity_reply,
    parse_capacity_reply,
    parse_offer_reply,
    tokens,
)
from alerts.transports import mask_phone
from facilities.models import Contact

log = logging.getLogger(__name__)


class ReplyRejected(Exception):
    """Raised by a reply handler: the answer cannot be taken; the message is sent back."""


_CJK = re.compile(r"[\u3400-\u9fff]")


def _language_of(contacts: list[Contact], body: str) -> str:
    if contacts:
        return contacts[0].language
    return "zh" if _CJK.search(body) or not body.isascii() else "en"


def normalise_phone(phone: str) -> str:
    return re.sub(r"[\s()-]", "", phone)


def handle_inbound(
    session: Session,
    *,
    from_phone: str,
    body: str,
    provider_id: str | None,
    now: dt.datetime,
    handlers: Handlers,
) -> str:
    """Log and act on one inbound SMS; returns the answer to send back ("" for none)."""
    if provider_id:
        earlier = session.scalars(
            select(InboundMessage).where(InboundMessage.provider_id == provider_id)
        ).one_or_none()
        if earlier is not None:  # a webhook retry: answer as before, do nothing twice
            return earlier.answer
    phone = normalise_phone(from_phone)
    inbound = InboundMessage(
        from_phone=phone, body=body, received_at=now, provider_id=provider_id or None
    )
    session.add(inbound)
    session.flush()
    outcome, answer = _dispatch(session, inbound, now=now, handlers=handlers)
    inbound.outcome, inbound.answer = outcome, answer
    session.flush()
    log.info("inbound sms %s from %s: %s", inbound.id, mask_phone(phone), outcome)
    return answer


def _dispatch(
    session: Session, inbound: InboundMessage, *, now: dt.datetime, handlers: Handlers
) -> tuple[str, str]:
    body, phone = inbound.body, inbound.from_phone
    for command in handlers.commands:
        if command.matches(body):
            run = functools.partial(command.handle, session, from_phone=phone, body=body, now=now)
            return "command", _guarded(session, run)

    contacts = list(
        session.scalars(
            select(Contact)
            .where(Contact.phone == phone, Contact.active.is_(True))
            .order_by(Contact.priority, Contact.id)
        )
    )
    language = _language_of(contacts, body)
    if not contacts:
        return "unknown_sender", messages.unknown_sender()
    inbound.contact_id = contacts[0].id

    if is_capacity_reply(body):
        return _capacity(session, inbound, contacts, language=language, now=now)
    return _offer_reply(
        session, inbound, contacts, language=language, now=now, reply_handler=handlers.reply
    )


def _guarded(session: Session, call: Callable[[], str]) -> str:
    """Run a handler in a savepoint: if it refuses, its partial work is undone.

    Domain errors in this code base derive from ValueError; their message is written for a
    person and becomes the SMS answer.
    """
    try:
        with session.begin_nested():
            return call()
    except (ReplyRejected, ValueError) as exc:
        log.info("handler refused: %s", type(exc).__name__)
        return str(exc)


def _capacity(
    session: Session,
    inbound: InboundMessage,
    contacts: list[Contact],
    *,
    language: str,
    now: dt.datetime,
) -> tuple[str, str]:
    facility_ids = {c.facility_id for c in contacts}
    if len(facility_ids) > 1:
        return "ambiguous_sender", messages.ambiguous_sender(language)
    try:
        reply = parse_capacity_reply(inbound.body)
    except ReplyParseError:
        return "parse_error", messages.reply_help(language, kind="capacity", code=None)
    from facilities.models import Channel
    from facilities.status import report_status  # the facilities package owns live status

    contact = contacts[0]

    def report() -> str:
        report_status(
            session,
            facility=contact.facility,
            beds=reply.beds,
            diversion=None,
            diversion_reason=None,
            unavailable=None,
            reported_by=f"{contact.name} (SMS)"[:100],
            user_id=None,
            channel=Channel.SMS,
            now=now,
        )
        return messages.capacity_confirmation(language, beds=reply.beds)

    answer = _guarded(session, report)
    return "capacity", answer


def _offer_reply(
    session: Session,
    inbound: InboundMessage,
    contacts: list[Contact],
    *,
    language: str,
    now: dt.datetime,
    reply_handler: ReplyHandler | None,
) -> tuple[str, str]:
    try:
        reply = parse_offer_reply(inbound.body)
    except ReplyParseError as exc:
        return "parse_error", messages.reply_help(language, kind=exc.kind, code=exc.code)

    by_facility = {c.facility_id: c for c in reversed(contacts)}  # first-priority contact wins
    open_alerts = open_alerts_for_facilities(session, by_facility)
    if reply.code is None:
        if not open_alerts:
            return "no_open_alert", messages.no_open_alert(language)
        if len(open_alerts) > 1:
            codes = list(dict.fromkeys(a.code for a in open_alerts))
            return "code_required", messages.code_required(language, codes=codes)
        alert = open_alerts[0]
    else:
        matching = [a for a in open_alerts if a.code == reply.code]
        if not matching:
            closed = session.scalars(
                select(Alert.id).where(
                    Alert.code == reply.code,
                    Alert.facility_id.in_(list(by_facility)),
                    Alert.status == AlertStatus.CLOSED,
                )
            ).first()
            if closed is not None:
                return "not_open", messages.not_open(language, code=reply.code)
            return "code_unknown", messages.code_unknown(language, code=reply.code)
        if len({a.facility_id for a in matching}) > 1:
            return "ambiguous_sender", messages.ambiguous_sender(language)
        alert = matching[0]

    contact = by_facility[alert.facility_id]
    inbound.contact_id, inbound.alert_id = contact.id, alert.id
    if reply_handler is None:
        log.warning("alert %s answered but no reply handler is in the table", alert.id)
        return "unhandled", messages.received(language)
    handler = reply_handler
    taken = False

    def call() -> str:
        nonlocal taken
        answer = handler(session, alert=alert, contact=contact, reply=reply, now=now)
        taken = True
        return answer

    answer = _guarded(session, call)
    if not taken:
        return "rejected", answer
    close_alert(session, subject=alert.subject, now=now, reason="answered")
    return ("accepted" if reply.accept else "declined"), answer


def first_word(word: str) -> Callable[[str], bool]:
    """A command matcher: the message's first word is ``word`` (after normalisation, so
    ``"REF"`` matches ``"ref pph 34w"`` and ``"ＲＥＦ，PPH"``)."""
    return functools.partial(_first_word_is, word.strip().upper())


def _first_word_is(word: str, body: str) -> bool:
    words = tokens(body)
    return bool(words) and words[0] == word
