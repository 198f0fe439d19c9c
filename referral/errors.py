"""One JSON error shape for the API: ``{"error": code, "message": text, "field": name}``."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


class ServiceError(ValueError):
    """A domain error that maps to a 4xx answer."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if field:
        body["field"] = field
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    return response
