"""The schema comes from the migrations, and the migrations match the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, make_url, text

from core.db import Base, make_engine, normalise_url
from migrations import import_models, upgrade


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A brand-new empty database on the same server as the suite's database."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    name = f"{url.database}_migrations"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_an_empty_database_upgraded_to_head_matches_the_models(empty_database_url: str) -> None:
    import_models()
    upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert differences == [], f"models differ from the migrations: {differences}"
    assert version is not None


def test_upgrading_twice_is_harmless(empty_database_url: str) -> None:
    upgrade(empty_database_url)
    upgrade(empty_database_url)


def test_the_where_fields_migrate_up_with_empty_values_and_down_again(
    empty_database_url: str,
) -> None:
    """0006 adds address, department and entrance to a registry that already has facilities
    (empty, not NULL), and its downgrade removes them again."""
    from alembic import command
    from sqlalchemy import inspect

    from migrations import alembic_config

    def columns() -> set[str]:
        engine = make_engine(empty_database_url)
        try:
            return {c["name"] for c in inspect(engine).get_columns("facilities")}
        finally:
            engine.dispose()

    where = {"address", "department", "department_en", "entrance", "entrance_en"}
    upgrade(empty_database_url, "0005")
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO facilities (code, name, name_en, kind, province, city, county,"
                    " township, lat, lon, maternal_level, neonatal_level, capabilities, phone,"
                    " active, created_at, updated_at) VALUES ('H-1', 'h', '', 'county_hospital',"
                    " '', '', '', '', 30, 110, 2, 2, '[]', '', true, :now, :now)"
                ),
                {"now": "2026-01-01 00:00:00"},
            )
        assert not where & columns()
        upgrade(empty_database_url, "0006")
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT address, department, entrance_en FROM facilities")
            ).one()
        assert tuple(row) == ("", "", "")
        command.downgrade(alembic_config(empty_database_url), "0005")
        assert not where & columns()
        upgrade(empty_database_url)
        assert where <= columns()
    finally:
        engine.dispose()
