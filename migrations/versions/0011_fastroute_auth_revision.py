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

from collections.abc import Sequence

from migrations import revision_counter

revision: str = "0011_fastroute"
down_revision: str | None = "0010_fastroute"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("users", "api_tokens")


def upgrade() -> None:
    revision_counter.create("auth_revision", WATCHED)


def downgrade() -> None:
    revision_counter.drop("auth_revision", WATCHED)
