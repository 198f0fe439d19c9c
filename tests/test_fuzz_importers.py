"""Hostile files for the facility and contact importers: they never crash, and every refusal is
a RegistryError (ImportRejected for row errors) whose message says which row and field.

(The SMS offer and capacity reply parsers have their never-crash properties in
tests/test_alerts_replies.py.)
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.vocabulary import CAPABILITIES
from facilities.registry import (
    CONTACT_COLUMNS,
    FACILITY_COLUMNS,
    ImportRejected,
    RegistryError,
    import_contacts,
    import_facilities,
)
from tests.world import NOW, add_facility

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# Plausible values, near misses and plain junk, so that the generator reaches past the header
# checks and into every field's validation.
JUNK = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "M2",
            "M9",
            "N3",
            "N-1",
            "county_hospital",
            "clinic",
            "spaceship",
            "29.5",
            "-91",
            "1e400",
            "nan",
            "inf",
            "+8613900000000",
            "+0",
            "13900000000",
            "obstetrics",
            "zh",
            "en",
            "fr",
            "1",
            "0",
            "-1",
            "99999999999999999999",
            "true",
            "maybe",
            ";".join(CAPABILITIES[:3]),
            "caesarian_24h",
            "x" * 300,
            '"',
            "\x00",
            "=cmd|' /C calc'!A0",
        ]
    ),
)
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), JUNK)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _explained(exc: RegistryError) -> None:
    message = str(exc)
    assert message.strip()
    if isinstance(exc, ImportRejected):
        assert exc.errors
        for error in exc.errors:
            assert error.row >= 1 and error.message.strip()
            assert f"row {error.row}" in str(error)
        assert "row" in message
    else:
        # A whole-file problem (empty, not UTF-8, missing column): it names the file or field.
        assert exc.field or message.startswith("file:")


def _attempt_facilities(session: Session, data: bytes, fmt: str) -> None:
    try:
        import_facilities(session, data=data, fmt=fmt, now=NOW)
    except RegistryError as exc:
        _explained(exc)
    finally:
        session.rollback()


@FUZZ
@given(
    extra=st.lists(st.sampled_from(["name_en", "province", "active", "bogus", ""]), max_size=2),
    rows=st.lists(st.lists(JUNK, min_size=9, max_size=12), min_size=1, max_size=4),
)
def test_facility_csv_never_crashes_and_every_refusal_names_row_and_field(
    session: Session, extra: list[str], rows: list[list[str]]
) -> None:
    header = [*FACILITY_COLUMNS, *extra]
    _attempt_facilities(session, _csv(header, rows), "csv")


@FUZZ
@given(data=st.binary(max_size=300))
def test_facility_files_of_random_bytes_are_refused_cleanly(session: Session, data: bytes) -> None:
    _attempt_facilities(session, data, "csv")
    _attempt_facilities(session, data, "geojson")


@FUZZ
@given(
    features=st.lists(
        st.one_of(
            JSON_VALUE,
            st.fixed_dictionaries(
                {
                    "type": st.just("Feature"),
                    "geometry": st.one_of(
                        JSON_VALUE,
                        st.fixed_dictionaries(
                            {
                                "type": st.just("Point"),
                                "coordinates": st.lists(JSON_SCALAR, min_size=0, max_size=3),
                            }
                        ),
                    ),
                    "properties": st.one_of(
                        JSON_VALUE,
                        st.fixed_dictionaries(
                            {
                                name: JSON_VALUE
                                for name in FACILITY_COLUMNS
                                if name not in ("lat", "lon")
                            }
                        ),
                    ),
                }
            ),
        ),
        min_size=0,
        max_size=3,
    ),
    wrapper=st.sampled_from(["FeatureCollection", "Feature", None]),
)
def test_facility_geojson_never_crashes_and_every_refusal_names_the_feature(
    session: Session, features: list[Any], wrapper: str | None
) -> None:
    document = {"type": wrapper, "features": features}
    _attempt_facilities(session, json.dumps(document).encode(), "geojson")


@FUZZ
@given(rows=st.lists(st.lists(JUNK, min_size=5, max_size=7), min_size=1, max_size=4))
def test_contact_csv_never_crashes_and_every_refusal_names_row_and_field(
    session: Session, rows: list[list[str]]
) -> None:
    if not session.info.get("seeded"):
        add_facility(session, "H-1")
        session.commit()
        session.info["seeded"] = True
    rows = [[("H-1" if i == 0 and row[0] == "" else v) for i, v in enumerate(row)] for row in rows]
    try:
        import_contacts(session, data=_csv(list(CONTACT_COLUMNS), rows))
    except RegistryError as exc:
        _explained(exc)
    finally:
        session.rollback()
