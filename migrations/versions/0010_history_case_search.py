"""case history search: colour and condition columns, indexes for keyset pages

Revision ID: 0010_history
Revises: 0009
Create Date: 2026-12-03 13:20:00

``referrals`` gains ``risk_colour`` and ``conditions_key`` (``|PPH|SEPSIS|``): copies of the
case's colour and condition codes as plain columns, so the case history (``referral.history``)
filters them in SQL on SQLite and PostgreSQL alike; existing cases are filled from their
``case``. Indexes lead with each filter and end with ``created_at``, so a filtered page newest
first reads the index in order and stops after a page; ``offers`` gains (facility_id,
referral_id) for the cases offered to a facility or an area (the scope rule).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010_history"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_referrals_created_id", ["created_at", "id"]),
    ("ix_referrals_origin_created", ["origin_facility_id", "created_at"]),
    ("ix_referrals_destination_created", ["destination_facility_id", "created_at"]),
    ("ix_referrals_colour_created", ["risk_colour", "created_at"]),
    ("ix_referrals_urgency_created", ["urgency", "created_at"]),
)
BATCH = 1000


def _fields(case: Any) -> tuple[str, str]:
    if isinstance(case, str):
        case = json.loads(case)
    case = case or {}
    codes = [str(code) for code in case.get("conditions") or [] if code]
    return str(case.get("risk_colour") or ""), ("|" + "|".join(codes) + "|" if codes else "")


def upgrade() -> None:
    op.add_column(
        "referrals", sa.Column("risk_colour", sa.String(length=8), server_default="", nullable=False)
    )
    op.add_column(
        "referrals", sa.Column("conditions_key", sa.Text(), server_default="", nullable=False)
    )
    referrals = sa.table(
        "referrals",
        sa.column("id", sa.Integer()),
        sa.column("case", sa.JSON()),
        sa.column("risk_colour", sa.String()),
        sa.column("conditions_key", sa.Text()),
    )
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(referrals.c.id, referrals.c.case)
            .where(referrals.c.id > last)
            .order_by(referrals.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1].id
        for row in rows:
            colour, key = _fields(row.case)
            if colour or key:
                bind.execute(
                    referrals.update()
                    .where(referrals.c.id == row.id)
                    .values(risk_colour=colour, conditions_key=key)
                )
    for name, columns in INDEXES:
        op.create_index(name, "referrals", columns, unique=False)
    op.create_index(
        "ix_offers_facility_referral", "offers", ["facility_id", "referral_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_offers_facility_referral", table_name="offers")
    for name, _ in reversed(INDEXES):
        op.drop_index(name, table_name="referrals")
    # Not batch mode: recreating ``referrals`` on SQLite would drop its revision triggers (0004);
    # SQLite 3.35+ drops a column in place.
    op.drop_column("referrals", "conditions_key")
    op.drop_column("referrals", "risk_colour")
