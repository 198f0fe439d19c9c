"""Rate limits on API token use and on the inbound SMS webhook, counted in the database.

A fixed one-minute window per key: one ``INSERT … ON CONFLICT DO UPDATE SET count = count + 1
RETURNING count`` (PostgreSQL and SQLite both have it) is atomic, so every web process counts
against the same row and no process keeps state of its own. The counter commits on its own
connection before the request's work starts: a request that is refused, or that fails later,
still counts. Old windows are deleted by ``greenchannel retention``.

Only an authenticated caller is counted, after it has proved who it is: an API token that
belongs to an active user, an SMS whose Twilio signature is right. Counted before, anyone could
spend someone else's allowance: thirty unsigned posts naming a hospital's phone made its genuine
"Y" answer a 429 (issue 22); and every made-up token would leave a counter row behind.
Unauthenticated requests are refused by the views (401, 403) without touching the counters.

Limits (per minute) come from the environment: ``GREENCHANNEL_RATE_LIMIT_TOKEN`` (default 600,
per API token) and ``GREENCHANNEL_RATE_LIMIT_SMS`` (default 30, per sending phone); ``0`` turns
a limit off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
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


def hit(engine: Engine, *, key: str, now: dt.datetime) -> int:
    """Count one request for ``key`` in the current window; returns the count so far."""
    start = window_start(now)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(RateCounter)
        .values(key=key[:100], window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"],
            set_={"count": RateCounter.__table__.c.count + 1},
        )
        .returning(RateCounter.__table__.c.count)
    )
    # One atomic statement in autocommit: a single round trip, no BEGIN and COMMIT around it.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return int(conn.execute(statement).scalar_one())


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
    if request.path.startswith("/api/"):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            digest = hashlib.sha256(token.strip().encode()).hexdigest()[:32]
            return f"token:{digest}", "GREENCHANNEL_RATE_LIMIT_TOKEN", _token_is_known
        return None
    if request.path == SMS_WEBHOOK and request.method == "POST":
        phone = (request.form.get("From") or "").strip()[:32]
        return f"sms:{phone or '?'}", "GREENCHANNEL_RATE_LIMIT_SMS", signature_is_valid
    return None


def _check() -> Response | None:
    found = _key_for_request()
    if found is None:
        return None
    key, setting, authenticated = found
    limit = int(current_app.config[setting])
    if limit <= 0 or not authenticated():
        return None
    now = clock.now()
    if hit(db.engine, key=key, now=now) <= limit:
        return None
    retry_after = max(1, math.ceil((window_start(now) + WINDOW - now).total_seconds()))
    response = error_response(
        429,
        "too_many_requests",
        f"more than {limit} requests a minute: retry in {retry_after} seconds",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def init_app(app: Flask) -> None:
    for name, value in limits_from_env().items():
        app.config.setdefault(name, value)
    app.before_request(_check)
