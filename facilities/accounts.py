"""Users, roles, API tokens, web sessions and password checks (argon2id), with failed logins
slowed down per client.

Web sessions live in the database (``WebSession``): the signed cookie carries a random id, the
database its SHA-256, and every request checks it, so a logout, a password reset and a
deactivation end a session everywhere, and an idle and an absolute timeout end it on a shared
ward computer. Failed logins are counted per client (address) across usernames, which slows a
password spray, and per (username, client), which slows guessing one account without locking
its owner out on another computer. Failures are kept, not deleted on success.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session, joinedload

from core.errors import Throttled
from facilities.common_passwords import COMMON_PASSWORDS
from facilities.models import ApiToken, LoginFailure, Role, User, WebSession
from facilities.registry import NotFound, RegistryError, check_phone, get_facility

_HASHER = PasswordHasher()
# A real hash to verify against when the user does not exist, so that timing does not reveal
# which usernames exist.
_DUMMY_HASH = _HASHER.hash("not-a-password")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")

# Per (username, client): the owner on another computer is not locked out.
FAILED_LOGIN_LIMIT = 5
# Per client across usernames: a spray of one password over many usernames is slowed.
FAILED_LOGIN_CLIENT_LIMIT = 20
FAILED_LOGIN_WINDOW = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10
PASSWORD_RULE = (
    f"at least {MIN_PASSWORD_LENGTH} characters, not a common password, "
    "and not containing the username"
)
DEFAULT_TOKEN_LIFETIME = dt.timedelta(days=90)
DEFAULT_SESSION_IDLE = dt.timedelta(minutes=30)
DEFAULT_SESSION_ABSOLUTE = dt.timedelta(hours=12)
# last_seen_at / last_used_at are written at most this often: a write per poll would
# serialise traffic.
TOUCH_EVERY = dt.timedelta(minutes=1)
TOKEN_PREFIX_LENGTH = 11  # "gc_" and 8 characters


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


class WeakPassword(AccountError):
    """A password that breaks the rule (``PASSWORD_RULE``); ``reason`` says which part."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"password: {reason}; the rule: {PASSWORD_RULE}", field="password")
        self.reason = reason


@dataclass(frozen=True)
class CreatedUser:
    user: User
    token: str


@dataclass(frozen=True)
class TokenUse:
    """An accepted bearer token: its user, and whether this use was recorded (at most once a
    minute: the caller audits it then)."""

    user: User
    token_id: int
    prefix: str
    recorded: bool


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password_strength(password: str, *, username: str) -> None:
    """Raise :class:`WeakPassword` unless the password follows ``PASSWORD_RULE``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword("too_short")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or lowered.rstrip("0123456789!.@#") in COMMON_PASSWORDS:
        raise WeakPassword("common")
    if username and username.lower() in lowered:
        raise WeakPassword("contains_username")
    if len(set(password)) < 4:
        raise WeakPassword("common")


def new_password() -> str:
    """A random password that follows the rule (given once to a user after a reset)."""
    return secrets.token_urlsafe(12)


def password_matches(user: User, password: str) -> bool:
    if not user.password_hash:
        return False
    try:
        return bool(_HASHER.verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hash(token: str) -> str:
    """The SHA-256 a token is stored and looked up by (hex)."""
    return _token_hash(token)


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
    token_lifetime: dt.timedelta = DEFAULT_TOKEN_LIFETIME,
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
    if password is not None:
        check_password_strength(password, username=username)
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
    token = issue_token(
        session, user=user, label="created with the user", now=now, lifetime=token_lifetime
    )
    return CreatedUser(user=user, token=token)


def issue_token(
    session: Session,
    *,
    user: User,
    label: str,
    now: dt.datetime,
    lifetime: dt.timedelta = DEFAULT_TOKEN_LIFETIME,
) -> str:
    """A new API token for the user, returned in clear once; it expires after ``lifetime``."""
    token = "gc_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id,
            token_hash=_token_hash(token),
            prefix=token[:TOKEN_PREFIX_LENGTH],
            label=label,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return token


def token_lifetime(settings: Mapping[str, Any]) -> dt.timedelta:
    """How long a new API token lives (``TOKEN_LIFETIME_DAYS``; the default when absent)."""
    return dt.timedelta(days=settings.get("TOKEN_LIFETIME_DAYS", DEFAULT_TOKEN_LIFETIME.days))


@dataclass(frozen=True)
class IssuedToken:
    token: str  # in clear: shown this once
    prefix: str  # how lists and the audit trail name it
    expires_at: dt.datetime


def new_token(
    session: Session, *, user: User, label: str, now: dt.datetime, lifetime: dt.timedelta
) -> IssuedToken:
    """A further API token for an active user (theirs expired, was lost or revoked, or a second
    system needs its own); their other tokens stay as they are."""
    if not user.active:
        raise AccountError(f"user: {user.username} is deactivated: no new token", field="user")
    token = issue_token(session, user=user, label=label, now=now, lifetime=lifetime)
    return IssuedToken(token=token, prefix=token[:TOKEN_PREFIX_LENGTH], expires_at=now + lifetime)


def token_expires_at(token: ApiToken) -> dt.datetime:
    return token.expires_at or token.created_at + DEFAULT_TOKEN_LIFETIME


def revoke_tokens(session: Session, *, user: User, now: dt.datetime) -> int:
    count = 0
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = now
            count += 1
    session.flush()
    return count


def revoke_token_by_prefix(session: Session, *, prefix: str, now: dt.datetime) -> ApiToken:
    """Revoke the one live token whose first characters are ``prefix`` (at least "gc_" and 8)."""
    prefix = prefix.strip()
    if len(prefix) < TOKEN_PREFIX_LENGTH or not prefix.startswith("gc_"):
        raise AccountError(
            f"token: give the token's first {TOKEN_PREFIX_LENGTH} characters or more (gc_…)",
            field="token",
        )
    rows = list(
        session.scalars(
            select(ApiToken).where(
                ApiToken.prefix == prefix[:TOKEN_PREFIX_LENGTH], ApiToken.revoked_at.is_(None)
            )
        )
    )
    if len(prefix) > 40:  # the whole token: exactly that one
        rows = [row for row in rows if row.token_hash == _token_hash(prefix)]
    if not rows:
        raise NotFound(f"token: no live token starts with {prefix[:TOKEN_PREFIX_LENGTH]!r}")
    if len(rows) > 1:
        raise AccountError("token: more than one live token has that prefix", field="token")
    rows[0].revoked_at = now
    session.flush()
    return rows[0]


def _live_token(session: Session, token: str, *, now: dt.datetime) -> ApiToken | None:
    row = session.scalar(
        select(ApiToken)
        .options(joinedload(ApiToken.user))
        .where(ApiToken.token_hash == _token_hash(token))
    )
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if now >= token_expires_at(row):
        return None
    return row


def token_is_live(session: Session, token: str, *, user: User, now: dt.datetime) -> bool:
    """Whether ``token`` is the user's, unrevoked and unexpired (nothing is written)."""
    row = _live_token(session, token, now=now)
    return row is not None and row.user_id == user.id


def token_use(session: Session, token: str, *, now: dt.datetime) -> TokenUse | None:
    """The active user a bearer token belongs to, or ``None`` for an unknown, revoked or
    expired token. The token's last use is written at most once a minute."""
    row = _live_token(session, token, now=now)
    if row is None:
        return None
    recorded = row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY
    if recorded:
        row.last_used_at = now
    return TokenUse(user=row.user, token_id=row.id, prefix=row.prefix, recorded=recorded)


def user_for_token(session: Session, token: str, *, now: dt.datetime) -> User | None:
    """The active user a bearer token belongs to (see :func:`token_use`)."""
    use = token_use(session, token, now=now)
    return use.user if use is not None else None


# ---------------------------------------------------------------------------- web sessions


def start_session(session: Session, *, user: User, remote_addr: str, now: dt.datetime) -> str:
    """A new web session for the user; the returned id goes into the signed cookie."""
    raw = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user.id,
            token_hash=_token_hash(raw),
            remote_addr=remote_addr[:64],
            created_at=now,
            last_seen_at=now,
        )
    )
    session.flush()
    return raw


def session_limits(settings: Mapping[str, Any]) -> tuple[dt.timedelta, dt.timedelta]:
    """(idle, absolute): a web session's limits from the settings (``SESSION_IDLE_MINUTES``,
    ``SESSION_MAX_HOURS``; the defaults when absent)."""
    return (
        dt.timedelta(minutes=settings.get("SESSION_IDLE_MINUTES", 30)),
        dt.timedelta(hours=settings.get("SESSION_MAX_HOURS", 12)),
    )


def user_for_session(
    session: Session,
    raw: str,
    *,
    now: dt.datetime,
    idle: dt.timedelta = DEFAULT_SESSION_IDLE,
    absolute: dt.timedelta = DEFAULT_SESSION_ABSOLUTE,
) -> User | None:
    """The active user of a live web session; ``None`` once it is revoked, idle longer than
    ``idle`` or older than ``absolute``. ``last_seen_at`` is written at most once a minute."""
    row = session.scalar(
        select(WebSession)
        .options(joinedload(WebSession.user))
        .where(WebSession.token_hash == _token_hash(raw))
    )
    if row is None or row.revoked_at is not None or not row.user.active:
        return None
    if now - row.last_seen_at >= idle or now - row.created_at >= absolute:
        row.revoked_at = now
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row.user


def end_session(session: Session, raw: str, *, now: dt.datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.token_hash == _token_hash(raw), WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_sessions(session: Session, *, user: User, now: dt.datetime) -> int:
    """End every live web session of the user (password reset, deactivation)."""
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def forget_old_sign_ins(
    session: Session,
    *,
    now: dt.datetime,
    days: int,
    idle: dt.timedelta = DEFAULT_SESSION_IDLE,
    absolute: dt.timedelta = DEFAULT_SESSION_ABSOLUTE,
) -> tuple[int, int]:
    """Delete the sign-in records older than ``days``: web sessions that ended (revoked, idle
    longer than ``idle`` or older than ``absolute``) and were last seen before then, and failed
    logins from before then (each holds a username and a client address). Returns (sessions,
    failures). A session still live is never deleted, however old its last sight."""
    cutoff = now - dt.timedelta(days=days)
    sessions = session.execute(
        delete(WebSession).where(
            WebSession.last_seen_at < cutoff,
            or_(
                WebSession.revoked_at.is_not(None),
                WebSession.last_seen_at <= now - idle,
                WebSession.created_at <= now - absolute,
            ),
        )
    )
    failures = session.execute(delete(LoginFailure).where(LoginFailure.at < cutoff))
    return (
        int(getattr(sessions, "rowcount", 0) or 0),
        int(getattr(failures, "rowcount", 0) or 0),
    )


# ---------------------------------------------------------------------------- lifecycle


def list_users(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).options(joinedload(User.facility)).order_by(User.username)
        ).unique()
    )


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user: no user named {username[:64]!r}")
    return user


def deactivate_user(session: Session, *, username: str, now: dt.datetime) -> User:
    """The user can no longer log in; every token and session of theirs ends now."""
    user = get_user(session, username)
    user.active = False
    revoke_tokens(session, user=user, now=now)
    revoke_sessions(session, user=user, now=now)
    session.flush()
    return user


def reset_password(
    session: Session, *, username: str, password: str | None = None, now: dt.datetime
) -> str:
    """Set a new password (a random one when not given, returned to hand over once) and end
    every web session of the user."""
    user = get_user(session, username)
    chosen = new_password() if password is None else password
    check_password_strength(chosen, username=user.username)
    user.password_hash = hash_password(chosen)
    revoke_sessions(session, user=user, now=now)
    session.flush()
    return chosen


def live_tokens(session: Session, *, user: User, now: dt.datetime) -> list[ApiToken]:
    return [
        t
        for t in sorted(user.tokens, key=lambda t: t.id)
        if t.revoked_at is None and now < token_expires_at(t)
    ]


def _count_failures(session: Session, *conditions: object) -> list[dt.datetime]:
    return list(
        session.scalars(
            select(LoginFailure.at).where(*conditions).order_by(LoginFailure.at)  # type: ignore[arg-type]
        )
    )


def check_login(
    session: Session, *, username: str, password: str, remote_addr: str, now: dt.datetime
) -> User | None:
    """The user when the password is right; ``None`` otherwise (and the failure is recorded).

    Raises :class:`LoginThrottled` before the password is even checked after too many recent
    failures from this client (any usernames) or for this username from this client, so
    guessing stays slow whichever web process answers, while the account's owner on another
    computer still gets in.
    """
    since = now - FAILED_LOGIN_WINDOW
    client = remote_addr[:64]
    username = username[:64]
    waits = []
    by_client = _count_failures(
        session, LoginFailure.remote_addr == client, LoginFailure.at > since
    )
    if len(by_client) >= FAILED_LOGIN_CLIENT_LIMIT:
        waits.append(by_client[-FAILED_LOGIN_CLIENT_LIMIT])
    by_pair = _count_failures(
        session,
        LoginFailure.username == username,
        LoginFailure.remote_addr == client,
        LoginFailure.at > since,
        LoginFailure.cleared_at.is_(None),
    )
    if len(by_pair) >= FAILED_LOGIN_LIMIT:
        waits.append(by_pair[-FAILED_LOGIN_LIMIT])
    if waits:
        wait = (max(waits) + FAILED_LOGIN_WINDOW - now).total_seconds()
        raise LoginThrottled(max(math.ceil(wait), 1))
    user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None and user.active else None
    try:
        _HASHER.verify(stored or _DUMMY_HASH, password)
        ok = stored is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        session.add(LoginFailure(username=username, remote_addr=client, at=now))
        session.flush()
        return None
    session.execute(
        update(LoginFailure)
        .where(
            LoginFailure.username == username,
            LoginFailure.remote_addr == client,
            LoginFailure.cleared_at.is_(None),
        )
        .values(cleared_at=now)
    )
    if _HASHER.check_needs_rehash(stored or ""):
        user.password_hash = hash_password(password)
    return user
