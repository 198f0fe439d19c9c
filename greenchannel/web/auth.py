"""Who is asking: bearer tokens for scripts, sessions for the web, and role/scope checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request, session
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from core.db import utcnow
from core.errors import Forbidden, ServiceError
from facilities.accounts import user_for_token
from facilities.areas import area_covers
from facilities.models import Facility, Role, User
from greenchannel.web.db import db

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Unauthorised(ServiceError):
    status = 401
    code = "unauthorised"


def current_user() -> User | None:
    """The user of this request, from the bearer token or the web session; cached on ``g``."""
    if "user" in g:
        return cast(User | None, g.user)
    user: User | None = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorised("Authorization: expected 'Bearer <token>'", field="Authorization")
        user = user_for_token(db.session, token.strip(), now=utcnow())
        if user is None:
            raise Unauthorised("the API token is unknown or revoked", field="Authorization")
        g.auth_channel = "api"
    elif "user_id" in session:
        candidate = db.session.get(User, session["user_id"])
        if candidate is not None and candidate.active:
            if request.method in UNSAFE_METHODS and request.path.startswith("/api/"):
                # A browser session calling the API must prove it is our page (CSRF).
                try:
                    validate_csrf(request.headers.get("X-CSRFToken", ""))
                except (ValidationError, CSRFError):
                    raise Forbidden(
                        "missing or wrong X-CSRFToken header", field="X-CSRFToken"
                    ) from None
            user = candidate
            g.auth_channel = "web"
    g.user = user
    return user


def require_user(*roles: Role) -> User:
    user = current_user()
    if user is None:
        raise Unauthorised("log in, or send 'Authorization: Bearer <token>'")
    if roles and user.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise Forbidden(f"this needs the role {allowed}; you are {user.role.value}")
    return user


def channel() -> str:
    return str(g.get("auth_channel", "web"))


def can_manage_facility(user: User, facility: Facility) -> bool:
    """Report status, see contacts and history: the hospital's own users, its coordinators."""
    if user.role is Role.ADMIN:
        return True
    if user.role is Role.COORDINATOR:
        return area_covers(user.area, facility)
    return user.role is Role.HOSPITAL and user.facility_id == facility.id


def ensure_can_manage(user: User, facility: Facility) -> None:
    if not can_manage_facility(user, facility):
        raise Forbidden(
            f"you may not change facility {facility.code}: it is not yours or in your area",
            field="code",
        )
