"""What a templated provider adds to :class:`alerts.transports.SmsTransport`.

A domestic provider needs the message's kind (which approved template carries it), so the
outbox hands it the purpose along with the words; :mod:`alerts.providers.dispatch` picks the
call. Both providers classify their documented error codes into the same two errors as Twilio.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from alerts.sms_types import PermanentSmsError, SendResult, SmsError, TransientSmsError

BEIJING = dt.timezone(dt.timedelta(hours=8))


@runtime_checkable
class TemplatedTransport(Protocol):
    """A provider that sends approved templates: Alibaba Cloud SMS, Tencent Cloud SMS."""

    name: str

    def send_message(
        self, *, to: str, body: str, purpose: str, status_callback: str | None
    ) -> SendResult: ...

    def find_message(self, *, to: str, body: str, purpose: str, now: dt.datetime) -> str | None: ...


def classify(
    code: str,
    message: str,
    *,
    permanent: Iterable[str],
    transient: Iterable[str],
    permanent_prefixes: Iterable[str] = (),
    transient_prefixes: Iterable[str] = (),
) -> SmsError:
    """The documented code as our error: listed codes first, then prefixes, else transient
    (a retry is bounded; a lost pre-alert is not)."""
    text = f"{code}: {message}"[:480]
    if code in set(permanent):
        return PermanentSmsError(text)
    if code in set(transient):
        return TransientSmsError(text)
    if any(code.startswith(p) for p in permanent_prefixes):
        return PermanentSmsError(text)
    if any(code.startswith(p) for p in transient_prefixes):
        return TransientSmsError(text)
    return TransientSmsError(text)


def mainland_digits(phone: str) -> str:
    """``+8613812345678`` → ``8613812345678``: the form both providers accept for any country."""
    return phone.strip().lstrip("+")


def e164(phone: str, *, country: str = "86") -> str:
    """A provider's callback number as E.164: ``13812345678`` → ``+8613812345678``."""
    digits = phone.strip()
    if digits.startswith("+"):
        return digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{country}{digits}"
    return "+" + digits
