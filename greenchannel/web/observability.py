"""Request ids, structured JSON logs and the Prometheus ``/metrics`` endpoint.

Every request gets an id: the caller's ``X-Request-Id`` when it is a sane token (a proxy or a
client correlating its own logs), a fresh one otherwise. The id is echoed in the response and
carried by every log line written while the request runs.

``/metrics`` counts referrals, offers, messages and escalations from the database at scrape
time, so any web process answers for the whole deployment. Request latency histograms are the
one thing kept in memory: they are per process (Prometheus sums them across scrape targets).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from typing import IO, Any

import orjson
from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from greenchannel.web.db import db

REQUEST_ID_HEADER = "X-Request-Id"
ACCESS_LOG = logging.getLogger("greenchannel.access")
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# ---------------------------------------------------------------------------- request ids


def request_id() -> str:
    """This request's id, or ``""`` outside a request."""
    if has_request_context():
        return str(g.get("request_id", ""))
    return ""


def given_or_new_request_id(given: str) -> str:
    """The caller's request id when it is a sane token, else a fresh one."""
    return given if _SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


def finished(method: str, endpoint: str, path: str, status: int, seconds: float, rid: str) -> None:
    """A request is answered: its latency into the histogram, its access log line (ids and
    timings only: the path carries case ids, never patient data)."""
    LATENCY.observe((method, endpoint, f"{status // 100}xx"), seconds)
    ACCESS_LOG.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "request_id": rid,
        },
    )


def _begin_request() -> None:
    g.request_id = given_or_new_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
    g.request_started = time.perf_counter()


def _end_request(response: Response) -> Response:
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    started = g.get("request_started")
    if started is not None:
        seconds = time.perf_counter() - started
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        # The time spent in the app, for a client (or the load bench) to tell it from queueing.
        response.headers["Server-Timing"] = f"app;dur={seconds * 1000:.1f}"
        path = loggable_path(request.path, _secret_prefixes())
        finished(request.method, endpoint, path, response.status_code, seconds, rid)
    return response


# A route variable by this name is a secret: the domestic providers' push token, a case link's
# one-time token. The access log writes the path with it masked, whatever the answer (a 404 or
# a 405 on such a path matched no rule, and is masked all the same).
SECRET_PART = "token"
_SECRET_VARIABLE = re.compile(r"<(?:[^<>:]+:)?" + SECRET_PART + r">")
_PREFIXES = "greenchannel.secret_prefixes"


def _secret_prefixes() -> tuple[str, ...]:
    """The fixed beginnings of the app's routes whose next part is a secret (read once)."""
    app = current_app
    found: tuple[str, ...] | None = app.extensions.get(_PREFIXES)
    if found is None:
        found = tuple(
            sorted(
                {
                    _SECRET_VARIABLE.split(rule.rule, maxsplit=1)[0]
                    for rule in app.url_map.iter_rules()
                    if SECRET_PART in rule.arguments
                }
            )
        )
        app.extensions[_PREFIXES] = found
    return found


def loggable_path(path: str, secret_prefixes: Iterable[str]) -> str:
    """``path`` with the part after any of ``secret_prefixes`` written ``<token>``."""
    for prefix in secret_prefixes:
        if path.startswith(prefix):
            _secret, slash, rest = path[len(prefix) :].partition("/")
            return f"{prefix}<{SECRET_PART}>{slash}{rest}"
    return path


# ---------------------------------------------------------------------------- logs

# E.164 numbers and long digit runs (a phone without its +) keep only a prefix and the last four.
_PHONE = re.compile(r"\+?\d[\d\- ]{6,}\d")
_SECRETS = re.compile(
    r"(?i)(bearer\s+|gc_|token[=:]\s*|password[=:]\s*|auth_token[=:]\s*|secret[=:]\s*)"
    r"[^\s,;&\"']+"
)


def _mask_phone_match(match: re.Match[str]) -> str:
    digits = match.group(0)
    if len(digits) <= 8:
        return "*" * len(digits)
    return digits[:6] + "****" + digits[-4:]


# What a database error carries of the row: the bound parameters (SQLAlchemy hides them, see
# core.db.make_engine, but a driver's own message may repeat them) and PostgreSQL's DETAIL
# ("Key (patient_ref)=(T1-0042) already exists", "Failing row contains (...)").
_DATABASE_VALUES = (
    (
        re.compile(r"\[parameters: .*?\]( \(Background on this error)?", re.DOTALL),
        r"[parameters hidden]\1",
    ),
    (
        re.compile(
            r"(Key \([^)]*\))=\(.*?\)(?= already exists| is not present| is still|\.|$)", re.M
        ),
        r"\1=(…)",
    ),
    (re.compile(r"(Failing row contains) \(.*\)"), r"\1 (…)"),
)


# Anything one of the patterns above could match starts like this (each pattern's own opening,
# or the whole pattern): one search tells the usual line, which needs nothing masked.
_MAYBE_SCRUB = re.compile(
    r"\+?\d[\d\- ]{6,}\d"
    r"|(?i:bearer\s|gc_|token[=:]|password[=:]|auth_token[=:]|secret[=:])"
    r"|\[parameters: |Key \(|Failing row contains"
)


def scrub(text: str) -> str:
    """Mask phone numbers, anything that looks like a secret, and the values a database error
    quotes from the row, in a log line."""
    if _MAYBE_SCRUB.search(text) is None:
        return text
    return _scrub_every_pattern(text)


def _scrub_every_pattern(text: str) -> str:
    for pattern, replacement in _DATABASE_VALUES:
        text = pattern.sub(replacement, text)
    text = _SECRETS.sub(lambda m: m.group(1) + "***", text)
    return _PHONE.sub(_mask_phone_match, text)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a line written outside Flask's request context (the health check) brings its own
        if not getattr(record, "request_id", None):
            record.request_id = request_id() or "-"
        return True


_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or request_id() or "-",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else scrub(str(value))
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


_HANDLER_MARK = "_greenchannel_json"
# Libraries that narrate every step at INFO: the Twilio SDK writes seven lines per SMS (URL,
# headers, status), APScheduler two per tick. Our own lines already say what was sent and when;
# theirs only buried them and cost the worker CPU. Their warnings and errors still show.
CHATTY = ("twilio.http_client", "apscheduler")


def configure_logging(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            return handler
        if type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout):
            root.removeHandler(handler)  # a plain-text basicConfig: one format only
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


# ---------------------------------------------------------------------------- metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """A thread-safe Prometheus histogram keyed by (method, endpoint, status class)."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, str], list[float]] = {}

    def observe(self, labels: tuple[str, str, str], seconds: float) -> None:
        with self._lock:
            series = self._series.setdefault(labels, [0.0] * (len(self.buckets) + 2))
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    series[i] += 1
            series[-2] += 1  # count (= the +Inf bucket)
            series[-1] += seconds  # sum

    def lines(self, name: str) -> list[str]:
        with self._lock:
            snapshot = {k: list(v) for k, v in self._series.items()}
        out = [
            f"# HELP {name} Request latency in seconds, by method, endpoint and status "
            "class (this process only).",
            f"# TYPE {name} histogram",
        ]
        for (method, endpoint, status), series in sorted(snapshot.items()):
            labels = f'method="{method}",endpoint="{_escape(endpoint)}",status="{status}"'
            for bound, count in zip(self.buckets, series, strict=False):
                out.append(f'{name}_bucket{{{labels},le="{bound}"}} {int(count)}')
            out.append(f'{name}_bucket{{{labels},le="+Inf"}} {int(series[-2])}')
            out.append(f"{name}_count{{{labels}}} {int(series[-2])}")
            out.append(f"{name}_sum{{{labels}}} {series[-1]:.6f}")
        return out


LATENCY = Histogram(LATENCY_BUCKETS)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gauge(
    name: str, help_text: str, rows: Iterable[tuple[Any, ...]], labels: list[str]
) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for *values, count in rows:
        rendered = ",".join(
            f'{label}="{_escape(str(getattr(v, "value", v)))}"'
            for label, v in zip(labels, values, strict=True)
        )
        out.append(f"{name}{{{rendered}}} {int(count)}")
    return out


def database_metrics(session: Session) -> list[str]:
    """The deployment-wide counts, read from the database now."""
    from alerts.models import Alert, OutboundMessage, Timer
    from referral.models import Offer, Referral

    lines: list[str] = []
    lines += _gauge(
        "greenchannel_referrals",
        "Referrals by status and urgency.",
        session.execute(
            select(Referral.status, Referral.urgency, func.count()).group_by(
                Referral.status, Referral.urgency
            )
        ).all(),
        ["status", "urgency"],
    )
    lines += _gauge(
        "greenchannel_offers",
        "Offers to hospitals by status.",
        session.execute(select(Offer.status, func.count()).group_by(Offer.status)).all(),
        ["status"],
    )
    lines += _gauge(
        "greenchannel_sms_messages",
        "Outbound SMS by purpose and status.",
        session.execute(
            select(OutboundMessage.purpose, OutboundMessage.status, func.count()).group_by(
                OutboundMessage.purpose, OutboundMessage.status
            )
        ).all(),
        ["purpose", "status"],
    )
    lines += _gauge(
        "greenchannel_alerts",
        "Pre-alerts by status.",
        session.execute(select(Alert.status, func.count()).group_by(Alert.status)).all(),
        ["status"],
    )
    lines += _gauge(
        "greenchannel_timers",
        "Timers (offer expiries, escalation steps, reminders) by kind and status.",
        session.execute(
            select(Timer.kind, Timer.status, func.count()).group_by(Timer.kind, Timer.status)
        ).all(),
        ["kind", "status"],
    )
    next_contact = session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.purpose == "escalation")
    )
    switchboard = session.scalar(
        select(func.count()).select_from(Alert).where(Alert.escalated_at.is_not(None))
    )
    lines += _gauge(
        "greenchannel_escalations",
        "Escalations: next contact of a silent team texted; switchboard and coordinators told.",
        [("next_contact", next_contact or 0), ("switchboard_and_coordinators", switchboard or 0)],
        ["level"],
    )
    return lines


def sms_provider_metrics(
    session: Session, *, configured: Iterable[str], now: dt.datetime
) -> list[str]:
    """1 for each SMS provider in use or with a health record that is up, 0 while it is marked
    down after repeated failures (alerts.providers.health)."""
    from alerts.providers.health import provider_states

    states = {name: True for name in configured if name} | provider_states(session, now=now)
    return _gauge(
        "greenchannel_sms_provider_up",
        "SMS providers: 1 up, 0 marked down after repeated failures (the fallback sends).",
        sorted((name, int(up)) for name, up in states.items()),
        ["provider"],
    )


def metrics_text(session: Session, *, sms_providers: Iterable[str] = ()) -> str:
    from greenchannel.web import clock

    return (
        "\n".join(
            [
                *database_metrics(session),
                *sms_provider_metrics(session, configured=sms_providers, now=clock.now()),
                *LATENCY.lines("greenchannel_http_request_seconds"),
            ]
        )
        + "\n"
    )


# ---------------------------------------------------------------------------- wiring


def init_app(app: Flask) -> None:
    """Request ids on every request, latency timing, ``/metrics``, and JSON logs outside tests."""
    app.before_request(_begin_request)
    app.after_request(_end_request)

    def metrics() -> Response:
        configured = [app.config.get("SMS_BACKEND"), app.config.get("SMS_FALLBACK_BACKEND")]
        body = metrics_text(db.session, sms_providers=[str(c) for c in configured if c])
        return Response(body, mimetype="text/plain", content_type="text/plain; version=0.0.4")

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    if not app.testing:
        configure_logging()
