"""The database core shared by every package: the declarative base, UTC datetimes, engines.

Every package's models derive from :class:`Base` so that one Alembic history covers them all.
Nothing here knows about Flask: the runtime (:mod:`greenchannel.runtime`) opens the engine and
the session factory once for the web app, the worker, the CLI and the demo.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones: values are stored as naive UTC and come back aware. Naive values
    are refused on the way in, because a naive local time silently shifts every timer.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_url(url: str) -> str:
    """Send plain ``postgresql://`` URLs (as hosting providers print them) to psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **options: Any) -> Engine:
    """The engine for ``url``. Its errors never quote the bound parameters (a patient's
    reference, a phone, a note would otherwise reach the logs with an IntegrityError)."""
    url = normalise_url(url)
    options.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        # Web requests and the scheduler thread share the file in the demo; wait for locks
        # rather than failing at once.
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        _create_private_file(make_url(url).database)
        engine = create_engine(url, **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options.setdefault("pool_pre_ping", True)
    return create_engine(url, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _create_private_file(path: str | None) -> None:
    """Create the SQLite file readable by its owner only (0600) before SQLite creates it with
    the umask's mode (often world-readable); its WAL and shared-memory files follow its mode.
    An existing file is left as it is."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    except OSError:
        return  # no such directory, or not writable: SQLite reports it when it connects
