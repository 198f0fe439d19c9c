"""Users, roles, API tokens and password checks (argon2id), with failed logins slowed down."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, joinedload

from core.errors import Throttled
from facilities.models import ApiToken, LoginFailure, Role, User
from facilities.registry import NotFound, RegistryError, check_phone, get_facility

_HASHER = PasswordHasher()
# A real hash to verify against when the user does not exist, so that timing does not reveal
# which usernames exist.
_DUMMY_HASH = _HASHER.hash("not-a-password")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")

FAILED_LOGIN_LIMIT = 5
FAILED_LOGIN_WINDOW = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8


class AccountError(RegistryError):
    """A user or token request that cannot be carried out."""


class LoginThrottled(AccountError, Throttled):
    def __init__(self, retry_after: int) -> None:
        Throttled.__init__(
            self,
            f"too many failed logins: try again in {retry_after} seconds",
            field="username",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class CreatedUser:
    user: User
    token: str


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    facility_code: str | None = None,
    area: str = "",
    password: str | None = None,
    phone: str = "",
    language: str = "zh",
    now: dt.datetime,
) -> CreatedUser:
    """Create a user and a first API token (returned in clear once, stored only as a hash)."""
    if not _USERNAME.match(username):
        raise AccountError("username: 2–64 letters, digits or . _ @ -", field="username")
    try:
        clean_role = Role(role)
    except ValueError:
        raise AccountError(
            f"role: expected one of {', '.join(r.value for r in Role)}", field="role"
        ) from None
    facility = None
    if clean_role in (Role.CLINIC, Role.HOSPITAL):
        if not facility_code:
            raise AccountError(
                f"facility: a {clean_role.value} user belongs to a facility", field="facility"
            )
        try:
            facility = get_facility(session, facility_code)
        except NotFound as exc:
            raise AccountError(str(exc), field="facility") from None
    elif facility_code:
        raise AccountError(f"facility: a {clean_role.value} user has no facility", field="facility")
    if area and clean_role is not Role.COORDINATOR:
        raise AccountError("area: only coordinators have an area", field="area")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password: at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if language not in ("zh", "en"):
        raise AccountError("language: expected zh or en", field="language")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"username: {username!r} is taken", field="username")
    user = User(
        username=username,
        role=clean_role,
        facility_id=facility.id if facility else None,
        area="/".join(part.strip() for part in area.split("/") if part.strip()),
        phone=check_phone(phone),
        language=language,
        password_hash=hash_password(password) if password is not None else None,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    token = issue_token(session, user=user, label="created with the user", now=now)
    return CreatedUser(user=user, token=token)


def issue_token(session: Session, *, user: User, label: str, now: dt.datetime) -> str:
    token = "gc_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(user_id=user.id, token_hash=_token_hash(token), label=label, created_at=now)
    )
    session.flush()
    return token


def revoke_tokens(session: Session, *, user: User, now: dt.datetime) -> int:
    count = 0
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = now
            count += 1
    session.flush()
    return count


def user_for_token(session: Session, token: str, *, now: dt.datetime) -> User | None:
    """The active user a bearer token belongs to, or ``None`` for an unknown or revoked token."""
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == _token_hash(token))
    )
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    # Touch last_used_at at most once a minute: a write per request would serialise traffic.
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        row.last_used_at = now
    return row.user


def check_login(
    session: Session, *, username: str, password: str, remote_addr: str, now: dt.datetime
) -> User | None:
    """The user when the password is right; ``None`` otherwise (and the failure is recorded).

    Raises :class:`LoginThrottled` after too many recent failures for the username, before the
    password is even checked, so guessing stays slow whichever web process answers.
    """
    since = now - FAILED_LOGIN_WINDOW
    failures = list(
        session.scalars(
            select(LoginFailure.at)
            .where(LoginFailure.username == username, LoginFailure.at > since)
            .order_by(LoginFailure.at)
        )
    )
    if len(failures) >= FAILED_LOGIN_LIMIT:
        oldest_counted = failures[-FAILED_LOGIN_LIMIT]
        wait = (oldest_counted + FAILED_LOGIN_WINDOW - now).total_seconds()
        raise LoginThrottled(max(math.ceil(wait), 1))
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.active else None
    try:
        _HASHER.verify(stored or _DUMMY_HASH, password)
        ok = stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        session.add(LoginFailure(username=username[:64], remote_addr=remote_addr[:64], at=now))
        session.flush()
        return None
    session.execute(delete(LoginFailure).where(LoginFailure.username == username))
    if _HASHER.check_needs_rehash(stored or ""):
        user.password_hash = hash_password(password)
    return user
