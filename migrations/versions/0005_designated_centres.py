"""designated critical-care centres

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 07:40:00

``facilities.designated`` lists what a facility is a designated critical-care centre for
(``maternal``, ``neonatal``): the safety net of its area takes a critical case that nobody else
accepted (docs/domain.md, "The safety net").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        batch.add_column(sa.Column("designated", sa.JSON(), server_default="[]", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        batch.drop_column("designated")
