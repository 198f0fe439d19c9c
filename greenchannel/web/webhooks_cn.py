"""Push callbacks of the domestic SMS providers: delivery receipts and upstream replies.

Alibaba Cloud SMS (HTTP batch push: ``SmsReport``, ``SmsUp``) and Tencent Cloud SMS (状态回执,
回复短信) post JSON to URLs the region registers in each console. Neither signs its pushes, so
each URL carries a secret path token, ``SMS_PUSH_TOKEN``, compared in constant time: without
the setting every push is refused, a wrong token gets 403 and changes nothing. (Register the
URLs over HTTPS only, so the token does not travel in clear.)

What arrives feeds the same rules as Twilio's webhooks: :func:`alerts.outbox.apply_status`
(never backwards, idempotent) and :func:`alerts.inbound.handle_inbound` (the reply grammar).
A domestic provider cannot answer a reply in its HTTP response as TwiML does, so the answer
is queued as an SMS of purpose ``reply``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts import escalation
from alerts.inbound import handle_inbound
from alerts.outbox import apply_status, queue_sms
from alerts.providers.base import e164
from greenchannel.web import clock, ratelimit
from greenchannel.web.db import db
from greenchannel.web.errors import error_response

log = logging.getLogger(__name__)

webhooks_cn = Blueprint("webhooks_cn", __name__)

#: The most items one push may carry; providers batch far fewer.
MAX_ITEMS = 200

ALIYUN_OK = {"code": 0, "msg": "成功"}
TENCENT_OK = {"result": 0, "errmsg": "OK"}


def _check_token(token: str) -> None:
    expected = str(current_app.config.get("SMS_PUSH_TOKEN") or "")
    if not expected:
        log.error("push %s refused: SMS_PUSH_TOKEN is not set", request.path.split("/")[2])
        abort(403)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("push to %s refused: wrong token", request.path.split("/")[2])
        abort(403)


class _BadPush(Exception):
    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


def _items(*, many: bool) -> list[dict[str, Any]]:
    payload = request.get_json(silent=True)
    if isinstance(payload, dict) and not many:
        payload = [payload]
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not all(isinstance(i, dict) for i in payload):
        raise _BadPush("expected a JSON array of objects")
    if len(payload) > MAX_ITEMS:
        raise _BadPush(f"at most {MAX_ITEMS} items in one push")
    return payload


def _text(item: dict[str, Any], key: str, *, limit: int = 64) -> str:
    value = item.get(key)
    if value is None or isinstance(value, dict | list):
        raise _BadPush(f"{key} is missing or not a value", field=key)
    text = str(value)
    if len(text) > limit:
        raise _BadPush(f"{key} is longer than {limit} characters", field=key)
    return text


def _status(*, provider_id: str, delivered: bool, now: dt.datetime) -> None:
    apply_status(
        db.session,
        provider_id=provider_id,
        provider_status="delivered" if delivered else "undelivered",
        error_code=None,
        now=now,
        on_failed=escalation.on_message_failed,
    )


def _reply(session: Session, *, phone: str, body: str, provider_id: str, now: dt.datetime) -> None:
    answer = handle_inbound(
        session,
        from_phone=phone,
        body=body,
        provider_id=provider_id,
        now=now,
        handlers=current_app.extensions["greenchannel.handlers"],
    )
    replayed = session.info.get("greenchannel.cn_replayed", set())
    if answer and provider_id not in replayed:
        queue_sms(session, to=phone, body=answer, purpose="reply", now=now)


def _run(handle: Any, ok: dict[str, Any]) -> Response:
    try:
        handle()
        db.session.commit()
    except _BadPush as exc:
        db.session.rollback()
        return error_response(400, "invalid", str(exc), field=exc.field)
    except IntegrityError:
        # The same push delivered twice at once: the other copy recorded it.
        db.session.rollback()
        log.info("push to %s: a concurrent copy was recorded first", request.path.split("/")[2])
    return jsonify(ok)


def _already_seen(provider_id: str) -> bool:
    from sqlalchemy import select

    from alerts.models import InboundMessage

    return (
        db.session.scalars(
            select(InboundMessage.id).where(InboundMessage.provider_id == provider_id)
        ).first()
        is not None
    )


def _replies(entries: list[tuple[str, str, str]], now: dt.datetime) -> None:
    """Each (phone, body, provider id) through the reply grammar; a repeated push (the same
    provider id) is answered by nobody a second time. A phone over its per-minute limit
    (``GREENCHANNEL_RATE_LIMIT_SMS``, as on Twilio's webhook) has its further replies left
    unhandled and unanswered: the push is still accepted (a refused push is sent again, and
    carries other phones' replies)."""
    # Counted before this push writes anything: the counter commits on a connection of its own,
    # and SQLite lets one connection write at a time.
    heard: dict[str, tuple[str, str]] = {}  # by provider id: the same reply twice in one push
    for phone, body, provider_id in entries:
        if provider_id in heard or _already_seen(provider_id):
            continue
        if ratelimit.phone_within_limit(phone):
            heard[provider_id] = (phone, body)
        else:
            log.warning("reply %s not handled: its phone is over the per-minute limit", provider_id)
    for provider_id, (phone, body) in heard.items():
        _reply(db.session, phone=phone, body=body, provider_id=provider_id, now=now)


# --- Alibaba Cloud ------------------------------------------------------------------------------


@webhooks_cn.post("/webhooks/aliyun/<token>/report")
def aliyun_report(token: str) -> Response:
    _check_token(token)
    now = clock.now()

    def handle() -> None:
        for item in _items(many=True):
            # OutId is ours (alerts.providers.aliyun); a push without it is not about us.
            provider_id = _text(item, "out_id") if item.get("out_id") else ""
            if provider_id:
                _status(provider_id=provider_id, delivered=item.get("success") is True, now=now)

    return _run(handle, ALIYUN_OK)


@webhooks_cn.post("/webhooks/aliyun/<token>/reply")
def aliyun_reply(token: str) -> Response:
    _check_token(token)
    now = clock.now()

    def handle() -> None:
        entries = [
            (
                e164(_text(item, "phone_number", limit=20)),
                _text(item, "content", limit=500),
                "aliyun-up:" + _text(item, "sequence_id", limit=40),
            )
            for item in _items(many=True)
        ]
        _replies(entries, now)

    return _run(handle, ALIYUN_OK)


# --- Tencent Cloud ------------------------------------------------------------------------------


@webhooks_cn.post("/webhooks/tencent/<token>/status")
def tencent_status(token: str) -> Response:
    _check_token(token)
    now = clock.now()

    def handle() -> None:
        for item in _items(many=True):
            _status(
                provider_id=_text(item, "sid"),
                delivered=str(item.get("report_status", "")).upper() == "SUCCESS",
                now=now,
            )

    return _run(handle, TENCENT_OK)


@webhooks_cn.post("/webhooks/tencent/<token>/reply")
def tencent_reply(token: str) -> Response:
    _check_token(token)
    now = clock.now()

    def handle() -> None:
        entries = []
        for item in _items(many=False):
            country = _text(item, "nationcode", limit=4) if item.get("nationcode") else "86"
            mobile = _text(item, "mobile", limit=20)
            phone = (
                e164(mobile, country=country) if mobile.startswith("+") else f"+{country}{mobile}"
            )
            body = _text(item, "text", limit=500)
            # Tencent gives a reply no id: the number, the time and the words make one, so a
            # repeated callback is recognised.
            at = _text(item, "time", limit=20)
            digest = hashlib.sha256(f"{phone}\n{at}\n{body}".encode()).hexdigest()[:40]
            entries.append((phone, body, "tencent-up:" + digest))
        _replies(entries, now)

    return _run(handle, TENCENT_OK)


def document(spec: Any, rules: dict[str, Any]) -> None:
    """The four push URLs in the OpenAPI description (the app's ``_document_plain_routes``)."""
    token = [
        {
            "in": "path",
            "name": "token",
            "required": True,
            "schema": {"type": "string"},
            "description": "SMS_PUSH_TOKEN: the providers do not sign their pushes",
        }
    ]
    body = {
        "application/json": {
            "schema": {"type": "array", "maxItems": MAX_ITEMS, "items": {"type": "object"}}
        }
    }
    for path, summary in (
        ("/webhooks/aliyun/<token>/report", "Alibaba Cloud SmsReport push (delivery receipts)"),
        ("/webhooks/aliyun/<token>/reply", "Alibaba Cloud SmsUp push (replies)"),
        ("/webhooks/tencent/<token>/status", "Tencent Cloud delivery receipt callback"),
        ("/webhooks/tencent/<token>/reply", "Tencent Cloud reply callback"),
    ):
        spec.path(
            rule=rules[path],
            operations={
                "post": {
                    "summary": summary,
                    "security": [],
                    "parameters": token,
                    "requestBody": {"content": body},
                    "responses": {
                        "200": {"description": "recorded (idempotent), in the provider's shape"},
                        "400": {"description": "not a JSON array of objects, or a bad field"},
                        "403": {"description": "wrong token, or SMS_PUSH_TOKEN not set"},
                    },
                }
            },
        )
