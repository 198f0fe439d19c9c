"""A hospital's status as EDXL-HAVE 2.0. The 2.0 schema could not be obtained here (docs/
interoperability.md), so each document is held to a checklist, element by element, of what a
public HAVE 2.0 consumer reads (``VERIFIED``) and of the bed/EMS/time elements named after HAVE
1.0 in 2.0's lowerCamel form (``INFERRED``), and to what the hospital reported."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy.orm import Session

from facilities import have
from facilities.models import Channel
from facilities.status import report_status
from tests.world import NOW, World, add_facility, build_region

NS = {"h": have.HAVE_NS, "ct": have.CT_NS, "gml": have.GML_NS}
GRACE = dt.timedelta(hours=4)
#: EDXL-CT's date-time: seconds, an explicit offset, no ``Z``, no fractions
EDXL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
FACILITY = "h:facility"
INFORMATION = f"{FACILITY}/h:facilityInformation"
SERVICE = f"{FACILITY}/h:serviceList/h:serviceListItem"
TRAFFIC = f"{FACILITY}/h:emergencyDepartmentStatus/h:emsTraffic"
BED = f"{FACILITY}/h:bedCapacityStatus/h:bedCapacity"
# (path from the root HAVE element, exactly how many): the paths a public HAVE 2.0 status board
# reads, in the lower-case 2.0 namespace with EDXL-CT 1.0 and GML 3.2.
VERIFIED = [
    (FACILITY, 1),
    (f"{INFORMATION}/h:facilityID", 1),
    (f"{INFORMATION}/h:facilityName", 1),
    (f"{INFORMATION}/h:facilityGeoLocation/ct:EDXLGeoLocation/gml:Point/gml:pos", 1),
]
# Named after HAVE 1.0 (EMSTraffic, BedCapacity, LastUpdateTime...) in lowerCamel: not checked
# against the 2.0 schema.
INFERRED = [
    (f"{TRAFFIC}/h:emsTrafficStatus", 1),
    (f"{TRAFFIC}/h:lastUpdateTime", 1),
    (f"{BED}/h:bedType", 3),
    (f"{FACILITY}/h:lastUpdateTime", 1),
]


def parse(document: bytes) -> ET.Element:
    assert document.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ET.fromstring(document)
    assert root.tag == f"{{{have.HAVE_NS}}}HAVE"
    for path, count in VERIFIED + INFERRED:
        assert len(root.findall(path, NS)) == count, path
    namespaces = {element.tag.split("}")[0][1:] for element in root.iter()}
    assert namespaces <= {have.HAVE_NS, have.CT_NS, have.GML_NS}, namespaces
    point = root.find(f"{INFORMATION}/h:facilityGeoLocation/ct:EDXLGeoLocation/gml:Point", NS)
    assert point is not None
    assert point.get(f"{{{have.GML_NS}}}id") and point.get("srsName") == have.SRS_NAME
    for stamp in root.iter(f"{{{have.HAVE_NS}}}lastUpdateTime"):
        assert EDXL_TIME.fullmatch(stamp.text or ""), stamp.text
        assert (stamp.text or "").endswith("+00:00")  # every time in UTC
    for element in root.iter():
        assert list(element) or (element.text or "").strip(), f"empty {element.tag}"
    return root


def text(root: ET.Element, path: str) -> str:
    found = root.find(path, NS)
    assert found is not None, path
    return found.text or ""


def beds(root: ET.Element) -> dict[str, str | None]:
    return {
        text(block, "h:bedType"): (
            text(block, "h:capacity/h:availableCount")
            if block.find("h:capacity", NS) is not None
            else None
        )
        for block in root.findall(BED, NS)
    }


def services(root: ET.Element) -> dict[str, str]:
    return {
        text(item, "h:serviceName"): text(
            item, "h:serviceStatus/h:colourStatus/h:colourCodeDefault/ct:Value"
        )
        for item in root.findall(SERVICE, NS)
    }


def test_a_hospital_s_report_is_a_complete_have_2_document(session: Session) -> None:
    region = build_region(session)
    hospital = region.facilities["H-A"]
    root = parse(have.have_document(hospital, now=NOW, grace=GRACE))
    assert text(root, f"{INFORMATION}/h:facilityID") == "H-A"
    assert text(root, f"{INFORMATION}/h:facilityName") == "H-A 医院"
    pos = text(root, f"{INFORMATION}/h:facilityGeoLocation/ct:EDXLGeoLocation/gml:Point/gml:pos")
    assert [float(v) for v in pos.split()] == [hospital.lat, hospital.lon]
    assert text(root, f"{TRAFFIC}/h:emsTrafficStatus") == "Normal"
    assert text(root, f"{TRAFFIC}/h:lastUpdateTime") == "2026-11-24T07:50:00+00:00"
    assert beds(root) == {"Obstetric": "4", "AdultICU": "1", "NeonatalICU": "2"}
    assert services(root) == dict.fromkeys(hospital.capabilities, "green")
    facility = root.find(FACILITY, NS)
    assert facility is not None
    # the facility's own description comes first, its time last
    assert facility[0].tag == f"{{{have.HAVE_NS}}}facilityInformation"
    assert facility[-1].tag == f"{{{have.HAVE_NS}}}lastUpdateTime"


def test_no_have_1_0_names_are_left(session: Session) -> None:
    hospital = build_region(session).facilities["H-A"]
    document = have.have_document(hospital, now=NOW, grace=GRACE)
    assert b"EDXL:HAVE" not in document and b"HospitalStatus" not in document
    root = parse(document)
    have_names = {e.tag.split("}")[1] for e in root.iter() if e.tag.startswith(f"{{{have.HAVE_NS}")}
    assert {name for name in have_names if name != "HAVE" and name[0].isupper()} == set()


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
    assert text(root, f"{TRAFFIC}/h:emsTrafficStatus") == expected
    reason = root.find(f"{TRAFFIC}/h:emsTrafficReason", NS)
    if diversion == "normal":  # a hospital back to normal has no reason left to give
        assert reason is None
    else:
        assert reason is not None and reason.text == "theatre flooded"
    assert text(root, f"{TRAFFIC}/h:lastUpdateTime") == "2026-11-24T08:05:00+00:00"
    nicu = next(b for b in root.findall(BED, NS) if text(b, "h:bedType") == "NeonatalICU")
    assert text(nicu, "h:capacity/h:capacityStatus") == "NotAvailable"
    assert text(nicu, "h:capacity/h:availableCount") == "0"
    assert text(nicu, "h:lastUpdateTime") == "2026-11-24T08:05:00+00:00"
    down = {name for name, colour in services(root).items() if colour == "red"}
    assert down == {"massive_transfusion"}
    for item in root.findall(SERVICE, NS):
        assert text(item, "h:lastUpdateTime") == "2026-11-24T08:05:00+00:00"


def test_a_hospital_that_never_reported_gives_no_bed_figures(session: Session) -> None:
    quiet = add_facility(session, "Q_1", capabilities=[])
    root = parse(have.have_document(quiet, now=NOW, grace=GRACE))
    assert beds(root) == {"Obstetric": None, "AdultICU": None, "NeonatalICU": None}
    assert root.find(f"{BED}/h:lastUpdateTime", NS) is None  # no figure, no time for it
    assert root.find(f"{FACILITY}/h:serviceList", NS) is None  # no services, no list
    assert text(root, f"{INFORMATION}/h:facilityID") == "Q_1"


def test_a_time_is_written_in_utc_with_its_offset() -> None:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    when = dt.datetime(2026, 11, 24, 15, 50, 7, 123456, tzinfo=shanghai)
    assert have.edxl_time(when) == "2026-11-24T07:50:07+00:00"


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
