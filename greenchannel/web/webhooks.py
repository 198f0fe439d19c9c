"""Twilio webhooks: inbound SMS and delivery status callbacks, both signed.

The signature is checked against ``PUBLIC_BASE_URL`` + the path, never the Host header, which
a proxy may rewrite and a caller may forge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, current_app, g, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from alerts import escalation
from alerts.inbound import handle_inbound
from alerts.outbox import apply_status
from greenchannel.web import clock
from greenchannel.web.db import db

log = logging.getLogger(__name__)

webhooks = Blueprint("webhooks", __name__)


def _signed_url() -> str:
    base = str(current_app.config.get("PUBLIC_BASE_URL") or "").rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


def _check_signature() -> bool:
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    base = current_app.config.get("PUBLIC_BASE_URL")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not base:
        log.error("webhook refused: TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL must both be set")
        return False
    if not signature or not RequestValidator(token).validate(
        _signed_url(), request.form, signature
    ):
        log.warning("webhook %s refused: bad or missing signature", request.path)
        return False
    return True


def signature_is_valid() -> bool:
    """Whether this request carries a valid ``X-Twilio-Signature`` (checked once a request).

    Anything counted per sender (the per-phone rate limit) must ask this first: the ``From`` of
    an unsigned request is whatever its author wrote, a hospital's phone included.
    """
    if "twilio_signature_valid" not in g:
        g.twilio_signature_valid = _check_signature()
    return bool(g.twilio_signature_valid)


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 unless the request carries a valid ``X-Twilio-Signature``."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not signature_is_valid():
            abort(403)
        return view(*args, **kwargs)

    return checked


@webhooks.post("/webhooks/twilio/sms")
@twilio_signed
def inbound_sms() -> Response:
    answer = handle_inbound(
        db.session,
        from_phone=request.form.get("From", ""),
        body=request.form.get("Body", ""),
        provider_id=request.form.get("MessageSid") or None,
        now=clock.now(),
        handlers=current_app.extensions["greenchannel.handlers"],
    )
    db.session.commit()
    twiml = MessagingResponse()
    if answer:
        twiml.message(answer)
    return Response(str(twiml), mimetype="application/xml")


@webhooks.post("/webhooks/twilio/status")
@twilio_signed
def delivery_status() -> Response:
    error_code = request.form.get("ErrorCode", "")
    apply_status(
        db.session,
        provider_id=request.form.get("MessageSid", ""),
        provider_status=request.form.get("MessageStatus", ""),
        error_code=int(error_code) if error_code.isdecimal() else None,
        now=clock.now(),
        on_failed=escalation.on_message_failed,
    )
    db.session.commit()
    return Response("", status=200, mimetype="text/plain")
