"""`greenchannel report --month YYYY-MM [--area A] [--format csv|xlsx|json]`: the monthly report
at the server's console (an operator's view: any area, as an administrator's)."""

from __future__ import annotations

import sys

import click

from core.db import utcnow
from core.errors import ServiceError
from greenchannel.cli.common import open_runtime, session_scope
from referral.reports import report_with_coverage
from referral.reports_export import FORMATS, pick_table, report_json, report_xlsx, table_csv


@click.command("report")
@click.option("--month", required=True, help="YYYY-MM, on the region's clock")
@click.option("--area", default="", help="Province/City/County (default: everywhere)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("--table", default=None, help="only this table (csv, xlsx)")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="write to this file instead of standard output",
)
def report(month: str, area: str, fmt: str, table: str | None, output: str | None) -> None:
    """The monthly report: JSON, CSV (every table, or --table) or an Excel workbook."""
    rt = open_runtime()
    place = rt.place()
    try:
        with session_scope(rt) as session:
            result = report_with_coverage(
                session, place=place, month=month, area=area.strip() or None, now=utcnow()
            )
        if fmt == "json":
            data = report_json(result).encode()
        elif fmt == "csv":
            tables = [pick_table(result, table)] if table else list(result.tables.values())
            blocks = [(f"# {t.name}\r\n" if not table else "") + table_csv(t) for t in tables]
            data = "\r\n".join(blocks).encode()
        else:
            if output is None and sys.stdout.isatty():
                raise click.ClickException("an Excel workbook needs --output FILE (or a pipe)")
            data = report_xlsx(result, only=table)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        with open(output, "wb") as out:
            out.write(data)
        click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
