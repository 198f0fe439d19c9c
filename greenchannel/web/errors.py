"""The one JSON error shape: ``{"error": code, "message": text, "field": name}``."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


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
