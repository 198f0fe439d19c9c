"""Where the receiving team is: address, department and entrance in the registry, its files,
its FHIR export and its API."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from facilities import export, registry
from facilities.registry import ImportRejected
from greenchannel.demo.region import demo_facilities
from greenchannel.web.db import db
from tests.world import NOW, add_facility, add_user, bearer

HEADER = "code,name,kind,lat,lon,maternal_level,neonatal_level,capabilities,phone"
WHERE_HEADER = HEADER + ",address,department,department_en,entrance,entrance_en"
WHERE_CSV = (
    WHERE_HEADER + "\n"
    "CITY-1,市中心医院,city_hospital,29.6,106.5,M4,N4,adult_icu,+862388880000,"
    '云州市城中区人民路128号,产科急诊,Obstetric emergency,"急诊楼东门，2楼",'
    '"Emergency building, east gate, 2F"\n'
    "T-1,青石镇卫生院,township_health_centre,29.8,106.2,M1,N1,,,,,,,\n"
)
WHERE = {
    "address": "云州市城中区人民路128号",
    "department": "产科急诊",
    "department_en": "Obstetric emergency",
    "entrance": "急诊楼东门，2楼",
    "entrance_en": "Emergency building, east gate, 2F",
}


GRACE = dt.timedelta(hours=4)  # how old live status may be before it is stale


def where_of(facility: Any) -> dict[str, str]:
    return {name: getattr(facility, name) for name in WHERE}


def test_the_where_columns_are_imported_from_csv_and_may_be_left_empty(session: Session) -> None:
    registry.import_facilities(session, data=WHERE_CSV.encode(), fmt="csv", now=NOW)
    assert where_of(registry.get_facility(session, "CITY-1")) == WHERE
    assert set(where_of(registry.get_facility(session, "T-1")).values()) == {""}


def test_a_file_without_the_where_columns_still_imports(session: Session) -> None:
    data = (HEADER + "\nH-1,某医院,county_hospital,29,106,M2,N2,,\n").encode()
    registry.import_facilities(session, data=data, fmt="csv", now=NOW)
    assert registry.get_facility(session, "H-1").address == ""


def test_the_where_properties_are_imported_from_geojson(session: Session) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [106.5, 29.6]},
                "properties": {
                    "code": "CITY-1",
                    "name": "市中心医院",
                    "kind": "city_hospital",
                    "maternal_level": "M4",
                    "neonatal_level": "N4",
                    "capabilities": [],
                    **WHERE,
                },
            }
        ],
    }
    registry.import_facilities(session, data=json.dumps(document).encode(), fmt="geojson", now=NOW)
    assert where_of(registry.get_facility(session, "CITY-1")) == WHERE


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_the_where_fields_survive_export_and_import_again(session: Session, fmt: str) -> None:
    registry.import_facilities(session, data=WHERE_CSV.encode(), fmt="csv", now=NOW)
    first = registry.list_facilities(session)
    exported = (export.export_csv if fmt == "csv" else export.export_geojson)(first)
    for facility in first:
        session.delete(facility)
    session.flush()
    registry.import_facilities(session, data=exported.encode(), fmt=fmt, now=NOW)
    assert where_of(registry.get_facility(session, "CITY-1")) == WHERE


def test_the_csv_export_has_the_where_columns(session: Session) -> None:
    registry.import_facilities(session, data=WHERE_CSV.encode(), fmt="csv", now=NOW)
    rows = list(csv.DictReader(io.StringIO(export.export_csv(registry.list_facilities(session)))))
    city = next(row for row in rows if row["code"] == "CITY-1")
    assert {name: city[name] for name in WHERE} == WHERE


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("address", 200),
        ("department", 100),
        ("department_en", 100),
        ("entrance", 100),
        ("entrance_en", 100),
    ],
)
def test_a_where_field_over_its_limit_is_reported_with_row_and_field(
    session: Session, field: str, limit: int
) -> None:
    values = dict.fromkeys(WHERE, "")
    values[field] = "门" * (limit + 1)
    fine = dict.fromkeys(WHERE, "")
    fine[field] = "门" * limit
    rows = [
        {"code": "OK-1", **fine},
        {"code": "BAD-1", **values},
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*HEADER.split(","), *WHERE], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                "name": "某医院",
                "kind": "county_hospital",
                "lat": "29",
                "lon": "106",
                "maternal_level": "M2",
                "neonatal_level": "N2",
                **row,
            }
        )
    with pytest.raises(ImportRejected) as caught:
        registry.import_facilities(session, data=out.getvalue().encode(), fmt="csv", now=NOW)
    [error] = caught.value.errors
    assert (error.row, error.field) == (3, field)
    assert f"longer than {limit}" in error.message
    assert registry.list_facilities(session) == []


def fhir_resources(session: Session) -> dict[str, dict[str, Any]]:
    bundle = json.loads(export.export_fhir(registry.list_facilities(session), now=NOW, grace=GRACE))
    return {
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}": entry["resource"]
        for entry in bundle["entry"]
    }


def test_the_fhir_export_carries_the_address_text_and_the_way_in(session: Session) -> None:
    registry.import_facilities(session, data=WHERE_CSV.encode(), fmt="csv", now=NOW)
    resources = fhir_resources(session)
    organization, location = resources["Organization/CITY-1"], resources["Location/CITY-1"]
    assert organization["address"] == [{"text": "云州市城中区人民路128号"}]
    assert location["address"] == {"text": "云州市城中区人民路128号"}
    assert location["description"] == "产科急诊；急诊楼东门，2楼"
    [translation] = location["_description"]["extension"]
    assert translation["url"] == "http://hl7.org/fhir/StructureDefinition/translation"
    assert translation["extension"] == [
        {"url": "lang", "valueCode": "en"},
        {"url": "content", "valueString": "Obstetric emergency; Emergency building, east gate, 2F"},
    ]


def test_the_fhir_export_has_no_empty_where_elements(session: Session) -> None:
    registry.import_facilities(session, data=WHERE_CSV.encode(), fmt="csv", now=NOW)
    location = fhir_resources(session)["Location/T-1"]
    assert "description" not in location and "_description" not in location
    assert "address" not in location


def test_a_chinese_only_description_has_no_translation(session: Session) -> None:
    add_facility(session, "H-1", department="产科", entrance="")
    location = fhir_resources(session)["Location/H-1"]
    assert location["description"] == "产科" and "_description" not in location


def test_every_demo_facility_has_a_valid_address_department_and_entrance() -> None:
    for spec in demo_facilities():
        values = registry.validate_facility(
            {
                "code": spec.code,
                "name": spec.name,
                "kind": spec.kind.value,
                "lat": spec.lat,
                "lon": spec.lon,
                **{name: getattr(spec, name) for name in WHERE},
            }
        )
        assert all(values[name] for name in WHERE), spec.code


# ---------------------------------------------------------------------------- the API


@pytest.fixture
def tokens(app: Flask) -> dict[str, str]:
    with app.app_context():
        add_facility(db.session, "H-1", **WHERE)
        result = {
            "admin": add_user(db.session, "adm", "admin"),
            "clinic": add_user(db.session, "clin", "clinic", facility="H-1"),
        }
        db.session.commit()
    return result


def test_the_api_shows_where_the_receiving_team_is(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    one = client.get("/api/v1/facilities/H-1", headers=bearer(tokens["clinic"])).get_json()
    assert {name: one[name] for name in WHERE} == WHERE
    listed = client.get("/api/v1/facilities", headers=bearer(tokens["clinic"])).get_json()
    assert {name: listed["facilities"][0][name] for name in WHERE} == WHERE


def test_an_administrator_sets_the_where_fields_and_a_too_long_one_is_named(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    body = {
        "name": "H-1 医院",
        "kind": "county_hospital",
        "lat": 30.0,
        "lon": 110.0,
        "maternal_level": "M2",
        "neonatal_level": "N2",
        "entrance": "住院部西门",
    }
    headers = bearer(tokens["admin"])
    response = client.put("/api/v1/facilities/H-1", headers=headers, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["entrance"] == "住院部西门"
    too_long = client.put(
        "/api/v1/facilities/H-1", headers=headers, json={**body, "department": "科" * 101}
    )
    assert too_long.status_code in (400, 422)
    assert too_long.get_json()["field"] == "department"


def test_the_openapi_describes_the_where_fields(
    client: FlaskClient, tokens: dict[str, str]
) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    out = spec["components"]["schemas"]["FacilityOut"]["properties"]
    assert out["address"]["maxLength"] == 200
    assert out["entrance_en"]["maxLength"] == 100
