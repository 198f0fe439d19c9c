"""The fixtures: a migrated database (SQLite by default, PostgreSQL when
GREENCHANNEL_TEST_DATABASE_URL points at one), a session, the Flask app, and the world every
test lives in (``world``, ``region``, ``place``), which tests/world.py maps and builds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from core.db import Base, make_engine
from migrations import import_models, upgrade

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("GREENCHANNEL_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    import_models()
    engine = make_engine(database_url)
    reset_database(engine)
    upgrade(database_url)
    # Models that do not have their revision yet still get tables here; the migration test
    # (test_migrations.py) is the one that insists every model change ships with a revision.
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def reset_database(engine: Engine) -> None:
    """Start from an empty database: the schema is built by the migrations, not by us."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(text(f'DELETE FROM "{table.name}"'))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session:
        yield session
    _wipe(engine)


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield sessionmaker(engine, expire_on_commit=False)
    _wipe(engine)


# ------------------------------------------------------------------------ the app and the world

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient, FlaskCliRunner  # noqa: E402

from referral.placement import Placement  # noqa: E402
from tests.world import Region, World, build_region, build_world, placement  # noqa: E402


@pytest.fixture
def app(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Flask]:
    from greenchannel.web.app import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test-secret",
            "SMS_BACKEND": "recording",
            "PUBLIC_BASE_URL": "https://gc.test",
            "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
        }
    )
    yield app
    _wipe(engine)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    """The region in the app's database, driven through the client (tests/world.py)."""
    return build_world(app, client)


@pytest.fixture
def region(session: Session) -> Region:
    """The same region on a plain session, for the domain tests without Flask."""
    return build_region(session)


@pytest.fixture
def place() -> Placement:
    """The shipped rules with the straight-line router."""
    return placement()
