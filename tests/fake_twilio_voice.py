"""A fake Twilio Voice on 127.0.0.1, for tests of the real SDK's calls and of our TwiML.

The REST side speaks the Calls API as the SDK sends it: ``POST
/2010-04-01/Accounts/{sid}/Calls.json`` (Basic auth; ``To``, ``From``, ``Url``, ``Method``,
``StatusCallback``, ``StatusCallbackEvent`` repeated, ``Timeout``) answers 201 with a call in
Twilio's shape; ``GET .../Calls.json?To=…`` lists them, newest first. It records every call and
fails on demand (HTTP 500 for the next N, 400 code 21217 for chosen numbers) or is slow
(``delay``).

The phone side plays the callee: :meth:`FakeTwilioVoice.pick_up` posts the status callbacks,
fetches the call's TwiML from its ``Url`` (signed with the auth token as Twilio signs:
:class:`twilio.request_validator.RequestValidator`), parses the XML, "hears" the ``<Say>``
texts and "presses keys" by posting ``Digits`` to each ``<Gather action>``;
:meth:`no_answer` and :meth:`busy` end a call unanswered. Requests to the app go through
``deliver`` (the test's Flask client), so the app's own clock and database apply.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import itertools
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fake_twilio import FakeTwilio

#: (url, form, headers) → (HTTP status, body): how the fake reaches the app under test.
Deliver = Callable[[str, dict[str, str], dict[str, str]], tuple[int, str]]


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    url: str
    method: str
    status_callback: str
    events: list[str]
    timeout: int
    created: dt.datetime
    status: str = "queued"


@dataclass
class Heard:
    """One TwiML document the callee heard: its spoken texts, the gather it ends on."""

    status: int
    xml: str
    says: list[str]
    gather_action: str | None
    hangup: bool


def parse_twiml(status: int, text: str) -> Heard:
    if status != 200:
        return Heard(status, text, [], None, False)
    root = ET.fromstring(text)
    assert root.tag == "Response", text
    says = [el.text or "" for el in root.iter("Say")]
    gathers = list(root.iter("Gather"))
    action = gathers[0].get("action") if gathers else None
    return Heard(status, text, says, action, root.find("Hangup") is not None)


@dataclass
class FakeTwilioVoice:
    account_sid: str = "AC" + "1" * 32
    auth_token: str = "fake-voice-token"
    base_url: str = ""
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    deliver: Deliver | None = None
    calls: list[FakeCall] = field(default_factory=list)
    invalid_numbers: set[str] = field(default_factory=set)
    requests: int = 0
    #: seconds each new call takes to be accepted (a kill test's window between the provider
    #: taking a call and the worker recording it)
    delay: float = 0.0
    _errors_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, count: int) -> None:
        with self._lock:
            self._errors_left = count

    def to(self, phone: str) -> list[FakeCall]:
        return [call for call in self.calls if call.to == phone]

    # --- the REST API -----------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["2010-04-01", "Accounts"] or parts[3] != "Calls.json":
            return _json({"code": 20404, "message": "not found", "status": 404}, 404)
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if request.headers.get("Authorization") != expected or parts[2] != self.account_sid:
            return _json({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if request.method == "GET":
            return self._list(request, parts[2])
        with self._lock:
            self.requests += 1
            error = self._errors_left > 0
            self._errors_left -= int(error)
        if error:
            return _json({"code": 20500, "message": "Internal Server Error", "status": 500}, 500)
        if self.delay:
            time.sleep(self.delay)
        form = request.form
        to = form.get("To", "")
        if to in self.invalid_numbers:
            return _json(
                {"code": 21217, "message": "Phone number does not appear valid", "status": 400},
                400,
            )
        if not to or not form.get("From") or not (form.get("Url") or form.get("Twiml")):
            return _json({"code": 21205, "message": "Url is required", "status": 400}, 400)
        call = FakeCall(
            sid=f"CA{next(self._sids):032x}",
            to=to,
            from_=form.get("From", ""),
            url=form.get("Url", ""),
            method=form.get("Method", "POST"),
            status_callback=form.get("StatusCallback", ""),
            events=form.getlist("StatusCallbackEvent"),
            timeout=int(form.get("Timeout", "60")),
            created=self.now(),
        )
        with self._lock:
            self.calls.append(call)
        return _json(self._shape(call), 201)

    def _shape(self, call: FakeCall) -> dict[str, object]:
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": email.utils.format_datetime(call.created, usegmt=True),
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }

    def _list(self, request: Request, account: str) -> Response:
        to, from_ = request.args.get("To"), request.args.get("From")
        with self._lock:
            found = [
                self._shape(c)
                for c in reversed(self.calls)
                if (to is None or c.to == to) and (from_ is None or c.from_ == from_)
            ]
        size = int(request.args.get("PageSize", "50"))
        uri = f"/2010-04-01/Accounts/{account}/Calls.json"
        return _json(
            {
                "calls": found[:size],
                "page": 0,
                "page_size": size,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": uri,
            },
            200,
        )

    # --- the phone ---------------------------------------------------------------------------

    def post(self, url: str, form: dict[str, str], *, sign: bool = True) -> tuple[int, str]:
        """POST ``form`` to the app at ``url``, signed as Twilio signs (unless told not to)."""
        assert self.deliver is not None, "set deliver to reach the app"
        headers = {}
        if sign:
            headers["X-Twilio-Signature"] = RequestValidator(self.auth_token).compute_signature(
                url, form
            )
        return self.deliver(url, form, headers)

    def _form(self, call: FakeCall, status: str, **extra: str) -> dict[str, str]:
        return {
            "CallSid": call.sid,
            "AccountSid": self.account_sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": status,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    def progress(self, call: FakeCall, status: str, event: str) -> int:
        """Post one status callback (when the call asked for ``event``)."""
        call.status = status
        if event not in call.events and event != "completed":
            return 0
        code, _ = self.post(call.status_callback, self._form(call, status))
        return code

    def pick_up(self, call: FakeCall, *, press: Sequence[str] = ()) -> list[Heard]:
        """Ring, pick up, listen, press ``press`` one key per menu, hang up; returns every
        TwiML document heard."""
        self.progress(call, "initiated", "initiated")
        self.progress(call, "ringing", "ringing")
        call.status = "in-progress"
        heard = [parse_twiml(*self.post(call.url, self._form(call, "in-progress")))]
        for key in press:
            action = heard[-1].gather_action
            assert action, f"no menu to press {key} in: {heard[-1].xml}"
            heard.append(
                parse_twiml(*self.post(action, self._form(call, "in-progress", Digits=key)))
            )
        self.progress(call, "completed", "completed")
        return heard

    def no_answer(self, call: FakeCall) -> None:
        self.progress(call, "initiated", "initiated")
        self.progress(call, "ringing", "ringing")
        self.progress(call, "no-answer", "completed")

    def busy(self, call: FakeCall) -> None:
        self.progress(call, "initiated", "initiated")
        self.progress(call, "busy", "completed")


def _json(body: dict[str, object], status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@contextmanager
def running_fake_twilio_voice() -> Iterator[FakeTwilioVoice]:
    """Serve a :class:`FakeTwilioVoice` on a random loopback port for the block."""
    fake = FakeTwilioVoice()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(timeout=5)


@contextmanager
def running_fake_twilio_sms_and_voice() -> Iterator[tuple[FakeTwilio, FakeTwilioVoice]]:
    """One fake Twilio account on one loopback port, as the real API is one host: messages
    go to a :class:`tests.fake_twilio.FakeTwilio`, calls to a :class:`FakeTwilioVoice`."""
    sms = FakeTwilio()
    voice = FakeTwilioVoice(account_sid=sms.account_sid, auth_token=sms.auth_token)

    def dispatch(environ: Any, start_response: Any) -> Any:
        calls = str(environ.get("PATH_INFO", "")).endswith("/Calls.json")
        return (voice if calls else sms)(environ, start_response)

    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    sms.base_url = voice.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield sms, voice
    finally:
        sms._release.set()
        server.shutdown()
        thread.join(timeout=5)
