"""The database core shared by every package: the declarative base, UTC datetimes, engines.

Every package's models derive from :class:`Base` so that one Alembic history covers them all.
Nothing here knows about Flask: the web app, the worker and the CLI each open sessions through
:func:`make_engine` and :class:`sqlalchemy.orm.sessionmaker`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session
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
    url = normalise_url(url)
    if url.startswith("sqlite"):
        # Web requests and the scheduler thread share the file in the demo; wait for locks
        # rather than failing at once.
        options.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
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


class Database:
    """Flask glue: one engine per app, one session per app context (request, CLI command, job).

    Created unbound (``db = Database()``) and attached with :meth:`init_app`, as Flask extensions
    are. Services never use this object: they receive the session as an argument.
    """

    def init_app(self, app: Any) -> None:
        from sqlalchemy.orm import sessionmaker

        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["greenchannel.db"] = (engine, sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        from flask import current_app

        return current_app.extensions["greenchannel.db"][0]  # type: ignore[no-any-return]

    @property
    def session(self) -> Session:
        from flask import current_app, g

        if "db_session" not in g:
            factory = current_app.extensions["greenchannel.db"][1]
            g.db_session = factory()
        return g.db_session  # type: ignore[no-any-return]

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        from flask import g

        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()
            except DBAPIError:
                # The connection died under us (a database restart): discard it rather than
                # turn an answer that is already made into a 500.
                session.invalidate()


db = Database()
