"""The monthly report's tables as CSV (one table) and Excel (one sheet per table, openpyxl).

The tables are de-identified by construction: case codes, facility codes and names, counts and
minutes; never a patient's name, register number or any free text (docs/reports.md). Cells
that start like a spreadsheet formula are escaped as the registry export does.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from openpyxl import Workbook

from core.errors import Invalid
from facilities.registry import escape_formula
from referral.reports import MonthlyReport
from referral.reports_sql import Table

FORMATS = ("json", "csv", "xlsx")


def pick_table(report: MonthlyReport, name: str | None) -> Table:
    if not name:
        raise Invalid(
            "table: name the table to export (" + ", ".join(report.tables) + ")", field="table"
        )
    if name not in report.tables:
        raise Invalid(
            f"table: no table {name!r}; expected one of " + ", ".join(report.tables),
            field="table",
        )
    return report.tables[name]


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(["" if v is None else escape_formula(v) for v in row])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return escape_formula(str(value))


def report_xlsx(report: MonthlyReport, *, only: str | None = None) -> bytes:
    """A workbook: a ``summary`` sheet, then one sheet per table (or just ``only``)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has its one sheet
    sheet.title = "summary"
    sheet.append(["month", report.month])
    sheet.append(["area", report.area or ""])
    sheet.append(["facility", report.facility or ""])
    for key, value in report.summary.items():
        sheet.append([key, _cell(value)])
    tables = [pick_table(report, only)] if only else list(report.tables.values())
    for table in tables:
        ws = book.create_sheet(table.name[:31])
        ws.append(list(table.columns))
        for row in table.rows:
            ws.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def report_json(report: MonthlyReport) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=1)
