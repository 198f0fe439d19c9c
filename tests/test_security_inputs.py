"""Issue 22, input handling and the Low items: no input gives a 500, and the small leaks are shut.

Inputs the database or the parser cannot take (NUL, lone surrogates, deep JSON, url_for's own
argument names) are refused with a 400 naming the field, on SQLite and PostgreSQL; the map's
tooltips are text; closures are bounded and audited; registry changes are audited; database
errors carry no row values; case pages are not cached; GeoJSON is typed; CSV exports are safe to
open in a spreadsheet and import again unchanged; a redirect cannot target a deactivated
facility; the SQLite file is private.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import make_engine
from facilities import export, registry
from facilities.models import Facility
from facilities.registry import ImportRejected
from greenchannel.web.db import db
from greenchannel.web.observability import JsonFormatter
from referral import closures
from referral.models import AuditEntry
from tests.world import (
    NOW,
    PPH_REQUEST,
    World,
    add_facility,
    csrf_from,
    login,
    post_form,
    web_world,
)

STATIC = Path(__file__).resolve().parents[1] / "greenchannel" / "web" / "static"


def _raw(world: World, who: str, path: str, body: str, method: str = "POST") -> Any:
    return world.client.open(
        path,
        method=method,
        data=body.encode("utf-8", "surrogatepass"),
        content_type="application/json",
        headers=world.headers(who),
    )


def _audit(app: Flask, action: str) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def site(app: Flask, client: FlaskClient) -> World:
    return web_world(app, client)


# ------------------------------------------------------------------ inputs that gave a 500


def test_deeply_nested_json_is_a_400_naming_the_body(site: World) -> None:
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 40 + "1" + "}" * 40):
        response = _raw(site, "clinic", "/api/v1/referrals", deep)
        assert response.status_code == 400
        assert response.get_json()["field"] == "body"


def test_a_number_too_long_to_read_is_a_400(site: World) -> None:
    body = json.dumps(PPH_REQUEST)[:-1] + ', "x": ' + "9" * 5000 + "}"
    response = _raw(site, "clinic", "/api/v1/referrals", body)
    assert response.status_code == 400 and response.get_json()["field"] == "body"


def test_a_lone_surrogate_in_a_json_value_or_key_is_a_400_naming_the_field(site: World) -> None:
    value = json.dumps({**PPH_REQUEST, "patient": {"ref": "T1-\ud800", "age_years": 30}})
    response = _raw(site, "clinic", "/api/v1/referrals", value)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["field"] == "patient.ref"
    key = json.dumps({**PPH_REQUEST, "\udc80": 1})
    response = _raw(site, "clinic", "/api/v1/referrals", key)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid"


def test_nul_in_a_facility_code_is_a_400_on_every_database(site: World) -> None:
    body = {"code": "A\x00B", "name": "x", "kind": "county_hospital", "lat": 30, "lon": 106}
    response = site.post("admin", "/api/v1/facilities", body)
    assert response.status_code == 400 and response.get_json()["field"] == "code"
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    response = site.post(
        "coordinator",
        f"/api/v1/referrals/{case['id']}/redirect",
        {"facility": "H-B\x00", "reason": "closer"},
    )
    assert response.status_code == 400 and response.get_json()["field"] == "facility"


def test_nul_in_a_query_string_or_a_header_is_a_400_naming_it(site: World) -> None:
    response = site.client.get("/api/v1/facilities?active=%00", headers=site.headers("admin"))
    assert response.status_code == 400 and response.get_json()["field"] == "active"
    headers = {**site.headers("admin"), "X-Ward": "a\x00b"}
    response = site.client.get("/api/v1/facilities", headers=headers)
    assert response.status_code == 400 and "X-Ward" in response.get_json()["field"]


def test_nul_in_the_unauthenticated_login_form_is_a_400_page(client: FlaskClient) -> None:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"username": "admin\x00", "password": "x", "csrf_token": token}
    )
    assert response.status_code == 400
    assert "text/html" in response.content_type


def test_url_for_s_own_argument_names_in_a_page_query_are_harmless(site: World) -> None:
    assert site.client.get("/login?_method=DELETE").status_code == 200
    assert site.client.get("/login?endpoint=x&_external=1&_anchor=y").status_code == 200
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    login(site.client, "w-clinic")
    page = site.client.get(f"/cases/{case['id']}?referral_id=abc&lang=en&x=1")
    assert page.status_code == 200
    assert "referral_id=abc" in page.get_data(as_text=True)  # the language links keep the query


# ---------------------------------------------------------------------------- the map


def test_the_map_tooltips_are_escaped_text() -> None:
    script = (STATIC / "board-map.js").read_text()
    calls = re.findall(r"bindTooltip\(([^\n]*)", script)
    assert calls and all(call.startswith("esc(") for call in calls), calls
    assert "&lt;" in script and "&amp;" in script


# ---------------------------------------------------------------------------- closures


def test_closures_are_bounded_in_number(session: Session) -> None:
    who = _Who()
    for _ in range(closures.MAX_ACTIVE):
        closures.place_closure(
            session, lat=29.9, lon=106.2, radius_m=100, kind="closed", speed_factor=None,
            reason="", by=who, now=NOW,
        )  # fmt: skip
    with pytest.raises(closures.Conflict) as refused:
        closures.place_closure(
            session, lat=29.9, lon=106.2, radius_m=100, kind="closed", speed_factor=None,
            reason="", by=who, now=NOW,
        )  # fmt: skip
    assert refused.value.status == 409
    first = closures.active_closures(session)[0]
    closures.lift_closure(session, closure_id=first.id, by=who, now=NOW)
    closures.place_closure(
        session, lat=29.9, lon=106.2, radius_m=100, kind="closed", speed_factor=None,
        reason="", by=who, now=NOW,
    )  # fmt: skip


class _Who:
    name = "coord"
    channel = "api"
    role = None
    user_id = None


def test_placing_and_lifting_a_closure_is_audited_by_api_and_page(app: Flask, site: World) -> None:
    body = {"lat": 29.9, "lon": 106.2, "radius_m": 300, "kind": "closed", "reason": "landslide"}
    placed = site.post("coordinator", "/api/v1/roads/closures", body).get_json()
    site.client.delete(f"/api/v1/roads/closures/{placed['id']}", headers=site.headers("admin"))
    login(site.client, "w-coord")
    post_form(
        site.client,
        "/board",
        "/board/closures",
        {"lat": "29.9", "lon": "106.2", "radius_m": "200", "kind": "closed", "reason": "flood"},
    )
    placed_rows = _audit(app, "closure_placed")
    lifted_rows = _audit(app, "closure_lifted")
    assert [(r.channel, r.detail["closure_id"]) for r in lifted_rows] == [("api", placed["id"])]
    assert sorted(r.channel for r in placed_rows) == ["api", "web"]
    assert all("reason" not in r.detail for r in placed_rows)  # free text stays out


# ---------------------------------------------------------------------------- registry audit


def test_registry_changes_by_api_are_audited(app: Flask, site: World) -> None:
    fields = {"name": "新医院", "kind": "county_hospital", "lat": 30, "lon": 106}
    fields |= {"maternal_level": "M2", "neonatal_level": "N2"}
    response = site.post("admin", "/api/v1/facilities", {"code": "H-NEW", **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    response = site.client.put(
        "/api/v1/facilities/H-NEW",
        json={**fields, "name": "新医院二"},
        headers=site.headers("admin"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    csv_body = export.export_csv([])
    csv_body += "H-CSV,csv,county_hospital,30,106,M2,N2,,\n"
    response = site.client.post(
        "/api/v1/facilities/import",
        data=csv_body,
        content_type="text/csv",
        headers=site.headers("admin"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [r.detail["code"] for r in _audit(app, "facility_created")] == ["H-NEW"]
    updated = _audit(app, "facility_updated")
    assert [(r.detail["code"], r.detail["fields"]) for r in updated] == [("H-NEW", ["name"])]
    assert [r.detail["codes"] for r in _audit(app, "facilities_imported")] == [["H-CSV"]]


def test_registry_imports_by_cli_are_audited(
    database_url: str, engine: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    session: Session,
) -> None:  # fmt: skip
    from greenchannel.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    good = tmp_path / "good.csv"
    good.write_text(export.export_csv([]) + "H-CLI,cli,county_hospital,30,106,M2,N2,,\n")
    result = CliRunner().invoke(main, ["facilities", "import", str(good)])
    assert result.exit_code == 0, result.output
    rows = list(session.scalars(select(AuditEntry)))
    assert [(r.action, r.channel, r.detail["codes"]) for r in rows] == [
        ("facilities_imported", "import", ["H-CLI"])
    ]
    assert rows[0].actor.startswith("cli:")


# ------------------------------------------------------------------- database errors in logs


def test_database_errors_carry_no_row_values(database_url: str, engine: object) -> None:
    engine_here = make_engine(database_url)
    secret = "T1-PATIENT-0042"
    try:
        with engine_here.begin() as connection:
            connection.execute(text("CREATE TEMPORARY TABLE t_hidden (ref VARCHAR(40) UNIQUE)"))
            connection.execute(text("INSERT INTO t_hidden VALUES (:r)"), {"r": secret})
            with pytest.raises(IntegrityError) as failed:
                connection.execute(text("INSERT INTO t_hidden VALUES (:r)"), {"r": secret})
    finally:
        engine_here.dispose()
    record = logging.LogRecord("x", logging.ERROR, "x", 0, "failed", None, None)
    record.exc_info = (IntegrityError, failed.value, failed.value.__traceback__)
    line = JsonFormatter().format(record)
    assert secret not in line  # PostgreSQL's DETAIL quotes the key: the log scrub masks it
    assert "parameters hidden" in str(failed.value)


def test_the_log_scrub_hides_what_postgresql_quotes_of_the_row() -> None:
    record = logging.LogRecord("x", logging.ERROR, "x", 0, "%s", None, None)
    record.args = (
        'duplicate key value violates unique constraint "uq"\n'
        "DETAIL:  Key (patient_ref)=(T1-0042) already exists.\n"
        "[SQL: INSERT ...]\n[parameters: ('T1-0042', 'note')]\n"
        "DETAIL:  Failing row contains (1, T1-0042, null).",
    )
    line = JsonFormatter().format(record)
    assert "T1-0042" not in line and "Key (patient_ref)=(…)" in line


# ------------------------------------------------------------------------ no-store on pages


def test_every_page_with_case_or_patient_data_is_not_cached(site: World) -> None:
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    visits = {
        "w-clinic": [
            "/clinic",
            "/clinic/live",
            f"/cases/{case['id']}",
            f"/cases/{case['id']}/live",
        ],
        "w-hosp": ["/hospital", "/hospital/live"],
        "w-coord": ["/board", "/board/live", f"/cases/{case['id']}"],
    }
    for username, paths in visits.items():
        client = site.app.test_client()
        login(client, username)
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers.get("Cache-Control") == "no-store", path


# ------------------------------------------------------------------------------- GeoJSON


POINT = {"type": "Point", "coordinates": [106.2, 29.8]}


def _feature(geometry: Any, **properties: Any) -> dict[str, Any]:
    base = {"code": "G1", "name": "g", "kind": "county_hospital", "maternal_level": "M2"}
    return {"type": "Feature", "geometry": geometry, "properties": {**base, **properties}}


@pytest.mark.parametrize(
    ("feature", "field"),
    [
        (_feature({"type": "LineString", "coordinates": [[1, 2], [3, 4]]}), "geometry"),
        (_feature({"type": "Point", "coordinates": ["106.2", "29.8"]}), "geometry.coordinates"),
        (_feature({"type": "Point", "coordinates": [True, 29.8]}), "geometry.coordinates"),
        (_feature(POINT, name={"x": 1}), "name"),
        (_feature(POINT, phone=8613800138000), "phone"),
        (_feature(POINT, capabilities=[1]), "capabilities"),
        (_feature(POINT, active=1), "active"),
        (_feature(POINT, code="A\x00"), "code"),
    ],
)  # fmt: skip
def test_geojson_import_is_typed_row_by_row(
    session: Session, feature: dict[str, Any], field: str
) -> None:
    good = _feature({"type": "Point", "coordinates": [106.0, 29.0]}, code="G0")
    data = json.dumps({"type": "FeatureCollection", "features": [good, feature]}).encode()
    with pytest.raises(ImportRejected) as refused:
        registry.import_facilities(session, data=data, fmt="geojson", now=NOW)
    assert [(e.row, e.field) for e in refused.value.errors] == [(2, field)]


# ---------------------------------------------------------------------------- CSV formulas


def test_csv_exports_defuse_formulas_and_import_again_unchanged(session: Session) -> None:
    names = ['=HYPERLINK("http://x","y")', "+SUM(1)", "-1+2", "@cmd", "'=x", "'plain"]
    # (a tab or a carriage return leads too, but the importer strips surrounding whitespace)
    assert registry.escape_formula("\tx") == "'\tx" and registry.escape_formula("\rx") == "'\rx"
    for number, name in enumerate(names):
        add_facility(session, f"F{number}", name=name, lat=-12.5, lon=-77.0, phone="+8613800138000")
    written = export.export_csv(registry.list_facilities(session))
    cells = list(csv.reader(io.StringIO(written)))[1:]
    for cell in (c for row in cells for c in row):
        assert not re.match(r"[=+\-@\t\r]", cell) or re.fullmatch(r"[+-]?[\d.]+", cell), cell
    assert [cells[0][3], cells[0][4], cells[0][8]] == ["-12.5", "-77.0", "+8613800138000"]
    session.query(Facility).delete()
    registry.import_facilities(session, data=written.encode(), fmt="csv", now=NOW)
    back = {f.code: f for f in registry.list_facilities(session)}
    assert [back[f"F{n}"].name for n in range(len(names))] == names
    assert back["F0"].lat == -12.5 and back["F0"].phone == "+8613800138000"


# ----------------------------------------------------------------- redirect, SQLite file


def test_a_redirect_to_a_deactivated_facility_is_refused_naming_it(app: Flask, site: World) -> None:
    case = site.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    with app.app_context():
        facility = db.session.scalar(select(Facility).where(Facility.code == "H-D"))
        assert facility is not None
        facility.active = False
        db.session.commit()
    response = site.post(
        "coordinator",
        f"/api/v1/referrals/{case['id']}/redirect",
        {"facility": "H-D", "reason": "the family asks"},
    )
    assert response.status_code == 409, response.get_data(as_text=True)
    assert response.get_json()["field"] == "facility"


def test_the_sqlite_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "fresh.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
