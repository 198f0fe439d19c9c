"""SMS provider health, shared by every worker

Revision ID: 0010_smscn
Revises: 0009
Create Date: 2026-12-03 13:40:00

``sms_provider_health``: one row per SMS provider (``aliyun``, ``tencent``, ``twilio``), the
transient failures in the current window and, once they reach the threshold, until when the
provider is taken as down and the fallback carries the messages (alerts.providers.health).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_smscn"
down_revision: str | None = "0010_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_provider_health",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("down_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", name=op.f("pk_sms_provider_health")),
    )


def downgrade() -> None:
    op.drop_table("sms_provider_health")
