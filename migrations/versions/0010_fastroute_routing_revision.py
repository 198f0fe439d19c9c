"""routing revision, kept by triggers

Revision ID: 0010_fastroute
Revises: 0009
Create Date: 2026-12-03 13:20:00

``routing_revision`` holds one row whose ``revision`` the database's triggers move whenever a
facility, its live status or a road closure is inserted, updated or deleted, by whatever code
or tool (the web pages, the API, SMS, the worker, another process, raw SQL). Each web process
keeps the facility table and the closures the router reads under that revision and reloads them
only when the revision it reads differs (``referral.live``). The counter starts at a random
value: a database rebuilt from scratch never repeats a revision a running process has cached.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_fastroute"
down_revision: str | None = "0010_voice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("facilities", "facility_status", "road_closures")

POSTGRESQL = [
    """
    CREATE FUNCTION greenchannel_routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE routing_revision SET revision = revision + 1 WHERE id = 1;
        RETURN NULL;
    END $$
    """,
    *(
        f"""
        CREATE TRIGGER {table}_routing_revision
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION greenchannel_routing_changed()
        """
        for table in WATCHED
    ),
]

SQLITE = [
    f"""
    CREATE TRIGGER {table}_routing_revision_{operation.lower()} AFTER {operation} ON {table}
    FOR EACH ROW
    BEGIN
        UPDATE routing_revision SET revision = revision + 1 WHERE id = 1;
    END
    """
    for table in WATCHED
    for operation in ("INSERT", "UPDATE", "DELETE")
]


def upgrade() -> None:
    op.create_table(
        "routing_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_revision")),
    )
    start = secrets.randbits(52)
    op.execute(f"INSERT INTO routing_revision (id, revision) VALUES (1, {start})")
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER {table}_routing_revision ON {table}")
        op.execute("DROP FUNCTION greenchannel_routing_changed()")
    else:
        for table in WATCHED:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_routing_revision_{operation}")
    op.drop_table("routing_revision")
