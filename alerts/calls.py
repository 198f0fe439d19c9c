"""A phone call when a pre-alert stays unanswered: the call step of an alert.

The caller schedules the step with the alert (:func:`schedule_call`): a timer row of kind
:data:`CALL_KIND` with the spoken pre-alert in each language. When it fires and the alert is
still open, the silence is counted from when the pre-alert left (as for the escalation's steps:
a pre-alert held up by an outage has not been read yet); then one call is queued to the contact
the alert is asking now (the latest contact asked of the alert's first team that has one).

The worker places queued calls (:func:`place_due_calls`) as the outbox sends SMS: a conditional
UPDATE claims the row with a lease, so two workers never ring twice; no transaction is open
while the provider is asked. A worker that dies after the provider took the call but before it
recorded the call id leaves a claimed row whose lease runs out; its successor does not simply
ring again. It first looks for the call's marker, this row's id in the callback URLs: the
provider's ``initiated`` callback records the call id on the row within a second of the call
being created; and, if that callback has not come, it asks the provider for the calls to that
number (:meth:`VoiceTransport.find_calls`) and takes the one that is this row's by time,
leaving the calls other rows have recorded or made to them (:func:`_owned_call`).

The call's progress comes back through signed status callbacks (:func:`apply_call_status`,
never backwards). Keys pressed are an answer to the alert exactly like an SMS reply
(:func:`answer_by_keypress`): the table's one reply handler, in a savepoint, then the alert is
closed. A call that ends without an answer (no answer, busy, failed, or hung up without a key)
moves that team on at once, like an SMS that will never arrive
(:func:`alerts.escalation.move_on_from`); the offer's own clock runs on regardless. Every call
and its outcome is in ``voice_calls`` and goes to the table's call handler (the case's
timeline).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts import timers
from alerts._sql import rowcount
from alerts.escalation import ASKING, close_alert, move_on_from, not_left_yet
from alerts.handlers import CallHandler, Handlers, ReplyHandler, TimerHandler
from alerts.inbound import _guarded
from alerts.models import (
    Alert,
    AlertStatus,
    CallStatus,
    OutboundMessage,
    Timer,
    VoiceCall,
)
from alerts.recipients import contacts_of
from alerts.replies import DeclineReason, OfferReply
from alerts.transports import mask_phone
from alerts.voice import (
    FoundCall,
    PermanentVoiceError,
    TransientVoiceError,
    VoiceError,
    VoiceTransport,
)
from core.vocabulary import LANGUAGES
from facilities.models import Contact

log = logging.getLogger(__name__)

CALL_KIND = "alert.call"

#: Where the provider fetches a call's TwiML, posts its keys and its progress (under
#: ``PUBLIC_BASE_URL``; ``?call=<id>`` is the call's marker).
TWIML_PATH = "/webhooks/twilio/voice"
GATHER_PATH = "/webhooks/twilio/voice/gather"
STATUS_PATH = "/webhooks/twilio/voice/status"

SessionFactory = Callable[[], Session]

_ENDED = (
    CallStatus.COMPLETED,
    CallStatus.NO_ANSWER,
    CallStatus.BUSY,
    CallStatus.FAILED,
    CallStatus.CANCELLED,
)
_ORDER = [
    CallStatus.QUEUED,
    CallStatus.DIALLING,
    CallStatus.PLACED,
    CallStatus.RINGING,
    CallStatus.IN_PROGRESS,
]
# Twilio's CallStatus values onto ours; anything else is ignored.
_PROVIDER_STATUS = {
    "queued": CallStatus.PLACED,
    "initiated": CallStatus.PLACED,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "answered": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "no-answer": CallStatus.NO_ANSWER,
    "failed": CallStatus.FAILED,
    "canceled": CallStatus.FAILED,
}


@dataclass(frozen=True)
class CallPolicy:
    """Timings of the call placer; the defaults suit production."""

    lease: dt.timedelta = dt.timedelta(minutes=2)
    max_attempts: int = 3
    retry_after: dt.timedelta = dt.timedelta(seconds=15)
    # Twilio rings for at most this long before reporting no-answer.
    ring_seconds: int = 25
    # How far back a successor looks for a dead worker's call (clocks drift a little).
    reconcile_slack: dt.timedelta = dt.timedelta(seconds=30)


def schedule_call(
    session: Session,
    *,
    alert: Alert,
    after: dt.timedelta,
    speech: Mapping[str, str],
    now: dt.datetime,
) -> Timer:
    """Phone the alert's contact after ``after`` of silence; ``speech`` is the spoken
    pre-alert by language (no name or ID number)."""
    if after <= dt.timedelta(0):
        raise ValueError("a call step needs a positive delay")
    fallback = speech.get("zh") or speech.get("en") or ""
    if not fallback:
        raise ValueError("a call step needs the spoken pre-alert")
    return timers.schedule(
        session,
        kind=CALL_KIND,
        subject=alert.subject,
        due_at=now + after,
        payload={
            "alert_id": alert.id,
            "after_seconds": int(after.total_seconds()),
            "speech": {language: speech.get(language) or fallback for language in LANGUAGES},
        },
    )


def on_call_contact(session: Session, alert: Alert) -> Contact | None:
    """The contact the alert is asking now: the latest one asked of its first team that has
    one (the step's escalation and failed messages move a team on)."""
    by_team = contacts_of(session, alert.facility_id, alert.teams)
    for team in alert.teams:
        contacts = {contact.id: contact for contact in by_team[team]}
        asked = [cid for cid in alert.alerted_contact_ids if cid in contacts]
        if asked:
            return contacts[asked[-1]]
    return None


def _left_at(session: Session, alert: Alert) -> dt.datetime | None:
    return session.scalar(
        select(OutboundMessage.sent_at)
        .where(
            OutboundMessage.alert_id == alert.id,
            OutboundMessage.purpose.in_(ASKING),
            OutboundMessage.sent_at.is_not(None),
        )
        .order_by(OutboundMessage.sent_at)
        .limit(1)
    )


def _on_call_due(session: Session, timer: Timer, now: dt.datetime) -> None:
    alert = session.get(Alert, timer.payload.get("alert_id"))
    if alert is None or alert.status != AlertStatus.OPEN:
        return  # answered or closed meanwhile: a stale step is a no-op
    if session.scalar(select(VoiceCall.id).where(VoiceCall.alert_id == alert.id)) is not None:
        return
    after = dt.timedelta(seconds=int(timer.payload.get("after_seconds", 60)))
    left = _left_at(session, alert)
    wait_until: dt.datetime | None = None
    if left is None and not_left_yet(session, alert):
        wait_until = now + after  # nobody has been texted yet: the silence has not begun
    elif left is not None and left + after > now:
        wait_until = left + after  # the pre-alert left late: its reader gets the full delay
    if wait_until is not None:
        timers.schedule(
            session, kind=CALL_KIND, subject=alert.subject, due_at=wait_until, payload=timer.payload
        )
        return
    contact = on_call_contact(session, alert)
    if contact is None:
        log.info("alert %s: nobody to phone", alert.id)
        return
    language = contact.language if contact.language in LANGUAGES else "zh"
    speech = timer.payload.get("speech") or {}
    call = VoiceCall(
        alert_id=alert.id,
        contact_id=contact.id,
        facility_id=alert.facility_id,
        to_phone=contact.phone,
        language=language,
        script=str(speech.get(language) or speech.get("zh") or ""),
        status=CallStatus.QUEUED,
        answer="",
        digits="",
        error_message="",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(call)
    session.flush()
    log.info("alert %s: call %s queued to %s", alert.id, call.id, mask_phone(contact.phone))


def _calls_off(session: Session, timer: Timer, now: dt.datetime) -> None:
    """Calls are off in this deployment (``VOICE_BACKEND=off``): the step has nothing to ring
    with, so it queues nothing (a call queued now would ring late, the day calls are on)."""


#: The call step's timer kind and its handler, for the runtime's table.
TIMER_HANDLERS = {CALL_KIND: _on_call_due}


def timer_handlers(*, calls_on: bool) -> dict[str, TimerHandler]:
    """The table's entry for :data:`CALL_KIND`: the step, or a no-op when calls are off."""
    return {CALL_KIND: _on_call_due if calls_on else _calls_off}


# --- placing calls ---------------------------------------------------------------------------


def _url(base: str, path: str, call_id: int) -> str:
    return f"{base.rstrip('/')}{path}?call={call_id}"


def twiml_url(base: str, call_id: int) -> str:
    return _url(base, TWIML_PATH, call_id)


def status_url(base: str, call_id: int) -> str:
    return _url(base, STATUS_PATH, call_id)


def gather_url(base: str, call_id: int, menu: str) -> str:
    return _url(base, GATHER_PATH, call_id) + f"&menu={menu}"


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    lease_free = or_(VoiceCall.claimed_until.is_(None), VoiceCall.claimed_until < now)
    return or_(
        and_(VoiceCall.status == CallStatus.QUEUED, VoiceCall.next_attempt_at <= now, lease_free),
        and_(VoiceCall.status == CallStatus.DIALLING, VoiceCall.claimed_until < now),
    )


@dataclass(frozen=True)
class CallPlacer:
    """What the worker needs to place calls: the transport, the public URL the provider calls
    back, the timings."""

    transport: VoiceTransport
    public_base_url: str
    policy: CallPolicy = CallPolicy()

    def place_due(
        self,
        session_factory: SessionFactory,
        *,
        now: dt.datetime,
        worker_id: str,
        handlers: Handlers,
        limit: int = 50,
    ) -> int:
        return place_due_calls(
            session_factory,
            transport=self.transport,
            public_base_url=self.public_base_url,
            now=now,
            worker_id=worker_id,
            policy=self.policy,
            on_call=handlers.call,
            limit=limit,
        )


def place_due_calls(
    session_factory: SessionFactory,
    *,
    transport: VoiceTransport,
    public_base_url: str,
    now: dt.datetime,
    worker_id: str,
    policy: CallPolicy | None = None,
    on_call: CallHandler | None = None,
    limit: int = 50,
) -> int:
    """Place every due call this worker manages to claim; returns how many the provider took."""
    policy = policy or CallPolicy()
    with session_factory() as session:
        ids = session.scalars(
            select(VoiceCall.id)
            .where(_claimable(now))
            .order_by(VoiceCall.next_attempt_at, VoiceCall.id)
            .limit(limit)
        ).all()
    placed = 0
    for call_id in ids:
        claim = _claim(
            session_factory, call_id=call_id, worker_id=worker_id, now=now, policy=policy
        )
        if claim is None:
            continue  # another worker has it
        placed += _place_one(
            session_factory,
            call_id=call_id,
            abandoned=claim == "abandoned",
            transport=transport,
            public_base_url=public_base_url,
            now=now,
            worker_id=worker_id,
            policy=policy,
            on_call=on_call,
        )
    return placed


def _claim(
    session_factory: SessionFactory,
    *,
    call_id: int,
    worker_id: str,
    now: dt.datetime,
    policy: CallPolicy,
) -> str | None:
    """``"fresh"``, ``"abandoned"`` (a dead worker's claim: the call may have been placed), or
    ``None`` when another worker has it."""
    values: dict[str, object] = {
        "status": CallStatus.DIALLING,
        "claimed_by": worker_id,
        "claimed_until": now + policy.lease,
        "attempts": VoiceCall.attempts + 1,
        "updated_at": now,
    }
    abandoned = and_(VoiceCall.status == CallStatus.DIALLING, VoiceCall.claimed_until < now)
    with session_factory() as session, session.begin():
        for kind, condition in (("abandoned", abandoned), ("fresh", _claimable(now))):
            extra = {} if kind == "abandoned" else {"dialled_at": now}
            claimed = rowcount(
                session,
                update(VoiceCall)
                .where(VoiceCall.id == call_id, condition)
                .values(**values, **extra)
                .execution_options(synchronize_session=False),
            )
            if claimed == 1:
                return kind
    return None


def _still_ours(call: VoiceCall, worker_id: str) -> bool:
    return call.claimed_by == worker_id


def _place_one(
    session_factory: SessionFactory,
    *,
    call_id: int,
    abandoned: bool,
    transport: VoiceTransport,
    public_base_url: str,
    now: dt.datetime,
    worker_id: str,
    policy: CallPolicy,
    on_call: CallHandler | None,
) -> int:
    with session_factory() as session, session.begin():
        call = session.get_one(VoiceCall, call_id)
        alert = session.get_one(Alert, call.alert_id)
        if abandoned and call.provider_id:
            # The provider's callback carried the marker: the dead worker's call went out.
            log.info("call %s: already placed as %s, not placed again", call_id, call.provider_id)
            _mark_placed(session, call, provider_id=call.provider_id, now=now)
            if on_call is not None:
                on_call(session, alert=alert, call=call, now=now)
            return 0
        if alert.status != AlertStatus.OPEN and not abandoned:
            call.status = CallStatus.CANCELLED
            call.claimed_by = call.claimed_until = None
            call.ended_at = call.updated_at = now
            log.info("call %s: alert %s closed, not placed", call_id, alert.id)
            return 0
        to, since = call.to_phone, (call.dialled_at or now) - policy.reconcile_slack

    error: VoiceError | None = None
    provider_id: str | None = None
    try:
        if abandoned:
            found = transport.find_calls(to=to, since=since)
            provider_id = _owned_call(session_factory, call_id=call_id, to=to, found=found)
            if provider_id is not None:
                log.info(
                    "call %s: found with the provider as %s, not placed again", call_id, provider_id
                )
        if provider_id is None:
            with session_factory() as session, session.begin():
                row = session.get_one(VoiceCall, call_id)
                if session.get_one(Alert, row.alert_id).status != AlertStatus.OPEN:
                    provider_id = ""  # answered while we looked: do not ring about it
                elif abandoned and _still_ours(row, worker_id):
                    row.dialled_at = now  # this placement begins now (see _owned_call)
            if provider_id is None:
                provider_id = transport.place(
                    to=to,
                    twiml_url=twiml_url(public_base_url, call_id),
                    status_callback=status_url(public_base_url, call_id),
                    ring_seconds=policy.ring_seconds,
                ).provider_id
    except (TransientVoiceError, PermanentVoiceError) as exc:
        error = exc

    with session_factory() as session, session.begin():
        call = session.get_one(VoiceCall, call_id)
        if not _still_ours(call, worker_id):
            log.warning("call %s: claim lost before the outcome was recorded", call_id)
            return int(error is None)
        alert = session.get_one(Alert, call.alert_id)
        if error is None and provider_id == "":
            call.status = CallStatus.CANCELLED
            call.claimed_by = call.claimed_until = None
            call.ended_at = call.updated_at = now
            return 0
        if error is None:
            assert provider_id
            try:
                with session.begin_nested():
                    _mark_placed(session, call, provider_id=provider_id, now=now)
            except IntegrityError:
                # The id is on another row already (a provider that reuses ids): keep the
                # call placed without it rather than let the lease run out and ring again.
                _mark_placed(session, call, provider_id=None, now=now)
            log.info("call %s placed to %s as %s", call_id, mask_phone(call.to_phone), provider_id)
            if on_call is not None and call.ended_at is None:  # a fast callback may have ended it
                on_call(session, alert=alert, call=call, now=now)
            return 1
        call.claimed_by = call.claimed_until = None
        call.updated_at = now
        call.error_code = error.code
        call.error_message = str(error)[:500]
        if isinstance(error, TransientVoiceError) and call.attempts < policy.max_attempts:
            call.status = CallStatus.QUEUED
            call.next_attempt_at = now + policy.retry_after * call.attempts
            log.warning("call %s: transient failure (code %s), retry", call_id, error.code)
            return 0
        call.status = CallStatus.FAILED
        call.ended_at = now
        log.warning("call %s to %s failed (code %s)", call_id, mask_phone(to), error.code)
        _after_end(session, alert=alert, call=call, now=now, on_call=on_call)
        return 0


#: Twilio gives a call's creation time to the second: a placement begun up to this long after
#: the time a call was created may still be the one that made it.
CREATED_TO_THE_SECOND = dt.timedelta(seconds=1)


def _owned_call(
    session_factory: SessionFactory, *, call_id: int, to: str, found: list[FoundCall]
) -> str | None:
    """Row ``call_id``'s call among the provider's calls ``found`` to ``to``, or None.

    The provider's list carries no marker of ours, so a call is matched to a row by time. A
    worker places a call right after it begins the placement (``dialled_at``: the claim, or a
    successor's new attempt), so a call belongs to the row whose placement began last before
    the call was created, among our rows to that number still dialling with no call recorded
    (this one, other dead workers', a live worker's in flight). The unrecorded calls are matched
    newest first, each row taking one; a call another row has recorded is that row's. A row no
    call is left for never reached the provider: it is phoned now. Two dead rows to one person
    each take one call, and an older dead claim does not take a newer one's call (which would
    ring the newer alert twice and the older never). What this cannot tell apart: two placements
    begun within the same second, of which only the earlier reached the provider (the later takes
    the call, the earlier is phoned again)."""
    if not found:
        return None
    with session_factory() as session:
        ids = [call.provider_id for call in found]
        recorded = set(
            session.scalars(select(VoiceCall.provider_id).where(VoiceCall.provider_id.in_(ids)))
        )
        dialling = session.execute(
            select(VoiceCall.id, VoiceCall.dialled_at).where(
                VoiceCall.to_phone == to,
                VoiceCall.status == CallStatus.DIALLING,
                VoiceCall.provider_id.is_(None),
            )
        ).all()
    waiting = {row.id: row.dialled_at for row in dialling if row.dialled_at is not None}
    unrecorded = [call for call in found if call.provider_id not in recorded]
    for call in sorted(unrecorded, key=lambda c: c.created_at, reverse=True):
        began = [
            (at, row_id)
            for row_id, at in waiting.items()
            if at <= call.created_at + CREATED_TO_THE_SECOND
        ]
        if not began:
            continue
        _, owner = max(began)
        if owner == call_id:
            return call.provider_id
        del waiting[owner]
    return None


def _mark_placed(
    session: Session, call: VoiceCall, *, provider_id: str | None, now: dt.datetime
) -> None:
    if call.provider_id is None:
        call.provider_id = provider_id
    if call.status in (CallStatus.QUEUED, CallStatus.DIALLING):
        call.status = CallStatus.PLACED
    call.placed_at = call.placed_at or now
    call.claimed_by = call.claimed_until = None
    call.error_code, call.error_message = None, ""
    call.updated_at = now
    session.flush()


def _after_end(
    session: Session,
    *,
    alert: Alert,
    call: VoiceCall,
    now: dt.datetime,
    on_call: CallHandler | None,
) -> None:
    """The call is over: tell the caller; without an answer, the team moves on at once."""
    if on_call is not None:
        on_call(session, alert=alert, call=call, now=now)
    if not call.answer and call.contact_id is not None:
        move_on_from(
            session,
            alert_id=alert.id,
            contact_id=call.contact_id,
            now=now,
            what=f"call {call.id} ended unanswered ({call.status.value})",
        )


def _earlier_than(status: CallStatus) -> list[CallStatus]:
    if status in _ENDED:
        return list(_ORDER)
    return list(_ORDER[: _ORDER.index(status)])


def apply_call_status(
    session: Session,
    *,
    call_id: int,
    provider_id: str,
    provider_status: str,
    error_code: int | None,
    now: dt.datetime,
    on_call: CallHandler | None = None,
) -> VoiceCall | None:
    """Record a call's status callback. Idempotent, never backwards; ``None`` when the call
    is not ours. The first callback (``initiated``) records the provider's id on the row: the
    marker a dead worker's successor looks for."""
    call = session.get(VoiceCall, call_id)
    if call is None or not provider_id:
        return None
    if call.provider_id is None:
        rowcount(
            session,
            update(VoiceCall)
            .where(VoiceCall.id == call_id, VoiceCall.provider_id.is_(None))
            .values(provider_id=provider_id, placed_at=now, updated_at=now)
            .execution_options(synchronize_session=False),
        )
        session.refresh(call)
    if call.provider_id != provider_id:
        log.warning("call %s: callback for another call id, ignored", call_id)
        return None
    new = _PROVIDER_STATUS.get(provider_status.strip().lower())
    if new is None:
        return call
    values: dict[str, object] = {"status": new, "updated_at": now}
    if new in _ENDED:
        values["ended_at"] = now
    if error_code is not None:
        values["error_code"] = error_code
    moved = rowcount(
        session,
        update(VoiceCall)
        .where(VoiceCall.id == call_id, VoiceCall.status.in_(_earlier_than(new)))
        .values(**values)
        .execution_options(synchronize_session=False),
    )
    session.refresh(call)
    if moved == 1:
        log.info("call %s status %s", call_id, new.value)
        if new in _ENDED:
            alert = session.get_one(Alert, call.alert_id)
            _after_end(session, alert=alert, call=call, now=now, on_call=on_call)
    return call


# --- keys pressed ----------------------------------------------------------------------------


def reason_for_digit(digit: str) -> DeclineReason | None:
    """The decline menu's reason for ``digit`` (``"1"`` → FULL …), or None."""
    from alerts.voice_texts import DECLINE_MENU

    if len(digit) == 1 and digit.isdecimal() and 1 <= int(digit) <= len(DECLINE_MENU):
        return DECLINE_MENU[int(digit) - 1]
    return None


@dataclass(frozen=True)
class KeypressOutcome:
    """What the keys did: ``outcome`` (accepted, declined, rejected, not_open) and the words
    to say back (the reply handler's confirmation, as an SMS reply gets it)."""

    outcome: str
    text: str


def answer_by_keypress(
    session: Session,
    *,
    call: VoiceCall,
    accept: bool,
    reason: DeclineReason | None,
    digits: str,
    handler: ReplyHandler | None,
    now: dt.datetime,
) -> KeypressOutcome:
    """Answer the call's alert as its contact would by SMS: the same parsed reply, the same
    reply handler (in a savepoint: a refusal undoes its partial work), then the alert closed.
    A second press after an answer changes nothing."""
    from alerts import voice_texts

    alert = session.get_one(Alert, call.alert_id)
    contact = session.get(Contact, call.contact_id) if call.contact_id is not None else None
    if call.answer in ("accepted", "declined"):
        return KeypressOutcome(call.answer, voice_texts.goodbye(call.language))
    if (
        alert.status != AlertStatus.OPEN
        or contact is None
        or not contact.active
        or contact.facility_id != alert.facility_id
    ):
        call.answer, call.digits, call.updated_at = "not_open", digits[:8], now
        return KeypressOutcome("not_open", voice_texts.not_open(call.language, alert.code))
    if handler is None:
        raise RuntimeError("no reply handler in the table")
    reply = OfferReply(code=alert.code, accept=accept, reason=reason, channel="voice")
    taken = False

    def run() -> str:
        nonlocal taken
        text = handler(session, alert=alert, contact=contact, reply=reply, now=now)
        taken = True
        return text

    text = _guarded(session, run)
    call.digits, call.updated_at = digits[:8], now
    if not taken:
        call.answer = "rejected"
        return KeypressOutcome("rejected", text)
    close_alert(session, subject=alert.subject, now=now, reason="answered")
    call.answer = "accepted" if accept else "declined"
    session.flush()
    log.info("call %s: answered by keypress (%s)", call.id, call.answer)
    return KeypressOutcome(call.answer, text)
