"""The Flask application factory: configuration, database, API, web pages, error handling."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map, Rule

from core.errors import ServiceError
from core.settings import load_config
from greenchannel.runtime import Runtime, build_runtime
from greenchannel.web import health, http_cache, input_guard, observability, ratelimit
from greenchannel.web.db import db
from greenchannel.web.errors import error_response
from greenchannel.web.schemas import ErrorSchema
from referral import documents
from routing import RoutingError

log = logging.getLogger(__name__)
csrf = CSRFProtect()

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
}
_SECURITY_HEADERS = tuple(SECURITY_HEADERS.items())
_PRIVATE_HEADERS = (*_SECURITY_HEADERS, ("Cache-Control", "no-store"))


def _first_error(messages: Any, path: str = "") -> tuple[str | None, str]:
    """webargs' nested ``{"json": {"beds": {"nicu": ["..."]}}}`` → ("beds.nicu", "...")."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "headers", "files", "view_args") and not path:
                return _first_error(value, "")
            sub = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
            return _first_error(value, sub)
    if isinstance(messages, list) and messages:
        if all(isinstance(item, str) for item in messages):
            return path or None, "; ".join(messages)
        return _first_error(messages[0], path)
    return path or None, str(messages)


class DatabaseIdConverter(IntegerConverter):
    """``<int:…>`` ids fit the database's 32-bit integers: a larger number is a 404, not a 500."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


class GreenchannelApi(Api):  # type: ignore[misc]
    """flask-smorest, answering every HTTP error in the project's one error shape."""

    ERROR_SCHEMA = ErrorSchema  # and describing that shape in the OpenAPI document

    def handle_http_exception(self, error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        if "messages" in data:
            field, message = _first_error(data["messages"])
            if field is None and "Invalid input type" in message:
                message = "the request body must be a JSON object"
            elif field:
                message = f"{field}: {message}"
            return error_response(status, "invalid", message, field=field)
        if status == 413:
            return error_response(413, "too_large", "the request body is too large", field="body")
        code = (error.name or "error").lower().replace(" ", "_")
        return error_response(status, code, error.description or error.name or "error")


RUNTIME = "greenchannel.runtime"


class GreenchannelFlask(Flask):
    """Flask, asking once per function whether it is a coroutine.

    Flask asks on every call of every hook and view (``ensure_sync``, documented for overriding):
    about twenty ``inspect`` calls a route request for the same dozen functions. The answer for
    a function never changes; the functions asked about are the app's own hooks and views, so
    the memo is bounded by them (and by :data:`_SYNC_MEMO` for any per-request callable).
    """

    _SYNC_MEMO = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synced: dict[Any, Any] = {}

    def ensure_sync(self, func: Any) -> Any:
        synced = self._synced.get(func)
        if synced is None:
            synced = super().ensure_sync(func)
            if len(self._synced) < self._SYNC_MEMO:
                self._synced[func] = synced
        return synced


# The blueprints of the pages that show cases or patients (home, login and static are public).
PRIVATE_PAGES = frozenset({"cases", "hospital", "board", "links", "history"})


def create_app(config: Mapping[str, Any] | None = None, *, runtime: Runtime | None = None) -> Flask:
    """The web app on ``runtime`` (built from the settings and ``config`` when not given)."""
    app = GreenchannelFlask(__name__, instance_relative_config=True)
    app.url_map.converters["int"] = DatabaseIdConverter
    app.config.update(load_config(app.instance_path))
    app.config.update(
        API_TITLE="greenchannel",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
            "info": {
                "description": "Green-channel referral of critically ill mothers and newborns. "
                "Send `Authorization: Bearer <token>`; errors are "
                '`{"error": code, "message": text, "field": name}`.'
            },
        },
    )
    if config:
        app.config.update(config)
    # Refuse to start on a broken rulebook: RulesError names the file, line and key.
    runtime = runtime or build_runtime(app.config)
    app.extensions[RUNTIME] = runtime
    app.extensions["greenchannel.rules"] = runtime.rules
    app.extensions["greenchannel.place"] = runtime.place
    app.extensions["greenchannel.handlers"] = runtime.handlers

    proxies = int(app.config.get("TRUSTED_PROXIES", 0))
    if proxies:
        # Behind N reverse proxies: the client (login throttling, rate limits, logs) is the
        # address the last N hops forwarded, and https is what the first one received.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    db.init_app(app, engine=runtime.engine, factory=runtime.sessions)
    csrf.init_app(app)

    api = GreenchannelApi(app)
    from greenchannel.web import (
        api_facilities,
        api_fhir,
        api_have,
        api_map,
        api_referrals,
        api_reports,
        api_routing,
        api_users,
        page_setup,
        pages_accounts,
        referral_sheet,
    )
    from greenchannel.web import links as case_links
    from greenchannel.web.webhooks import webhooks

    for blueprint in (
        api_facilities.blp,
        api_referrals.blp,
        api_routing.blp,
        api_map.blp,
        api_users.blp,
        api_fhir.blp,  # /fhir: referrals as FHIR Tasks (read only)
        api_have.blp,  # /api/v1/facilities/{code}/have.xml: EDXL-HAVE
        referral_sheet.blp,  # GET /api/v1/referrals/{id}/referral-form.pdf
        api_reports.blp,
    ):
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)  # bearer tokens, or the X-CSRFToken header for sessions
    app.register_blueprint(webhooks)
    csrf.exempt(webhooks)  # Twilio signs its requests instead
    from greenchannel.web.webhooks_cn import webhooks_cn

    app.register_blueprint(webhooks_cn)
    csrf.exempt(webhooks_cn)  # Aliyun's and Tencent's pushes carry a secret path token
    page_setup.init_app(app)  # Flask-Babel and the page blueprints
    app.register_blueprint(case_links.bp)  # the pre-alert's one-time link to its case
    app.register_blueprint(pages_accounts.bp)  # users (administrators), one's own password

    app.extensions["greenchannel.documents"] = documents.DocumentCache()

    _register_error_handlers(app)
    observability.init_app(app)  # request ids, JSON logs, /metrics
    input_guard.init_app(app)  # NUL, lone surrogates, deep JSON: a 400 naming the field
    ratelimit.init_app(app)  # per-token and per-phone limits: 429 with Retry-After
    http_cache.init_app(app)  # compression, ETags and 304s, versioned static files

    @app.after_request
    def security_headers(response: Response) -> Response:
        # each header unless the view set its own (werkzeug's ``setdefault`` finds a header
        # missing by raising and catching an exception: one look at the names instead)
        private = request.path.startswith("/api/") or request.blueprint in PRIVATE_PAGES
        # The API, and every page that shows a case, a patient or a hospital's state: a shared
        # ward computer's cache or the back button must not keep a copy.
        wanted = _PRIVATE_HEADERS if private else _SECURITY_HEADERS
        present = {name.lower() for name, _ in response.headers.items()}
        response.headers.extend([item for item in wanted if item[0].lower() not in present])
        return response

    # GET /healthz in front of Flask: one pooled SELECT 1 (greenchannel.web.health)
    app.wsgi_app = health.HealthCheck(app.wsgi_app, runtime.engine, SECURITY_HEADERS)  # type: ignore[method-assign]

    _document_plain_routes(api, app)
    from greenchannel.web import webhooks_voice

    webhooks_voice.init_app(app, api, csrf)  # phone calls (Twilio Voice): TwiML, keys, status
    return app


def _document_plain_routes(api: Api, app: Flask) -> None:
    """The routes outside the JSON API still belong in its description."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    form = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
    signed = [
        {
            "in": "header",
            "name": "X-Twilio-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "HMAC of PUBLIC_BASE_URL + path and the form, by the auth token",
        }
    ]
    api.spec.path(
        # answered in front of Flask (greenchannel.web.health): a rule of its own for the spec
        rule=Map([Rule(health.PATH, methods=["GET"])]).iter_rules().__next__(),
        operations={
            "get": {
                "summary": "Liveness and database check",
                "security": [],
                "responses": {
                    "200": {"description": "up, database reachable"},
                    "503": {"description": "the database is unreachable"},
                },
            }
        },
    )
    api.spec.path(
        rule=rules["/webhooks/twilio/sms"],
        operations={
            "post": {
                "summary": "Inbound SMS: offer and capacity replies, REF commands (TwiML answer)",
                "security": [],
                "parameters": signed,
                "requestBody": {"content": form},
                "responses": {
                    "200": {"description": "TwiML <Response> with the answer to the sender"},
                    "400": {"description": "a field holds NUL or invalid Unicode"},
                    "403": {"description": "missing or wrong signature"},
                    "429": {"description": "too many messages from this phone this minute"},
                },
            }
        },
    )
    api.spec.path(
        rule=rules["/webhooks/twilio/status"],
        operations={
            "post": {
                "summary": "Delivery status callbacks (idempotent; a status never moves backwards)",
                "security": [],
                "parameters": signed,
                "requestBody": {"content": form},
                "responses": {
                    "200": {"description": "recorded, or ignored when unknown"},
                    "400": {"description": "a field holds NUL or invalid Unicode"},
                    "403": {"description": "missing or wrong signature"},
                },
            }
        },
    )

    from greenchannel.web import webhooks_cn

    webhooks_cn.document(api.spec, rules)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(input_guard.BadInput)
    def bad_input(exc: input_guard.BadInput) -> Response | tuple[str, int]:
        """Text the database cannot keep: the API's JSON error, or the pages' own 400 page."""
        if request.path.startswith(("/api/", "/webhooks/", "/healthz", "/metrics")):
            return error_response(400, "invalid", str(exc.description), field=exc.field)
        from greenchannel.web.pages import page_error

        return page_error(exc)

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        """The core error family (core/errors.py), whatever package raised it."""
        db.session.rollback()
        extra: dict[str, Any] = {}
        rows = getattr(exc, "errors", None)  # an import refused row by row
        if rows:
            extra["errors"] = [{"row": e.row, "field": e.field, "message": e.message} for e in rows]
        response = error_response(exc.status, exc.code, str(exc), field=exc.field, **extra)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(RoutingError)
    def routing_error(exc: RoutingError) -> Response:
        db.session.rollback()
        return error_response(400, "invalid", str(exc), field=exc.field)

    @app.errorhandler(OperationalError)
    def database_down(exc: OperationalError) -> Response:
        try:
            db.session.rollback()
        except DBAPIError:
            # The request's own connection died too (it read a revision before the failure):
            # discard it; the answer is the 503 either way.
            db.session.invalidate()
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        response = error_response(
            503, "unavailable", "the database is unavailable; nothing was saved; retry shortly"
        )
        response.headers["Retry-After"] = "5"
        return response
