"""attention items: a case needs a human exactly when the coordinators were texted

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:40:00

``attention_items`` records each reason a case needs a human, raised in the transaction that
queues the coordinators' text and read by the board; one open item per case and reason (a
partial unique index). ``alerts`` keeps the case it is about and the clinic's call-back
number, for the coordinators' text when a hospital stays silent.

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "attention_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("clinic_phone", sa.String(length=32), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=100), nullable=False),
        sa.Column("clear_reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["facility_id"], ["facilities.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_attention_items_subject", "attention_items", ["subject"])
    op.create_index(
        "uq_attention_items_open",
        "attention_items",
        ["subject", "reason"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column("case_subject", sa.String(length=64), server_default="", nullable=False)
        )
        batch.add_column(
            sa.Column("callback_phone", sa.String(length=32), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("callback_phone")
        batch.drop_column("case_subject")
    op.drop_index("uq_attention_items_open", table_name="attention_items")
    op.drop_index("ix_attention_items_subject", table_name="attention_items")
    op.drop_table("attention_items")
