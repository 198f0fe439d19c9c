"""Templates for the domestic SMS providers: which approved template carries which message.

Alibaba Cloud SMS and Tencent Cloud SMS send only templates a region filed and had approved,
with named (Aliyun) or numbered (Tencent) variables. Our messages are composed by
:mod:`alerts.messages` like every other SMS (and kept within our segment rules); each outbox
purpose maps to one template, and the composed words travel in its ``content`` variable, so the
words, the reply grammar and the privacy rules stay one definition for every provider.

The templates file (``alerts/data/sms_templates.yaml``, or the region's copy named by
``SMS_TEMPLATES_FILE``) is read and checked at start: every template within the provider's
documented limits, every template with a code for the provider in use. ``python -m
alerts.sms_templates [FILE]`` prints the templates to file, in each provider's notation.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alerts.sms_types import SmsConfigError

DEFAULT_FILE = Path(__file__).parent / "data" / "sms_templates.yaml"
PROVIDERS = ("aliyun", "tencent")
FALLBACK_KIND = "notice"

_VARIABLE = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
# The signature sits in 【】 before the text; neither bracket may appear anywhere else.
_BRACKETED = re.compile(r"【([^】]*)】")


@dataclass(frozen=True)
class ProviderLimits:
    total_max: int
    variable_max: int | None


@dataclass(frozen=True)
class Template:
    kind: str
    text: str
    params: Mapping[str, int]
    purposes: tuple[str, ...]
    codes: Mapping[str, str]

    @property
    def variables(self) -> list[str]:
        """The variables in the order they appear (Tencent numbers them that way)."""
        return _VARIABLE.findall(self.text)

    def tencent_text(self) -> str:
        order = {name: i + 1 for i, name in enumerate(self.variables)}
        return _VARIABLE.sub(lambda m: "{" + str(order[m.group(1)]) + "}", self.text)

    def render(self, params: Mapping[str, str], *, signature: str) -> str:
        """The SMS as the reader sees it: ``【signature】`` then the filled template."""
        return f"【{signature}】" + _VARIABLE.sub(lambda m: params[m.group(1)], self.text)


@dataclass(frozen=True)
class TemplateBook:
    templates: Mapping[str, Template]
    limits: Mapping[str, ProviderLimits]
    source: str

    def for_purpose(self, purpose: str) -> Template:
        for template in self.templates.values():
            if purpose in template.purposes:
                return template
        return self.templates[FALLBACK_KIND]

    def params_for(self, template: Template, body: str) -> dict[str, str]:
        """The template's variables for one composed message.

        Providers refuse a link inside a variable, so the pre-alert's one-time link
        (``…/l/<token>``) leaves ``content``: its token goes into the ``token`` variable of a
        template that has one (the region files its own fixed address before it), and is
        dropped otherwise (the reply grammar still answers the offer). Raises
        :class:`ValueError` when a variable is longer than declared: the provider would refuse
        it, and a shortened pre-alert could lose how to answer."""
        content, token = split_link(provider_safe(body))
        params = {"content": content}
        if "token" in template.params:
            params["token"] = token
        for name, value in params.items():
            limit = template.params[name]
            if len(value) > limit:
                raise ValueError(
                    f"{name} of {len(value)} characters; template {template.kind!r} "
                    f"takes at most {limit}"
                )
        return params

    def check_codes(self, provider: str) -> None:
        """Every template has a code for ``provider`` (after approval), or a clear error."""
        missing = [kind for kind, t in self.templates.items() if not t.codes.get(provider)]
        if missing:
            raise SmsConfigError(
                f"SMS_BACKEND={provider}: {self.source} has no {provider} template code for "
                + ", ".join(missing)
                + " (file the templates, then enter the codes the provider gave you)"
            )


_LINK = re.compile(r"(?:[。.]\s*(?:Case:\s*)?|\s+)?https?://\S+/l/([A-Za-z0-9_-]+)\s*$")


def split_link(text: str) -> tuple[str, str]:
    """``(words, token)``: the message without its trailing one-time link, and the link's token
    ("" when there is none)."""
    match = _LINK.search(text)
    if match is None:
        return text, ""
    return text[: match.start()].rstrip(), match.group(1)


def provider_safe(body: str) -> str:
    """The composed message as a variable value: the service's own tag goes (the signature
    names the service) and other 【…】 tags, which providers refuse, become ``…：``."""
    text = body.strip()
    text = re.sub(r"^【绿色通道】", "", text)
    return _BRACKETED.sub(lambda m: m.group(1) + "：", text)


def _fail(source: str, where: str, problem: str) -> SmsConfigError:
    return SmsConfigError(f"{source}: {where}: {problem}")


def load_templates(path: str | Path | None = None) -> TemplateBook:
    """Read and check the templates file; :class:`SmsConfigError` names the template at fault."""
    file = Path(path) if path else DEFAULT_FILE
    source = str(file)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SmsConfigError(f"SMS_TEMPLATES_FILE {source} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise _fail(source, "file", "expected a mapping with 'providers' and 'templates'")
    limits = _limits(source, raw.get("providers"))
    templates = _templates(source, raw.get("templates"))
    for template in templates.values():
        _check(source, template, limits)
    return TemplateBook(templates=templates, limits=limits, source=source)


def _limits(source: str, raw: Any) -> dict[str, ProviderLimits]:
    if not isinstance(raw, dict):
        raise _fail(source, "providers", "expected a mapping of provider to limits")
    limits = {}
    for provider in PROVIDERS:
        entry = raw.get(provider)
        if not isinstance(entry, dict):
            raise _fail(source, f"providers.{provider}", "missing")
        total, variable = entry.get("total_max"), entry.get("variable_max")
        if not isinstance(total, int) or total <= 0:
            raise _fail(source, f"providers.{provider}.total_max", "a positive whole number")
        if variable is not None and (not isinstance(variable, int) or variable <= 0):
            raise _fail(source, f"providers.{provider}.variable_max", "a positive number or null")
        limits[provider] = ProviderLimits(total_max=total, variable_max=variable)
    return limits


def _templates(source: str, raw: Any) -> dict[str, Template]:
    if not isinstance(raw, dict) or FALLBACK_KIND not in raw:
        raise _fail(source, "templates", f"expected a mapping that includes {FALLBACK_KIND!r}")
    templates: dict[str, Template] = {}
    seen: dict[str, str] = {}
    for kind, entry in raw.items():
        where = f"templates.{kind}"
        if not isinstance(entry, dict):
            raise _fail(source, where, "expected a mapping")
        text, params = entry.get("text"), entry.get("params")
        purposes, codes = entry.get("purposes") or [], entry.get("codes") or {}
        if not isinstance(text, str) or not text.strip():
            raise _fail(source, f"{where}.text", "the template text is missing")
        if not isinstance(params, dict) or not all(
            isinstance(v, int) and v > 0 for v in params.values()
        ):
            raise _fail(source, f"{where}.params", "each variable needs a positive length")
        if "content" not in params or not set(params) <= {"content", "token"}:
            raise _fail(
                source,
                f"{where}.params",
                "'content' (the message) and optionally 'token' (the case link's token)",
            )
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise _fail(source, f"{where}.purposes", "expected a list of purposes")
        for purpose in purposes:
            if purpose in seen:
                raise _fail(source, f"{where}.purposes", f"{purpose!r} is also in {seen[purpose]}")
            seen[purpose] = kind
        if not isinstance(codes, dict):
            raise _fail(source, f"{where}.codes", "expected provider: code")
        templates[str(kind)] = Template(
            kind=str(kind),
            text=text.strip(),
            params={str(k): int(v) for k, v in params.items()},
            purposes=tuple(purposes),
            codes={str(k): str(v or "") for k, v in codes.items()},
        )
    return templates


def _check(source: str, template: Template, limits: Mapping[str, ProviderLimits]) -> None:
    where = f"templates.{template.kind}"
    variables = template.variables
    if sorted(variables) != sorted(template.params):
        raise _fail(source, where, f"text uses {variables}, params declare {list(template.params)}")
    if "【" in template.text or "】" in template.text:
        raise _fail(source, f"{where}.text", "【】 is the signature's; it may not be in a template")
    fixed = len(_VARIABLE.sub("", template.text))
    if fixed == 0:
        raise _fail(source, f"{where}.text", "providers refuse a template that is only variables")
    for provider, limit in limits.items():
        for name, longest in template.params.items():
            if limit.variable_max is not None and longest > limit.variable_max:
                raise _fail(
                    source,
                    f"{where}.params.{name}",
                    f"{longest} characters, but {provider} allows {limit.variable_max} a variable",
                )
        # The signature counts too; 【】 and a 12-character name is the most a region files.
        total = fixed + sum(template.params.values()) + 14
        if total > limit.total_max:
            raise _fail(
                source,
                where,
                f"up to {total} characters with signature, {provider} allows {limit.total_max}",
            )


def filing_list(book: TemplateBook) -> str:
    """The templates to file, in each provider's notation, with their variables' lengths."""
    lines = []
    for template in book.templates.values():
        lengths = ", ".join(f"{n} ≤ {v}" for n, v in template.params.items())
        lines += [
            f"[{template.kind}] purposes: {', '.join(template.purposes) or '(any other)'}",
            f"  Aliyun : {template.text}",
            f"  Tencent: {template.tencent_text()}",
            f"  variables: {lengths}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a convenience for operators
    print(filing_list(load_templates(sys.argv[1] if len(sys.argv) > 1 else None)))
