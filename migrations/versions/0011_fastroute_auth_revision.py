"""auth revision, kept by triggers

Revision ID: 0011_fastroute
Revises: 0010_fastroute
Create Date: 2026-12-03 14:10:00

``auth_revision`` holds one row whose ``revision`` the database's triggers move whenever a user
or an API token is inserted, updated or deleted, by whatever code or tool (the CLI, the pages,
the API, another process, raw SQL). Each web process keeps the bearer tokens it has verified
under that revision and checks a token against the database again as soon as the revision it
reads differs (``facilities.token_cache``): a revocation, a deactivation, a role change takes
effect on the next request. The counter starts at a random value, like the routing revision.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_fastroute"
down_revision: str | None = "0010_fastroute"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("users", "api_tokens")

POSTGRESQL = [
    """
    CREATE FUNCTION greenchannel_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE auth_revision SET revision = revision + 1 WHERE id = 1;
        RETURN NULL;
    END $$
    """,
    *(
        f"""
        CREATE TRIGGER {table}_auth_revision
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION greenchannel_auth_changed()
        """
        for table in WATCHED
    ),
]

SQLITE = [
    f"""
    CREATE TRIGGER {table}_auth_revision_{operation.lower()} AFTER {operation} ON {table}
    FOR EACH ROW
    BEGIN
        UPDATE auth_revision SET revision = revision + 1 WHERE id = 1;
    END
    """
    for table in WATCHED
    for operation in ("INSERT", "UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "auth_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_revision")),
    )
    start = secrets.randbits(52)
    op.execute(f"INSERT INTO auth_revision (id, revision) VALUES (1, {start})")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER {table}_auth_revision ON {table}")
        op.execute("DROP FUNCTION greenchannel_auth_changed()")
    else:
        for table in WATCHED:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_auth_revision_{operation}")
    op.drop_table("auth_revision")
