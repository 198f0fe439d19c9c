"""Who is asking: bearer tokens for scripts, sessions for the web, and role/scope checks.

Both are checked against the database on every request (``facilities.accounts``): a token may
be revoked or expired, a web session revoked (logout, password reset, deactivation) or timed
out (idle, absolute). A token this process has verified is taken again with one read of the
auth revision instead of a lookup, until any write to the users or tokens moves that revision
or the token expires (``facilities.token_cache``). The signed cookie holds only the session's
random id (``SESSION_ID``).
The once-a-minute bookkeeping (a token's last use and its audit row, a session's last request,
a timed-out session's end) is written in a short transaction of its own, before the view's
work begins, so that a page that only reads still keeps its session alive.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, request, session
from flask_wtf.csrf import CSRFError, validate_csrf
from sqlalchemy.orm import Session
from wtforms import ValidationError

from core.errors import Forbidden, ServiceError
from facilities import token_cache
from facilities.accounts import TOUCH_EVERY, session_limits, token_use, user_for_session
from facilities.areas import area_covers
from facilities.models import Facility, Role, User
from greenchannel.web import clock, observability
from greenchannel.web.db import db
from referral import audit

F = TypeVar("F", bound=Callable[..., Any])
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_ID = "sid"  # the key of the web session's id in the signed cookie


class Unauthorised(ServiceError):
    status = 401
    code = "unauthorised"


def _bookkeeping_session() -> Session:
    """A session of its own for the touches, committed at once (see the module's note)."""
    return cast(Session, current_app.extensions["greenchannel.runtime"].sessions())


_touch_lock = threading.Lock()


def _first_touch(token_id: int, now: dt.datetime) -> bool:
    """Whether this request is the one of this process that writes the token's last use now.

    When a busy token's minute is up, every request in flight sees it; without this each would
    write the token's row and an audit row, one after another on the row's lock, and the
    requests would queue behind them. One thread per process writes; the others only read.
    """
    touches: dict[int, dt.datetime] = current_app.extensions.setdefault(
        "greenchannel.token_touches", {}
    )
    with _touch_lock:
        last = touches.get(token_id)
        if last is not None and last <= now < last + TOUCH_EVERY:
            return False
        if len(touches) >= 10_000:
            touches.clear()
        touches[token_id] = now
        return True


def _token_user(token: str) -> User | None:
    now = clock.now()
    # a token this process verified while the auth revision has not moved since (one SELECT
    # of the revision in the request's session; facilities.token_cache), its user with it
    cached = token_cache.cached(db.session, token, now=now)
    if cached is not None:
        return token_cache.attach_user(db.session, cached)
    with _bookkeeping_session() as own:
        revision = token_cache.auth_revision(own)  # before the token: see token_cache
        use = token_use(own, token, now=now)
        if use is None:
            return None
        token_cache.keep(own, token, use, revision=revision)
        # at most once a minute per token (and one request of a process): the trail without
        # the flood; otherwise the session closes without writing
        if use.recorded and _first_touch(use.token_id, now):
            audit.record(
                own,
                action="token_use",
                actor=use.user.username,
                channel="api",
                role=use.user.role.value,
                user_id=use.user.id,
                now=now,
                token=use.prefix,
            )
            own.commit()
        user_id = use.user.id
    return db.session.get(User, user_id)


def _session_user_id(raw: str) -> int | None:
    idle, absolute = session_limits(current_app.config)
    with _bookkeeping_session() as own:
        user = user_for_session(own, raw, now=clock.now(), idle=idle, absolute=absolute)
        user_id = user.id if user is not None else None
        if own.dirty:
            own.commit()
        return user_id


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
        user = _token_user(token.strip())
        if user is None or not user.active:
            raise Unauthorised(
                "the API token is unknown, revoked or expired", field="Authorization"
            )
        g.auth_channel = "api"
    elif SESSION_ID in session:
        user_id = _session_user_id(str(session[SESSION_ID]))
        candidate = db.session.get(User, user_id) if user_id is not None else None
        if candidate is None:
            session.pop(SESSION_ID, None)  # ended: the cookie opens nothing any more
        elif candidate.active:
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


def audit_by(who: User, action: str, /, **detail: Any) -> None:
    """An audit row for what ``who`` did in this request (accounts, tokens), with the channel
    and the request id (not committed)."""
    audit.record(
        db.session,
        action=action,
        actor=who.username,
        channel=channel(),
        role=who.role.value,
        user_id=who.id,
        request_id=observability.request_id(),
        now=clock.now(),
        **detail,
    )


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
