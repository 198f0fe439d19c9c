"""Tencent Cloud SMS (sms 2021-01-11) through the official SDK (TC3-HMAC-SHA256 signing).

SendSms takes the SDK app id, the signature, an approved template id and the variables as a
list in template order; each number gets its own status in ``SendStatusSet`` (``Code`` ``Ok``
or a documented error code), a whole-request failure is an SDK exception with the code.
PullSmsSendStatusByPhoneNumber lists the receipts for one number, each with the
``SessionContext`` we sent, which is how a worker that took over a dead worker's claim asks
before sending again. It only sees messages the carrier has reported on: one accepted seconds
ago and not yet reported is not found, and may then be sent a second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from alerts.providers.base import classify
from alerts.sms_templates import TemplateBook
from alerts.sms_types import PermanentSmsError, SendResult, SmsError, TransientSmsError

DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
DEFAULT_REGION = "ap-guangzhou"

# https://cloud.tencent.com/document/product/382/52075 (SMS error codes)
PERMANENT = frozenset(
    {
        "FailedOperation.PhoneNumberInBlacklist",
        "FailedOperation.PhoneNumberParseFail",
        "FailedOperation.ContainSensitiveWord",
        "FailedOperation.MissingTemplateToModify",
        "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        "UnsupportedOperation.UnsupportedRegion",
        "MissingParameter.EmptyPhoneNumberSet",
    }
)
TRANSIENT = frozenset(
    {
        "FailedOperation.InsufficientBalanceInSmsPackage",
        "FailedOperation.SignatureIncorrectOrUnapproved",
        "FailedOperation.TemplateIncorrectOrUnapproved",
        "FailedOperation.JsonParseFail",
        "RequestLimitExceeded",
        "ClientNetworkError",
        "ServerNetworkError",
    }
)


def _classify(code: str, message: str) -> SmsError:
    return classify(
        code,
        message,
        permanent=PERMANENT,
        transient=TRANSIENT,
        permanent_prefixes=("InvalidParameterValue.", "InvalidParameter."),
        transient_prefixes=("LimitExceeded.", "InternalError", "AuthFailure", "Unauthorized"),
    )


def session_context(to: str, text: str) -> str:
    """What we send as ``SessionContext``: a digest of the number and the words (no words, no
    number: the receipts that carry it back are logged by the provider)."""
    return hashlib.sha256(f"{to}\n{text}".encode()).hexdigest()[:32]


class TencentTransport:
    """Sends approved templates through Tencent Cloud SMS."""

    name = "tencent"

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        templates: TemplateBook,
        endpoint: str = DEFAULT_ENDPOINT,
        region: str = DEFAULT_REGION,
        timeout: float = 10.0,
    ) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import sms_client

        templates.check_codes(self.name)
        scheme, host = "https", endpoint or DEFAULT_ENDPOINT
        if "://" in host:
            scheme, host = host.split("://", 1)
        http = HttpProfile(
            protocol=scheme, endpoint=host.rstrip("/"), reqTimeout=max(1, int(timeout + 0.999))
        )
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.templates = templates
        self.client = sms_client.SmsClient(
            credential.Credential(secret_id, secret_key),
            region or DEFAULT_REGION,
            ClientProfile(httpProfile=http),
        )

    def _call(self, method: str, request: Any) -> Any:
        import requests
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )

        try:
            return getattr(self.client, method)(request)
        except TencentCloudSDKException as exc:
            raise _classify(str(exc.code or "Unknown"), str(exc.message or "")) from exc
        except (requests.RequestException, OSError) as exc:
            raise TransientSmsError(f"Tencent unreachable: {type(exc).__name__}") from exc

    def rendered(self, *, body: str, purpose: str) -> tuple[str, list[str], str]:
        """The template id, its variables in order and the text the reader will see."""
        template = self.templates.for_purpose(purpose)
        try:
            params = self.templates.params_for(template, body)
        except ValueError as exc:
            raise PermanentSmsError(str(exc)) from exc
        values = [params[name] for name in template.variables]
        return template.codes[self.name], values, template.render(params, signature=self.sign_name)

    def send_message(
        self, *, to: str, body: str, purpose: str, status_callback: str | None
    ) -> SendResult:
        # Receipts come through the application's callback settings, not a per-message URL.
        from tencentcloud.sms.v20210111 import models

        template_id, values, text = self.rendered(body=body, purpose=purpose)
        request = models.SendSmsRequest()
        request.PhoneNumberSet = [to]
        request.SmsSdkAppId = self.sdk_app_id
        request.SignName = self.sign_name
        request.TemplateId = template_id
        request.TemplateParamSet = values
        request.SessionContext = session_context(to, text)
        response = self._call("SendSms", request)
        statuses = response.SendStatusSet or []
        if len(statuses) != 1:
            raise TransientSmsError(f"Tencent answered {len(statuses)} statuses for one number")
        status = statuses[0]
        if str(status.Code) != "Ok":
            raise _classify(str(status.Code), str(status.Message or ""))
        return SendResult(provider_id=str(status.SerialNo), status="sent")

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        """A message of no known purpose: the ``notice`` template carries it."""
        return self.send_message(to=to, body=body, purpose="", status_callback=status_callback)

    def find_message(self, *, to: str, body: str, purpose: str, now: dt.datetime) -> str | None:
        """The SerialNo of a reported message to ``to`` with these words in the last two days."""
        from tencentcloud.sms.v20210111 import models

        _id, _values, text = self.rendered(body=body, purpose=purpose)
        wanted = session_context(to, text)
        request = models.PullSmsSendStatusByPhoneNumberRequest()
        request.BeginTime = int((now - dt.timedelta(days=2)).timestamp())
        request.EndTime = int(now.timestamp()) + 60
        request.Offset = 0
        request.Limit = 100
        request.PhoneNumber = to
        request.SmsSdkAppId = self.sdk_app_id
        response = self._call("PullSmsSendStatusByPhoneNumber", request)
        for status in response.PullSmsSendStatusSet or []:
            if status.SessionContext == wanted:
                return str(status.SerialNo)
        return None
