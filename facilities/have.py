"""A hospital's live status as an EDXL-HAVE 2.0 document (OASIS Hospital AVailability Exchange).

What a regional dashboard reads: the facility and where it is, the EMS traffic status (our
diversion), the beds by type with their available counts, the services (capabilities) up or
down, and when each value was last reported.

The HAVE 2.0 schema (edxl-have-v2.0.xsd, OASIS CS02) could not be obtained here, so this
document is not validated against it. Each element is built from one of two sources, and
``VERIFIED`` / ``INFERRED`` below say which (docs/interoperability.md has the detail):

- verified: the paths a public HAVE 2.0 consumer reads (XSL stylesheets of a HAVE 2.0 status
  board): the lower-case 2.0 namespace, ``HAVE/facility``, ``facilityInformation`` with
  ``facilityID``, ``facilityName`` and ``facilityGeoLocation/ct:EDXLGeoLocation/gml:Point/gml:pos``
  (EDXL-CT 1.0, GML 3.2), ``serviceList/serviceListItem/serviceName`` and
  ``serviceStatus/colourStatus/colourCodeDefault/ct:Value``;
- inferred: the bed, EMS traffic and last-update elements, named as HAVE 1.0 named them in the
  lowerCamel form 2.0 uses, with 1.0's value lists (EMS traffic Normal/Advisory/Closed, capacity
  VacantAvailable/NotAvailable, bed types AdultICU...).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from facilities.models import Diversion, Facility
from facilities.status import StatusView, status_view

HAVE_NS = "urn:oasis:names:tc:emergency:edxl:have:2.0"
CT_NS = "urn:oasis:names:tc:emergency:edxl:ct:1.0"
GML_NS = "http://www.opengis.net/gml/3.2"
HAVE_XML = "application/xml"
#: the coordinate reference system of ``gml:pos`` ("lat lon", WGS 84)
SRS_NAME = "urn:ogc:def:crs:EPSG::4326"

#: diversion → emsTrafficStatus (HAVE 1.0's EMSTrafficStatus list)
EMS_TRAFFIC = {
    Diversion.NORMAL: "Normal",
    Diversion.ADVISORY: "Advisory",
    Diversion.CLOSED: "Closed",
}
#: our bed types → bedType: the standard's where one fits (``AdultICU``), a documented local
#: type where HAVE's list has none (``Obstetric``, ``NeonatalICU``)
BED_TYPE = {"obstetric": "Obstetric", "maternal_icu": "AdultICU", "nicu": "NeonatalICU"}
#: a service's availability as the colour a HAVE 2.0 status board reads
SERVICE_COLOUR = {True: "green", False: "red"}

ET.register_namespace("have", HAVE_NS)
ET.register_namespace("ct", CT_NS)
ET.register_namespace("gml", GML_NS)


def edxl_time(when: dt.datetime) -> str:
    """An EDXL date-time: to the second, in UTC written as the offset ``+00:00`` (EDXL-CT's
    date-time admits no ``Z`` and no fractions; any xsd:dateTime reader accepts it too)."""
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _el(parent: ET.Element, name: str, text: str | None = None, ns: str = HAVE_NS) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _updated(parent: ET.Element, when: dt.datetime | None) -> None:
    if when is not None:
        _el(parent, "lastUpdateTime", edxl_time(when))


def _facility_information(parent: ET.Element, facility: Facility) -> None:
    information = _el(parent, "facilityInformation")
    _el(information, "facilityID", facility.code)
    _el(information, "facilityName", facility.name)
    where = _el(_el(information, "facilityGeoLocation"), "EDXLGeoLocation", ns=CT_NS)
    point = _el(where, "Point", ns=GML_NS)
    point.set(f"{{{GML_NS}}}id", f"facility-{facility.code}")  # GML 3.2 objects carry an id
    point.set("srsName", SRS_NAME)
    _el(point, "pos", f"{facility.lat} {facility.lon}", ns=GML_NS)


def have_document(facility: Facility, *, now: dt.datetime, grace: dt.timedelta) -> bytes:
    """The facility's status as an EDXL-HAVE 2.0 ``HAVE`` document with one ``facility``
    (UTF-8 XML). A value never reported is left out rather than made up."""
    view: StatusView = status_view(facility, now=now, grace=grace)
    status = facility.status
    root = ET.Element(f"{{{HAVE_NS}}}HAVE")
    entry = _el(root, "facility")
    _facility_information(entry, facility)

    unavailable = set(view.unavailable)
    if facility.capabilities:
        services = _el(entry, "serviceList")
        reported = status.unavailable_reported_at if status is not None else None
        for name in facility.capabilities:
            item = _el(services, "serviceListItem")
            _el(item, "serviceName", name)
            colour = _el(_el(_el(item, "serviceStatus"), "colourStatus"), "colourCodeDefault")
            _el(colour, "Value", SERVICE_COLOUR[name not in unavailable], ns=CT_NS)
            _updated(item, reported or facility.updated_at)

    department = _el(entry, "emergencyDepartmentStatus")
    traffic = _el(department, "emsTraffic")
    _el(traffic, "emsTrafficStatus", EMS_TRAFFIC[view.diversion])
    if view.diversion_reason:
        _el(traffic, "emsTrafficReason", view.diversion_reason)
    # Never reported: the standing "normal" of the registry entry, as of its last change.
    _updated(traffic, (status.diversion_reported_at if status else None) or facility.updated_at)

    beds = _el(entry, "bedCapacityStatus")
    for kind, count in view.beds.items():
        capacity_block = _el(beds, "bedCapacity")
        _el(capacity_block, "bedType", BED_TYPE[kind])
        if count is None:
            continue  # never reported: no figure rather than a made-up one
        capacity = _el(capacity_block, "capacity")
        _el(capacity, "capacityStatus", "VacantAvailable" if count > 0 else "NotAvailable")
        _el(capacity, "availableCount", str(count))
        _updated(capacity_block, view.beds_reported_at)

    _updated(entry, view.reported_at or facility.updated_at)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
