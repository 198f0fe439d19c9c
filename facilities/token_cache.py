"""Bearer tokens this process has verified, kept under the auth revision.

Checking a token against the database on every request (the token and its user, in a session
of its own) was a good part of a route request's time. The database's triggers (migration 0011)
move ``auth_revision.revision`` on every write to ``users`` and ``api_tokens``, whoever writes:
the CLI, the pages, the API, another process, raw SQL. A token verified at a revision is taken
again without a lookup while the revision a request reads is the same and the token's expiry
is not reached: a revocation, a deactivation, a role change, a deletion moves the revision, and
the next request checks the token against the database again. The user's columns, read in the
same transaction as the token, are kept beside it: a request under the same revision gets its
user without a query (:func:`attach_user`).

Why this is never stale: the revision is read *before* the token, in the same transaction (see
``referral.live`` for the argument). Only accepted tokens are kept; an unknown, revoked or
expired token is looked up every time. A database without the row keeps nothing.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.orm.util import identity_key

from core import revisions
from facilities.accounts import TOUCH_EVERY, TokenUse, token_expires_at, token_hash
from facilities.models import ApiToken, User

_KEPT = 10_000  # verified tokens per database before the cache starts afresh


@dataclass(frozen=True)
class Verified:
    """A token accepted at ``revision``: whose it is and until when it may be taken unchecked."""

    revision: int
    user_id: int
    expires_at: dt.datetime
    last_used_at: dt.datetime | None
    user: tuple[tuple[str, Any], ...] = ()  # the user's columns as read with the token


_USER_COLUMNS = tuple(attr.key for attr in User.__mapper__.column_attrs)
_USER_CLASS = manager_of_class(User)


def attach_user(session: Session, verified: Verified) -> User:
    """The token's user in ``session``, from the columns kept with the token: no query.

    A new instance is built from the kept values for each request and added to the session as
    if the session had read the row (detached, then attached): its relationships load on first
    use as usual. Every column is a plain value (no mutable JSON), so a request cannot change
    what is kept. When the session already holds that user, that instance is the answer.
    """
    values = dict(verified.user)
    held = session.identity_map.get(identity_key(User, values["id"]))
    if held is not None:
        return held
    # as the ORM's own loading does: a bare instance whose dict holds the row's values
    copy = _USER_CLASS.new_instance()
    copy.__dict__.update(values)
    make_transient_to_detached(copy)
    session.add(copy)
    return copy


def auth_revision(session: Session) -> int | None:
    """The auth revision (None when the database has no revision row: nothing is kept); read
    with the routing revision, once per transaction (``core.revisions``)."""
    return revisions.revision(session, revisions.AUTH)


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


_lock = threading.Lock()
_kept: weakref.WeakKeyDictionary[Engine, dict[str, Verified]] = weakref.WeakKeyDictionary()


def cached(session: Session, token: str, *, now: dt.datetime) -> Verified | None:
    """A token verified at the revision ``session`` reads now, or None (not kept, the revision
    moved, expired, or its once-a-minute last use is due: check it)."""
    revision = auth_revision(session)
    if revision is None:
        return None
    with _lock:
        hit = _kept.get(_engine(session), {}).get(token_hash(token))
    if hit is None or hit.revision != revision or now >= hit.expires_at:
        return None
    if hit.last_used_at is None or now - hit.last_used_at >= TOUCH_EVERY:
        return None  # the last use is to be written: the caller goes to the database
    return hit


def keep(session: Session, token: str, use: TokenUse, *, revision: int | None) -> None:
    """Keep an accepted token, verified in ``session`` after it read ``revision``."""
    if revision is None:
        return
    row = session.get(ApiToken, use.token_id)
    if row is None:
        return
    verified = Verified(
        revision=revision,
        user_id=use.user.id,
        expires_at=token_expires_at(row),
        # the use just recorded is not committed yet: keep the last use the database holds,
        # so the next request writes it if this one does not
        last_used_at=None if use.recorded else row.last_used_at,
        user=tuple((key, getattr(use.user, key)) for key in _USER_COLUMNS),
    )
    with _lock:
        kept = _kept.setdefault(_engine(session), {})
        if len(kept) >= _KEPT:
            kept.clear()
        kept[token_hash(token)] = verified


def forget(engine: Engine | None = None) -> None:
    """Drop the kept tokens (of one engine, or all): the next request checks afresh."""
    with _lock:
        if engine is None:
            _kept.clear()
        else:
            _kept.pop(engine, None)
