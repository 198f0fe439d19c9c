"""How a phone call leaves the building: a small interface and its implementations.

:class:`TwilioVoiceTransport` places calls through the real Twilio SDK (Programmable Voice);
:class:`RecordingVoiceTransport` keeps them for tests. Like the SMS transports they never touch
the database; :mod:`alerts.calls` records what they did.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.transports import _twilio_http_client

# Twilio error codes of a call that no retry will cure (https://www.twilio.com/docs/api/errors).
PERMANENT_CALL_CODES = frozenset(
    {
        13223,  # invalid phone number format
        13224,  # invalid phone number
        13225,  # forbidden phone number (premium, ...)
        13227,  # no international permission for this destination
        21210,  # 'From' is not a verified or purchased number
        21211,  # invalid 'To' number
        21214,  # 'To' number cannot be reached
        21215,  # geo permission: international calling not enabled for this country
        21216,  # 'To' number is blocked
        21217,  # 'To' number is not valid
    }
)


class VoiceError(Exception):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientVoiceError(VoiceError):
    """Try again shortly: provider 5xx or 429, timeout, connection refused, our credentials."""


class PermanentVoiceError(VoiceError):
    """Retrying will not help: the number cannot be called; ``code`` says why."""


class VoiceConfigError(ValueError):
    """The voice settings are incomplete; the message names the setting."""


@dataclass(frozen=True)
class PlacedCall:
    provider_id: str
    status: str


@dataclass(frozen=True)
class FoundCall:
    """A call the provider lists: its id and when the provider created it (Twilio: to the
    second)."""

    provider_id: str
    created_at: dt.datetime


class VoiceTransport(Protocol):
    """Places a call that fetches its TwiML from ``twiml_url`` when picked up and posts its
    progress to ``status_callback``; rings for at most ``ring_seconds``."""

    def place(
        self, *, to: str, twiml_url: str, status_callback: str, ring_seconds: int
    ) -> PlacedCall: ...

    def find_calls(self, *, to: str, since: dt.datetime) -> list[FoundCall]:
        """The calls to ``to`` created at or after ``since``, newest first: a worker that died
        after placing a call must not make its successor ring again."""
        ...


class TwilioVoiceTransport:
    """Places calls through the Twilio SDK (or a Twilio-compatible API at ``api_base``)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        from twilio.rest import Client

        if not from_number:
            raise VoiceConfigError("set TWILIO_VOICE_FROM (or TWILIO_FROM): the calling number")
        self.from_number = from_number
        self.client = Client(
            account_sid, auth_token, http_client=_twilio_http_client(api_base, timeout)
        )

    def place(
        self, *, to: str, twiml_url: str, status_callback: str, ring_seconds: int
    ) -> PlacedCall:
        import requests
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        try:
            call = self.client.calls.create(
                to=to,
                from_=self.from_number,
                url=twiml_url,
                method="POST",
                status_callback=status_callback,
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                timeout=ring_seconds,
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _classify(int(exc.status), exc.code, str(getattr(exc, "msg", "") or exc)) from exc
        except requests.RequestException as exc:
            raise TransientVoiceError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return PlacedCall(provider_id=str(call.sid), status=str(call.status or "queued"))

    def find_calls(self, *, to: str, since: dt.datetime) -> list[FoundCall]:
        import requests
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        try:
            recent = self.client.calls.list(to=to, from_=self.from_number, limit=20)
        except (TwilioRestException, TwilioServiceException, requests.RequestException) as exc:
            raise TransientVoiceError(f"Twilio call list unavailable: {exc}") from exc
        return [
            FoundCall(str(call.sid), call.date_created)
            for call in recent
            if call.date_created is not None and call.date_created >= since
        ]


def _classify(status: int, code: int | None, message: str) -> VoiceError:
    if code in PERMANENT_CALL_CODES:
        return PermanentVoiceError(message, code=code)
    if status >= 500 or status in (401, 403, 408, 429):
        return TransientVoiceError(message, code=code)
    return PermanentVoiceError(message, code=code)


@dataclass
class RecordedCall:
    to: str
    twiml_url: str
    status_callback: str
    ring_seconds: int
    provider_id: str
    placed_at: dt.datetime


@dataclass
class RecordingVoiceTransport:
    """Keeps every call in :attr:`calls`; :meth:`fail_next` makes the next placements fail.
    ``now`` is the clock stamped on each call (the tests' clock)."""

    now: Any = None
    calls: list[RecordedCall] = field(default_factory=list)
    _failures: list[VoiceError] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def fail_next(
        self, count: int = 1, *, permanent: bool = False, code: int | None = None
    ) -> None:
        error = PermanentVoiceError if permanent else TransientVoiceError
        with self._lock:
            self._failures.extend(error("recorded failure", code=code) for _ in range(count))

    def place(
        self, *, to: str, twiml_url: str, status_callback: str, ring_seconds: int
    ) -> PlacedCall:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            provider_id = f"CA{len(self.calls) + 1:032d}"
            stamp = self.now() if callable(self.now) else dt.datetime.now(dt.UTC)
            self.calls.append(
                RecordedCall(to, twiml_url, status_callback, ring_seconds, provider_id, stamp)
            )
        return PlacedCall(provider_id=provider_id, status="queued")

    def find_calls(self, *, to: str, since: dt.datetime) -> list[FoundCall]:
        with self._lock:
            return [
                FoundCall(call.provider_id, call.placed_at)
                for call in reversed(self.calls)
                if call.to == to and call.placed_at >= since
            ]


def voice_transport_from_config(config: Mapping[str, Any]) -> VoiceTransport | None:
    """The transport named by ``VOICE_BACKEND`` (``twilio``; ``off``/empty: no calls)."""
    backend = str(config.get("VOICE_BACKEND") or "off").strip().lower()
    if backend in ("off", ""):
        return None
    if backend == "recording":
        return RecordingVoiceTransport()
    if backend != "twilio":
        raise VoiceConfigError(f"VOICE_BACKEND must be 'twilio' or 'off', not {backend!r}")
    missing = [key for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not config.get(key)]
    if missing:
        raise VoiceConfigError(f"VOICE_BACKEND=twilio needs {' and '.join(missing)}")
    from_number = str(config.get("TWILIO_VOICE_FROM") or config.get("TWILIO_FROM") or "")
    if not from_number:
        raise VoiceConfigError("VOICE_BACKEND=twilio needs TWILIO_VOICE_FROM or TWILIO_FROM")
    timeout = config.get("TWILIO_TIMEOUT", 10.0)
    try:
        timeout_seconds = float(timeout)
    except (TypeError, ValueError) as exc:
        raise VoiceConfigError(
            f"TWILIO_TIMEOUT must be a number of seconds, not {timeout!r}"
        ) from exc
    return TwilioVoiceTransport(
        account_sid=str(config["TWILIO_ACCOUNT_SID"]),
        auth_token=str(config["TWILIO_AUTH_TOKEN"]),
        from_number=from_number,
        api_base=config.get("TWILIO_API_BASE") or None,
        timeout=timeout_seconds,
    )
