"""How an SMS leaves the building: a small interface and its three implementations.

Transports never touch the database; the outbox (:mod:`alerts.outbox`) records what they did.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from alerts.segments import sms_segments
from alerts.sms_types import (
    PermanentSmsError,
    ReconcilingTransport,
    SendResult,
    SmsConfigError,
    SmsError,
    SmsTransport,
    TransientSmsError,
)

__all__ = [
    "PermanentSmsError",
    "ReconcilingTransport",
    "SendResult",
    "SmsConfigError",
    "SmsError",
    "SmsTransport",
    "TransientSmsError",
    "transport_from_config",
]

# Twilio error codes that no retry will cure: the number or the recipient is the problem.
# https://www.twilio.com/docs/api/errors
PERMANENT_CODES = frozenset(
    {
        21211,  # invalid 'To' number
        21214,  # 'To' number cannot be reached
        21408,  # region not enabled
        21610,  # recipient replied STOP (opted out)
        21612,  # 'To' cannot be reached from this 'From'
        21614,  # 'To' is not a mobile number
        21608,  # unverified number (trial account)
        21606,  # 'From' is not a valid SMS-capable number
        30003,  # unreachable handset
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
        30007,  # carrier filtered
    }
)


def mask_phone(phone: str) -> str:
    """``+8613812345678`` → ``+86138****5678``: enough to tell numbers apart in a log."""
    if len(phone) <= 8:
        return "*" * len(phone)
    return phone[:6] + "****" + phone[-4:]


# --- Twilio ---------------------------------------------------------------------------------

TWILIO_API_HOST = "https://api.twilio.com"


def _twilio_http_client(api_base: str | None, timeout: float) -> Any:
    from twilio.http.http_client import TwilioHttpClient

    class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
        """Sends the SDK's requests to ``api_base`` instead of api.twilio.com."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if api_base and url.startswith(TWILIO_API_HOST):
                url = api_base.rstrip("/") + url[len(TWILIO_API_HOST) :]
            return super().request(method, url, *args, **kwargs)

    return BaseUrlHttpClient(timeout=timeout)


class TwilioTransport:
    """Sends through the real Twilio SDK (or a Twilio-compatible API at ``api_base``)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        from twilio.rest import Client

        if not (from_number or messaging_service_sid):
            raise SmsConfigError("set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.client = Client(
            account_sid, auth_token, http_client=_twilio_http_client(api_base, timeout)
        )

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        import requests
        from twilio.base import values
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        try:
            message = self.client.messages.create(
                to=to,
                body=body,
                from_=self.from_number or values.unset,
                messaging_service_sid=self.messaging_service_sid or values.unset,
                status_callback=status_callback or values.unset,
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _classify(int(exc.status), exc.code, str(getattr(exc, "msg", "") or exc)) from exc
        except requests.RequestException as exc:  # timeouts, refused connections, resets
            raise TransientSmsError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return SendResult(provider_id=str(message.sid), status=str(message.status or "queued"))

    def find_sent(self, *, to: str, body: str) -> str | None:
        """The provider id of a message to ``to`` with exactly ``body``, if Twilio has one.

        Looks at the recent messages to that number (newest first). Raises
        :class:`TransientSmsError` when the provider cannot be asked, so the caller waits
        rather than risk a second pre-alert.
        """
        import requests
        from twilio.base.exceptions import TwilioRestException, TwilioServiceException

        try:
            recent = self.client.messages.list(to=to, limit=20)
        except (TwilioRestException, TwilioServiceException, requests.RequestException) as exc:
            raise TransientSmsError(f"Twilio message list unavailable: {exc}") from exc
        for message in recent:
            if message.body == body:
                return str(message.sid)
        return None


def _classify(status: int, code: int | None, message: str) -> SmsError:
    if code in PERMANENT_CODES:
        return PermanentSmsError(message, code=code)
    # 401/403 are our credentials, not the number: keep the message and retry while someone
    # fixes the configuration, rather than burning through every contact.
    if status >= 500 or status in (401, 403, 408, 429):
        return TransientSmsError(message, code=code)
    return PermanentSmsError(message, code=code)


# --- console and recording ----------------------------------------------------------------


class ConsoleTransport:
    """Prints each SMS for a human to read: the demo's transport.

    Its provider ids are random (``CONSOLE-`` and a uuid), never a counter: a restarted demo
    has a new transport, and an id the outbox already recorded would make recording "sent"
    fail (the column is unique)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        info = sms_segments(body)
        provider_id = f"CONSOLE-{uuid.uuid4().hex}"
        with self._lock:
            out = self.stream or sys.stdout
            bar = "─" * 60
            print(
                f"┌{bar}\n│ SMS to {to}  ({info.segments} segment(s), {info.encoding})\n"
                + "".join(f"│ {line}\n" for line in body.splitlines() or [""])
                + f"└{bar}",
                file=out,
                flush=True,
            )
        return SendResult(provider_id=provider_id, status="sent")


@dataclass
class SentSms:
    to: str
    body: str
    status_callback: str | None
    provider_id: str


@dataclass
class RecordingTransport:
    """Keeps every SMS in :attr:`sent`; :meth:`fail_next` makes the next sends fail."""

    sent: list[SentSms] = field(default_factory=list)
    _failures: list[SmsError] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def fail_next(
        self, count: int = 1, *, permanent: bool = False, code: int | None = None
    ) -> None:
        error_type = PermanentSmsError if permanent else TransientSmsError
        with self._lock:
            self._failures.extend(error_type("recorded failure", code=code) for _ in range(count))

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        with self._lock:
            if self._failures:
                raise self._failures.pop(0)
            provider_id = f"SM{len(self.sent) + 1:032d}"
            self.sent.append(SentSms(to, body, status_callback, provider_id))
        return SendResult(provider_id=provider_id, status="queued")

    def find_sent(self, *, to: str, body: str) -> str | None:
        with self._lock:
            for sms in reversed(self.sent):
                if sms.to == to and sms.body == body:
                    return sms.provider_id
        return None

    def to(self, phone: str) -> list[SentSms]:
        return [sms for sms in self.sent if sms.to == phone]


def transport_from_config(config: Mapping[str, Any]) -> SmsTransport:
    """The transport named by ``SMS_BACKEND`` (console by default), checked for completeness;
    with ``SMS_FALLBACK_BACKEND``, the pair (alerts.providers.health) that fails over to it."""
    backend = str(config.get("SMS_BACKEND") or "console").strip().lower()
    fallback = str(config.get("SMS_FALLBACK_BACKEND") or "").strip().lower()
    primary = _one_transport(backend, config)
    if not fallback:
        return primary
    if fallback == backend:
        raise SmsConfigError("SMS_FALLBACK_BACKEND must name another backend than SMS_BACKEND")
    from alerts.providers.health import FailoverTransport

    return FailoverTransport(
        primary_name=backend,
        primary=primary,
        fallback_name=fallback,
        fallback=_one_transport(fallback, config),
    )


def _timeout(config: Mapping[str, Any], key: str) -> float:
    timeout = config.get(key) or 10.0
    try:
        return float(timeout)
    except (TypeError, ValueError) as exc:
        raise SmsConfigError(f"{key} must be a number of seconds, not {timeout!r}") from exc


def _require(config: Mapping[str, Any], backend: str, keys: tuple[str, ...]) -> None:
    missing = [key for key in keys if not config.get(key)]
    if missing:
        raise SmsConfigError(f"SMS_BACKEND={backend} needs {' and '.join(missing)}")


def _one_transport(backend: str, config: Mapping[str, Any]) -> SmsTransport:
    if backend == "console":
        return ConsoleTransport()
    if backend == "recording":
        return RecordingTransport()
    if backend in ("aliyun", "tencent"):
        return _domestic_transport(backend, config)
    if backend != "twilio":
        raise SmsConfigError(
            "SMS_BACKEND must be 'console', 'twilio', 'aliyun', 'tencent' or 'recording', "
            f"not {backend!r}"
        )
    _require(config, backend, ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"))
    from_number = config.get("TWILIO_FROM") or None
    service_sid = config.get("TWILIO_MESSAGING_SERVICE_SID") or None
    if not (from_number or service_sid):
        raise SmsConfigError("SMS_BACKEND=twilio needs TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID")
    return TwilioTransport(
        account_sid=str(config["TWILIO_ACCOUNT_SID"]),
        auth_token=str(config["TWILIO_AUTH_TOKEN"]),
        from_number=from_number,
        messaging_service_sid=service_sid,
        api_base=config.get("TWILIO_API_BASE") or None,
        timeout=_timeout(config, "TWILIO_TIMEOUT"),
    )


def _domestic_transport(backend: str, config: Mapping[str, Any]) -> SmsTransport:
    from alerts.sms_templates import load_templates

    templates = load_templates(config.get("SMS_TEMPLATES_FILE") or None)
    if backend == "aliyun":
        from alerts.providers.aliyun import AliyunTransport

        _require(
            config,
            backend,
            ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME"),
        )
        return AliyunTransport(
            access_key_id=str(config["ALIYUN_ACCESS_KEY_ID"]),
            access_key_secret=str(config["ALIYUN_ACCESS_KEY_SECRET"]),
            sign_name=str(config["ALIYUN_SMS_SIGN_NAME"]),
            templates=templates,
            endpoint=str(config.get("ALIYUN_SMS_ENDPOINT") or ""),
            timeout=_timeout(config, "ALIYUN_SMS_TIMEOUT"),
        )
    from alerts.providers.tencent import TencentTransport

    _require(
        config,
        backend,
        (
            "TENCENT_SECRET_ID",
            "TENCENT_SECRET_KEY",
            "TENCENT_SMS_SDK_APP_ID",
            "TENCENT_SMS_SIGN_NAME",
        ),
    )
    return TencentTransport(
        secret_id=str(config["TENCENT_SECRET_ID"]),
        secret_key=str(config["TENCENT_SECRET_KEY"]),
        sdk_app_id=str(config["TENCENT_SMS_SDK_APP_ID"]),
        sign_name=str(config["TENCENT_SMS_SIGN_NAME"]),
        templates=templates,
        endpoint=str(config.get("TENCENT_SMS_ENDPOINT") or ""),
        region=str(config.get("TENCENT_SMS_REGION") or ""),
        timeout=_timeout(config, "TENCENT_SMS_TIMEOUT"),
    )
