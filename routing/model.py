"""Plain data going into and coming out of the router.

Inputs are frozen dataclasses the caller fills from its own storage (facility rows, the case's
requirements, the region's policy, the coordinators' closures). Outputs carry, beside every
human-readable English text, a machine-readable :class:`Reason` code with parameters so that a UI
can translate them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from core import vocabulary
from routing.errors import (
    InvalidCoordinateError,
    InvalidInputError,
    InvalidLevelError,
    UnknownCapabilityError,
)

CAPABILITIES: frozenset[str] = frozenset(vocabulary.CAPABILITIES)
"""The discrete capabilities (the one vocabulary, :mod:`core.vocabulary`)."""

BED_TYPES: tuple[str, ...] = vocabulary.BED_TYPES
"""Bed types a facility reports and a case may need."""

DIVERSIONS: tuple[str, ...] = ("normal", "advisory", "closed")
"""Diversion states (EDXL-HAVE EMSTrafficStatus)."""

BED_LABELS: Mapping[str, str] = {
    "obstetric": "obstetric bed",
    "maternal_icu": "maternal ICU bed",
    "nicu": "NICU cot",
}


@dataclass(frozen=True)
class Reason:
    """One reason, warning or note.

    Attributes
    ----------
    code
        Stable machine-readable code (``"eta_road"``, ``"lacks_capability"``, ...).
    text
        English text for people.
    params
        The values the text was built from (for translation), e.g. ``{"capability": "ecmo"}``.
    """

    code: str
    text: str
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "text", "params"}``."""
        return {"code": self.code, "text": self.text, "params": dict(self.params)}


@dataclass(frozen=True)
class FacilitySnapshot:
    """A facility as the router sees it at query time.

    Attributes
    ----------
    code, name
        Registry code (unique) and display name.
    lat, lon
        WGS84 position of the entrance (snapped to the nearest road node).
    maternal_level, neonatal_level
        0..4 (M0..M4, N0..N4); each level includes the ones below.
    capabilities
        Names from :data:`CAPABILITIES` the facility has.
    unavailable
        Capabilities temporarily unavailable (theatre busy, no blood...).
    beds
        Free beds by type (:data:`BED_TYPES`): a count, or None when unknown. A missing type is
        unknown. A reported 0 of a needed type excludes the facility; unknown does not.
    diversion, diversion_reason
        ``"normal"``, ``"advisory"`` (ranked after confirmed facilities within the tolerance) or
        ``"closed"`` (excluded), with the hospital's reason.
    stale
        Live status older than its grace period (capacity unconfirmed).
    active
        False for a facility taken out of the registry (excluded).
    """

    code: str
    name: str
    lat: float
    lon: float
    maternal_level: int = 0
    neonatal_level: int = 0
    capabilities: frozenset[str] = frozenset()
    unavailable: frozenset[str] = frozenset()
    beds: Mapping[str, int | None] = field(default_factory=dict, compare=False)
    diversion: str = "normal"
    diversion_reason: str = ""
    stale: bool = False
    active: bool = True


@dataclass(frozen=True)
class Requirements:
    """What the receiving facility must have.

    Attributes
    ----------
    maternal_level, neonatal_level
        Minimum levels, 0..4 (0 = no requirement).
    capabilities
        Capabilities that must be present and not temporarily unavailable.
    beds
        Bed types of which the facility must not report zero free.
    """

    maternal_level: int = 0
    neonatal_level: int = 0
    capabilities: frozenset[str] = frozenset()
    beds: frozenset[str] = frozenset()

    def label(self) -> str:
        """Short text such as ``"M3, N2, adult_icu"``."""
        parts: list[str] = []
        if self.maternal_level:
            parts.append(f"M{self.maternal_level}")
        if self.neonatal_level:
            parts.append(f"N{self.neonatal_level}")
        parts.extend(sorted(self.capabilities))
        return ", ".join(parts) if parts else "no specific requirement"

    def validate(self, prefix: str = "requirements") -> None:
        """Raise a :class:`~routing.errors.RoutingError` naming the bad field."""
        check_level(self.maternal_level, f"{prefix}.maternal_level")
        check_level(self.neonatal_level, f"{prefix}.neonatal_level")
        check_capabilities(self.capabilities, f"{prefix}.capabilities")
        check_bed_types(self.beds, f"{prefix}.beds")


@dataclass(frozen=True)
class Policy:
    """The region's ranking policy for one query.

    Attributes
    ----------
    tolerance_minutes
        A stale or advisory facility ranks after confirmed ones whose ETA is at most this much
        longer (docs/domain.md): its ranking key is ``eta + tolerance``.
    time_window_minutes
        The condition's time window; when the best candidate is beyond it the answer says so and
        proposes stabilisation and outreach. None = no window.
    top_k
        How many candidates to return with their ETA.
    max_snap_m
        A point farther than this from the nearest road node gets a straight-line estimate.
    detour_factor, rural_speed_kmh
        The estimate: geodesic distance × detour factor at this speed.
    """

    tolerance_minutes: float = 10.0
    time_window_minutes: float | None = None
    top_k: int = 10
    max_snap_m: float = 2000.0
    detour_factor: float = 1.4
    rural_speed_kmh: float = 40.0

    def validate(self) -> None:
        """Raise :class:`~routing.errors.InvalidInputError` for a nonsensical value."""
        checks: list[tuple[str, float | None, bool]] = [
            ("policy.tolerance_minutes", self.tolerance_minutes, False),
            ("policy.time_window_minutes", self.time_window_minutes, True),
            ("policy.max_snap_m", self.max_snap_m, False),
        ]
        for name, value, optional in checks:
            if value is None and optional:
                continue
            if not _finite(value) or float(value) < 0:  # type: ignore[arg-type]
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}", field=name)
        if not _finite(self.detour_factor) or self.detour_factor < 1:
            raise InvalidInputError(
                f"policy.detour_factor must be >= 1, got {self.detour_factor!r}",
                field="policy.detour_factor",
            )
        if not _finite(self.rural_speed_kmh) or self.rural_speed_kmh <= 0:
            raise InvalidInputError(
                f"policy.rural_speed_kmh must be > 0, got {self.rural_speed_kmh!r}",
                field="policy.rural_speed_kmh",
            )
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InvalidInputError(
                f"policy.top_k must be an integer >= 1, got {self.top_k!r}", field="policy.top_k"
            )


@dataclass(frozen=True)
class Candidate:
    """A facility proposed for the case, in ranking order.

    Attributes
    ----------
    facility, name
        Facility code and name.
    eta_minutes, distance_km
        Travel time and distance from the origin (road, or the estimate when ``estimate``).
    estimate
        True when the ETA is a straight-line estimate (origin or facility far from any road, or
        no road network).
    confirmed
        False when the facility's capacity is unconfirmed (stale) or it is on advisory.
    reasons
        Why it is proposed and why it ranks where it does.
    """

    facility: str
    name: str
    eta_minutes: float
    distance_km: float
    estimate: bool
    confirmed: bool
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``reasons`` as texts, ``reason_details`` with codes)."""
        return {
            "facility": self.facility,
            "name": self.name,
            "eta_minutes": round(self.eta_minutes, 1),
            "distance_km": round(self.distance_km, 2),
            "estimate": self.estimate,
            "confirmed": self.confirmed,
            "reasons": [r.text for r in self.reasons],
            "reason_details": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Exclusion:
    """A facility that was not proposed, with every reason that applies.

    Attributes
    ----------
    facility, name
        Facility code and name.
    reasons
        Why it was excluded (``maternal_level_below``, ``lacks_capability``, ...).
    eta_minutes
        Its road ETA from the origin when known (to answer "why not the nearer one?"), else None.
    """

    facility: str
    name: str
    reasons: tuple[Reason, ...]
    eta_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "facility": self.facility,
            "name": self.name,
            "eta_minutes": None if self.eta_minutes is None else round(self.eta_minutes, 1),
            "reasons": [r.text for r in self.reasons],
            "reason_details": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class ExcludedRows:
    """Internal: the exclusions of a ranking as columns, in order (``ranking.excluded`` makes
    them objects, ``ranking.to_dict()`` dicts, each without the other).

    Attributes
    ----------
    codes, names
        Per row, as in :class:`Exclusion`.
    etas
        Per row, ``eta_minutes`` (NaN for None).
    kinds
        Per row, the key of its reasons in ``distinct``.
    distinct
        Each distinct tuple of reasons once (a province's exclusions share a handful).
    """

    codes: list[str]
    names: list[str]
    etas: np.ndarray
    kinds: list[int]
    distinct: dict[int, tuple[Reason, ...]]


@dataclass(frozen=True)
class Outreach:
    """Bring the capable centre's experts to the patient (上级专家下沉).

    Attributes
    ----------
    facility, name
        The capable centre whose team would travel (the best candidate).
    eta_minutes
        The team's travel time from the centre to the patient.
    estimate
        True when that time is a straight-line estimate.
    reason
        The suggestion as text and code.
    """

    facility: str
    name: str
    eta_minutes: float
    estimate: bool
    reason: Reason

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "facility": self.facility,
            "name": self.name,
            "eta_minutes": round(self.eta_minutes, 1),
            "estimate": self.estimate,
            "reason": self.reason.to_dict(),
        }


@dataclass(frozen=True)
class Partial:
    """A facility that meets some but not every requirement (never offered automatically).

    Attributes
    ----------
    facility, name, eta_minutes, distance_km, estimate
        As in :class:`Candidate`.
    lacks
        Exactly what it lacks (``maternal_level_below``, ``neonatal_level_below``,
        ``lacks_capability``, ``capability_unavailable``, ``no_bed``), most important first.
    reasons
        Its road time and the state of its capacity.
    """

    facility: str
    name: str
    eta_minutes: float
    distance_km: float
    estimate: bool
    lacks: tuple[Reason, ...]
    reasons: tuple[Reason, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "facility": self.facility,
            "name": self.name,
            "eta_minutes": round(self.eta_minutes, 1),
            "distance_km": round(self.distance_km, 2),
            "estimate": self.estimate,
            "lacks": [
                {"code": r.code, "text": r.text, "params": dict(r.params)} for r in self.lacks
            ],
            "reasons": [r.text for r in self.reasons],
            "reason_details": [r.to_dict() for r in self.reasons],
        }


@dataclass(frozen=True)
class Ranking:
    """The answer of :func:`routing.rank`.

    Attributes
    ----------
    requirements
        Echo of the requirements.
    origin
        ``(lat, lon)`` of the patient.
    origin_snap_m
        Distance from the origin to the road node it was snapped to (None without network).
    candidates
        Up to ``policy.top_k`` facilities meeting every requirement, best first.
    more_candidates
        Eligible facilities not listed (beyond ``top_k``).
    warnings
        Estimates used, closures in effect, beyond the window, no capable facility...
    beyond_window
        True when the case has a time window and no candidate reaches it in time (False for a
        case without a window).
    stabilise_at
        When ``beyond_window`` and a stabilisation requirement was given: the nearest facility
        meeting it (None otherwise).
    outreach
        When ``beyond_window`` and a candidate exists: the suggestion to bring its team.
    excluded
        Every facility not proposed, with its reasons (built on first access; ordered by ETA),
        or the nearest of them when :func:`routing.rank` was given ``excluded_limit``.
    more_excluded
        Facilities not proposed and not listed in ``excluded`` (0 without a limit).
    """

    requirements: Requirements
    origin: tuple[float, float]
    origin_snap_m: float | None
    candidates: tuple[Candidate, ...]
    more_candidates: int
    warnings: tuple[Reason, ...]
    beyond_window: bool
    stabilise_at: Candidate | None
    outreach: Outreach | None
    _exclusions: Callable[[], ExcludedRows] = field(repr=False, compare=False)
    partial: tuple[Partial, ...] = ()
    more_excluded: int = 0

    @cached_property
    def _excluded_rows(self) -> ExcludedRows:
        return self._exclusions()

    @cached_property
    def excluded(self) -> tuple[Exclusion, ...]:
        """Every facility not proposed, with its reasons."""
        rows = self._excluded_rows
        return tuple(
            Exclusion(code, name, rows.distinct[kind], None if eta != eta else eta)
            for code, name, eta, kind in zip(
                rows.codes, rows.names, rows.etas.tolist(), rows.kinds, strict=True
            )
        )

    def to_dict(self, text: Callable[[Reason], str] | None = None) -> dict[str, Any]:
        """JSON-ready dict with the CONTRACT field names (``text``: how the excluded rows say
        their reasons, e.g. in another language; default each reason's own English text)."""
        req = self.requirements
        return {
            "requirements": {
                "maternal_level": req.maternal_level,
                "neonatal_level": req.neonatal_level,
                "capabilities": sorted(req.capabilities),
                "beds": sorted(req.beds),
            },
            "origin": {"lat": self.origin[0], "lon": self.origin[1]},
            "candidates": [c.to_dict() for c in self.candidates],
            "more_candidates": self.more_candidates,
            "excluded": _excluded_to_dicts(self._excluded_rows, text),
            "more_excluded": self.more_excluded,
            "warnings": [w.text for w in self.warnings],
            "warning_details": [w.to_dict() for w in self.warnings],
            "beyond_window": self.beyond_window,
            "stabilise_at": None if self.stabilise_at is None else self.stabilise_at.to_dict(),
            "outreach": None if self.outreach is None else self.outreach.to_dict(),
            "partial": [p.to_dict() for p in self.partial],
        }


def _excluded_to_dicts(
    rows: ExcludedRows, text: Callable[[Reason], str] | None = None
) -> list[dict[str, Any]]:
    """Like ``[e.to_dict() for e in ranking.excluded]``, straight from the columns, converting
    each distinct reasons tuple once (the converted lists are shared between rows)."""
    say = text or _english
    texts = {k: [say(r) for r in reasons] for k, reasons in rows.distinct.items()}
    details = {k: [r.to_dict() for r in reasons] for k, reasons in rows.distinct.items()}
    # shared between facilities with the same reasons: JSON output, not for mutation
    return [
        {
            "facility": code,
            "name": name,
            "eta_minutes": eta,
            "reasons": texts[kind],
            "reason_details": details[kind],
        }
        for code, name, eta, kind in zip(
            rows.codes, rows.names, rounded(rows.etas, 1), rows.kinds, strict=True
        )
    ]


def _english(reason: Reason) -> str:
    return reason.text


def rounded(values: np.ndarray, ndigits: int) -> list[float | None]:
    """``[round(v, ndigits) for v in values]`` (None for NaN): the same floats, vectorised.

    Python rounds the exact decimal value of ``v`` (half to even); numpy's ``rint(v * 10**n)``
    agrees wherever the product is not within 1e-6 of a half (the product's own rounding error
    is far smaller below 1e6), and ``k / 10**n`` is then the double nearest the decimal, as
    Python's. The other values (near a half, big, inf, NaN) go through ``round``.
    """
    scale = 10.0**ndigits
    scaled = values * scale
    whole = np.rint(scaled)
    with np.errstate(invalid="ignore"):
        # NaN and inf fail both tests
        slow = ~((np.abs(scaled - whole) < 0.5 - 1e-6) & (np.abs(values) < 1e6))
    out: list[float | None] = (whole / scale).tolist()
    if slow.any():
        for j in np.flatnonzero(slow).tolist():
            value = float(values[j])
            out[j] = None if value != value else round(value, ndigits)
    return out


@dataclass(frozen=True)
class CoverageRow:
    """Travel time from one origin to the nearest facility meeting a requirement.

    Attributes
    ----------
    origin
        The origin's code (e.g. a township health centre).
    facility
        Code of the nearest facility meeting the requirement; None when none is reachable.
    eta_minutes, distance_km
        Its travel time and distance (inf when none is reachable).
    estimate
        True when the figure is a straight-line estimate.
    """

    origin: str
    facility: str | None
    eta_minutes: float
    distance_km: float
    estimate: bool


@dataclass(frozen=True)
class Route:
    """One road route, e.g. to draw on a map.

    Attributes
    ----------
    eta_minutes, distance_km, estimate
        As in :class:`Candidate`.
    path
        ``(lat, lon)`` of the road nodes along the route (empty for an estimate).
    """

    eta_minutes: float
    distance_km: float
    estimate: bool
    path: tuple[tuple[float, float], ...]


# -- validation helpers ---------------------------------------------------------------------------
def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_coordinates(lat: object, lon: object, field_prefix: str) -> tuple[float, float]:
    """Validated ``(lat, lon)`` floats."""
    if not _finite(lat) or not -90.0 <= float(lat) <= 90.0:  # type: ignore[arg-type]
        raise InvalidCoordinateError(
            f"{field_prefix}.lat must be a number in [-90, 90], got {lat!r}",
            field=f"{field_prefix}.lat",
        )
    if not _finite(lon) or not -180.0 <= float(lon) <= 180.0:  # type: ignore[arg-type]
        raise InvalidCoordinateError(
            f"{field_prefix}.lon must be a number in [-180, 180], got {lon!r}",
            field=f"{field_prefix}.lon",
        )
    return float(lat), float(lon)  # type: ignore[arg-type]


def check_level(value: object, name: str) -> None:
    """Raise :class:`~routing.errors.InvalidLevelError` unless ``value`` is an int in 0..4."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4:
        raise InvalidLevelError(f"{name} must be an integer 0..4, got {value!r}", field=name)


def check_capabilities(values: object, name: str) -> None:
    """Raise :class:`~routing.errors.UnknownCapabilityError` for a name outside the vocabulary."""
    if isinstance(values, str) or not isinstance(values, frozenset | set | list | tuple):
        raise InvalidInputError(f"{name} must be a set of capability names", field=name)
    unknown = sorted(str(v) for v in values if v not in CAPABILITIES)
    if unknown:
        raise UnknownCapabilityError(
            f"{name}: unknown capability {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(CAPABILITIES))}",
            field=name,
        )


def check_bed_types(values: object, name: str) -> None:
    """Raise :class:`~routing.errors.InvalidInputError` for a bed type outside :data:`BED_TYPES`."""
    if isinstance(values, str) or not isinstance(values, frozenset | set | list | tuple):
        raise InvalidInputError(f"{name} must be a set of bed types", field=name)
    unknown = sorted(str(v) for v in values if v not in BED_TYPES)
    if unknown:
        raise InvalidInputError(
            f"{name}: unknown bed type {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(BED_TYPES)}",
            field=name,
        )
