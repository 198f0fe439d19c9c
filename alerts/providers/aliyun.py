"""Alibaba Cloud SMS (dysmsapi 2017-05-25) through the official SDK.

SendSms takes a signature, an approved template code and the template's variables as JSON; the
answer's ``Code`` is ``OK`` or a documented error code (a business refusal comes back as HTTP
200 with the code in the body; a signature or credential problem as an HTTP error the SDK
raises). QuerySendDetails lists what was sent to one number on one (Beijing) day, which is how a
worker that took over a dead worker's claim asks before sending again.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from alerts.providers.base import BEIJING, classify, mainland_digits
from alerts.sms_templates import TemplateBook
from alerts.sms_types import PermanentSmsError, SendResult, SmsError, TransientSmsError

DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"

# https://help.aliyun.com/document_detail/101346.html (SendSms error codes)
PERMANENT = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",  # not a valid mobile number
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
        "isv.PARAM_LENGTH_LIMIT",  # this message's variable is too long
        "isv.PARAM_NOT_SUPPORT_URL",
        "isv.BLACK_KEY_CONTROL_LIMIT",  # the number or the words are blocked
        "isv.DENY_IP_RANGE",
    }
)
# Limits and account or configuration problems: they hold for every number, so moving on to the
# next contact would not help; keep the message and retry while someone fixes it.
TRANSIENT = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",  # flow control: per number per minute/hour/day
        "isv.DAY_LIMIT_CONTROL",
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.ACCOUNT_ABNORMAL",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.INVALID_PARAMETERS",
        "isv.INVALID_JSON_PARAM",
        "isp.SYSTEM_ERROR",
        "isp.RAM_PERMISSION_DENY",
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "Throttling.User",
    }
)


def _classify(code: str, message: str) -> SmsError:
    return classify(
        code,
        message,
        permanent=PERMANENT,
        transient=TRANSIENT,
        transient_prefixes=("isp.", "Throttling", "ServiceUnavailable", "InternalError"),
    )


def _split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://127.0.0.1:8000`` → (``127.0.0.1:8000``, ``http``); a bare host is https."""
    if "://" in endpoint:
        scheme, host = endpoint.split("://", 1)
        return host.rstrip("/"), scheme
    return endpoint.rstrip("/"), "https"


class AliyunTransport:
    """Sends approved templates through Alibaba Cloud SMS."""

    name = "aliyun"

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        templates: TemplateBook,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 10.0,
    ) -> None:
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi import models as open_api_models

        templates.check_codes(self.name)
        host, scheme = _split_endpoint(endpoint or DEFAULT_ENDPOINT)
        self.sign_name = sign_name
        self.templates = templates
        self.timeout_ms = int(timeout * 1000)
        self.client = Client(
            open_api_models.Config(
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                endpoint=host,
                protocol=scheme,
            )
        )

    def _runtime(self) -> Any:
        from darabonba.runtime import RuntimeOptions

        # No SDK retries: the outbox retries with backoff, and reconciles before a resend.
        return RuntimeOptions(
            autoretry=False, read_timeout=self.timeout_ms, connect_timeout=self.timeout_ms
        )

    def _call(self, method: str, request: Any) -> Any:
        from darabonba.exceptions import DaraException, UnretryableException

        try:
            return getattr(self.client, method)(request, self._runtime())
        except UnretryableException as exc:  # refused connections, timeouts, resets
            raise TransientSmsError(f"Aliyun unreachable: {type(exc).__name__}") from exc
        except DaraException as exc:
            code = str(getattr(exc, "code", "") or "")
            if code and code != "None":
                raise _classify(code, str(getattr(exc, "message", "") or exc)) from exc
            raise TransientSmsError(f"Aliyun unreachable: {type(exc).__name__}") from exc
        except OSError as exc:  # sockets, TLS, timeouts below the SDK
            raise TransientSmsError(f"Aliyun unreachable: {type(exc).__name__}") from exc

    def rendered(self, *, body: str, purpose: str) -> tuple[str, dict[str, str], str]:
        """The template code, its variables and the text the reader will see."""
        template = self.templates.for_purpose(purpose)
        try:
            params = self.templates.params_for(template, body)
        except ValueError as exc:
            raise PermanentSmsError(str(exc)) from exc
        return template.codes[self.name], params, template.render(params, signature=self.sign_name)

    def send_message(
        self, *, to: str, body: str, purpose: str, status_callback: str | None
    ) -> SendResult:
        # Delivery receipts come through the account's push (HTTP callback) settings, not a
        # per-message URL, so ``status_callback`` has nothing to carry here.
        from alibabacloud_dysmsapi20170525 import models

        code, params, _text = self.rendered(body=body, purpose=purpose)
        # Our own id travels as OutId: QuerySendDetails and the receipts both return it, and
        # QuerySendDetails does not return the BizId, so it is the one key of the message.
        out_id = uuid.uuid4().hex
        response = self._call(
            "send_sms_with_options",
            models.SendSmsRequest(
                phone_numbers=mainland_digits(to),
                sign_name=self.sign_name,
                template_code=code,
                template_param=json.dumps(params, ensure_ascii=False),
                out_id=out_id,
            ),
        )
        answer = response.body
        if answer is None or answer.code != "OK":
            raise _classify(
                str(getattr(answer, "code", "") or "Unknown"),
                str(getattr(answer, "message", "")),
            )
        return SendResult(provider_id=out_id, status="sent")

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """A message of no known purpose: the ``notice`` template carries it."""
        return self.send_message(to=to, body=body, purpose="", status_callback=status_callback)

    def find_message(self, *, to: str, body: str, purpose: str, now: dt.datetime) -> str | None:
        """The BizId of a message to ``to`` with exactly these words, sent today or yesterday
        (Beijing dates; QuerySendDetails asks one day at a time)."""
        from alibabacloud_dysmsapi20170525 import models

        _code, _params, text = self.rendered(body=body, purpose=purpose)
        today = now.astimezone(BEIJING).date()
        for day in (today, today - dt.timedelta(days=1)):
            response = self._call(
                "query_send_details_with_options",
                models.QuerySendDetailsRequest(
                    phone_number=mainland_digits(to),
                    send_date=day.strftime("%Y%m%d"),
                    page_size=50,
                    current_page=1,
                ),
            )
            answer = response.body
            if answer is None or answer.code != "OK":
                raise TransientSmsError(f"Aliyun QuerySendDetails: {getattr(answer, 'code', '')}")
            details = answer.sms_send_detail_dtos
            for detail in getattr(details, "sms_send_detail_dto", None) or []:
                if detail.content == text and detail.out_id:
                    return str(detail.out_id)
        return None
