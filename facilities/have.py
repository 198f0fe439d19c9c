"""A hospital's live status as an EDXL-HAVE document (OASIS Hospital AVailability Exchange).

What a regional dashboard reads: the organisation and where it is, the EMS traffic status (our
diversion), the beds by type, the services (capabilities) up or down, and when each value was
last reported. docs/interoperability.md lists the mapping and what could not be checked: the
HAVE 2.0 schema could not be obtained here, so the document is held to a checklist of the
elements the standard requires (tests/test_have.py), not to the XSD.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from core.fhir import instant
from facilities.models import Diversion, Facility
from facilities.status import StatusView, status_view

HAVE_NS = "urn:oasis:names:tc:emergency:EDXL:HAVE:2.0"
GML_NS = "http://www.opengis.net/gml"
HAVE_XML = "application/xml"

#: diversion → EMSTrafficStatus
EMS_TRAFFIC = {
    Diversion.NORMAL: "Normal",
    Diversion.ADVISORY: "Advisory",
    Diversion.CLOSED: "Closed",
}
#: our bed types → HAVE BedType: the standard's where one fits, a documented local type
#: (``Obstetric``) where none does
BED_TYPE = {"obstetric": "Obstetric", "maternal_icu": "AdultICU", "nicu": "NeonatalICU"}

ET.register_namespace("", HAVE_NS)
ET.register_namespace("gml", GML_NS)


def _el(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{HAVE_NS}}}{name}")
    if text is not None:
        element.text = text
    return element


def _updated(parent: ET.Element, when: dt.datetime | None) -> None:
    if when is not None:
        _el(parent, "LastUpdateTime", instant(when))


def have_document(facility: Facility, *, now: dt.datetime, grace: dt.timedelta) -> bytes:
    """The facility's status as an EDXL-HAVE ``HospitalStatus`` document (UTF-8 XML)."""
    view: StatusView = status_view(facility, now=now, grace=grace)
    status = facility.status
    root = ET.Element(f"{{{HAVE_NS}}}HospitalStatus")
    hospital = _el(root, "Hospital")

    organization = _el(hospital, "Organization")
    information = _el(organization, "OrganizationInformation")
    _el(information, "OrganizationID", facility.code)
    _el(information, "OrganizationName", facility.name)
    if facility.name_en:
        _el(information, "OrganizationNameEnglish", facility.name_en)
    where = _el(organization, "OrganizationGeoLocation")
    point = ET.SubElement(where, f"{{{GML_NS}}}Point")
    ET.SubElement(point, f"{{{GML_NS}}}pos").text = f"{facility.lat} {facility.lon}"

    department = _el(hospital, "EmergencyDepartmentStatus")
    traffic = _el(department, "EMSTraffic")
    _el(traffic, "EMSTrafficStatus", EMS_TRAFFIC[view.diversion])
    if view.diversion_reason:
        _el(traffic, "EMSTrafficReason", view.diversion_reason)
    # Never reported: the standing "normal" of the registry entry, as of its last change.
    _updated(traffic, (status.diversion_reported_at if status else None) or facility.updated_at)

    beds = _el(hospital, "HospitalBedCapacityStatus")
    for kind, count in view.beds.items():
        capacity_block = _el(beds, "BedCapacity")
        _el(capacity_block, "BedType", BED_TYPE[kind])
        if count is None:
            continue  # never reported: no figure rather than a made-up one
        capacity = _el(capacity_block, "Capacity")
        _el(capacity, "CapacityStatus", "VacantAvailable" if count > 0 else "NotAvailable")
        _el(capacity, "AvailableCount", str(count))
        _updated(capacity_block, view.beds_reported_at)

    unavailable = set(view.unavailable)
    services = _el(hospital, "ServiceCoverageStatus") if facility.capabilities else hospital
    for name in facility.capabilities:
        service = _el(services, "ServiceStatus")
        _el(service, "ServiceName", name)
        _el(service, "ServiceAvailable", "false" if name in unavailable else "true")
        reported = status.unavailable_reported_at if status is not None else None
        _updated(service, reported or facility.updated_at)

    _el(hospital, "DataStale", "true" if view.stale else "false")
    _updated(hospital, view.reported_at or facility.updated_at)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
