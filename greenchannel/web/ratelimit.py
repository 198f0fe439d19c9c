"""Rate limits on API token use and on the inbound SMS webhook, counted in the database.

A fixed one-minute window per key: one ``INSERT … ON CONFLICT DO UPDATE SET count = count + n
RETURNING count`` (PostgreSQL and SQLite both have it) is atomic, so every web process counts
against the same row. The counter commits on its own connection before the request's work
starts: a request that fails later still counts. Old windows are deleted by ``greenchannel
retention``.

Only an authenticated caller is counted, after it has proved who it is: an API token that
belongs to an active user, an SMS whose Twilio signature is right. Counted before, anyone could
spend someone else's allowance: thirty unsigned posts naming a hospital's phone made its genuine
"Y" answer a 429 (issue 22); and every made-up token would leave a counter row behind.
Unauthenticated requests are refused by the views (401, 403) without touching the counters.

A busy token does not write once per request: each process claims units of the window's count
in blocks (:class:`Allowance`) and spends them in memory. A block is at most a sixteenth of what
is left of the limit (one unit near the limit, and always one for a limit under 32), and a
request is allowed only out of units the database counted under the limit, so the limit still
holds across every process; what a block costs is that another process may refuse a little
early, by at most the units the others still hold (a sixteenth of what was left when they were
claimed). The first request of a window always writes; once a process has seen the window's
count reach the limit, it refuses that key until the next window without writing again.

Limits (per minute) come from the environment: ``GREENCHANNEL_RATE_LIMIT_TOKEN`` (default 600,
per API token) and ``GREENCHANNEL_RATE_LIMIT_SMS`` (default 30, per sending phone, whichever
provider brings its messages: Twilio's webhook is refused with 429, a domestic provider's push
is answered and the replies over a phone's limit are left unhandled, :func:`phone_within_limit`);
``0`` turns a limit off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import threading
from collections.abc import Callable, Mapping

from flask import Flask, Response, current_app, request
from sqlalchemy import Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from core.settings import ConfigError
from facilities.models import RateCounter
from greenchannel.web import clock
from greenchannel.web.auth import Unauthorised, current_user
from greenchannel.web.db import db
from greenchannel.web.errors import error_response
from greenchannel.web.webhooks import signature_is_valid

WINDOW = dt.timedelta(minutes=1)
DEFAULTS = {"GREENCHANNEL_RATE_LIMIT_TOKEN": 600, "GREENCHANNEL_RATE_LIMIT_SMS": 30}
SMS_WEBHOOK = "/webhooks/twilio/sms"
SMS_LIMIT = "GREENCHANNEL_RATE_LIMIT_SMS"


def limits_from_env(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    env = os.environ if environ is None else environ
    limits: dict[str, int] = {}
    for name, default in DEFAULTS.items():
        raw = env.get(name, "").strip()
        if not raw:
            limits[name] = default
            continue
        if not raw.isdecimal():
            raise ConfigError(
                f"{name}: expected a whole number of requests per minute, got {raw!r}"
            )
        limits[name] = int(raw)
    return limits


def window_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(second=0, microsecond=0)


def hit(engine: Engine, *, key: str, now: dt.datetime, amount: int = 1) -> int:
    """Count ``amount`` requests for ``key`` in the current window; returns the count so far."""
    start = window_start(now)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(RateCounter)
        .values(key=key[:100], window_start=start, count=amount)
        .on_conflict_do_update(
            index_elements=["key", "window_start"],
            set_={"count": RateCounter.__table__.c.count + amount},
        )
        .returning(RateCounter.__table__.c.count)
    )
    # One atomic statement in autocommit: a single round trip, no BEGIN and COMMIT around it.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return int(conn.execute(statement).scalar_one())


SHARE = 16  # a block is at most this fraction of what is left of the limit
_KEYS_KEPT = 10_000


class Allowance:
    """The units of each key's window count this process has claimed and not used yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (window start, units left, the window's count when they were claimed)
        self._held: dict[str, tuple[dt.datetime, int, int]] = {}

    def take(self, engine: Engine, *, key: str, now: dt.datetime, limit: int) -> bool:
        """Whether one more request of ``key`` is within ``limit`` in this window."""
        start = window_start(now)
        with self._lock:
            held = self._held.get(key)
            if held is not None and held[0] == start and held[1] > 0:
                self._held[key] = (start, held[1] - 1, held[2])
                return True
            known = held[2] if held is not None and held[0] == start else 0
            if known >= limit:  # this window is spent: refused without another write
                return False
        claim = max(1, (limit - known) // SHARE)
        total = hit(engine, key=key, now=now, amount=claim)
        granted = min(claim, limit - (total - claim))  # the units counted under the limit
        with self._lock:
            if len(self._held) >= _KEYS_KEPT:
                self._held = {k: v for k, v in self._held.items() if v[0] == start}
            self._held[key] = (start, max(granted - 1, 0), total)
        return granted > 0


def prune(engine: Engine, *, now: dt.datetime) -> int:
    """Forget windows older than an hour."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(RateCounter).where(RateCounter.window_start < now - dt.timedelta(hours=1))
        )
        return int(result.rowcount)


def _token_is_known() -> bool:
    try:
        return current_user() is not None  # cached on g: the view does not look again
    except Unauthorised:
        return False  # the view answers 401


def _key_for_request() -> tuple[str, str, Callable[[], bool]] | None:
    """(key, setting name, authentication check) of the limit that applies to this request."""
    if request.path.startswith(("/api/", "/fhir/")):  # one count per token for both APIs
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            digest = hashlib.sha256(token.strip().encode()).hexdigest()[:32]
            return f"token:{digest}", "GREENCHANNEL_RATE_LIMIT_TOKEN", _token_is_known
        return None
    if request.path == SMS_WEBHOOK and request.method == "POST":
        return phone_key(request.form.get("From") or ""), SMS_LIMIT, signature_is_valid
    return None


def phone_key(phone: str) -> str:
    """The counter of one sending phone, whichever provider brought its messages."""
    return f"sms:{phone.strip()[:32] or '?'}"


def phone_within_limit(phone: str) -> bool:
    """Whether one more message from ``phone`` is within ``GREENCHANNEL_RATE_LIMIT_SMS`` this
    minute (and count it). For the domestic providers' pushes, which carry many phones' replies
    in one request and are authenticated by their path token: each reply asks for itself."""
    limit = int(current_app.config[SMS_LIMIT])
    if limit <= 0:
        return True
    allowance: Allowance = current_app.extensions["greenchannel.ratelimit"]
    return allowance.take(db.engine, key=phone_key(phone), now=clock.now(), limit=limit)


def _check() -> Response | None:
    found = _key_for_request()
    if found is None:
        return None
    key, setting, authenticated = found
    limit = int(current_app.config[setting])
    if limit <= 0 or not authenticated():
        return None
    now = clock.now()
    allowance: Allowance = current_app.extensions["greenchannel.ratelimit"]
    if allowance.take(db.engine, key=key, now=now, limit=limit):
        return None
    retry_after = max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))
    message = f"more than {limit} requests a minute: retry in {retry_after} seconds"
    if request.path.startswith("/fhir/"):
        from greenchannel.web.api_fhir import operation_outcome  # a FHIR client reads FHIR

        response = operation_outcome(429, message)
    else:
        response = error_response(429, "too_many_requests", message)
    response.headers["Retry-After"] = str(retry_after)
    return response


def init_app(app: Flask) -> None:
    for name, value in limits_from_env().items():
        app.config.setdefault(name, value)
    app.extensions["greenchannel.ratelimit"] = Allowance()
    app.before_request(_check)
