"""The case history over HTTP: its query (the API's and the page's), the exports (CSV, Excel).

The filters are validated once, by :func:`referral.history.parse_filters`; the query schema
here only describes them in the OpenAPI document (and types ``limit``).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response, current_app
from marshmallow import Schema, fields, validate
from openpyxl import Workbook

from greenchannel.web.context import current_rules
from greenchannel.web.db import db
from referral import history
from referral.access import Actor
from referral.rules import COLOURS, URGENCIES

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("json", "csv", "xlsx")


class HistoryQuerySchema(Schema):
    """``GET /api/v1/referrals``: filters (all optional, combined with AND), paging, format."""

    from_ = fields.String(
        validate=validate.Length(max=40),
        data_key="from",
        metadata={
            "description": "created on or after: a date YYYY-MM-DD (a day in the region's time "
            "zone) or an ISO 8601 time"
        },
    )
    to = fields.String(
        validate=validate.Length(max=40),
        metadata={
            "description": "created before this time, or on or before this date (the whole day)"
        },
    )
    condition = fields.String(
        validate=validate.Length(max=32), metadata={"description": "a condition code, e.g. PPH"}
    )
    colour = fields.String(metadata={"enum": list(COLOURS), "description": "risk colour"})
    urgency = fields.String(metadata={"enum": list(URGENCIES)})
    status = fields.String(
        metadata={
            "enum": list(history.STATUS_CHOICES),
            "description": "active = every open case; closed = completed or cancelled",
        }
    )
    origin = fields.String(
        validate=validate.Length(max=64), metadata={"description": "the referring facility's code"}
    )
    destination = fields.String(
        validate=validate.Length(max=64), metadata={"description": "the accepting facility's code"}
    )
    outcome = fields.String(
        metadata={
            "enum": list(history.OUTCOMES),
            "description": "cancelled, unplaced, safety_net (placed by the safety net), arrived "
            "(arrived or completed), accepted (accepted or on the way), pending (no hospital yet)",
        }
    )
    q = fields.String(
        validate=validate.Length(max=32), metadata={"description": "a case code, or its start"}
    )
    sort = fields.String(
        load_default="newest", metadata={"enum": list(history.SORTS), "default": "newest"}
    )
    cursor = fields.String(
        validate=validate.Length(max=256),
        metadata={"description": "the `next_cursor` of the previous page; absent: the first page"},
    )
    limit = fields.Integer(
        load_default=history.DEFAULT_LIMIT,
        validate=validate.Range(1, history.MAX_LIMIT),
        metadata={"description": "cases per page"},
    )
    format = fields.String(
        load_default="json",
        metadata={
            "enum": list(FORMATS),
            "description": "csv or xlsx: every matching case (at most "
            f"{history.EXPORT_CAP:,}; `X-Export-Truncated: true` when there were more), "
            "de-identified unless your facility referred or received the case; cursor and "
            "limit are ignored",
        },
    )


EXPORT_RESPONSES = {
    "200": {
        "description": "a page of cases (JSON), or the export (CSV, Excel)",
        "content": {
            # The JSON page is written out again: the added types would replace it otherwise.
            "application/json": {"schema": {"$ref": "#/components/schemas/ReferralList"}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def region_timezone() -> str:
    return str(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or "Asia/Shanghai")


def filters_from(raw: Mapping[str, Any]) -> history.CaseFilters:
    """The filters of a query (``from`` under either of its names), checked once."""
    given = {name: raw.get(name) for name in history.FILTERS}
    if raw.get("from_") is not None:
        given["from"] = raw["from_"]
    return history.parse_filters(
        db.session,
        {k: str(v) for k, v in given.items() if v is not None},
        rules=current_rules(),
        timezone=region_timezone(),
    )


def check_format(value: str | None) -> str:
    return history.parse_choice("format", value or "json", FORMATS)


# ---------------------------------------------------------------------------- the exports

COLUMNS = (
    "code",
    "created_at",
    "status",
    "outcome",
    "urgency",
    "risk_colour",
    "conditions",
    "patient_kind",
    "origin",
    "origin_name",
    "destination",
    "destination_name",
    "accepted_at",
    "arrived_at",
    "closed_at",
)
IDENTIFYING = ("register_number", "note")


def _safe(text: str) -> str:
    """Free text a spreadsheet must not read as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_rows(
    actor: Actor, lines: Sequence[history.CaseLine], zone: dt.tzinfo
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of an export: the de-identified columns, and the register number
    and note where :func:`history.may_identify` allows (empty otherwise)."""
    mine = [line.id for line in lines if history.may_identify(actor, line)]
    private = history.identifying(db.session, mine)
    header = [*COLUMNS, *(IDENTIFYING if mine else ())]

    def local(value: dt.datetime | None) -> dt.datetime | None:
        return value.astimezone(zone).replace(tzinfo=None) if value else None

    rows = []
    for line in lines:
        row: list[Any] = [
            line.code,
            local(line.created_at),
            line.status.value,
            line.outcome,
            line.urgency,
            line.risk_colour,
            " ".join(line.conditions),
            line.patient_kind,
            line.origin_code,
            line.origin_name,
            line.destination_code or "",
            line.destination_name or "",
            local(line.accepted_at),
            local(line.arrived_at),
            local(line.closed_at),
        ]
        if mine:
            ref, note = private.get(line.id, ("", ""))
            row += [_safe(ref), _safe(note)]
        rows.append(row)
    return header, rows


def export_response(
    actor: Actor, lines: Sequence[history.CaseLine], *, fmt: str, truncated: bool
) -> Response:
    """The list as a CSV or Excel download (times in the region's time zone)."""
    zone = zoneinfo.ZoneInfo(region_timezone())
    header, rows = export_rows(actor, lines, zone)
    name = f"cases-{dt.datetime.now(zone):%Y%m%d-%H%M}"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:
            writer.writerow(
                [value.isoformat(sep=" ", timespec="minutes") if isinstance(value, dt.datetime)
                 else value for value in row]
            )  # fmt: skip
        body: bytes = ("\ufeff" + out.getvalue()).encode()  # the BOM: Excel reads it as UTF-8
        mimetype = "text/csv"
    else:
        book = Workbook(write_only=True)
        sheet = book.create_sheet("cases")
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        if truncated:
            sheet.append([f"only the first {history.EXPORT_CAP:,} cases: narrow the filters"])
        buffer = io.BytesIO()
        book.save(buffer)
        body = buffer.getvalue()
        mimetype = XLSX
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response.headers["X-Export-Truncated"] = "true" if truncated else "false"
    return response


def export_lines(
    actor: Actor, filters: history.CaseFilters, *, sort: str
) -> tuple[list[history.CaseLine], bool]:
    """Every matching case up to the export cap, and whether there were more."""
    page = history.search_cases(
        db.session,
        actor=actor,
        filters=filters,
        limit=history.EXPORT_CAP,
        sort=sort,
        cap=history.EXPORT_CAP,
    )
    return page.lines, page.next_cursor is not None
