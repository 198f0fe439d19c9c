"""One error family for the whole service: every domain error says what is wrong and, when one
input is at fault, which field. The web layer maps the family to a JSON answer or a page once
(:mod:`greenchannel.web.errors`); the CLI prints the message."""

from __future__ import annotations


class ServiceError(ValueError):
    """Invalid: the request cannot be carried out as asked (400)."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


Invalid = ServiceError


class Forbidden(ServiceError):
    """The actor may not do this (403)."""

    status = 403
    code = "forbidden"


class NotFoundError(ServiceError):
    """No such thing, or not one this actor may see (404)."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The state moved on: nothing changed (409)."""

    status = 409
    code = "conflict"


class Throttled(ServiceError):
    """Too many attempts: try again after ``retry_after`` seconds (429)."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, field: str | None = None, retry_after: int = 60) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after
