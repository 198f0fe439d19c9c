"""A revision counter kept by triggers: one row whose ``revision`` the database moves on every
insert, update or delete of the tables it watches, whoever writes (migrations 0010_fastroute and
0011_fastroute; read by ``core.revisions``). The counter starts at a random value: a database
rebuilt from scratch never repeats a revision a running process has kept something under."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

_OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def create(table: str, watched: tuple[str, ...]) -> None:
    """The counter ``table`` (one row, id 1) and the triggers on ``watched`` that move it."""
    op.create_table(
        table,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.execute(f"INSERT INTO {table} (id, revision) VALUES (1, {secrets.randbits(52)})")
    move = f"UPDATE {table} SET revision = revision + 1 WHERE id = 1;"
    if _postgresql():
        op.execute(
            f"""
            CREATE FUNCTION {_function(table)}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {move}
                RETURN NULL;
            END $$
            """
        )
        for watched_table in watched:
            op.execute(
                f"""
                CREATE TRIGGER {watched_table}_{table}
                AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {watched_table}
                FOR EACH STATEMENT EXECUTE FUNCTION {_function(table)}()
                """
            )
        return
    for watched_table in watched:
        for operation in _OPERATIONS:
            op.execute(
                f"""
                CREATE TRIGGER {watched_table}_{table}_{operation.lower()}
                AFTER {operation} ON {watched_table}
                FOR EACH ROW
                BEGIN
                    {move}
                END
                """
            )


def drop(table: str, watched: tuple[str, ...]) -> None:
    """Undo :func:`create`."""
    if _postgresql():
        for watched_table in watched:
            op.execute(f"DROP TRIGGER {watched_table}_{table} ON {watched_table}")
        op.execute(f"DROP FUNCTION {_function(table)}()")
    else:
        for watched_table in watched:
            for operation in _OPERATIONS:
                op.execute(f"DROP TRIGGER {watched_table}_{table}_{operation.lower()}")
    op.drop_table(table)


def _function(table: str) -> str:
    # the names the first migrations gave them: greenchannel_routing_changed, ..._auth_changed
    return f"greenchannel_{table.removesuffix('_revision')}_changed"


def _postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")
