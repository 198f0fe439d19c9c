"""Road speeds: the default table by OSM highway class, ``maxspeed`` and ferry ``duration`` parsing.

The default table suits Chinese roads (expressway 高速 ~110, national road 国道 ~75, provincial road
省道 ~60, county road 县道 ~50, township road 乡道 ~40, village road 村道 ~30 km/h). A region passes
its own table from its rules file; a highway class missing from the table is not routable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType

DEFAULT_SPEEDS: Mapping[str, float] = MappingProxyType(
    {
        "motorway": 110.0,
        "motorway_link": 60.0,
        "trunk": 75.0,
        "trunk_link": 45.0,
        "primary": 60.0,
        "primary_link": 40.0,
        "secondary": 50.0,
        "secondary_link": 35.0,
        "tertiary": 40.0,
        "tertiary_link": 30.0,
        "unclassified": 30.0,
        "residential": 30.0,
        "living_street": 10.0,
        "service": 15.0,
        "road": 30.0,
        "track": 15.0,
    }
)
"""km/h by OSM ``highway`` class; classes absent from the table are not routable."""

DEFAULT_FERRY_SPEED_KMH = 20.0
"""Speed of a ferry whose way carries no usable ``duration`` tag."""

# Implicit limits written as "CC:zone" (OSM wiki "Default speed limits"); km/h.
_ZONE_SPEEDS: Mapping[str, float] = MappingProxyType(
    {
        "urban": 50.0,
        "rural": 80.0,
        "motorway": 120.0,
        "trunk": 100.0,
        "living_street": 10.0,
        "walk": 6.0,
        "nsl_single": 96.6,
        "nsl_dual": 112.7,
        "zone30": 30.0,
        "zone:30": 30.0,
        "school": 30.0,
    }
)
_COUNTRY_ZONE_SPEEDS: Mapping[str, float] = MappingProxyType(
    {
        # 道路交通安全法实施条例 第四十五条 / 第七十八条
        "cn:urban": 50.0,
        "cn:rural": 70.0,
        "cn:motorway": 120.0,
        "cn:expressway": 100.0,
        "de:rural": 100.0,
        "fr:rural": 80.0,
        "ad:urban": 50.0,
        "ad:rural": 90.0,
    }
)
_NUMBER = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$", re.IGNORECASE)


def parse_maxspeed(value: str | None) -> float | None:
    """Parse an OSM ``maxspeed`` value into km/h.

    Parameters
    ----------
    value
        The tag value: ``"50"``, ``"50 mph"``, ``"30 km/h"``, ``"CN:urban"``, ``"50;70"`` (the
        lowest wins), ``"none"``/``"signals"``/``"variable"`` (no usable figure).

    Returns
    -------
    float or None
        km/h, or None when the value gives no usable figure (the caller then uses its class speed).
    """
    if value is None:
        return None
    best: float | None = None
    for part in value.split(";"):
        kmh = _parse_one(part.strip())
        if kmh is not None and (best is None or kmh < best):
            best = kmh
    return best


def _parse_one(text: str) -> float | None:
    if not text:
        return None
    match = _NUMBER.match(text)
    if match:
        number = float(match.group(1).replace(",", "."))
        unit = (match.group(2) or "").lower()
        if unit == "mph":
            number *= 1.609344
        elif unit == "knots":
            number *= 1.852
        return number if 0.0 < number < 400.0 else None
    lowered = text.lower()
    if lowered in _COUNTRY_ZONE_SPEEDS:
        return _COUNTRY_ZONE_SPEEDS[lowered]
    zone = lowered.split(":", 1)[1] if ":" in lowered else lowered
    return _ZONE_SPEEDS.get(zone)


_ISO_DURATION = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(value: str | None) -> float | None:
    """Parse a ferry ``duration`` tag into seconds.

    Accepts ``"HH:MM"``, ``"HH:MM:SS"``, a bare number of minutes (``"45"``) and ISO 8601
    (``"PT1H30M"``). Returns None for anything else or a non-positive duration.
    """
    if value is None:
        return None
    text = value.strip().upper()
    seconds: float | None = None
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) == 2:
                seconds = parts[0] * 3600 + parts[1] * 60
            elif len(parts) == 3:
                seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
        elif text.startswith("P"):
            m = _ISO_DURATION.match(text)
            if m and any(m.groups()):
                d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
                seconds = d * 86400 + h * 3600 + mi * 60 + s
        else:
            seconds = float(text) * 60
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def validate_speeds(speeds: Mapping[str, float]) -> dict[str, float]:
    """Copy a speed table, checking every speed is a positive finite number of km/h."""
    from routing.errors import InvalidInputError

    out: dict[str, float] = {}
    for name, kmh in speeds.items():
        try:
            value = float(kmh)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"speed of highway class {name!r} is not a number: {kmh!r}", field="speeds"
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise InvalidInputError(
                f"speed of highway class {name!r} must be > 0 km/h, got {kmh!r}", field="speeds"
            )
        out[str(name)] = value
    return out
