"""The call step of an alert, without Flask: the rule, the timer, the placer's claim and its
reconcile after a dead worker, retries and failures (recording voice transport)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from alerts import calls, escalation
from alerts.calls import CALL_KIND, CallPolicy, apply_call_status, schedule_call
from alerts.escalation import close_alert, open_alert
from alerts.handlers import Handlers
from alerts.models import Alert, CallStatus, Timer, TimerStatus, VoiceCall
from alerts.timers import WorkerSettings
from alerts.transports import RecordingTransport
from alerts.voice import PlacedCall, RecordingVoiceTransport
from alerts.worker import tick
from facilities.models import Facility, Team
from referral.rules import RulesError, load_rules
from tests.world import T0, make_contact, make_facility, minutes, outbox, render_for

OBS1, OBS2 = "+8613900000001", "+8613900000002"
TABLE = Handlers(timers={**escalation.TIMER_HANDLERS, **calls.TIMER_HANDLERS})
BASE = "https://gc.test"
SPEECH = {"zh": "绿色通道转诊预警。病例 A 7 K 2。产后出血。", "en": "Green channel pre-alert."}


# --- the rule ----------------------------------------------------------------------------------


def test_the_shipped_rules_phone_for_critical_cases_only_after_one_minute() -> None:
    rules = load_rules()
    assert rules.urgency["critical"].call_after == dt.timedelta(minutes=1)
    assert rules.urgency["critical"].call_after < rules.urgency["critical"].answer_timeout
    assert rules.urgency["urgent"].call_after is None
    assert rules.urgency["planned"].call_after is None


def _rules_with(tmp_path: Path, old: str, new: str) -> Path:
    shipped = Path(load_rules().source).read_text(encoding="utf-8")
    assert old in shipped
    path = tmp_path / "rules.yaml"
    path.write_text(shipped.replace(old, new, 1), encoding="utf-8")
    return path


def test_a_call_after_the_answer_timeout_is_refused_with_its_line_and_key(
    tmp_path: Path,
) -> None:
    path = _rules_with(
        tmp_path,
        "voice_call: {enabled: true, after_minutes: 1}",
        "voice_call: {enabled: true, after_minutes: 3}",
    )
    with pytest.raises(RulesError) as error:
        load_rules(str(path))
    message = str(error.value)
    assert "urgency.critical.voice_call.after_minutes" in message and "line 48" in message


def test_a_rules_file_without_the_call_step_has_none(tmp_path: Path) -> None:
    path = _rules_with(tmp_path, "voice_call: {enabled: true, after_minutes: 1}", "")
    assert load_rules(str(path)).urgency["critical"].call_after is None
    bad = _rules_with(
        tmp_path,
        "voice_call: {enabled: true, after_minutes: 1}",
        "voice_call: {enabled: yes please, after_minutes: 1}",
    )
    with pytest.raises(RulesError, match=r"voice_call\.enabled"):
        load_rules(str(bad))


# --- the step and the placer -------------------------------------------------------------------


@pytest.fixture
def hospital(session: Session) -> Facility:
    facility = make_facility(session)
    make_contact(session, facility, OBS1, priority=1)
    make_contact(session, facility, OBS2, priority=2)
    session.commit()
    return facility


def open_with_call(session: Session, facility: Facility) -> Alert:
    alert = open_alert(
        session,
        subject="offer:1",
        code="A7K2",
        facility=facility,
        teams=[Team.OBSTETRICS],
        render=render_for("A7K2"),
        step_after=minutes(10),
        now=T0,
    )
    schedule_call(session, alert=alert, after=minutes(1), speech=SPEECH, now=T0)
    session.commit()
    return alert


def worker(
    factory: sessionmaker[Session],
    voice: RecordingVoiceTransport,
    at: dt.datetime,
    *,
    sms: RecordingTransport | None = None,
    worker_id: str = "w1",
) -> int:
    return tick(
        factory,
        now=at,
        transport=sms or RecordingTransport(),
        handlers=TABLE,
        worker_id=worker_id,
        settings=WorkerSettings(capacity_grace=None),
        voice=calls.CallPlacer(transport=voice, public_base_url=BASE),
    ).calls_placed


def the_call(session: Session) -> VoiceCall:
    session.expire_all()
    return session.scalars(select(VoiceCall)).one()


def test_the_on_call_contact_is_phoned_once_after_the_silence_with_the_spoken_pre_alert(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    voice = RecordingVoiceTransport()
    assert worker(session_factory, voice, T0) == 0  # the pre-alert leaves
    assert worker(session_factory, voice, T0 + dt.timedelta(seconds=59)) == 0
    assert worker(session_factory, voice, T0 + minutes(1)) == 1
    assert worker(session_factory, voice, T0 + minutes(2)) == 0
    assert [c.to for c in voice.calls] == [OBS1]
    call = the_call(session)
    assert call.status is CallStatus.PLACED and call.provider_id == voice.calls[0].provider_id
    assert call.script == SPEECH["zh"] and call.language == "zh"
    assert voice.calls[0].twiml_url == f"{BASE}/webhooks/twilio/voice?call={call.id}"
    assert voice.calls[0].status_callback == f"{BASE}/webhooks/twilio/voice/status?call={call.id}"


def test_the_silence_counts_from_when_the_pre_alert_left(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    voice = RecordingVoiceTransport()
    sms = RecordingTransport()
    sms.fail_next(1)  # the SMS provider is down: the pre-alert leaves 30 s late
    worker(session_factory, voice, T0, sms=sms)
    worker(session_factory, voice, T0 + dt.timedelta(seconds=30), sms=sms)
    assert worker(session_factory, voice, T0 + minutes(1), sms=sms) == 0
    assert worker(session_factory, voice, T0 + dt.timedelta(seconds=90), sms=sms) == 1


def test_an_answered_alert_is_not_phoned_about(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    voice = RecordingVoiceTransport()
    worker(session_factory, voice, T0)
    close_alert(session, subject="offer:1", now=T0 + dt.timedelta(seconds=30), reason="answered")
    session.commit()
    assert worker(session_factory, voice, T0 + minutes(1)) == 0
    assert voice.calls == []
    assert session.scalars(select(VoiceCall)).all() == []


def test_a_call_queued_before_the_answer_is_cancelled_not_placed(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    voice = RecordingVoiceTransport()
    voice.fail_next(1)  # the first try fails: the call waits for a retry
    worker(session_factory, voice, T0)
    worker(session_factory, voice, T0 + minutes(1))
    assert the_call(session).status is CallStatus.QUEUED
    close_alert(session, subject="offer:1", now=T0 + minutes(1), reason="answered")
    session.commit()
    worker(session_factory, voice, T0 + minutes(2))
    assert voice.calls == [] and the_call(session).status is CallStatus.CANCELLED


def test_two_workers_racing_place_one_call(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    sms = RecordingTransport()
    worker(session_factory, RecordingVoiceTransport(), T0, sms=sms)
    voice = RecordingVoiceTransport()
    start = threading.Barrier(4)
    placed: list[int] = []

    def run(name: str) -> None:
        start.wait()
        placed.append(worker(session_factory, voice, T0 + minutes(1), sms=sms, worker_id=name))

    threads = [threading.Thread(target=run, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(placed) == 1 and len(voice.calls) == 1
    timers_done = session.scalars(
        select(Timer.status).where(Timer.kind == CALL_KIND, Timer.status == TimerStatus.DONE)
    ).all()
    assert len(timers_done) == 1


def open_second_with_call(session: Session, facility: Facility) -> Alert:
    """A second alert to the same team (offer:2), its call to the same person due at 70 s."""
    other = open_alert(
        session,
        subject="offer:2",
        code="B8M3",
        facility=facility,
        teams=[Team.OBSTETRICS],
        render=render_for("B8M3"),
        step_after=minutes(10),
        now=T0,
    )
    schedule_call(session, alert=other, after=dt.timedelta(seconds=70), speech=SPEECH, now=T0)
    session.commit()
    return other


class DiesBeforePlacing(RecordingVoiceTransport):
    """The worker dies before the provider has the call."""

    def place(self, **kwargs: object) -> PlacedCall:  # type: ignore[override]
        raise KeyboardInterrupt


class DiesAfterPlacing(RecordingVoiceTransport):
    """The provider takes the call, then the worker dies before it records the answer."""

    def place(
        self, *, to: str, twiml_url: str, status_callback: str, ring_seconds: int
    ) -> PlacedCall:
        super().place(
            to=to, twiml_url=twiml_url, status_callback=status_callback, ring_seconds=ring_seconds
        )
        raise KeyboardInterrupt  # not an error our code handles: the process goes


@pytest.mark.parametrize("callback_came", [False, True])
def test_a_worker_killed_after_the_provider_took_the_call_is_not_followed_by_a_second_call(
    session: Session,
    session_factory: sessionmaker[Session],
    hospital: Facility,
    callback_came: bool,
) -> None:
    open_with_call(session, hospital)
    worker(session_factory, RecordingVoiceTransport(), T0)
    dying = DiesAfterPlacing(now=lambda: T0 + minutes(1))
    with pytest.raises(KeyboardInterrupt):
        worker(session_factory, dying, T0 + minutes(1), worker_id="dies")
    call = the_call(session)
    assert call.status is CallStatus.DIALLING and call.provider_id is None
    sid = dying.calls[0].provider_id
    if callback_came:  # the provider's "initiated" callback carried the marker
        apply_call_status(
            session,
            call_id=call.id,
            provider_id=sid,
            provider_status="initiated",
            error_code=None,
            now=T0 + minutes(1),
        )
        session.commit()
    # The successor sees the same provider (a new transport object that can list its calls).
    successor = RecordingVoiceTransport(now=lambda: T0 + minutes(4))
    successor.calls = list(dying.calls)
    lease_out = T0 + minutes(1) + CallPolicy().lease + dt.timedelta(seconds=1)
    worker(session_factory, successor, lease_out, worker_id="next")
    worker(session_factory, successor, lease_out + minutes(1), worker_id="next")
    assert len(successor.calls) == 1  # rung once, by the dead worker
    call = the_call(session)
    assert call.status is CallStatus.PLACED and call.provider_id == sid


def test_a_dead_worker_whose_call_never_reached_the_provider_is_replaced_by_one_call(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    worker(session_factory, RecordingVoiceTransport(), T0)

    with pytest.raises(KeyboardInterrupt):
        worker(session_factory, DiesBeforePlacing(), T0 + minutes(1), worker_id="dies")
    voice = RecordingVoiceTransport(now=lambda: T0 + minutes(4))
    assert worker(session_factory, voice, T0 + minutes(2), worker_id="next") == 0  # leased
    assert worker(session_factory, voice, T0 + minutes(4), worker_id="next") == 1
    assert len(voice.calls) == 1


def test_a_number_that_cannot_be_called_moves_the_team_on_at_once(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    sms = RecordingTransport()
    worker(session_factory, RecordingVoiceTransport(), T0, sms=sms)
    voice = RecordingVoiceTransport()
    voice.fail_next(1, permanent=True, code=21217)
    worker(session_factory, voice, T0 + minutes(1), sms=sms)
    call = the_call(session)
    assert call.status is CallStatus.FAILED and call.error_code == 21217
    # The next obstetrician is texted now, not at the 10-minute step.
    assert [m.to_phone for m in outbox(session) if m.purpose == "escalation"] == [OBS2]
    worker(session_factory, voice, T0 + minutes(1), sms=sms)  # the worker's next pass
    assert [s.to for s in sms.sent][-1] == OBS2


def test_a_status_never_moves_backwards_and_a_repeat_changes_nothing(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    voice = RecordingVoiceTransport()
    worker(session_factory, voice, T0)
    worker(session_factory, voice, T0 + minutes(1))
    call = the_call(session)
    sid = call.provider_id or ""
    at = T0 + minutes(1)
    for status in ("ringing", "in-progress", "completed", "ringing", "completed", "no-answer"):
        apply_call_status(
            session,
            call_id=call.id,
            provider_id=sid,
            provider_status=status,
            error_code=None,
            now=at,
        )
    session.commit()
    assert the_call(session).status is CallStatus.COMPLETED
    # Hung up without a key: the team moved on once, not three times.
    assert [m.to_phone for m in outbox(session) if m.purpose == "escalation"] == [OBS2]
    # A callback naming another call id for this row is not ours.
    assert (
        apply_call_status(
            session,
            call_id=call.id,
            provider_id="CAother",
            provider_status="busy",
            error_code=None,
            now=at,
        )
        is None
    )


def test_a_successor_does_not_take_another_alerts_call_to_the_same_person_for_its_own(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility
) -> None:
    open_with_call(session, hospital)
    open_second_with_call(session, hospital)
    voice = RecordingVoiceTransport(now=lambda: T0 + minutes(1))
    worker(session_factory, voice, T0)
    assert worker(session_factory, voice, T0 + minutes(1)) == 1  # offer:1's call to OBS1

    with pytest.raises(KeyboardInterrupt):
        worker(session_factory, DiesBeforePlacing(), T0 + dt.timedelta(seconds=70), worker_id="x")
    # offer:2's successor finds a call to OBS1 since its claim: offer:1's, recorded on its own
    # row. Not this one's: offer:2 is phoned now.
    voice.now = lambda: T0 + minutes(4)
    assert worker(session_factory, voice, T0 + minutes(4), worker_id="next") == 1
    assert [c.to for c in voice.calls] == [OBS1, OBS1]
    session.expire_all()
    sids = session.scalars(select(VoiceCall.provider_id).order_by(VoiceCall.id)).all()
    assert sids == [c.provider_id for c in voice.calls]


def _marker(call: object) -> int:
    return int(str(call.twiml_url).rsplit("call=", 1)[1])  # type: ignore[attr-defined]


@pytest.mark.parametrize("second_dies", ["after placing", "before placing"])
def test_an_older_dead_claim_does_not_take_a_newer_dead_workers_call_to_the_same_person(
    session: Session, session_factory: sessionmaker[Session], hospital: Facility, second_dies: str
) -> None:
    """Two alerts phone the same obstetrician. The first alert's worker dies before its call
    reaches the provider; the second alert's worker dies after the provider took its call (or,
    the other way, before too). Their successor takes the older row first: the call it finds
    to that number was made after a newer claim, so it is that claim's, not this one's. Each
    alert's call rings once (found in the kill test: the older row took the newer one's call
    and the newer one was phoned again, and the first alert never)."""
    open_with_call(session, hospital)  # offer:1, its call due at T0 + 1 min
    open_second_with_call(session, hospital)
    worker(session_factory, RecordingVoiceTransport(), T0)  # both calls queued

    # offer:1's call: claimed at T0 + 1 min, its worker dies before the provider has it
    with pytest.raises(KeyboardInterrupt):
        worker(session_factory, DiesBeforePlacing(), T0 + minutes(1), worker_id="first")
    # offer:2's call: claimed at T0 + 70 s (offer:1's is leased), the provider takes it (or not)
    provider = DiesAfterPlacing(now=lambda: T0 + dt.timedelta(seconds=70))
    dying = provider if second_dies == "after placing" else DiesBeforePlacing()
    with pytest.raises(KeyboardInterrupt):
        worker(session_factory, dying, T0 + dt.timedelta(seconds=70), worker_id="second")
    rows = session.scalars(select(VoiceCall).order_by(VoiceCall.id)).all()
    assert [r.status for r in rows] == [CallStatus.DIALLING, CallStatus.DIALLING]

    # One successor after both leases: offer:1's row comes first (older), then offer:2's.
    later = T0 + dt.timedelta(seconds=70) + CallPolicy().lease + dt.timedelta(seconds=1)
    successor = RecordingVoiceTransport(now=lambda: later)  # the same provider, listed
    successor.calls = list(provider.calls)
    worker(session_factory, successor, later, worker_id="next")
    worker(session_factory, successor, later + minutes(1), worker_id="next")

    first, second = (r.id for r in rows)
    markers = sorted(_marker(c) for c in successor.calls)
    assert markers == [first, second]  # each alert rang once: none twice, none never
    session.expire_all()
    placed = {r.id: r.provider_id for r in session.scalars(select(VoiceCall))}
    assert all(placed[_marker(c)] == c.provider_id for c in successor.calls)
