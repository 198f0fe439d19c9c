"""A small SQL helper shared by the claiming code."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def rowcount(session: Session, statement: Executable) -> int:
    """Execute an UPDATE and return how many rows it changed: the heart of every claim."""
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount)
