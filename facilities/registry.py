"""Facility and contact registry services: validation, all-or-nothing import, export.

Imports validate every row before touching the database and report every bad row with its row
number and field; nothing is written unless the whole file is good.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.errors import NotFoundError, ServiceError
from core.vocabulary import (
    VocabularyError,
    parse_capabilities,
    parse_designations,
    parse_level,
)
from facilities.models import Contact, Facility, FacilityKind, Team

MAX_IMPORT_BYTES = 10 * 1024 * 1024
FACILITY_COLUMNS = (
    "code",
    "name",
    "kind",
    "lat",
    "lon",
    "maternal_level",
    "neonatal_level",
    "capabilities",
    "phone",
)
OPTIONAL_FACILITY_COLUMNS = (
    "name_en",
    "province",
    "city",
    "county",
    "township",
    "active",
    "designated",
    "address",
    "department",
    "department_en",
    "entrance",
    "entrance_en",
)
#: The "where" fields and their length limits: where the team receiving a case is found.
WHERE_LIMITS = {
    "address": 200,
    "department": 100,
    "department_en": 100,
    "entrance": 100,
    "entrance_en": 100,
}
CONTACT_COLUMNS = ("facility_code", "name", "team", "phone", "language", "priority")

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class RegistryError(ServiceError):
    """A registry request that cannot be carried out; ``field`` names the culprit when known."""


class NotFound(RegistryError, NotFoundError):
    """No facility (or user) of that code."""


@dataclass(frozen=True)
class RowError:
    row: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", field {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportRejected(RegistryError):
    """The whole file was refused; :attr:`errors` lists every bad row."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        shown = "; ".join(str(error) for error in errors[:20])
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        super().__init__(
            f"nothing imported: {len(errors)} error(s): {shown}{more}",
            field=errors[0].field if errors else None,
        )
        self.errors = list(errors)


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    codes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- validation


def check_phone(value: str, *, field: str = "phone", required: bool = False) -> str:
    phone = value.strip().replace(" ", "").replace("-", "")
    if not phone:
        if required:
            raise VocabularyError(f"{field}: a phone number is required", field=field)
        return ""
    if not _E164.match(phone):
        raise VocabularyError(
            f"{field}: {value!r} is not an E.164 number (e.g. +8613800138000)", field=field
        )
    return phone


def _float_in(value: object, *, field: str, low: float, high: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise VocabularyError(f"{field}: {value!r} is not a number", field=field) from None
    if not (low <= number <= high):  # also refuses NaN
        raise VocabularyError(f"{field}: {number} is outside {low}..{high}", field=field)
    return number


# Text a database cannot keep: NUL (PostgreSQL refuses it) and lone UTF-16 surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _text(value: object, *, field: str, required: bool = False, limit: int = 200) -> str:
    text = "" if value is None else str(value).strip()
    if _UNSTORABLE.search(text):
        raise VocabularyError(f"{field}: contains a NUL or an invalid character", field=field)
    if required and not text:
        raise VocabularyError(f"{field}: required", field=field)
    if len(text) > limit:
        raise VocabularyError(f"{field}: longer than {limit} characters", field=field)
    return text


def _boolean(value: object, *, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in ("", "1", "true", "yes", "y"):
        return True
    if text in ("0", "false", "no", "n"):
        return False
    raise VocabularyError(f"{field}: expected true or false, got {value!r}", field=field)


def validate_facility(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One facility record (a CSV row, GeoJSON properties or an API body) → clean values.

    Raises :class:`VocabularyError` naming the first field at fault.
    """
    code = _text(raw.get("code"), field="code", required=True, limit=32)
    if not _CODE.match(code):
        raise VocabularyError(
            f"code: {code!r} may hold only letters, digits, '.', '_' and '-'", field="code"
        )
    kind_text = _text(raw.get("kind"), field="kind", required=True)
    try:
        kind = FacilityKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in FacilityKind)
        raise VocabularyError(
            f"kind: unknown {kind_text!r}; known: {known}", field="kind"
        ) from None
    return {
        "code": code,
        "name": _text(raw.get("name"), field="name", required=True),
        "name_en": _text(raw.get("name_en"), field="name_en"),
        "kind": kind,
        "province": _text(raw.get("province"), field="province", limit=100),
        "city": _text(raw.get("city"), field="city", limit=100),
        "county": _text(raw.get("county"), field="county", limit=100),
        "township": _text(raw.get("township"), field="township", limit=100),
        "lat": _float_in(raw.get("lat"), field="lat", low=-90, high=90),
        "lon": _float_in(raw.get("lon"), field="lon", low=-180, high=180),
        "maternal_level": parse_level(
            raw.get("maternal_level", "M0") or "M0", prefix="M", field="maternal_level"
        ),
        "neonatal_level": parse_level(
            raw.get("neonatal_level", "N0") or "N0", prefix="N", field="neonatal_level"
        ),
        "capabilities": parse_capabilities(raw.get("capabilities")),
        "phone": check_phone(_text(raw.get("phone"), field="phone", limit=32)),
        "active": _boolean(raw.get("active"), field="active"),
        "designated": parse_designations(raw.get("designated")),
        **{
            name: _text(raw.get(name), field=name, limit=limit)
            for name, limit in WHERE_LIMITS.items()
        },
    }


def validate_contact(raw: Mapping[str, Any]) -> dict[str, Any]:
    team_text = _text(raw.get("team"), field="team", required=True)
    try:
        team = Team(team_text)
    except ValueError:
        known = ", ".join(t.value for t in Team)
        raise VocabularyError(
            f"team: unknown {team_text!r}; known: {known}", field="team"
        ) from None
    language = _text(raw.get("language"), field="language") or "zh"
    if language not in ("zh", "en"):
        raise VocabularyError(f"language: expected zh or en, got {language!r}", field="language")
    priority_text = _text(raw.get("priority"), field="priority") or "1"
    if not priority_text.isdigit() or not 1 <= int(priority_text) <= 99:
        raise VocabularyError(
            f"priority: expected a whole number 1–99, got {priority_text!r}", field="priority"
        )
    return {
        "facility_code": _text(raw.get("facility_code"), field="facility_code", required=True),
        "name": _text(raw.get("name"), field="name", required=True),
        "team": team,
        "phone": check_phone(_text(raw.get("phone"), field="phone"), required=True),
        "language": language,
        "priority": int(priority_text),
    }


# ---------------------------------------------------------------------------- reading files


def _decode(data: bytes) -> str:
    if len(data) > MAX_IMPORT_BYTES:
        raise RegistryError(
            f"file: {len(data)} bytes is over the {MAX_IMPORT_BYTES // (1024 * 1024)} MB limit",
            field="file",
        )
    if not data.strip():
        raise RegistryError("file: the file is empty", field="file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryError(
            f"file: not UTF-8 text ({exc.reason} at byte {exc.start})", field="file"
        ) from None


# Spreadsheet formulas in CSV cells (CSV injection). A cell that starts with one of these
# characters is a formula to Excel, LibreOffice and WPS, so the export writes it with a leading
# apostrophe, which spreadsheets show as text. Plain numbers are left alone (a negative
# latitude, a phone such as +8613800138000: no formula can hide in digits). Cells that already
# start with apostrophes before such a character get one more, so that the importer's rule is
# exact: remove one apostrophe from a cell of apostrophes followed by one of these characters.
# An exported file imports unchanged; a hand-made cell "'=x" imports as "=x".
FORMULA_START = re.compile(r"^'*[=+\-@\t\r]")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ESCAPED_FORMULA = re.compile(r"^'+[=+\-@\t\r]")


def escape_formula(value: object) -> object:
    """A CSV cell safe to open in a spreadsheet (see :data:`FORMULA_START`)."""
    if isinstance(value, str) and FORMULA_START.match(value) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def unescape_formula(value: str) -> str:
    """The cell as it was before :func:`escape_formula`."""
    return value[1:] if _ESCAPED_FORMULA.match(value) else value


def read_csv_rows(data: bytes, *, required: Iterable[str]) -> list[tuple[int, dict[str, str]]]:
    """CSV bytes → ``(row number, record)`` pairs; row numbers count the header as row 1.
    Cells escaped against spreadsheet formulas on export are read back as they were."""
    text = _decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise RegistryError(
            f"file: the header lacks column(s) {', '.join(missing)}", field=missing[0]
        )
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for record in reader:
            row = reader.line_num
            if None in record:
                raise ImportRejected([RowError(row, None, "more values than header columns")])
            rows.append((row, {k: unescape_formula(v or "") for k, v in record.items()}))
    except csv.Error as exc:
        raise ImportRejected([RowError(reader.line_num, None, f"malformed CSV: {exc}")]) from None
    if not rows:
        raise RegistryError("file: no data rows after the header", field="file")
    return rows


def read_geojson_rows(data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """GeoJSON bytes → ``(feature number, properties + lat/lon)`` pairs, features counted from 1."""
    try:
        document = json.loads(_decode(data))
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"file: not valid JSON ({exc.msg} at line {exc.lineno})", field="file"
        ) from None
    except (ValueError, RecursionError):  # a number of thousands of digits; nesting
        raise RegistryError(
            "file: not valid JSON (a number or nesting too large)", field="file"
        ) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise RegistryError("file: expected a GeoJSON FeatureCollection", field="file")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise RegistryError("file: the FeatureCollection has no features", field="features")
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    for number, feature in enumerate(features, start=1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = feature.get("properties") if isinstance(feature, dict) else None
        coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if (
            not isinstance(geometry, dict)
            or geometry.get("type") != "Point"
            or not isinstance(coordinates, list)
            or len(coordinates) not in (2, 3)
        ):
            errors.append(RowError(number, "geometry", "expected a Point geometry [lon, lat]"))
            continue
        if not all(_is_number(c) for c in coordinates):
            errors.append(RowError(number, "geometry.coordinates", "expected numbers [lon, lat]"))
            continue
        if not isinstance(properties, dict):
            errors.append(RowError(number, "properties", "expected an object of properties"))
            continue
        wrong = _wrong_property_types(number, properties)
        if wrong:
            errors.extend(wrong)
            continue
        rows.append((number, {**properties, "lon": coordinates[0], "lat": coordinates[1]}))
    if errors:
        raise ImportRejected(errors)
    return rows


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# The JSON types each GeoJSON property may have (null is always allowed: the field is empty).
# Text is text: a phone or a code given as a JSON number would lose its "+" or leading zeros.
_LIST_PROPERTIES = ("capabilities", "designated")
_LEVEL_PROPERTIES = ("maternal_level", "neonatal_level")


def _wrong_property_types(number: int, properties: Mapping[str, Any]) -> list[RowError]:
    errors: list[RowError] = []
    for name in (*FACILITY_COLUMNS, *OPTIONAL_FACILITY_COLUMNS):
        value = properties.get(name)
        if value is None or name in ("lat", "lon"):  # the position comes from the geometry
            continue
        if name in _LIST_PROPERTIES:
            ok = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            expected = "a list of names or a ';'-separated string"
        elif name in _LEVEL_PROPERTIES:
            ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            expected = "a level such as M3 (or a whole number)"
        elif name == "active":
            ok = isinstance(value, bool | str)
            expected = "true or false"
        else:
            ok = isinstance(value, str)
            expected = "text"
        if not ok:
            errors.append(
                RowError(number, name, f"{name}: expected {expected}, got {type(value).__name__}")
            )
    return errors


def detect_format(filename: str, data: bytes) -> str:
    name = filename.lower()
    if name.endswith((".geojson", ".json")):
        return "geojson"
    if name.endswith(".csv"):
        return "csv"
    return "geojson" if data.lstrip()[:1] == b"{" else "csv"


# ---------------------------------------------------------------------------- import


def import_facilities(
    session: Session, *, data: bytes, fmt: str, now: dt.datetime
) -> ImportSummary:
    """Create or update facilities by code from CSV or GeoJSON; all rows or none."""
    rows: Sequence[tuple[int, Mapping[str, Any]]]
    if fmt == "csv":
        rows = read_csv_rows(data, required=FACILITY_COLUMNS)
    elif fmt == "geojson":
        rows = read_geojson_rows(data)
    else:
        raise RegistryError(f"format: expected csv or geojson, got {fmt!r}", field="format")
    clean: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row, raw in rows:
        raw_code = str(raw.get("code") or "").strip()
        if raw_code and raw_code in seen:
            errors.append(RowError(row, "code", f"code {raw_code} repeats row {seen[raw_code]}"))
            continue
        seen.setdefault(raw_code, row)
        try:
            clean.append(validate_facility(raw))
        except VocabularyError as exc:
            errors.append(RowError(row, exc.field, str(exc)))
    if errors:
        raise ImportRejected(errors)
    existing = {
        f.code: f for f in session.scalars(select(Facility).where(Facility.code.in_(list(seen))))
    }
    summary = ImportSummary()
    for values in clean:
        facility = existing.get(values["code"])
        if facility is None:
            session.add(Facility(**values, created_at=now, updated_at=now))
            summary.created += 1
        else:
            for key, value in values.items():
                setattr(facility, key, value)
            facility.updated_at = now
            summary.updated += 1
        summary.codes.append(values["code"])
    session.flush()
    return summary


def import_contacts(session: Session, *, data: bytes) -> ImportSummary:
    """Create or update contacts, matched by (facility, team, phone); all rows or none."""
    rows = read_csv_rows(data, required=CONTACT_COLUMNS)
    facilities = {f.code: f for f in session.scalars(select(Facility))}
    errors: list[RowError] = []
    clean: list[tuple[Facility, dict[str, Any]]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for row, raw in rows:
        try:
            values = validate_contact(raw)
        except VocabularyError as exc:
            errors.append(RowError(row, exc.field, str(exc)))
            continue
        facility = facilities.get(values["facility_code"])
        if facility is None:
            errors.append(
                RowError(row, "facility_code", f"no facility {values['facility_code']!r}")
            )
            continue
        key = (facility.code, values["team"].value, values["phone"])
        if key in seen:
            errors.append(
                RowError(row, "phone", f"same facility, team and phone as row {seen[key]}")
            )
            continue
        seen[key] = row
        clean.append((facility, values))
    if errors:
        raise ImportRejected(errors)
    existing = {(c.facility_id, c.team.value, c.phone): c for c in session.scalars(select(Contact))}
    summary = ImportSummary()
    for facility, values in clean:
        contact = existing.get((facility.id, values["team"].value, values["phone"]))
        if contact is None:
            values.pop("facility_code")
            session.add(Contact(facility_id=facility.id, active=True, **values))
            summary.created += 1
        else:
            contact.name = values["name"]
            contact.language = values["language"]
            contact.priority = values["priority"]
            contact.active = True
            summary.updated += 1
        summary.codes.append(facility.code)
    session.flush()
    return summary


# ---------------------------------------------------------------------------- queries


def get_facility(session: Session, code: str, *, field: str = "code") -> Facility:
    """The facility of that code; :class:`NotFound` (a 404 naming ``field``, the name the
    caller's input gave the code) when there is none."""
    facility = session.scalar(select(Facility).where(Facility.code == code))
    if facility is None:
        raise not_found(code, field=field)
    return facility


def not_found(code: str, *, field: str = "code") -> NotFound:
    """The error for a facility code that names no facility (a 404 naming ``field``)."""
    return NotFound(f"{field}: no facility with code {code[:64]!r}", field=field)


def list_facilities(session: Session, *, active_only: bool = False) -> list[Facility]:
    query = select(Facility).options(selectinload(Facility.status)).order_by(Facility.code)
    if active_only:
        query = query.where(Facility.active.is_(True))
    return list(session.scalars(query))
