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

from collections.abc import Sequence

from migrations import revision_counter

revision: str = "0010_fastroute"
down_revision: str | None = "0010_voice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("facilities", "facility_status", "road_closures")


def upgrade() -> None:
    revision_counter.create("routing_revision", WATCHED)


def downgrade() -> None:
    revision_counter.drop("routing_revision", WATCHED)
