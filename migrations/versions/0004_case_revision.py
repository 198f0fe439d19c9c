"""case revision, kept by triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 16:10:00

``referrals.revision`` changes whenever the case, one of its offers or one of its timeline rows
is written, by whatever code or tool: the database's triggers do it, not the application. Each
web process caches the JSON document of a case under its revision and rebuilds it only when
the revision it reads differs (``referral.documents``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = ("offers", "referral_events")

POSTGRESQL = [
    """
    CREATE FUNCTION greenchannel_case_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.revision = OLD.revision THEN
            NEW.revision := OLD.revision + 1;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER referrals_revision BEFORE UPDATE ON referrals
    FOR EACH ROW EXECUTE FUNCTION greenchannel_case_revision()
    """,
    """
    CREATE FUNCTION greenchannel_case_child_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            UPDATE referrals SET revision = revision + 1 WHERE id = OLD.referral_id;
        ELSE
            UPDATE referrals SET revision = revision + 1 WHERE id = NEW.referral_id;
            -- A row moved to another case changes the case it leaves too.
            IF TG_OP = 'UPDATE' AND OLD.referral_id <> NEW.referral_id THEN
                UPDATE referrals SET revision = revision + 1 WHERE id = OLD.referral_id;
            END IF;
        END IF;
        RETURN NULL;
    END $$
    """,
    *(
        f"""
        CREATE TRIGGER {table}_revision AFTER INSERT OR UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION greenchannel_case_child_changed()
        """
        for table in CHILDREN
    ),
]

SQLITE = [
    # The inner UPDATE changes the revision, so this trigger's WHEN stops it firing again.
    """
    CREATE TRIGGER referrals_revision AFTER UPDATE ON referrals
    FOR EACH ROW WHEN NEW.revision = OLD.revision
    BEGIN
        UPDATE referrals SET revision = OLD.revision + 1 WHERE id = NEW.id;
    END
    """,
    *(
        f"""
        CREATE TRIGGER {table}_revision_{operation.lower()} AFTER {operation} ON {table}
        FOR EACH ROW
        BEGIN
            UPDATE referrals SET revision = revision + 1 WHERE id IN ({rows});
        END
        """
        for table in CHILDREN
        for operation, rows in (
            ("INSERT", "NEW.referral_id"),
            ("UPDATE", "OLD.referral_id, NEW.referral_id"),
            ("DELETE", "OLD.referral_id"),
        )
    ),
]


def upgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision", sa.BigInteger(), server_default="0", nullable=False)
        )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CHILDREN:
            op.execute(f"DROP TRIGGER {table}_revision ON {table}")
        op.execute("DROP TRIGGER referrals_revision ON referrals")
        op.execute("DROP FUNCTION greenchannel_case_child_changed()")
        op.execute("DROP FUNCTION greenchannel_case_revision()")
    else:
        for table in CHILDREN:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_revision_{operation}")
        op.execute("DROP TRIGGER referrals_revision")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("revision")
