"""The registry's FHIR export is one a FHIR server accepts: every resource valid R4, every
reference resolved inside its bundle, ids within FHIR's rule, nothing empty, the version said."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from core.fhir import FhirIdError, code_from_id, fhir_id
from facilities import export, registry
from facilities.models import Channel, FacilityKind
from facilities.status import report_status
from tests.fhir_checks import FHIR_ID, empty_elements, references, validate
from tests.world import NOW, World, add_facility, build_region

GRACE = dt.timedelta(hours=4)
CODES = ["T-1", "H_A.1", "weird..code_", "A", "x_y_z"]


@pytest.fixture
def registry_rows(session: Session) -> Session:
    """The world's region plus facilities whose codes FHIR's id rule does not allow as they are,
    one with nothing optional filled in (no phone, no address, no capabilities)."""
    build_region(session)
    for code in CODES[1:]:
        add_facility(session, code, phone="", province="", city="", county="", capabilities=[])
    add_facility(session, "BARE", name_en="", kind=FacilityKind.CLINIC, phone="", capabilities=[])
    return session


def bundle_of(session: Session, kind: str = "collection") -> dict[str, Any]:
    text = export.export_fhir(registry.list_facilities(session), now=NOW, grace=GRACE, bundle=kind)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@pytest.mark.parametrize("kind", ["collection", "transaction"])
def test_every_exported_resource_is_valid_r4(registry_rows: Session, kind: str) -> None:
    bundle = bundle_of(registry_rows, kind)
    validate(bundle)
    assert len(bundle["entry"]) == 3 * len(registry.list_facilities(registry_rows))
    for entry in bundle["entry"]:
        validate(entry["resource"])


@pytest.mark.parametrize("kind", ["collection", "transaction"])
def test_every_reference_resolves_to_an_entry_of_the_same_bundle(
    registry_rows: Session, kind: str
) -> None:
    bundle = bundle_of(registry_rows, kind)
    by_url = {entry["fullUrl"]: entry["resource"] for entry in bundle["entry"]}
    assert len(by_url) == len(bundle["entry"])  # fullUrls are unique
    found = list(references(bundle))
    assert len(found) == 3 * len(registry.list_facilities(registry_rows))
    for reference in found:
        assert reference in by_url, reference
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Location":
            target = by_url[resource["managingOrganization"]["reference"]]
            assert target["resourceType"] == "Organization"
            assert target["identifier"] == resource["identifier"]


def test_full_urls_are_uuids_stable_from_one_export_to_the_next(registry_rows: Session) -> None:
    first, second = bundle_of(registry_rows), bundle_of(registry_rows, "transaction")
    urls = [entry["fullUrl"] for entry in first["entry"]]
    assert urls == [entry["fullUrl"] for entry in second["entry"]]
    for url in urls:
        assert url.startswith("urn:uuid:")
        assert uuid.UUID(url.removeprefix("urn:uuid:")).version == 5


def test_no_element_anywhere_is_empty(registry_rows: Session) -> None:
    for kind in ("collection", "transaction"):
        bundle = bundle_of(registry_rows, kind)
        assert list(empty_elements(bundle)) == []
    bare = next(
        e["resource"]
        for e in bundle_of(registry_rows)["entry"]
        if e["resource"]["resourceType"] == "HealthcareService" and e["resource"]["id"] == "BARE"
    )
    assert "characteristic" not in bare and "telecom" not in bare


def test_codes_with_an_underscore_get_valid_ids_that_map_back(registry_rows: Session) -> None:
    ids = {
        e["resource"]["id"]: e["resource"]["identifier"][0]["value"]
        for e in bundle_of(registry_rows)["entry"]
    }
    for code in CODES:
        assert FHIR_ID.match(fhir_id(code))
        assert ids[fhir_id(code)] == code
        assert code_from_id(fhir_id(code)) == code
    assert fhir_id("T-1") == "T-1"  # a code FHIR allows is its own id
    assert fhir_id("H_A.1") == "H.uA..1"


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z"))
def test_every_registry_code_has_a_valid_id_that_maps_back(code: str) -> None:
    assert FHIR_ID.match(fhir_id(code))
    assert code_from_id(fhir_id(code)) == code


@pytest.mark.parametrize("bad", ["a.b", "a_b", "", "a.", "x" * 65])
def test_a_string_that_is_no_code_s_id_is_refused(bad: str) -> None:
    with pytest.raises(FhirIdError):
        code_from_id(bad)


def test_the_version_is_declared_on_the_bundle_and_every_resource(registry_rows: Session) -> None:
    bundle = bundle_of(registry_rows)
    assert bundle["meta"]["profile"] == ["http://hl7.org/fhir/StructureDefinition/Bundle|4.0.1"]
    for entry in bundle["entry"]:
        kind = entry["resource"]["resourceType"]
        assert entry["resource"]["meta"]["profile"] == [
            f"http://hl7.org/fhir/StructureDefinition/{kind}|4.0.1"
        ]


def test_a_transaction_updates_each_resource_by_its_facility_identifier(
    registry_rows: Session,
) -> None:
    bundle = bundle_of(registry_rows, "transaction")
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        code = resource["identifier"][0]["value"]
        assert "id" not in resource  # the server gives the id; the identifier finds it again
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}?identifier={export.FHIR_CODE_SYSTEM}|{code}",
        }


def test_an_unknown_bundle_type_is_refused_naming_the_field(registry_rows: Session) -> None:
    with pytest.raises(ValueError, match="bundle") as caught:
        bundle_of(registry_rows, "batch")
    assert getattr(caught.value, "field", None) == "bundle"


def location_of(session: Session, code: str) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in bundle_of(session)["entry"]
        if e["resource"]["resourceType"] == "Location" and e["resource"]["id"] == fhir_id(code)
    )


def test_live_status_is_the_location_s_operational_status_and_availability(
    registry_rows: Session,
) -> None:
    hospital = registry.get_facility(registry_rows, "H-A")
    location = location_of(registry_rows, "H-A")
    assert location["operationalStatus"]["code"] == "U"  # 4 obstetric beds free
    [availability] = location["extension"]
    assert availability["url"] == export.FHIR_AVAILABILITY
    values = {part["url"]: part for part in availability["extension"]}
    assert values["diversion"]["valueCode"] == "normal"
    assert values["beds-nicu"]["valueUnsignedInt"] == 2
    assert values["stale"]["valueBoolean"] is False
    report_status(
        registry_rows,
        facility=hospital,
        diversion="closed",
        diversion_reason="theatre flooded",
        reported_by="test",
        user_id=None,
        channel=Channel.API,
        now=NOW,
    )
    registry_rows.flush()
    closed = location_of(registry_rows, "H-A")
    assert closed["operationalStatus"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0116",
        "code": "C",
        "display": "Closed",
    }
    validate(closed)
    never_reported = location_of(registry_rows, "BARE")
    assert "operationalStatus" not in never_reported and "extension" not in never_reported


def test_the_cli_writes_a_transaction_bundle(
    database_url: str,
    registry_rows: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenchannel.cli import main

    registry_rows.commit()
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SECRET_KEY", "x")
    runner = CliRunner()
    result = runner.invoke(
        main, ["facilities", "export", "--format", "fhir", "--bundle", "transaction"]
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.output)
    assert bundle["type"] == "transaction" and len(bundle["entry"]) == 3 * (len(CODES) + 5)
    refused = runner.invoke(main, ["facilities", "export", "--format", "fhir", "--bundle", "x"])
    assert refused.exit_code == 2 and "--bundle" in refused.output


def test_the_api_export_declares_the_fhir_version_in_its_content_type(world: World) -> None:
    response = world.get("clinic", "/api/v1/facilities/export?format=fhir&bundle=transaction")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json; fhirVersion=4.0"
    assert response.get_json(force=True)["type"] == "transaction"
    refused = world.get("clinic", "/api/v1/facilities/export?format=fhir&bundle=batch")
    assert refused.status_code == 400 and refused.get_json()["field"] == "bundle"
