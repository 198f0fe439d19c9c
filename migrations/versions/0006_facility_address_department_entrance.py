"""where to bring a case: facility address, department and entrance

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00

``facilities.address`` (the street address, for the driver and the map apps),
``department`` / ``department_en`` (the receiving unit, e.g. 产科急诊) and ``entrance`` /
``entrance_en`` (the way in, e.g. 急诊楼东门，2楼): what the people bringing a case need
besides the name and the position (issue 17, "where and when"). Empty for facilities already
in the registry until an import or an administrator fills them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("address", 200),
    ("department", 100),
    ("department_en", 100),
    ("entrance", 100),
    ("entrance_en", 100),
)


def upgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        for name, length in COLUMNS:
            batch.add_column(
                sa.Column(name, sa.String(length=length), server_default="", nullable=False)
            )


def downgrade() -> None:
    with op.batch_alter_table("facilities") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
