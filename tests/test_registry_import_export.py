"""The registry imports all-or-nothing, explains every bad row, and round-trips its exports."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facilities import export, registry
from facilities.models import Contact, Facility
from facilities.registry import ImportRejected, RegistryError
from tests.world import NOW, add_facility

HEADER = "code,name,kind,lat,lon,maternal_level,neonatal_level,capabilities,phone"
GOOD_CSV = (
    HEADER + ",name_en,province,city,county,township,active\n"
    "CITY-1,市中心医院,city_hospital,29.6,106.5,M4,N4,"
    "adult_icu;caesarean_24h;massive_transfusion,+862388880000,City Hospital,云省,云州市,,,true\n"
    "T-1,青石镇卫生院,township_health_centre,29.8,106.2,M1,N1,,,Qingshi THC,云省,云州市,临河县,"
    "青石镇,true\n"
    'C-1,"临河县人民医院, 东院",county_hospital,29.9,106.1,M3,N2,'
    "caesarean_24h;blood_transfusion,+862388881111,Linhe County Hospital,"
    "云省,云州市,临河县,,false\n"
)


GRACE = dt.timedelta(hours=4)  # how old live status may be before it is stale


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Facility)) or 0


def test_a_good_csv_creates_every_facility_with_its_levels_and_capabilities(
    session: Session,
) -> None:
    summary = registry.import_facilities(session, data=GOOD_CSV.encode(), fmt="csv", now=NOW)
    assert (summary.created, summary.updated) == (3, 0)
    city = registry.get_facility(session, "CITY-1")
    assert (city.maternal_level, city.neonatal_level) == (4, 4)
    assert city.capabilities == ["adult_icu", "caesarean_24h", "massive_transfusion"]
    county = registry.get_facility(session, "C-1")
    assert county.name == "临河县人民医院, 东院" and county.active is False


def test_importing_the_same_codes_again_updates_instead_of_duplicating(session: Session) -> None:
    registry.import_facilities(session, data=GOOD_CSV.encode(), fmt="csv", now=NOW)
    changed = GOOD_CSV.replace("M3,N2", "M2,N2")
    summary = registry.import_facilities(session, data=changed.encode(), fmt="csv", now=NOW)
    assert (summary.created, summary.updated) == (0, 3)
    assert count(session) == 3
    assert registry.get_facility(session, "C-1").maternal_level == 2


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_export_then_import_into_an_empty_registry_gives_the_same_registry(
    session: Session, fmt: str
) -> None:
    registry.import_facilities(session, data=GOOD_CSV.encode(), fmt="csv", now=NOW)
    first = registry.list_facilities(session)
    exported = (export.export_csv if fmt == "csv" else export.export_geojson)(first)
    before = export.export_csv(first)
    for facility in first:
        session.delete(facility)
    session.flush()
    assert count(session) == 0
    registry.import_facilities(session, data=exported.encode(), fmt=fmt, now=NOW)
    assert export.export_csv(registry.list_facilities(session)) == before


def test_the_fhir_export_is_a_bundle_of_organization_location_and_healthcare_service(
    session: Session,
) -> None:
    registry.import_facilities(session, data=GOOD_CSV.encode(), fmt="csv", now=NOW)
    bundle = json.loads(export.export_fhir(registry.list_facilities(session), now=NOW, grace=GRACE))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds.count("Organization") == kinds.count("Location") == 3
    assert kinds.count("HealthcareService") == 3
    by_type = {(e["resource"]["resourceType"], e["resource"]["id"]): e for e in bundle["entry"]}
    location = by_type["Location", "CITY-1"]["resource"]
    assert location["position"] == {"longitude": 106.5, "latitude": 29.6}
    organization_url = by_type["Organization", "CITY-1"]["fullUrl"]
    assert location["managingOrganization"] == {"reference": organization_url}
    service = by_type["HealthcareService", "CITY-1"]["resource"]
    codes = {c["coding"][0]["code"] for c in service["characteristic"]}
    assert codes == {"adult_icu", "caesarean_24h", "massive_transfusion"}
    assert {t["coding"][0]["code"] for t in service["type"]} == {"M4", "N4"}


@pytest.mark.parametrize(
    ("bad_row", "field", "words"),
    [
        ("X-1,某医院,county_hospital,200,106,M2,N2,,", "lat", "outside"),
        ("X-1,某医院,county_hospital,29,106,M7,N2,,", "maternal_level", "M0–M4"),
        ("X-1,某医院,county_hospital,29,106,M2,N9,,", "neonatal_level", "N0–N4"),
        ("X-1,某医院,county_hospital,29,106,M2,N2,teleportation,", "capabilities", "unknown"),
        ("X-1,某医院,spaceport,29,106,M2,N2,,", "kind", "unknown"),
        ("X-1,,county_hospital,29,106,M2,N2,,", "name", "required"),
        ("X-1,某医院,county_hospital,abc,106,M2,N2,,", "lat", "not a number"),
        ("X-1,某医院,county_hospital,29,106,M2,N2,,12345", "phone", "E.164"),
        ("X 1,某医院,county_hospital,29,106,M2,N2,,", "code", "letters"),
    ],
)
def test_a_bad_row_is_reported_with_its_row_number_and_field_and_nothing_is_imported(
    session: Session, bad_row: str, field: str, words: str
) -> None:
    data = (HEADER + "\nOK-1,好医院,county_hospital,29,106,M2,N2,,\n" + bad_row + "\n").encode()
    with pytest.raises(ImportRejected) as caught:
        registry.import_facilities(session, data=data, fmt="csv", now=NOW)
    [error] = caught.value.errors
    assert (error.row, error.field) == (3, field)
    assert words in error.message
    assert count(session) == 0


def test_every_bad_row_is_reported_not_just_the_first(session: Session) -> None:
    data = (
        HEADER + "\nA,a,county_hospital,200,0,M2,N2,,\nB,b,county_hospital,0,0,M9,N2,,\n"
        "A,c,county_hospital,0,0,M2,N2,,\n"
    ).encode()
    with pytest.raises(ImportRejected) as caught:
        registry.import_facilities(session, data=data, fmt="csv", now=NOW)
    assert [(e.row, e.field) for e in caught.value.errors] == [
        (2, "lat"),
        (3, "maternal_level"),
        (4, "code"),
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (HEADER.encode() + b"\n", "no data rows"),
        (b"code,name\nA,b\n", "lacks column"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"x" * (registry.MAX_IMPORT_BYTES + 1), "limit"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(
    session: Session, data: bytes, words: str
) -> None:
    with pytest.raises(RegistryError, match=words):
        registry.import_facilities(session, data=data, fmt="csv", now=NOW)
    assert count(session) == 0


def test_a_row_with_more_values_than_columns_is_reported(session: Session) -> None:
    data = (HEADER + "\nA,a,county_hospital,29,106,M2,N2,,,extra\n").encode()
    with pytest.raises(ImportRejected) as caught:
        registry.import_facilities(session, data=data, fmt="csv", now=NOW)
    assert caught.value.errors[0].row == 2


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("[]", "FeatureCollection"),
        ('{"type": "FeatureCollection", "features": []}', "no features"),
        ('{"type": "FeatureCollection", "features": [{"geometry": null}]}', "Point"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_geojson_is_refused_with_a_reason(session: Session, document: str, words: str) -> None:
    with pytest.raises(RegistryError, match=words):
        registry.import_facilities(session, data=document.encode(), fmt="geojson", now=NOW)


def test_contacts_import_is_all_or_nothing_and_names_row_and_field(session: Session) -> None:
    add_facility(session, "H-1")
    header = "facility_code,name,team,phone,language,priority\n"
    good = (
        header
        + "H-1,王医生,obstetrics,+8613900000001,zh,1\nH-1,Dr Li,neonatology,+8613900000002,en,1\n"
    )
    summary = registry.import_contacts(session, data=good.encode())
    assert summary.created == 2
    bad = header + (
        "H-1,张医生,obstetrics,+8613900000003,zh,2\n"
        "NOPE,李医生,obstetrics,+8613900000004,zh,1\n"
        "H-1,赵医生,midwifery,+8613900000005,zh,1\n"
        "H-1,钱医生,obstetrics,13900000006,zh,1\n"
        "H-1,孙医生,obstetrics,+8613900000007,fr,1\n"
    )
    with pytest.raises(ImportRejected) as caught:
        registry.import_contacts(session, data=bad.encode())
    assert [(e.row, e.field) for e in caught.value.errors] == [
        (3, "facility_code"),
        (4, "team"),
        (5, "phone"),
        (6, "language"),
    ]
    assert session.scalar(select(func.count()).select_from(Contact)) == 2


def test_the_cli_import_reports_every_bad_row_and_exits_non_zero(
    database_url: str,
    engine: object,
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
    session: Session,
) -> None:
    from pathlib import Path

    from greenchannel.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    folder = Path(str(tmp_path))
    bad = folder / "bad.csv"
    bad.write_text(
        HEADER + "\nA,a,county_hospital,200,0,M2,N2,,\nB,b,county_hospital,0,0,M7,N2,,\n"
    )
    result = CliRunner().invoke(main, ["facilities", "import", str(bad)])
    assert result.exit_code == 1
    assert "row 2, field lat" in result.output and "row 3, field maternal_level" in result.output
    good = folder / "good.csv"
    good.write_text(GOOD_CSV)
    result = CliRunner().invoke(main, ["facilities", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "imported 3 new" in result.output
    result = CliRunner().invoke(main, ["facilities", "export", "--format", "fhir"])
    assert json.loads(result.output)["resourceType"] == "Bundle"
    result = CliRunner().invoke(main, ["facilities", "import", str(folder / "missing.csv")])
    assert result.exit_code == 1 and "No such file" in result.output
