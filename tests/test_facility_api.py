"""The facility API: live status, staleness, validation, and role and scope on every endpoint."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.db import utcnow
from facilities.models import Channel, Facility, StatusReport
from facilities.status import report_status
from greenchannel.web.db import db
from tests.world import add_facility, add_user, bearer


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    """Two hospitals in two counties, a clinic, and a user of every role and scope."""
    with app.app_context():
        s = db.session
        add_facility(s, "H-LH", county="临河县")
        add_facility(s, "H-SS", county="石山县")
        add_facility(
            s,
            "T-LH",
            county="临河县",
            maternal_level=1,
            neonatal_level=1,
            capabilities=[],
            kind="township_health_centre",
        )
        tokens = {
            "hospital": add_user(s, "hosp", "hospital", facility="H-LH"),
            "other_hospital": add_user(s, "hosp2", "hospital", facility="H-SS"),
            "clinic": add_user(s, "clin", "clinic", facility="T-LH"),
            "coordinator": add_user(s, "coord", "coordinator", area="云省/云州市/临河县"),
            "other_coordinator": add_user(s, "coord2", "coordinator", area="云省/云州市/石山县"),
            "city_coordinator": add_user(s, "coord3", "coordinator", area="云省/云州市"),
            "admin": add_user(s, "adm", "admin"),
        }
        s.commit()
    return tokens


STATUS_BODY = {"beds": {"obstetric": 3, "maternal_icu": 1, "nicu": 0}, "diversion": "normal"}
NEW_FACILITY = {
    "code": "NEW-1",
    "name": "新医院",
    "kind": "county_hospital",
    "lat": 29.5,
    "lon": 106.4,
    "maternal_level": "M2",
    "neonatal_level": "N1",
    "capabilities": ["caesarean_24h"],
}
UPDATE_FACILITY = {k: v for k, v in NEW_FACILITY.items() if k != "code"}

# Every endpoint × every role/scope → the expected status. None = no token at all.
ACCESS = [
    ("GET", "/api/v1/facilities", None, {None: 401, "*": 200}),
    ("GET", "/api/v1/facilities/H-LH", None, {None: 401, "*": 200}),
    ("GET", "/api/v1/facilities/export?format=csv", None, {None: 401, "*": 200}),
    (
        "PUT",
        "/api/v1/facilities/H-LH/status",
        STATUS_BODY,
        {
            None: 401,
            "hospital": 200,
            "other_hospital": 403,
            "clinic": 403,
            "coordinator": 200,
            "other_coordinator": 403,
            "city_coordinator": 200,
            "admin": 200,
        },
    ),
    (
        "GET",
        "/api/v1/facilities/H-LH/status/history",
        None,
        {
            None: 401,
            "hospital": 200,
            "other_hospital": 403,
            "clinic": 403,
            "coordinator": 200,
            "other_coordinator": 403,
            "city_coordinator": 200,
            "admin": 200,
        },
    ),
    (
        "GET",
        "/api/v1/facilities/H-LH/contacts",
        None,
        {
            None: 401,
            "hospital": 200,
            "other_hospital": 403,
            "clinic": 403,
            "coordinator": 200,
            "other_coordinator": 403,
            "city_coordinator": 200,
            "admin": 200,
        },
    ),
    ("POST", "/api/v1/facilities", NEW_FACILITY, {None: 401, "admin": 201, "*": 403}),
    ("PUT", "/api/v1/facilities/H-LH", UPDATE_FACILITY, {None: 401, "admin": 200, "*": 403}),
    ("POST", "/api/v1/facilities/import", "CSV", {None: 401, "admin": 200, "*": 403}),
]
ROLES = [
    None,
    "hospital",
    "other_hospital",
    "clinic",
    "coordinator",
    "other_coordinator",
    "city_coordinator",
    "admin",
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ACCESS, ids=[f"{m} {p}" for m, p, _, _ in ACCESS]
)
def test_every_endpoint_checks_role_and_scope(
    client: FlaskClient,
    world: dict[str, Any],
    role: str | None,
    method: str,
    path: str,
    body: Any,
    expected: dict[str | None, int],
) -> None:
    headers = bearer(world[role]) if role else {}
    if body == "CSV":
        response = client.open(
            path,
            method=method,
            headers={**headers, "Content-Type": "text/csv"},
            data="code,name,kind,lat,lon,maternal_level,neonatal_level,"
            "capabilities,phone\nZ-1,z,clinic,1,1,M0,N0,,\n",
        )
    else:
        response = client.open(path, method=method, headers=headers, json=body)
    want = expected.get(role, expected.get("*"))
    assert response.status_code == want, response.get_json()
    if want >= 400:
        assert set(response.get_json()) >= {"error", "message"}


def test_a_hospital_report_shows_up_with_who_when_and_channel_and_is_kept_in_history(
    client: FlaskClient, world: dict[str, Any], app: Flask
) -> None:
    token = bearer(world["hospital"])
    first = client.put("/api/v1/facilities/H-LH/status", headers=token, json=STATUS_BODY)
    assert first.status_code == 200
    data = first.get_json()
    assert data["beds"] == {"obstetric": 3, "maternal_icu": 1, "nicu": 0}
    assert data["stale"] is False and data["reported_by"] == "hosp" and data["channel"] == "api"
    second = client.put(
        "/api/v1/facilities/H-LH/status",
        headers=token,
        json={
            "diversion": "advisory",
            "diversion_reason": "NICU nearly full",
            "unavailable": ["massive_transfusion"],
        },
    )
    data = second.get_json()
    assert data["beds"]["obstetric"] == 3  # kept: the second report did not mention beds
    assert data["diversion"] == "advisory" and data["unavailable"] == ["massive_transfusion"]
    history = client.get("/api/v1/facilities/H-LH/status/history", headers=token).get_json()
    assert len(history["reports"]) == 2
    assert history["reports"][0]["values"]["diversion"] == "advisory"
    assert history["reports"][1]["values"]["beds"]["obstetric"] == 3


def test_figures_older_than_the_grace_period_are_stale_everywhere_they_appear(
    client: FlaskClient, world: dict[str, Any], app: Flask
) -> None:
    with app.app_context():
        facility = db.session.scalar(select(Facility).where(Facility.code == "H-LH"))
        assert facility is not None
        report_status(
            db.session,
            facility=facility,
            beds={"obstetric": 2},
            reported_by="x",
            user_id=None,
            channel=Channel.WEB,
            now=utcnow() - dt.timedelta(hours=13),
        )
        fresh = db.session.scalar(select(Facility).where(Facility.code == "H-SS"))
        assert fresh is not None
        report_status(
            db.session,
            facility=fresh,
            beds={"obstetric": 2},
            reported_by="x",
            user_id=None,
            channel=Channel.WEB,
            now=utcnow() - dt.timedelta(hours=11),
        )
        db.session.commit()
    token = bearer(world["coordinator"])
    one = client.get("/api/v1/facilities/H-LH", headers=token).get_json()
    assert one["stale"] is True and one["stale_fields"] == ["beds"]
    listing = client.get("/api/v1/facilities", headers=token).get_json()["facilities"]
    by_code = {f["code"]: f for f in listing}
    assert by_code["H-LH"]["stale"] is True
    assert by_code["H-SS"]["stale"] is False
    assert by_code["T-LH"]["stale"] is True  # never reported: unconfirmed
    stale_only = client.get("/api/v1/facilities?stale=true", headers=token).get_json()
    assert {f["code"] for f in stale_only["facilities"]} == {"H-LH", "T-LH"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"beds": {"obstetric": -1}}, "beds.obstetric"),
        ({"beds": {"obstetric": "many"}}, "beds.obstetric"),
        ({"beds": {"sofa": 2}}, "beds.sofa"),
        ({"diversion": "maybe"}, "diversion"),
        ({"diversion": "closed"}, "diversion_reason"),
        ({"unavailable": ["teleportation"]}, "unavailable.0"),
        ({}, "beds"),
        ({"bedz": {}}, "bedz"),
    ],
)
def test_bad_status_reports_get_a_400_naming_the_field_and_change_nothing(
    client: FlaskClient, world: dict[str, Any], app: Flask, body: dict[str, Any], field: str
) -> None:
    response = client.put(
        "/api/v1/facilities/H-LH/status", headers=bearer(world["hospital"]), json=body
    )
    assert response.status_code in (400, 422)
    error = response.get_json()
    assert error["field"] == field, error
    assert field.split(".")[0] in error["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StatusReport)) == 0


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "{not json"])
def test_a_body_that_is_not_a_json_object_is_refused_clearly(
    client: FlaskClient, world: dict[str, Any], raw: str
) -> None:
    response = client.put(
        "/api/v1/facilities/H-LH/status",
        headers={**bearer(world["hospital"]), "Content-Type": "application/json"},
        data=raw,
    )
    assert response.status_code in (400, 422)
    body = response.get_json()
    assert body["error"] and "JSON" in body["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": 200}, "lat"),
        ({"maternal_level": "M7"}, "maternal_level"),
        ({"capabilities": ["x"]}, "capabilities.0"),
        ({"kind": "spaceport"}, "kind"),
        ({"phone": "12345"}, "phone"),
    ],
)
def test_admin_facility_creation_validates_every_field(
    client: FlaskClient, world: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    response = client.post(
        "/api/v1/facilities", headers=bearer(world["admin"]), json={**NEW_FACILITY, **change}
    )
    assert response.status_code in (400, 422)
    assert response.get_json()["field"] == field


def test_creating_a_facility_twice_is_a_conflict(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    headers = bearer(world["admin"])
    assert client.post("/api/v1/facilities", headers=headers, json=NEW_FACILITY).status_code == 201
    again = client.post("/api/v1/facilities", headers=headers, json=NEW_FACILITY)
    assert again.status_code == 409 and again.get_json()["field"] == "code"


def test_an_import_over_http_is_all_or_nothing_with_row_errors(
    client: FlaskClient, world: dict[str, Any], app: Flask
) -> None:
    csv_body = (
        "code,name,kind,lat,lon,maternal_level,neonatal_level,capabilities,phone\n"
        "OK-1,好,clinic,1,1,M0,N0,,\nBAD-1,坏,clinic,200,1,M0,N0,,\n"
    )
    response = client.post(
        "/api/v1/facilities/import",
        headers={**bearer(world["admin"]), "Content-Type": "text/csv"},
        data=csv_body,
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["errors"] == [{"row": 3, "field": "lat", "message": body["errors"][0]["message"]}]
    with app.app_context():
        assert db.session.scalar(select(Facility).where(Facility.code == "OK-1")) is None


def test_a_50_mb_upload_is_refused_with_413(client: FlaskClient, world: dict[str, Any]) -> None:
    response = client.post(
        "/api/v1/facilities/import",
        headers={**bearer(world["admin"]), "Content-Type": "text/csv"},
        data=b"x" * (50 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert response.get_json()["error"] == "too_large"


def test_unknown_facility_is_a_404_naming_the_code(
    client: FlaskClient, world: dict[str, Any]
) -> None:
    response = client.get("/api/v1/facilities/NOPE", headers=bearer(world["admin"]))
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "not_found",
        "field": "code",
        "message": "code: no facility with code 'NOPE'",
    }


def test_the_openapi_description_documents_every_facility_endpoint(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/facilities/{code}/status" in spec["paths"]
    status_put = spec["paths"]["/api/v1/facilities/{code}/status"]["put"]
    assert "requestBody" in status_put
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    schema = json.dumps(spec["components"]["schemas"])
    assert "therapeutic_hypothermia" in schema  # the capability vocabulary is documented


def test_healthz_reports_the_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["database"] == "ok"


def test_every_response_carries_security_headers(client: FlaskClient) -> None:
    for path in ("/login", "/healthz", "/api/v1/openapi.json"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
