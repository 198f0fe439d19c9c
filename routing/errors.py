"""Exceptions of the routing package.

Every error subclasses :class:`ValueError` (through :class:`RoutingError`), carries a short
machine-readable ``code`` and, when one input is at fault, the ``field`` that names it, so that the
HTTP layer can answer ``{"error": code, "message": str(exc), "field": field}``.
"""

from __future__ import annotations


class RoutingError(ValueError):
    """Base class of every routing error.

    Parameters
    ----------
    message
        Human-readable explanation (English).
    field
        Name of the offending input (``"origin.lat"``, ``"requirements.capabilities"``, ...).
    """

    code = "routing_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RoadNetworkError(RoutingError):
    """A road network file is missing, empty, corrupt or holds no routable road."""

    code = "road_network_invalid"


class InvalidCoordinateError(RoutingError):
    """A latitude/longitude is not a finite number in range."""

    code = "invalid_coordinate"


class UnknownCapabilityError(RoutingError):
    """A capability name is not in the vocabulary of docs/domain.md."""

    code = "unknown_capability"


class InvalidLevelError(RoutingError):
    """A maternal or neonatal level is outside 0..4."""

    code = "invalid_level"


class InvalidInputError(RoutingError):
    """Any other malformed input (bed type, diversion value, policy number, closure shape)."""

    code = "invalid_input"
