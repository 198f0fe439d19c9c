"""The SMS transport interface and its errors, apart from the implementations, so that the
providers (:mod:`alerts.providers`) and :mod:`alerts.transports` can both use them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class SmsError(Exception):
    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSmsError(SmsError):
    """Try again later: provider 5xx or 429, timeout, connection refused."""


class PermanentSmsError(SmsError):
    """Retrying will not help: invalid or opted-out number, and the like; ``code`` says which."""


class SmsConfigError(ValueError):
    """The SMS settings are incomplete or contradictory; the message names the setting."""


@dataclass(frozen=True)
class SendResult:
    provider_id: str
    status: str


class SmsTransport(Protocol):
    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult: ...


@runtime_checkable
class ReconcilingTransport(Protocol):
    """A transport that can tell whether the provider already has a message.

    A worker killed after the provider accepted a message but before it recorded the answer
    leaves the row claimed; the next worker asks here before sending it again.
    """

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult: ...

    def find_sent(self, *, to: str, body: str) -> str | None: ...
