"""The alert tables: the SMS outbox and log, inbound replies, timers, alerts, capacity reminders.

Timers and outbound messages are claimed by the worker with a conditional UPDATE (see
:mod:`alerts.timers` and :mod:`alerts.outbox`), so their indexes lead with ``status``.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, UTCDateTime, utcnow
from facilities.models import str_enum


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TimerStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class OutboundMessage(Base):
    """One SMS: queued by a service, sent by the worker, tracked by status callbacks."""

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_status_due", "status", "priority", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    to_phone: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    # What the message is for ("prealert", "escalation", "capacity_reminder", ...) and the
    # caller's opaque subject ("offer:17"); both are for the log and for cancelling.
    purpose: Mapped[str] = mapped_column(String(32))
    # 0 goes first: a pre-alert must not wait behind a batch of capacity reminders.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2), default="zh")
    segments: Mapped[int] = mapped_column(Integer, default=1)
    encoding: Mapped[str] = mapped_column(String(8), default="GSM-7")
    status: Mapped[MessageStatus] = mapped_column(
        str_enum(MessageStatus, "outbound_status"), default=MessageStatus.QUEUED
    )
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(Base):
    """Every SMS received, whatever became of it; ``outcome`` says what."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    from_phone: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Twilio retries a webhook it could not deliver; the MessageSid makes the retry harmless.
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(32), default="")
    answer: Mapped[str] = mapped_column(Text, default="")


class Timer(Base):
    """A piece of future work: a row with a ``due_at`` that one worker claims and runs once."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    status: Mapped[TimerStatus] = mapped_column(
        str_enum(TimerStatus, "timer_status"), default=TimerStatus.PENDING
    )
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Alert(Base):
    """A request for an answer, sent to one facility's teams, escalated until answered or closed."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_facility_status", "facility_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), unique=True)
    code: Mapped[str] = mapped_column(String(16), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    teams: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The pre-alert as rendered for each language at opening, reused by every later step.
    texts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[AlertStatus] = mapped_column(
        str_enum(AlertStatus, "alert_status"), default=AlertStatus.OPEN
    )
    step: Mapped[int] = mapped_column(Integer, default=0)
    step_after_seconds: Mapped[int] = mapped_column(Integer)
    alerted_contact_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str] = mapped_column(String(64), default="")
    # The caller's key of the case the alert is about ("referral:17"; empty: the alert's own
    # subject) and the referring clinic's call-back number, for the coordinators' text.
    case_subject: Mapped[str] = mapped_column(String(64), default="", server_default="")
    callback_phone: Mapped[str] = mapped_column(String(32), default="", server_default="")


class CapacityReminder(Base):
    """Reminder state for one facility's stale bed report.

    ``report_marker`` is the ``beds_reported_at`` the reminder was about (NULL: never reported);
    a fresher report makes the row out of date, which is how a report resets the reminder.
    ``version`` makes every change a compare-and-swap, so two workers never remind twice.
    """

    __tablename__ = "capacity_reminders"

    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), primary_key=True
    )
    report_marker: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    coordinators_told_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)


OPEN_ATTENTION = text("cleared_at IS NULL")


class AttentionItem(Base):
    """A case needs a human: the coordinators were texted about it, for ``reason``.

    Raised in the same transaction as the coordinators' text (:mod:`alerts.attention`); the
    board lists the items not yet cleared. The partial unique index allows one open item per
    case and reason, so two workers racing on one case cannot both text.
    """

    __tablename__ = "attention_items"
    __table_args__ = (
        Index(
            "uq_attention_items_open",
            "subject",
            "reason",
            unique=True,
            sqlite_where=OPEN_ATTENTION,
            postgresql_where=OPEN_ATTENTION,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The caller's opaque key of the case ("referral:17") and its short code.
    subject: Mapped[str] = mapped_column(String(64), index=True)
    code: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    # The facility the reason is about: the hospital that stayed silent, the safety-net centre.
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="SET NULL")
    )
    # The words the coordinators were texted and the board shows, by language.
    words: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    clinic_phone: Mapped[str] = mapped_column(String(32), default="")
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cleared_by: Mapped[str] = mapped_column(String(100), default="")
    # What cleared it: a timeline event of the case ("accepted", "redirected") or "seen".
    clear_reason: Mapped[str] = mapped_column(String(32), default="")


class SmsProviderHealth(Base):
    """How an SMS provider has been doing, shared by every worker (:mod:`alerts.providers.health`).

    ``failures`` counts transient failures since ``window_started_at``; reaching the threshold
    within the window marks the provider down until ``down_until``, and the fallback carries
    the messages meanwhile.
    """

    __tablename__ = "sms_provider_health"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    down_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class CallStatus(enum.StrEnum):
    """A voice call's life: ours until the provider has it, then the provider's statuses."""

    QUEUED = "queued"  # waiting for a worker
    DIALLING = "dialling"  # claimed: a worker is asking the provider to place it
    PLACED = "placed"  # the provider has it (``provider_id``)
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"  # picked up
    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the alert was answered or closed before the call left


class VoiceCall(Base):
    """One phone call about an alert (:mod:`alerts.calls`): the call log.

    A table of its own rather than a row of ``outbound_messages``: a call has its own life
    (ringing, picked up, keys pressed, busy, no answer), its own reconcile (by this row's id in
    the callback URLs, not by a body), and the SMS sender must never see it. One call per alert
    (a unique ``alert_id``): a second timer or a second worker cannot ring twice.
    """

    __tablename__ = "voice_calls"
    __table_args__ = (Index("ix_voice_calls_status_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    facility_id: Mapped[int | None] = mapped_column(
        ForeignKey("facilities.id", ondelete="SET NULL")
    )
    to_phone: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(2), default="zh")
    # The short spoken pre-alert (no name, no ID number), rendered when the call was queued.
    script: Mapped[str] = mapped_column(Text)
    status: Mapped[CallStatus] = mapped_column(
        str_enum(CallStatus, "call_status"), default=CallStatus.QUEUED
    )
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What the keys pressed did: "" (nothing yet), accepted, declined, rejected, not_open.
    answer: Mapped[str] = mapped_column(String(16), default="")
    digits: Mapped[str] = mapped_column(String(8), default="")
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str] = mapped_column(String(500), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When a worker first asked the provider: a dead worker's successor looks for a call
    # placed since then before placing another.
    dialled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    placed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
