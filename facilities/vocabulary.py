"""The capability vocabulary of DOMAIN.md §3 and the parsing of level labels."""

from __future__ import annotations

import re

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

_LEVEL = re.compile(r"^\s*([MN])?\s*([0-4])\s*$", re.IGNORECASE)


class VocabularyError(ValueError):
    """A value outside the registry's vocabulary; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


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
    if value is None:
        return []
    if isinstance(value, str):
        items = [part.strip() for part in re.split(r"[;,]", value)]
    elif isinstance(value, list | tuple):
        items = [str(part).strip() for part in value]
    else:
        raise VocabularyError(f"{field}: expected a list of capability names", field=field)
    names = sorted({item for item in items if item})
    unknown = [name for name in names if name not in CAPABILITIES]
    if unknown:
        raise VocabularyError(
            f"{field}: unknown capability {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(CAPABILITIES)}",
            field=field,
        )
    return names
