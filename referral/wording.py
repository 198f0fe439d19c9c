"""The routing answer's reasons in the user's language.

The router writes each reason as a stable code with its parameters (and an English text);
this module writes the Chinese text from the same code and parameters, so the API, the CLI,
the pages and SMS say the same thing in either language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.vocabulary import BED_NAMES, CAPABILITY_NAMES
from routing import Reason


def _capability(params: Mapping[str, Any]) -> str:
    name = str(params.get("capability", ""))
    return CAPABILITY_NAMES.get(name, {}).get("zh", name)


def _bed(params: Mapping[str, Any]) -> str:
    name = str(params.get("bed_type", ""))
    return BED_NAMES.get(name, {}).get("zh", name)


def _minutes(params: Mapping[str, Any], key: str = "minutes") -> str:
    value = float(params.get(key, 0) or 0)
    return f"{value:.0f}" if value >= 1 else "<1"


def _why(params: Mapping[str, Any]) -> str:
    reason = params.get("reason") or ""
    return f"（{reason}）" if reason else ""


_ZH: dict[str, Any] = {
    "meets_requirements": lambda p: f"满足{p.get('requirements', '')}",
    "eta_estimate": lambda p: f"约{_minutes(p)}分钟（直线估算，无道路路线）",
    "eta_road": lambda p: f"道路约{_minutes(p)}分钟",
    "closure_delay": lambda p: f"因道路封闭慢{_minutes(p)}分钟",
    "stale_ranked_after": lambda p: "床位信息未确认（过期），排在已确认的医院之后",
    "advisory_ranked_after": lambda p: f"限流中{_why(p)}，排在已确认的医院之后",
    "beds_unknown": lambda p: f"未报告空余{_bed(p)}",
    "beds_free": lambda p: f"空余{_bed(p)}{p.get('count', 0)}张",
    "beyond_window": lambda p: f"无法在时间窗剩余的{_minutes(p, 'window_minutes')}分钟内到达",
    "outreach": lambda p: f"请{p.get('facility', '')}专家前来（上级专家下沉）：约{_minutes(p)}分钟",
    "unreachable": lambda p: "道路不通（封闭）",
    "inactive": lambda p: "已停用",
    "maternal_level_below": lambda p: (
        f"孕产妇救治级别M{p.get('level')}，低于所需M{p.get('required')}"
    ),
    "neonatal_level_below": lambda p: f"新生儿级别N{p.get('level')}，低于所需N{p.get('required')}",
    "lacks_capability": lambda p: f"不具备{_capability(p)}",
    "capability_unavailable": lambda p: f"{_capability(p)}暂不可用",
    "diversion_closed": lambda p: f"暂停接收新病人{_why(p)}",
    "no_bed": lambda p: f"无空余{_bed(p)}",
    "no_road_network": lambda p: "未加载路网：所有时间均为直线估算",
    "origin_off_road": lambda p: f"出发地距最近道路{p.get('km')}公里：所有时间均为直线估算",
    "estimate_used": lambda p: f"{p.get('count')}家医院的时间为直线估算（远离道路）",
    "closures_in_effect": lambda p: f"{len(p.get('closures', []))}处道路封闭或限速正在生效",
    "no_capable_facility": lambda p: f"没有可到达且开放的医院满足{p.get('requirements', '')}",
}


def say(reason: Reason, language: str) -> str:
    """The reason's text in ``language`` (``zh`` or ``en``)."""
    if language != "zh":
        return reason.text
    write = _ZH.get(reason.code)
    return str(write(reason.params)) if write is not None else reason.text


def codes() -> frozenset[str]:
    """Every reason code that has a Chinese text (tests check the router's codes against it)."""
    return frozenset(_ZH)
