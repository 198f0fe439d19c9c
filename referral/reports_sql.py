"""Portable SQL for the monthly report: seconds between two times, a day on the region's clock,
the elements of a JSON list, and the median / 90th percentile with window functions.

SQLite has no ``percentile_cont`` and no interval arithmetic; PostgreSQL has both. Everything
here is written once for both: the percentile ranks the values with ``row_number()`` and
``count()`` over a partition (both databases have window functions) and picks the one or two
rows around the wanted position, so only two values per group leave the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, Integer, case, cast, extract, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

#: The percentiles the report shows, as fractions (numerator, denominator): integer arithmetic
#: keeps the rank positions exact on both databases.
MEDIAN = (1, 2)
P90 = (9, 10)


def epoch(dialect: str, column: Any) -> ColumnElement[float]:
    """Seconds since 1970 of a UTC time column (SQLite stores naive UTC text)."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(extract("epoch", column), Float)


def seconds_between(dialect: str, start: Any, end: Any) -> ColumnElement[float]:
    return epoch(dialect, end) - epoch(dialect, start)


def local_day(dialect: str, column: Any, offset_hours: int) -> ColumnElement[str]:
    """``YYYY-MM-DD`` of a UTC time on the region's clock (a fixed offset, as the rules say)."""
    hours = int(offset_hours)
    if dialect == "sqlite":
        return func.date(column, f"{hours:+d} hours")
    shifted: Any = literal_column(f"interval '{hours} hours'")
    return func.to_char(func.timezone("UTC", column) + shifted, "YYYY-MM-DD")


def json_list_elements(dialect: str, column: Any, key: str) -> Any:
    """A table of the text elements of the JSON list ``column[key]`` (one column: ``value``)."""
    if dialect == "sqlite":
        return func.json_each(column, f"$.{key}").table_valued("value")
    return func.json_array_elements_text(column[key]).table_valued("value")


@dataclass(frozen=True)
class Table:
    """One table of the report: what the page draws, the CSV and each Excel sheet hold."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows]}


@dataclass(frozen=True)
class Spread:
    """How many values a group has, their median and 90th percentile (None when empty)."""

    count: int
    median: float | None
    p90: float | None


def _interpolate(n: int, low: float | None, high: float | None, fraction: tuple[int, int]) -> float:
    num, den = fraction
    if low is None or high is None:  # pragma: no cover - both ranks exist whenever n > 0
        raise ValueError("a percentile rank is missing")
    weight = ((n - 1) * num % den) / den
    return float(low) + (float(high) - float(low)) * weight


def spreads(
    session: Session, values: Any, keys: Sequence[str], *, value: str = "v"
) -> dict[tuple[Any, ...], Spread]:
    """The median and p90 of ``values.c[value]`` per group of ``values.c[keys]``, computed in the
    database: linear interpolation between the closest ranks (as ``percentile_cont``).

    ``values`` is a subquery with the key columns and one numeric column; NULL values are left
    out. Groups with no value are absent from the answer.
    """
    key_cols = [values.c[k] for k in keys]
    v = values.c[value]
    partition = key_cols or None
    ranked = (
        select(
            *key_cols,
            v.label("v"),
            func.row_number().over(partition_by=partition, order_by=v).label("rn"),
            func.count().over(partition_by=partition).label("n"),
        )
        .where(v.is_not(None))
        .subquery()
    )
    rk = [ranked.c[k] for k in keys]
    position = ranked.c.rn - 1
    picks: list[Any] = []
    for num, den in (MEDIAN, P90):
        pos = (ranked.c.n - 1) * num
        low = cast(pos // den, Integer)
        high = cast((pos + den - 1) // den, Integer)
        picks.append(func.max(case((position == low, ranked.c.v))))
        picks.append(func.max(case((position == high, ranked.c.v))))
    statement = select(*rk, func.max(ranked.c.n), *picks)
    if rk:
        statement = statement.group_by(*rk)
    out: dict[tuple[Any, ...], Spread] = {}
    for row in session.execute(statement):
        key = tuple(row[: len(keys)])
        n, m_lo, m_hi, p_lo, p_hi = row[len(keys) :]
        if not n:
            continue
        out[key] = Spread(
            count=int(n),
            median=_interpolate(int(n), m_lo, m_hi, MEDIAN),
            p90=_interpolate(int(n), p_lo, p_hi, P90),
        )
    return out
