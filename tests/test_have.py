"""A hospital's status as EDXL-HAVE: the schema could not be obtained here (docs/
interoperability.md), so each document is held to a checklist of the elements the standard
requires, and to what the hospital reported."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.orm import Session

from facilities import have
from facilities.models import Channel
from facilities.status import report_status
from tests.world import NOW, World, add_facility, build_region

NS = {"h": have.HAVE_NS, "gml": have.GML_NS}
GRACE = dt.timedelta(hours=4)
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"
# (path, how many at least): the checklist of required elements.
REQUIRED = [
    ("h:Hospital", 1),
    ("h:Hospital/h:Organization/h:OrganizationInformation/h:OrganizationID", 1),
    ("h:Hospital/h:Organization/h:OrganizationInformation/h:OrganizationName", 1),
    ("h:Hospital/h:Organization/h:OrganizationGeoLocation/gml:Point/gml:pos", 1),
    ("h:Hospital/h:EmergencyDepartmentStatus/h:EMSTraffic/h:EMSTrafficStatus", 1),
    ("h:Hospital/h:EmergencyDepartmentStatus/h:EMSTraffic/h:LastUpdateTime", 1),
    ("h:Hospital/h:HospitalBedCapacityStatus/h:BedCapacity/h:BedType", 3),
    ("h:Hospital/h:LastUpdateTime", 1),
]


def parse(document: bytes) -> ET.Element:
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(document)
    assert root.tag == f"{{{have.HAVE_NS}}}HospitalStatus"
    for path, least in REQUIRED:
        assert len(root.findall(path, NS)) >= least, path
    for stamp in root.iter(f"{{{have.HAVE_NS}}}LastUpdateTime"):
        dt.datetime.strptime(stamp.text or "", ISO_UTC)  # every time in UTC, to the second
    for element in root.iter():
        assert list(element) or (element.text or "").strip(), f"empty {element.tag}"
    return root


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, path
    return found.text or ""


def beds(root: ET.Element) -> dict[str, str | None]:
    return {
        text(block, "h:BedType"): (
            block.find("h:Capacity/h:AvailableCount", NS).text  # type: ignore[union-attr]
            if block.find("h:Capacity", NS) is not None
            else None
        )
        for block in root.findall("h:Hospital/h:HospitalBedCapacityStatus/h:BedCapacity", NS)
    }


def test_a_hospital_s_report_is_a_complete_have_document(session: Session) -> None:
    region = build_region(session)
    hospital = region.facilities["H-A"]
    root = parse(have.have_document(hospital, now=NOW, grace=GRACE))
    organisation = "h:Hospital/h:Organization/h:OrganizationInformation"
    assert text(root, f"{organisation}/h:OrganizationID") == "H-A"
    assert text(root, f"{organisation}/h:OrganizationName") == "H-A 医院"
    pos = text(root, "h:Hospital/h:Organization/h:OrganizationGeoLocation/gml:Point/gml:pos")
    assert [float(v) for v in pos.split()] == [hospital.lat, hospital.lon]
    traffic = "h:Hospital/h:EmergencyDepartmentStatus/h:EMSTraffic"
    assert text(root, f"{traffic}/h:EMSTrafficStatus") == "Normal"
    assert text(root, f"{traffic}/h:LastUpdateTime") == "2026-11-24T07:50:00Z"
    assert beds(root) == {"Obstetric": "4", "AdultICU": "1", "NeonatalICU": "2"}
    services = {
        text(s, "h:ServiceName"): text(s, "h:ServiceAvailable")
        for s in root.findall("h:Hospital/h:ServiceCoverageStatus/h:ServiceStatus", NS)
    }
    assert services == dict.fromkeys(hospital.capabilities, "true")
    assert text(root, "h:Hospital/h:DataStale") == "false"


@pytest.mark.parametrize(
    ("diversion", "expected"),
    [("normal", "Normal"), ("advisory", "Advisory"), ("closed", "Closed")],
)
def test_diversion_is_the_ems_traffic_status_with_its_reason_and_time(
    session: Session, diversion: str, expected: str
) -> None:
    hospital = build_region(session).facilities["H-B"]
    later = NOW + dt.timedelta(minutes=5)
    report_status(
        session,
        facility=hospital,
        beds={"nicu": 0},
        diversion=diversion,
        diversion_reason="theatre flooded",
        unavailable=["massive_transfusion"],
        reported_by="test",
        user_id=None,
        channel=Channel.API,
        now=later,
    )
    root = parse(have.have_document(hospital, now=later, grace=GRACE))
    traffic = "h:Hospital/h:EmergencyDepartmentStatus/h:EMSTraffic"
    assert text(root, f"{traffic}/h:EMSTrafficStatus") == expected
    reason = root.find(f"{traffic}/h:EMSTrafficReason", NS)
    if diversion == "normal":  # a hospital back to normal has no reason left to give
        assert reason is None
    else:
        assert reason is not None and reason.text == "theatre flooded"
    assert text(root, f"{traffic}/h:LastUpdateTime") == "2026-11-24T08:05:00Z"
    nicu = next(
        block
        for block in root.findall("h:Hospital/h:HospitalBedCapacityStatus/h:BedCapacity", NS)
        if text(block, "h:BedType") == "NeonatalICU"
    )
    assert text(nicu, "h:Capacity/h:CapacityStatus") == "NotAvailable"
    assert text(nicu, "h:LastUpdateTime") == "2026-11-24T08:05:00Z"
    down = {
        text(s, "h:ServiceName")
        for s in root.findall("h:Hospital/h:ServiceCoverageStatus/h:ServiceStatus", NS)
        if text(s, "h:ServiceAvailable") == "false"
    }
    assert down == {"massive_transfusion"}


def test_a_hospital_that_never_reported_gives_no_bed_figures_and_says_so(
    session: Session,
) -> None:
    quiet = add_facility(session, "Q_1", capabilities=[])
    root = parse(have.have_document(quiet, now=NOW, grace=GRACE))
    assert beds(root) == {"Obstetric": None, "AdultICU": None, "NeonatalICU": None}
    assert text(root, "h:Hospital/h:DataStale") == "true"
    assert root.find("h:Hospital/h:ServiceCoverageStatus", NS) is None  # no services, no block
    assert text(root, "h:Hospital/h:Organization/h:OrganizationInformation/h:OrganizationID") == (
        "Q_1"
    )


def test_the_endpoint_answers_any_user_with_xml_and_404_for_no_such_facility(
    world: World,
) -> None:
    response = world.get("clinic", "/api/v1/facilities/H-C/have.xml")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    parse(response.data)
    missing = world.get("clinic", "/api/v1/facilities/NOPE/have.xml")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert world.client.get("/api/v1/facilities/H-C/have.xml").status_code == 401
