"""One vocabulary: capabilities, bed types, designations, languages, and level labels
(docs/domain.md)."""

from __future__ import annotations

import re

from core.errors import Invalid

CAPABILITIES: tuple[str, ...] = (
    "caesarean_24h",
    "blood_transfusion",
    "massive_transfusion",
    "adult_icu",
    "interventional_radiology",
    "cardiac_surgery",
    "neonatal_cpap",
    "neonatal_ventilation",
    "hfov_ino",
    "therapeutic_hypothermia",
    "exchange_transfusion",
    "neonatal_surgery",
    "ecmo",
    "infectious_isolation",
)

BED_TYPES: tuple[str, ...] = ("obstetric", "maternal_icu", "nicu")

#: The languages people read the service in (pages, SMS, answers).
LANGUAGES: tuple[str, ...] = ("zh", "en")

#: What a designated critical-care centre (危重孕产妇/新生儿救治中心) is designated for.
DESIGNATIONS: tuple[str, ...] = ("maternal", "neonatal")

_LEVEL = re.compile(r"^\s*([MN])?\s*([0-4])\s*$", re.IGNORECASE)


class VocabularyError(Invalid):
    """A value outside the registry's vocabulary; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field)


def parse_level(value: object, *, prefix: str, field: str) -> int:
    """``"M3"`` (or ``3``) → 3 for prefix ``M``; anything else raises :class:`VocabularyError`."""
    if isinstance(value, bool):
        raise VocabularyError(f"{field}: expected {prefix}0–{prefix}4, got {value!r}", field=field)
    if isinstance(value, int):
        if 0 <= value <= 4:
            return value
        raise VocabularyError(f"{field}: expected {prefix}0–{prefix}4, got {value!r}", field=field)
    match = _LEVEL.match(str(value))
    if match is None or (match.group(1) and match.group(1).upper() != prefix):
        raise VocabularyError(f"{field}: expected {prefix}0–{prefix}4, got {value!r}", field=field)
    return int(match.group(2))


def level_label(prefix: str, level: int) -> str:
    return f"{prefix}{level}"


def parse_capabilities(value: object, *, field: str = "capabilities") -> list[str]:
    """A ``;``-separated string or a list of names → a sorted, de-duplicated list of known names."""
    return _names(value, CAPABILITIES, field=field, what="capability")


def parse_designations(value: object, *, field: str = "designated") -> list[str]:
    """``"maternal;neonatal"`` (or a list) → a sorted list of :data:`DESIGNATIONS`."""
    return _names(value, DESIGNATIONS, field=field, what="designation")


def _names(value: object, known: tuple[str, ...], *, field: str, what: str) -> list[str]:
    """A ``;``/``,``-separated string or a list → a sorted, de-duplicated list of ``known``."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = [part.strip() for part in re.split(r"[;,]", value)]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise VocabularyError(f"{field}: expected a list of {what} names", field=field)
    names = sorted({item for item in items if item})
    unknown = [name for name in names if name not in known]
    if unknown:
        raise VocabularyError(
            f"{field}: unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}",
            field=field,
        )
    return names


#: Capability names in both languages, for answers written outside the web pages.
CAPABILITY_NAMES: dict[str, dict[str, str]] = {
    "caesarean_24h": {"zh": "24小时剖宫产", "en": "24-hour caesarean section"},
    "blood_transfusion": {"zh": "输血", "en": "blood transfusion"},
    "massive_transfusion": {"zh": "大量输血", "en": "massive transfusion"},
    "adult_icu": {"zh": "成人重症监护", "en": "adult ICU"},
    "interventional_radiology": {"zh": "介入放射", "en": "interventional radiology"},
    "cardiac_surgery": {"zh": "心脏外科", "en": "cardiac surgery"},
    "neonatal_cpap": {"zh": "新生儿CPAP", "en": "neonatal CPAP"},
    "neonatal_ventilation": {"zh": "新生儿机械通气", "en": "neonatal ventilation"},
    "hfov_ino": {"zh": "高频通气/一氧化氮吸入", "en": "HFOV / inhaled NO"},
    "therapeutic_hypothermia": {"zh": "亚低温治疗", "en": "therapeutic hypothermia"},
    "exchange_transfusion": {"zh": "换血", "en": "exchange transfusion"},
    "neonatal_surgery": {"zh": "新生儿外科", "en": "neonatal surgery"},
    "ecmo": {"zh": "体外膜肺（ECMO）", "en": "ECMO"},
    "infectious_isolation": {"zh": "传染病隔离", "en": "infectious isolation"},
}
BED_NAMES: dict[str, dict[str, str]] = {
    "obstetric": {"zh": "产科床位", "en": "obstetric bed"},
    "maternal_icu": {"zh": "孕产妇重症床位", "en": "maternal ICU bed"},
    "nicu": {"zh": "新生儿重症床位", "en": "NICU cot"},
}

#: Why a case needs a human (``alerts.attention``): the coordinators are texted once per case and
#: reason, and the board shows the same words. Nothing else puts a case under "needs a human".
ATTENTION_REASONS: dict[str, dict[str, str]] = {
    "unanswered": {"zh": "医院未回复", "en": "No answer"},
    "unplaced": {"zh": "无医院接收", "en": "Nobody accepted"},
    "safety_net": {"zh": "兜底规则启动", "en": "Safety net acted"},
    "late_alerts": {"zh": "预警延迟发出", "en": "Pre-alerts late"},
}
