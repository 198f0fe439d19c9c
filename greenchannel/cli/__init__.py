"""The ``greenchannel`` command: every subcommand, added here explicitly (the README lists them).

Each command starts from the composition root (:mod:`greenchannel.runtime`); only ``serve`` and
``demo`` build the web app.
"""

from __future__ import annotations

import click

from greenchannel.cli import demo, registry, reports, roads, serving
from greenchannel.cli.serving import settle_heap


@click.group()
def main() -> None:
    """Green-channel referral of critically ill pregnant women and newborns."""


for command in (
    registry.db_group,
    registry.facilities_group,
    registry.contacts_group,
    registry.users_group,
    registry.tokens_group,
    roads.roads_group,
    roads.route,
    roads.coverage,
    serving.retention,
    serving.serve,
    serving.worker,
    demo.demo,
    reports.report,
):
    main.add_command(command)

__all__ = ["main", "settle_heap"]
