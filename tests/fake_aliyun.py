"""A fake Alibaba Cloud SMS API (dysmsapi 2017-05-25) on 127.0.0.1, for tests of the real SDK.

Speaks the API as the SDK sends it: RPC actions named by ``x-acs-action`` with the parameters
in the query string, signed with ACS3-HMAC-SHA256, which the fake recomputes from the request
and the secret (a wrong secret or a tampered request is refused as Aliyun does, HTTP 400
``SignatureDoesNotMatch``). Implements SendSms and QuerySendDetails, records every message with
the text the reader would see, builds the push payloads (SmsReport, SmsUp) the real service
would post to our callback URLs, and fails on demand with any documented code.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class AliyunSms:
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    content: str
    out_id: str
    biz_id: str


@dataclass
class FakeAliyun:
    access_key_id: str = "LTAI-fake-key"
    access_key_secret: str = "fake-secret"
    templates: dict[str, str] = field(default_factory=dict)  # code → text with ${name}
    messages: list[AliyunSms] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each refused request was refused
    business_errors: dict[str, str] = field(default_factory=dict)  # phone → code, every time
    endpoint: str = ""
    _next_codes: list[str] = field(default_factory=list)
    _server_errors_left: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, count: int = 1, *, code: str = "isv.BUSINESS_LIMIT_CONTROL") -> None:
        """Answer the next ``count`` SendSms with ``code`` (HTTP 200, as Aliyun does)."""
        with self._lock:
            self._next_codes.extend([code] * count)

    def recover(self) -> None:
        """Forget every failure asked for: the next requests succeed."""
        with self._lock:
            self._next_codes.clear()
            self._server_errors_left = 0

    def down_for(self, count: int) -> None:
        """Answer HTTP 503 ``ServiceUnavailable`` to the next ``count`` requests."""
        with self._lock:
            self._server_errors_left = count

    def to(self, phone: str) -> list[AliyunSms]:
        digits = phone.lstrip("+")
        return [m for m in self.messages if m.phone == digits]

    # --- push payloads: what Aliyun posts to the callback URLs --------------------------------

    def report(self, sms: AliyunSms, *, success: bool = True, err_code: str = "DELIVERED") -> Any:
        """An SmsReport push (a JSON array, as the HTTP batch push sends it)."""
        return [
            {
                "phone_number": sms.phone.removeprefix("86"),
                "send_time": "2026-12-03 21:00:00",
                "report_time": "2026-12-03 21:00:05",
                "success": success,
                "err_code": err_code,
                "err_msg": "用户接收成功" if success else "失败",
                "sms_size": "1",
                "biz_id": sms.biz_id,
                "out_id": sms.out_id,
            }
        ]

    def reply(self, phone: str, content: str, *, sequence_id: int) -> Any:
        """An SmsUp push: an upstream message (reply) from ``phone``."""
        return [
            {
                "phone_number": phone.removeprefix("+86"),
                "send_time": "2026-12-03 21:01:00",
                "content": content,
                "sign_name": "绿色通道",
                "dest_code": "1234",
                "sequence_id": sequence_id,
            }
        ]

    # --- the API -----------------------------------------------------------------------------

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            if self._server_errors_left > 0:
                self._server_errors_left -= 1
                return _json({"Code": "ServiceUnavailable", "Message": "try later"}, 503)
        problem = self._check_signature(request)
        if problem:
            with self._lock:
                self.refused.append(problem)
            return _json({"Code": "SignatureDoesNotMatch", "Message": problem}, 400)
        query = dict(parse_qsl(request.query_string.decode(), keep_blank_values=True))
        action = request.headers.get("x-acs-action", "")
        if action == "SendSms":
            return self._send(query)
        if action == "QuerySendDetails":
            return self._query(query)
        return _json({"Code": "InvalidAction.NotFound", "Message": action}, 404)

    def _check_signature(self, request: Request) -> str:
        auth = request.headers.get("Authorization", "")
        match = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]+)",
            auth,
        )
        if not match:
            return "no ACS3-HMAC-SHA256 authorization"
        key_id, signed, signature = match.groups()
        if key_id != self.access_key_id:
            return "unknown AccessKeyId"
        body_hash = hashlib.sha256(request.get_data()).hexdigest()
        if request.headers.get("x-acs-content-sha256") != body_hash:
            return "x-acs-content-sha256 does not match the body"
        pairs = parse_qsl(request.query_string.decode(), keep_blank_values=True)
        query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs)
        )
        names = signed.split(";")
        headers = "".join(f"{n}:{request.headers.get(n, '').strip()}\n" for n in names)
        canonical = "\n".join([request.method, request.path, query, headers, signed, body_hash])
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(
            self.access_key_secret.encode(), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "signature does not match"
        return ""

    def _send(self, query: Mapping[str, str]) -> Response:
        phone = query.get("PhoneNumbers", "")
        code = query.get("TemplateCode", "")
        with self._lock:
            failure = self._next_codes.pop(0) if self._next_codes else None
            failure = failure or self.business_errors.get(phone)
            if failure:
                return _json({"Code": failure, "Message": "fake failure", "RequestId": "r"})
            if code not in self.templates:
                return _json({"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": code})
            params = json.loads(query.get("TemplateParam") or "{}")
            text = re.sub(r"\$\{(\w+)\}", lambda m: str(params[m.group(1)]), self.templates[code])
            sms = AliyunSms(
                phone=phone,
                sign_name=query.get("SignName", ""),
                template_code=code,
                params=params,
                content=f"【{query.get('SignName', '')}】{text}",
                out_id=query.get("OutId", ""),
                biz_id=f"{next(self._ids):06d}^0",
            )
            self.messages.append(sms)
        return _json({"Code": "OK", "Message": "OK", "BizId": sms.biz_id, "RequestId": "r"})

    def _query(self, query: Mapping[str, str]) -> Response:
        phone = query.get("PhoneNumber", "")
        with self._lock:
            found = [m for m in self.messages if m.phone == phone]
        details = [
            {
                "PhoneNum": m.phone,
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "TemplateCode": m.template_code,
                "Content": m.content,
                "SendDate": "2026-12-03 21:00:00",
                "ReceiveDate": "2026-12-03 21:00:05",
                "OutId": m.out_id,
            }
            for m in found
        ]
        return _json(
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": "r",
                "TotalCount": str(len(details)),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
            }
        )


def _json(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status, mimetype="application/json")


@contextmanager
def running_fake_aliyun(templates: Mapping[str, str] | None = None) -> Iterator[FakeAliyun]:
    fake = FakeAliyun(templates=dict(templates or {}))
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.endpoint = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(timeout=5)
