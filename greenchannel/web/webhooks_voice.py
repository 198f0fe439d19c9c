"""Twilio Voice webhooks: a call's words (TwiML), the keys pressed, and its progress; all signed.

The provider fetches ``/webhooks/twilio/voice?call=<id>`` when the contact picks up: the short
spoken pre-alert, then "press 1 to accept, 2 to decline"; 2 leads to the decline reasons
(``/webhooks/twilio/voice/gather?call=<id>&menu=reason``). A key answers the offer through the
same reply handler as an SMS (:func:`alerts.calls.answer_by_keypress`). ``…/status`` records
the call's progress; a call that ends unanswered moves the team on. The signature covers the
whole URL with its ``call`` and ``menu`` (checked against ``PUBLIC_BASE_URL``, as for SMS), so
a caller cannot point a key at another call.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect
from twilio.twiml.voice_response import Gather, VoiceResponse

from alerts import calls, voice_texts
from alerts.handlers import Handlers
from alerts.models import VoiceCall
from greenchannel.web import clock
from greenchannel.web.db import db
from greenchannel.web.errors import error_response
from greenchannel.web.webhooks import twilio_signed

webhooks_voice = Blueprint("webhooks_voice", __name__)

GATHER_SECONDS = 8


def _handlers() -> Handlers:
    handlers: Handlers = current_app.extensions["greenchannel.handlers"]
    return handlers


def _base() -> str:
    return str(current_app.config.get("PUBLIC_BASE_URL") or "")


def _call() -> VoiceCall | Response:
    raw = request.args.get("call", "")
    if not raw.isdecimal() or len(raw) > 12:
        return error_response(400, "invalid", "call: expected the call's number", field="call")
    call = db.session.get(VoiceCall, int(raw))
    if call is None:
        return error_response(404, "not_found", "no such call", field="call")
    return call


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="application/xml")


def _say(target: VoiceResponse | Gather, text: str, language: str) -> None:
    target.say(text, **voice_texts.SAY["en" if language == "en" else "zh"])


def _menu(call: VoiceCall, *, menu: str, intro: str = "") -> VoiceResponse:
    """Ask for one key (twice), then say how else to answer."""
    language = call.language
    words = voice_texts.main_menu(language) if menu == "main" else voice_texts.reason_menu(language)
    response = VoiceResponse()
    for first in (True, False):
        gather = Gather(
            num_digits=1,
            action=calls.gather_url(_base(), call.id, menu),
            method="POST",
            timeout=GATHER_SECONDS,
        )
        if first and intro:
            _say(gather, intro, language)
        _say(gather, words, language)
        response.append(gather)
    _say(response, voice_texts.no_key(language), language)
    return response


def _record_progress(call: VoiceCall) -> None:
    """Every request of the call carries its id and status: keep the marker and the progress."""
    calls.apply_call_status(
        db.session,
        call_id=call.id,
        provider_id=request.form.get("CallSid", ""),
        provider_status=request.form.get("CallStatus", ""),
        error_code=None,
        now=clock.now(),
        on_call=_handlers().call,
    )


@webhooks_voice.post(calls.TWIML_PATH)
@twilio_signed
def call_words() -> Response:
    found = _call()
    if isinstance(found, Response):
        return found
    call = found
    _record_progress(call)
    from alerts.models import Alert, AlertStatus

    alert = db.session.get_one(Alert, call.alert_id)
    db.session.commit()
    if alert.status != AlertStatus.OPEN:
        response = VoiceResponse()
        _say(response, voice_texts.not_open(call.language, alert.code), call.language)
        response.hangup()
        return _twiml(response)
    return _twiml(_menu(call, menu="main", intro=call.script))


@webhooks_voice.post(calls.GATHER_PATH)
@twilio_signed
def call_keys() -> Response:
    found = _call()
    if isinstance(found, Response):
        return found
    call = found
    menu = request.args.get("menu", "")
    if menu not in ("main", "reason"):
        return error_response(400, "invalid", "menu: expected main or reason", field="menu")
    digits = request.form.get("Digits", "")[:8]
    _record_progress(call)
    if menu == "main" and digits == "2":
        db.session.commit()
        return _twiml(_menu(call, menu="reason"))
    reason = calls.reason_for_digit(digits) if menu == "reason" else None
    if (menu == "main" and digits != "1") or (menu == "reason" and reason is None):
        db.session.commit()
        return _twiml(_menu(call, menu=menu))  # a key that means nothing: ask again
    outcome = calls.answer_by_keypress(
        db.session,
        call=call,
        accept=menu == "main",
        reason=reason,
        digits=digits,
        handler=_handlers().reply,
        now=clock.now(),
    )
    db.session.commit()
    response = VoiceResponse()
    _say(response, outcome.text, call.language)
    response.hangup()
    return _twiml(response)


@webhooks_voice.post(calls.STATUS_PATH)
@twilio_signed
def call_status() -> Response:
    found = _call()
    if isinstance(found, Response):
        return found
    error_code = request.form.get("ErrorCode", "")
    calls.apply_call_status(
        db.session,
        call_id=found.id,
        provider_id=request.form.get("CallSid", ""),
        provider_status=request.form.get("CallStatus", ""),
        error_code=int(error_code) if error_code.isdecimal() else None,
        now=clock.now(),
        on_call=_handlers().call,
    )
    db.session.commit()
    return Response("", status=200, mimetype="text/plain")


def init_app(app: Flask, api: Api, csrf: CSRFProtect) -> None:
    """Register the voice webhooks (Twilio signs its requests: no CSRF token) and describe
    them in the OpenAPI document."""
    app.register_blueprint(webhooks_voice)
    csrf.exempt(webhooks_voice)
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    form = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
    parameters = [
        {
            "in": "header",
            "name": "X-Twilio-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "HMAC of PUBLIC_BASE_URL + path + query and the form, by the auth token",
        },
        {"in": "query", "name": "call", "required": True, "schema": {"type": "integer"}},
    ]
    for path, summary, ok in (
        (calls.TWIML_PATH, "A call's words: the spoken pre-alert and the menu", "TwiML"),
        (calls.GATHER_PATH, "Keys pressed on a call: 1 accept, 2 decline, then a reason", "TwiML"),
        (calls.STATUS_PATH, "Call status callbacks (never backwards)", "recorded"),
    ):
        extra = (
            [
                {
                    "in": "query",
                    "name": "menu",
                    "required": True,
                    "schema": {"type": "string", "enum": ["main", "reason"]},
                }
            ]
            if path == calls.GATHER_PATH
            else []
        )
        api.spec.path(
            rule=rules[path],
            operations={
                "post": {
                    "summary": summary,
                    "security": [],
                    "parameters": parameters + extra,
                    "requestBody": {"content": form},
                    "responses": {
                        "200": {"description": ok},
                        "400": {"description": "a bad call id or menu, naming the field"},
                        "403": {"description": "missing or wrong signature"},
                        "404": {"description": "no such call"},
                    },
                }
            },
        )
