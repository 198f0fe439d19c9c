"""A fake Tencent Cloud SMS API (sms 2021-01-11) on 127.0.0.1, for tests of the real SDK.

Speaks the API as the SDK sends it: a JSON POST to ``/`` with the action in ``X-TC-Action``,
signed with TC3-HMAC-SHA256, which the fake recomputes from the request and the secret key (a
wrong key or a tampered body is refused with ``AuthFailure.SignatureFailure``). Implements
SendSms and PullSmsSendStatusByPhoneNumber, records every message with the text the reader would
see, builds the callback payloads (状态回执, 回复短信) the real service would post to our URLs,
and fails on demand with any documented code.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class TencentSms:
    phone: str
    sign_name: str
    template_id: str
    params: list[str]
    content: str
    session_context: str
    serial_no: str


@dataclass
class FakeTencent:
    secret_id: str = "AKID-fake"
    secret_key: str = "fake-secret-key"
    sdk_app_id: str = "1400000000"
    templates: dict[str, str] = field(default_factory=dict)  # id → text with {1}, {2}
    messages: list[TencentSms] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    number_errors: dict[str, str] = field(default_factory=dict)  # phone → code, every time
    endpoint: str = ""
    _next_codes: list[str] = field(default_factory=list)
    _request_errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(
        self, count: int = 1, *, code: str = "LimitExceeded.PhoneNumberDailyLimit"
    ) -> None:
        """The next ``count`` numbers get ``code`` in their SendStatus (the request succeeds)."""
        with self._lock:
            self._next_codes.extend([code] * count)

    def fail_requests(self, count: int, *, code: str = "InternalError.Timeout") -> None:
        """The next ``count`` requests fail as a whole with ``code``."""
        with self._lock:
            self._request_errors.extend([code] * count)

    def to(self, phone: str) -> list[TencentSms]:
        return [m for m in self.messages if m.phone == phone]

    # --- callback payloads -------------------------------------------------------------------

    def report(self, sms: TencentSms, *, ok: bool = True) -> Any:
        """A 状态回执 (delivery receipt) callback: a JSON array."""
        return [
            {
                "user_receive_time": "2026-12-03 21:00:05",
                "nationcode": "86",
                "mobile": sms.phone.removeprefix("+86"),
                "report_status": "SUCCESS" if ok else "FAIL",
                "errmsg": "DELIVRD" if ok else "MK:0001",
                "description": "用户短信送达成功" if ok else "失败",
                "sid": sms.serial_no,
                "ext": {"context": sms.session_context},
            }
        ]

    def reply(self, phone: str, text: str, *, at: int) -> Any:
        """A 回复短信 (reply) callback: one JSON object."""
        return {
            "extend": "",
            "mobile": phone.removeprefix("+86"),
            "nationcode": "86",
            "sign": "绿色通道",
            "text": text,
            "time": at,
        }

    # --- the API -----------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        problem = self._check_signature(request)
        if problem:
            with self._lock:
                self.refused.append(problem)
            return _error("AuthFailure.SignatureFailure", problem)
        action = request.headers.get("X-TC-Action", "")
        body = json.loads(request.get_data() or b"{}")
        with self._lock:
            if self._request_errors:
                return _error(self._request_errors.pop(0), "fake failure")
        if body.get("SmsSdkAppId") != self.sdk_app_id:
            return _error("FailedOperation.MissingSignatureList", "unknown SmsSdkAppId")
        if action == "SendSms":
            return self._send(body)
        if action == "PullSmsSendStatusByPhoneNumber":
            return self._pull(body)
        return _error("InvalidAction", action)

    def _check_signature(self, request: Request) -> str:
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/(\w+)/tc3_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]+)",
            request.headers.get("Authorization", ""),
        )
        if not match:
            return "no TC3-HMAC-SHA256 authorization"
        secret_id, date, service, signed, signature = match.groups()
        if secret_id != self.secret_id:
            return "unknown SecretId"
        timestamp = request.headers.get("X-TC-Timestamp", "0")
        if abs(int(timestamp) - time.time()) > 300:
            return "request too old"
        headers = "".join(f"{name}:{request.headers.get(name, '')}\n" for name in signed.split(";"))
        payload_hash = hashlib.sha256(request.get_data()).hexdigest()
        canonical = f"{request.method}\n{request.path}\n\n{headers}\n{signed}\n{payload_hash}"
        scope = f"{date}/{service}/tc3_request"
        to_sign = (
            f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n"
            + hashlib.sha256(canonical.encode()).hexdigest()
        )

        def sign(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = sign(sign(sign(("TC3" + self.secret_key).encode(), date), service), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "signature does not match"
        return ""

    def _send(self, body: Mapping[str, Any]) -> Response:
        statuses = []
        template_id = str(body.get("TemplateId", ""))
        params = [str(p) for p in body.get("TemplateParamSet") or []]
        with self._lock:
            if template_id not in self.templates:
                return _error("FailedOperation.TemplateIncorrectOrUnapproved", template_id)
            for phone in body.get("PhoneNumberSet") or []:
                failure = self._next_codes.pop(0) if self._next_codes else None
                failure = failure or self.number_errors.get(phone)
                serial = f"2433:{next(self._ids):010d}"
                if failure:
                    statuses.append(_status(serial, phone, failure, body))
                    continue
                text = re.sub(
                    r"\{(\d+)\}", lambda m: params[int(m.group(1)) - 1], self.templates[template_id]
                )
                self.messages.append(
                    TencentSms(
                        phone=phone,
                        sign_name=str(body.get("SignName", "")),
                        template_id=template_id,
                        params=params,
                        content=f"【{body.get('SignName', '')}】{text}",
                        session_context=str(body.get("SessionContext", "")),
                        serial_no=serial,
                    )
                )
                statuses.append(_status(serial, phone, "Ok", body))
        return _json({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})

    def _pull(self, body: Mapping[str, Any]) -> Response:
        phone = str(body.get("PhoneNumber", ""))
        with self._lock:
            found = [m for m in self.messages if m.phone == phone]
        rows = [
            {
                "UserReceiveTime": int(time.time()),
                "CountryCode": "86",
                "SubscriberNumber": m.phone.removeprefix("+86"),
                "PhoneNumber": m.phone,
                "SerialNo": m.serial_no,
                "ReportStatus": "SUCCESS",
                "Description": "用户短信送达成功",
                "SessionContext": m.session_context,
            }
            for m in found
        ]
        return _json({"Response": {"PullSmsSendStatusSet": rows, "RequestId": "r"}})


def _status(serial: str, phone: str, code: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "SerialNo": serial if code == "Ok" else "",
        "PhoneNumber": phone,
        "Fee": 1 if code == "Ok" else 0,
        "SessionContext": body.get("SessionContext", ""),
        "Code": code,
        "Message": "send success" if code == "Ok" else "fake failure",
        "IsoCode": "CN",
    }


def _error(code: str, message: str) -> Response:
    return _json({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "r"}})


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status, mimetype="application/json")


@contextmanager
def running_fake_tencent(templates: Mapping[str, str] | None = None) -> Iterator[FakeTencent]:
    fake = FakeTencent(templates=dict(templates or {}))
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.endpoint = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(timeout=5)
