"""Flask glue for the database: one session per app context (request, CLI command), taken from
the runtime's session factory and closed at teardown. Services never use this object: they
receive the session as an argument."""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


class Database:
    """Flask glue: one engine per app, one session per app context (request, CLI command, job).

    Created unbound (``db = Database()``) and attached with :meth:`init_app`, as Flask extensions
    are. Services never use this object: they receive the session as an argument.
    """

    def init_app(self, app: Any, *, engine: Engine, factory: Any) -> None:
        app.extensions["greenchannel.db"] = (engine, factory)
        app.teardown_appcontext(self._close_session)

    @property
    def engine(self) -> Engine:
        return current_app.extensions["greenchannel.db"][0]  # type: ignore[no-any-return]

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            factory = current_app.extensions["greenchannel.db"][1]
            g.db_session = factory()
        return g.db_session  # type: ignore[no-any-return]

    @staticmethod
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()
            except DBAPIError:
                # The connection died under us (a database restart): discard it rather than
                # turn an answer that is already made into a 500.
                session.invalidate()


db = Database()
