"""A fake Twilio REST API on 127.0.0.1, for tests of the real SDK transport.

Implements ``POST /2010-04-01/Accounts/{sid}/Messages.json`` with Basic auth, answers in
Twilio's shape, records every request, and misbehaves on demand: HTTP 500 for the next N
requests, hang past the client's timeout, 400 with code 21211 for chosen numbers.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class FakeRequest:
    account_sid: str
    authorised: bool
    form: dict[str, str]
    answered: int


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "fake-auth-token"
    requests: list[FakeRequest] = field(default_factory=list)
    invalid_numbers: set[str] = field(default_factory=set)
    created: list[dict[str, object]] = field(default_factory=list)
    base_url: str = ""
    _errors_left: int = 0
    _hangs_left: int = 0
    _hang_seconds: float = 0.0
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, count: int) -> None:
        """Answer HTTP 500 to the next ``count`` requests."""
        with self._lock:
            self._errors_left = count

    def hang_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` requests for ``seconds`` (or until the server stops)."""
        with self._lock:
            self._hangs_left, self._hang_seconds = count, seconds

    @property
    def messages(self) -> list[dict[str, str]]:
        """The form of every message this server accepted (answered 201)."""
        return [r.form for r in self.requests if r.answered == 201]

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts[-1:] == ["Messages.json"]:
            return self._list(request, parts)
        if (
            request.method != "POST"
            or len(parts) != 4
            or parts[:2] != ["2010-04-01", "Accounts"]
            or parts[3] != "Messages.json"
        ):
            return _json({"code": 20404, "message": "not found", "status": 404}, 404)
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        authorised = request.headers.get("Authorization") == expected and parts[2] == (
            self.account_sid
        )
        form = {key: request.form[key] for key in request.form}
        with self._lock:
            error = self._errors_left > 0
            self._errors_left -= int(error)
            hang = self._hangs_left > 0 and not error
            self._hangs_left -= int(hang)
        if hang:
            self._release.wait(self._hang_seconds)
        status, body = self._answer(authorised, error, form)
        with self._lock:
            self.requests.append(FakeRequest(parts[2], authorised, form, status))
        return _json(body, status)

    def _list(self, request: Request, parts: list[str]) -> Response:
        """``GET .../Messages.json?To=…``: the accepted messages to that number, newest first."""
        to = request.args.get("To")
        with self._lock:
            found = [m for m in reversed(self.created) if to is None or m["to"] == to]
        size = int(request.args.get("PageSize", "50"))
        uri = f"/2010-04-01/Accounts/{parts[2]}/Messages.json"
        return _json(
            {
                "messages": found[:size],
                "page": 0,
                "page_size": size,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": uri,
            },
            200,
        )

    def _answer(
        self, authorised: bool, error: bool, form: dict[str, str]
    ) -> tuple[int, dict[str, object]]:
        if not authorised:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if error:
            return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}
        if form.get("To") in self.invalid_numbers:
            return 400, {
                "code": 21211,
                "message": f"The 'To' number {form['To']} is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            }
        if not form.get("To") or not (form.get("From") or form.get("MessagingServiceSid")):
            return 400, {"code": 21603, "message": "A 'From' number is required.", "status": 400}
        sid = f"SM{next(self._sids):032x}"
        created: dict[str, object] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form["To"],
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.created.append(created)
        return 201, created


def _json(body: dict[str, object], status: int) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@contextmanager
def running_fake_twilio() -> Iterator[FakeTwilio]:
    """Serve a :class:`FakeTwilio` on a random loopback port for the duration of the block."""
    fake = FakeTwilio()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake._release.set()
        server.shutdown()
        thread.join(timeout=5)
