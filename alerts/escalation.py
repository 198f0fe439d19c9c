"""Alerts: ask one facility's teams for an answer, and escalate while nobody answers.

Round 0 sends the pre-alert to the first active contact (by priority) of each requested team.
Each later round, after ``step_after`` of silence, goes to the next contact of each team; once
some team has nobody left to try, the facility switchboard and the area coordinators are told
(once; the coordinators once per case while the silence is open, :mod:`alerts.attention`).
A message that cannot be delivered (permanent send error, ``undelivered``/``failed``
callback) moves that team on at once instead of waiting out the silence.

The silence is counted from when the pre-alert reached the provider, not from when it was
queued: while none of the alert's messages has left and some are still waiting (the worker or
the provider was down), a step does not fire but waits another ``step_after``; a message that
leaves late (:func:`on_message_late`, run by the outbox before the send) moves the step on to
``step_after`` from then, lets the caller restart its own clock (the table's ``late``
handler: the offer's answer timeout) and tells the area coordinators, once per case
(``late_alerts``, :mod:`alerts.attention`).

The caller (the referral package) closes the alert when the answer arrives or the offer ends;
a step timer that fires after that does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import attention, messages, timers
from alerts.handlers import LateHandler
from alerts.models import Alert, AlertStatus, MessageStatus, OutboundMessage, Timer
from alerts.outbox import cancel_queued, log_queued, queue_sms
from alerts.recipients import contacts_of
from core.vocabulary import LANGUAGES
from facilities.models import Contact, Facility, Team

log = logging.getLogger(__name__)

STEP_KIND = "alert.step"

#: The messages of an alert that ask for an answer: their leaving starts the clocks.
ASKING = frozenset({"prealert", "escalation", "switchboard"})
_WAITING = (MessageStatus.QUEUED, MessageStatus.SENDING)

Render = Callable[[str], str] | Mapping[str, str]


class AlertError(ValueError):
    """An alert request that cannot be carried out as asked."""


def _texts(render: Render) -> dict[str, str]:
    if callable(render):
        return {language: render(language) for language in LANGUAGES}
    texts = {language: render[language] for language in LANGUAGES if render.get(language)}
    if not texts:
        raise AlertError("render gives no text in 'zh' or 'en'")
    fallback = texts.get("zh") or texts["en"]
    return {language: texts.get(language, fallback) for language in LANGUAGES}


def _personal_key(contact_id: int) -> str:
    return f"contact:{contact_id}"


def open_alert(
    session: Session,
    *,
    subject: str,
    code: str,
    facility: Facility,
    teams: Sequence[Team | str],
    render: Render,
    step_after: dt.timedelta,
    now: dt.datetime,
    case_subject: str = "",
    callback_phone: str = "",
    personal: Mapping[int, str] | None = None,
) -> Alert:
    """Queue the pre-alert to each team's first contact and schedule the next step.

    ``subject`` is the caller's opaque key ("offer:17"), unique among alerts; ``code`` is the
    short case code the recipients quote in their reply; ``render(language)`` (or a mapping
    language → text) gives the pre-alert text. ``case_subject`` is the caller's key of the case
    ("referral:5"; the alert's own subject when empty): the coordinators hear of a silence once
    per case (:mod:`alerts.attention`), with the clinic's ``callback_phone``.
    ``personal`` (contact id → text) is the text
    for one contact when it carries something bound to that reader (a one-time link): that
    contact gets it, at whichever step they are reached; the switchboard and contacts added
    later get the language's text.
    """
    team_names = [Team(team).value for team in teams]
    if not team_names:
        raise AlertError("an alert needs at least one team")
    if step_after <= dt.timedelta(0):
        raise AlertError("step_after must be positive")
    if session.scalars(select(Alert.id).where(Alert.subject == subject)).first() is not None:
        raise AlertError(f"an alert for {subject!r} already exists")
    alert = Alert(
        subject=subject,
        code=code.strip().upper(),
        facility_id=facility.id,
        teams=team_names,
        texts={
            **_texts(render),
            **{_personal_key(contact_id): text for contact_id, text in (personal or {}).items()},
        },
        status=AlertStatus.OPEN,
        step=0,
        step_after_seconds=int(step_after.total_seconds()),
        alerted_contact_ids=[],
        opened_at=now,
        case_subject=case_subject,
        callback_phone=callback_phone,
    )
    session.add(alert)
    session.flush()
    log.info("alert %s opened for facility %s (%s)", alert.id, facility.id, ",".join(team_names))
    _round(session, alert, teams=team_names, now=now)
    return alert


def close_alert(
    session: Session, *, subject: str, now: dt.datetime, reason: str = "closed"
) -> Alert | None:
    """Close the alert: no more steps, queued-but-unsent messages cancelled. Idempotent."""
    alert = session.scalars(select(Alert).where(Alert.subject == subject)).one_or_none()
    if alert is None or alert.status == AlertStatus.CLOSED:
        return alert
    alert.status = AlertStatus.CLOSED
    alert.closed_at = now
    alert.close_reason = reason[:64]
    timers.cancel(session, subject=subject, now=now, kinds=[STEP_KIND])
    cancel_queued(session, alert_id=alert.id, now=now)
    session.flush()
    log.info("alert %s closed (%s)", alert.id, reason)
    return alert


def stand_down(session: Session, *, subject: str, reason: str, now: dt.datetime) -> int:
    """Tell everyone the alert actually reached that the patient is not coming. Returns how
    many were told. Call it with :func:`close_alert` when an offer is withdrawn: a team left
    preparing a theatre for a patient who went elsewhere is a team not ready for the next one."""
    alert = get_alert(session, subject=subject)
    if alert is None:
        return 0
    reached = session.execute(
        select(OutboundMessage.to_phone, OutboundMessage.language)
        .where(
            OutboundMessage.alert_id == alert.id,
            OutboundMessage.purpose != "stand_down",
            OutboundMessage.status.not_in([MessageStatus.QUEUED, MessageStatus.CANCELLED]),
        )
        .distinct()
    ).all()
    told = set(
        session.scalars(
            select(OutboundMessage.to_phone).where(
                OutboundMessage.alert_id == alert.id, OutboundMessage.purpose == "stand_down"
            )
        )
    )
    count = 0
    for phone, language in reached:
        if phone in told:
            continue
        told.add(phone)
        queue_sms(
            session,
            to=phone,
            body=messages.stand_down(language, code=alert.code, reason=reason),
            purpose="stand_down",
            subject=subject,
            facility_id=alert.facility_id,
            alert_id=alert.id,
            language=language,
            now=now,
        )
        count += 1
    return count


def get_alert(session: Session, *, subject: str) -> Alert | None:
    return session.scalars(select(Alert).where(Alert.subject == subject)).one_or_none()


def tell_teams(
    session: Session,
    *,
    facility: Facility,
    teams: Iterable[str],
    render: Render,
    purpose: str,
    subject: str,
    now: dt.datetime,
) -> int:
    """Tell the first contact of each team (the switchboard when none is registered) once,
    without waiting for an answer: a notice, not an alert. Returns the messages queued."""
    texts = _texts(render)
    sent: list[OutboundMessage] = []
    for contacts in contacts_of(session, facility.id, teams).values():
        if contacts:
            contact = contacts[0]
            language = contact.language if contact.language in LANGUAGES else "zh"
            sent.append(
                queue_sms(
                    session,
                    to=contact.phone,
                    body=texts[language],
                    purpose=purpose,
                    subject=subject,
                    contact_id=contact.id,
                    facility_id=facility.id,
                    language=language,
                    now=now,
                )
            )
    if not sent and facility.phone:
        sent.append(
            queue_sms(
                session,
                to=facility.phone,
                body=texts["zh"],
                purpose=purpose,
                subject=subject,
                facility_id=facility.id,
                language="zh",
                now=now,
            )
        )
    return len(sent)


def _round(session: Session, alert: Alert, *, teams: Iterable[str], now: dt.datetime) -> None:
    """Alert the next contact of each of ``teams``, escalate if one has none, re-arm the timer."""
    facility = session.get_one(Facility, alert.facility_id)
    exhausted: list[str] = []
    queued: list[OutboundMessage] = []
    alerted = list(alert.alerted_contact_ids)
    for team, contacts in contacts_of(session, alert.facility_id, teams).items():
        contact = next((c for c in contacts if c.id not in alerted), None)
        if contact is None:
            exhausted.append(team)
            continue
        language = contact.language if contact.language in LANGUAGES else "zh"
        text = alert.texts.get(_personal_key(contact.id)) or alert.texts[language]
        if alert.step > 0:
            text = messages.escalated(language, text)
        queued.append(
            queue_sms(
                session,
                to=contact.phone,
                body=text,
                purpose="prealert" if alert.step == 0 else "escalation",
                subject=alert.subject,
                contact_id=contact.id,
                facility_id=facility.id,
                alert_id=alert.id,
                language=language,
                now=now,
                flush=False,
            )
        )
        alerted.append(contact.id)
    alert.alerted_contact_ids = alerted
    if exhausted and alert.escalated_at is None:
        _escalate(session, alert, facility, now=now)

    if alert.step > 0:  # a new alert has no step timer yet
        timers.cancel(
            session, subject=alert.subject, now=now, kinds=[STEP_KIND], include_running=False
        )
    if _anything_left(session, alert):
        timers.schedule(
            session,
            kind=STEP_KIND,
            subject=alert.subject,
            due_at=now + dt.timedelta(seconds=alert.step_after_seconds),
            payload={"alert_id": alert.id, "step": alert.step},
        )
    session.flush()
    for message in queued:
        log_queued(message)


def _anything_left(session: Session, alert: Alert) -> bool:
    if alert.escalated_at is None:
        return True
    return any(
        c.id not in alert.alerted_contact_ids
        for contacts in contacts_of(session, alert.facility_id, alert.teams).values()
        for c in contacts
    )


def _escalate(session: Session, alert: Alert, facility: Facility, *, now: dt.datetime) -> None:
    """The switchboard is asked to pass the pre-alert on; the area coordinators are told."""
    alert.escalated_at = now
    log.info("alert %s escalated to switchboard and coordinators", alert.id)
    if facility.phone:
        queue_sms(
            session,
            to=facility.phone,
            body=messages.switchboard_relay("zh", teams=alert.teams, text=alert.texts["zh"]),
            purpose="switchboard",
            subject=alert.subject,
            facility_id=facility.id,
            alert_id=alert.id,
            now=now,
        )
    # Once per case: a second silent hospital (parallel offers, the next round) texts nobody
    # while the first silence is still open on the board.
    _tell_coordinators(
        session,
        alert,
        facility,
        reason="unanswered",
        words=messages.unanswered_words,
        text=messages.coordinator_unanswered,
        purpose="coordinator",
        now=now,
    )


def _tell_coordinators(
    session: Session,
    alert: Alert,
    facility: Facility,
    *,
    reason: str,
    words: Callable[..., str],
    text: Callable[..., str],
    purpose: str,
    now: dt.datetime,
) -> None:
    """Raise ``reason`` for the alert's case and text the area coordinators, once per case
    (:mod:`alerts.attention`): the facility named in the reader's language, the minutes since
    the alert opened (90 s reads "1.5 min": the coordinator weighs every minute), the clinic's
    number."""
    minutes = max(round((now - alert.opened_at).total_seconds() / 60, 1), 0.0)

    def name(language: str) -> str:
        return facility.name_en or facility.name if language == "en" else facility.name

    attention.raise_item(
        session,
        subject=alert.case_subject or alert.subject,
        code=alert.code,
        reason=reason,
        area_of=facility,
        facility_id=facility.id,
        alert_id=alert.id,
        words=lambda language: words(language, facility_name=name(language), minutes=minutes),
        render=lambda language: text(
            language,
            code=alert.code,
            facility_name=name(language),
            minutes=minutes,
            clinic_phone=alert.callback_phone,
        ),
        clinic_phone=alert.callback_phone,
        purpose=purpose,
        now=now,
    )


def not_left_yet(session: Session, alert: Alert) -> bool:
    """True while none of the alert's asking messages has reached the provider and some are
    still waiting to go (queued, or being sent): nobody at the hospital has been asked yet."""
    rows = session.execute(
        select(OutboundMessage.status, OutboundMessage.sent_at).where(
            OutboundMessage.alert_id == alert.id, OutboundMessage.purpose.in_(ASKING)
        )
    ).all()
    if any(sent_at is not None for _, sent_at in rows):
        return False
    return any(status in _WAITING for status, _ in rows)


def report_late(session: Session, alert: Alert, *, now: dt.datetime) -> None:
    """Tell the area coordinators, once per case, that the alert's pre-alert is leaving late
    (``late_alerts``): a hospital is being asked only now, or not yet."""
    _tell_coordinators(
        session,
        alert,
        session.get_one(Facility, alert.facility_id),
        reason="late_alerts",
        words=messages.late_words,
        text=messages.coordinator_late,
        purpose="coordinator_late",
        now=now,
    )


def on_message_late(
    session: Session,
    *,
    message: OutboundMessage,
    now: dt.datetime,
    handler: LateHandler | None = None,
) -> None:
    """One of the alert's asking messages leaves late (the outbox's ``on_late``): the step
    waits ``step_after`` from now, the caller's ``handler`` restarts its clock (and may rewrite
    the message's deadline), and the coordinators hear of it once per case."""
    if message.alert_id is None or message.purpose not in ASKING:
        return
    alert = session.get(Alert, message.alert_id)
    if alert is None or alert.status != AlertStatus.OPEN:
        return
    if handler is not None:
        # The caller's lock (the case's row) comes first, as for every change of a case.
        handler(session, alert=alert, message=message, now=now)
        session.refresh(alert)
        if alert.status != AlertStatus.OPEN:
            return
    # Only ever later, so two workers sending two of its messages agree on the outcome.
    timers.postpone(
        session,
        subject=alert.subject,
        kinds=[STEP_KIND],
        until=now + dt.timedelta(seconds=alert.step_after_seconds),
    )
    log.info("alert %s: sms %s leaves late; clocks restart now", alert.id, message.id)
    report_late(session, alert, now=now)


def _on_step(session: Session, timer: Timer, now: dt.datetime) -> None:
    alert = session.get(Alert, timer.payload.get("alert_id"))
    # A stale timer (alert closed, or moved on by a failure) is a no-op.
    if alert is None or alert.status != AlertStatus.OPEN or alert.step != timer.payload.get("step"):
        return
    if not_left_yet(session, alert):
        # Nobody has been asked yet (an outage): the silence has not begun. Wait; the message
        # that leaves late moves this on again (``on_message_late``).
        timers.schedule(
            session,
            kind=STEP_KIND,
            subject=alert.subject,
            due_at=now + dt.timedelta(seconds=alert.step_after_seconds),
            payload=dict(timer.payload),
        )
        report_late(session, alert, now=now)
        return
    alert.step += 1
    _round(session, alert, teams=alert.teams, now=now)


def on_message_failed(session: Session, *, message: OutboundMessage, now: dt.datetime) -> None:
    """A pre-alert that will never arrive: try that team's next contact now."""
    if message.alert_id is None or message.contact_id is None:
        return
    move_on_from(
        session,
        alert_id=message.alert_id,
        contact_id=message.contact_id,
        now=now,
        what=f"sms {message.id} undeliverable",
    )


def move_on_from(
    session: Session, *, alert_id: int, contact_id: int, now: dt.datetime, what: str
) -> bool:
    """``contact`` could not be reached about the alert (an SMS that will never arrive, a call
    not answered): try that team's next contact now, unless the team has already moved past
    them. Returns whether it moved on."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.status != AlertStatus.OPEN:
        return False
    contact = session.get(Contact, contact_id)
    if contact is None or contact.team.value not in alert.teams:
        return False  # a coordinator notice: there is nobody further to try
    team = contact.team.value
    team_ids = {c.id for c in contacts_of(session, alert.facility_id, [team])[team]}
    latest = [cid for cid in alert.alerted_contact_ids if cid in team_ids or cid == contact.id]
    if not latest or latest[-1] != contact.id:
        return False  # the team has already moved past this contact
    log.info("alert %s: %s, moving on at once", alert.id, what)
    alert.step += 1
    _round(session, alert, teams=[team], now=now)
    return True


def open_alerts_for_facilities(session: Session, facility_ids: Iterable[int]) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.facility_id.in_(list(facility_ids)), Alert.status == AlertStatus.OPEN)
            .order_by(Alert.opened_at, Alert.id)
        )
    )


#: The escalation's own timer kinds and their handlers, for the runtime's table.
TIMER_HANDLERS = {STEP_KIND: _on_step}
