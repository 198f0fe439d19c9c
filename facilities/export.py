"""The registry written out: CSV and GeoJSON (which import again unchanged) and FHIR R4."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from core.errors import ServiceError
from core.fhir import BASE, fhir_id, full_url, instant, meta, pruned
from core.vocabulary import (
    level_label,
)
from facilities.models import Diversion, Facility
from facilities.registry import FACILITY_COLUMNS, OPTIONAL_FACILITY_COLUMNS, escape_formula
from facilities.status import StatusView, status_view


def facility_record(facility: Facility) -> dict[str, Any]:
    return {
        "code": facility.code,
        "name": facility.name,
        "kind": facility.kind.value,
        "lat": facility.lat,
        "lon": facility.lon,
        "maternal_level": level_label("M", facility.maternal_level),
        "neonatal_level": level_label("N", facility.neonatal_level),
        "capabilities": ";".join(facility.capabilities),
        "phone": facility.phone,
        "name_en": facility.name_en,
        "province": facility.province,
        "city": facility.city,
        "county": facility.county,
        "township": facility.township,
        "active": "true" if facility.active else "false",
        "designated": ";".join(facility.designated or []),
        "address": facility.address,
        "department": facility.department,
        "department_en": facility.department_en,
        "entrance": facility.entrance,
        "entrance_en": facility.entrance_en,
    }


def export_csv(facilities: Iterable[Facility]) -> str:
    """The registry as CSV, every cell safe to open in a spreadsheet (a name or an address that
    starts like a formula gets a leading apostrophe: see ``registry.FORMULA_START``); it
    imports again unchanged."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=[*FACILITY_COLUMNS, *OPTIONAL_FACILITY_COLUMNS], lineterminator="\n"
    )
    writer.writeheader()
    for facility in facilities:
        writer.writerow({k: escape_formula(v) for k, v in facility_record(facility).items()})
    return out.getvalue()


def export_geojson(facilities: Iterable[Facility]) -> str:
    features = []
    for facility in facilities:
        properties = facility_record(facility)
        lat, lon = properties.pop("lat"), properties.pop("lon")
        properties["capabilities"] = list(facility.capabilities)
        properties["active"] = facility.active
        properties["designated"] = list(facility.designated or [])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": properties,
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False)


# ------------------------------------------------------------------------------------- FHIR R4
# docs/interoperability.md describes the mapping, the ids and what a server must accept.

FHIR_CAPABILITY_SYSTEM = f"{BASE}/CodeSystem/capability"
FHIR_LEVEL_SYSTEM = f"{BASE}/CodeSystem/care-level"
FHIR_KIND_SYSTEM = f"{BASE}/CodeSystem/facility-kind"
FHIR_CODE_SYSTEM = f"{BASE}/NamingSystem/facility-code"
FHIR_AVAILABILITY = f"{BASE}/StructureDefinition/availability"
FHIR_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
# HL7 v2 table 0116 (bed status), the binding FHIR gives Location.operationalStatus.
BED_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0116"
BUNDLE_TYPES = ("collection", "transaction")


def organization_url(code: str) -> str:
    """The fullUrl of a facility's Organization: what a Task's ``owner`` points at."""
    return full_url("Organization", code)


def _where_description(facility: Facility) -> dict[str, Any]:
    """``Location.description``: the receiving department and the way in ("产科急诊；急诊楼东门，
    2楼"), the English beside it as the core ``translation`` extension on the primitive. Nothing
    when both are empty: FHIR allows no empty elements."""
    zh = "；".join(part for part in (facility.department, facility.entrance) if part)
    en = "; ".join(part for part in (facility.department_en, facility.entrance_en) if part)
    if not zh and not en:
        return {}
    if not zh:
        return {"description": en}
    if not en:
        return {"description": zh}
    translation = {
        "url": FHIR_TRANSLATION,
        "extension": [
            {"url": "lang", "valueCode": "en"},
            {"url": "content", "valueString": en},
        ],
    }
    return {"description": zh, "_description": {"extension": [translation]}}


def _operational_status(view: StatusView) -> dict[str, Any] | None:
    """``Location.operationalStatus`` (v2-0116): closed to ambulances is C (Closed); beds free
    of some reported type is U (Unoccupied); every reported type at 0 is O (Occupied); nothing
    reported says nothing."""
    if view.diversion is Diversion.CLOSED:
        return {"system": BED_STATUS_SYSTEM, "code": "C", "display": "Closed"}
    known = [count for count in view.beds.values() if count is not None]
    if not known:
        return None
    if any(count > 0 for count in known):
        return {"system": BED_STATUS_SYSTEM, "code": "U", "display": "Unoccupied"}
    return {"system": BED_STATUS_SYSTEM, "code": "O", "display": "Occupied"}


def _availability(facility: Facility, view: StatusView) -> list[dict[str, Any]]:
    """The live status the core elements cannot say, as one extension (docs/interoperability.md):
    ``diversion`` (code normal/advisory/closed), ``beds-<type>`` (unsignedInt, each reported
    type), ``unavailable`` (code, repeated), ``reported`` (dateTime), ``stale`` (boolean)."""
    if facility.status is None:
        return []
    parts: list[dict[str, Any]] = [{"url": "diversion", "valueCode": view.diversion.value}]
    parts += [
        {"url": f"beds-{kind}", "valueUnsignedInt": count}
        for kind, count in view.beds.items()
        if count is not None
    ]
    parts += [{"url": "unavailable", "valueCode": name} for name in view.unavailable]
    if view.reported_at is not None:
        parts.append({"url": "reported", "valueDateTime": instant(view.reported_at)})
    parts.append({"url": "stale", "valueBoolean": view.stale})
    return [{"url": FHIR_AVAILABILITY, "extension": parts}]


def facility_resources(
    facility: Facility, *, now: dt.datetime, grace: dt.timedelta
) -> list[tuple[str, dict[str, Any]]]:
    """The facility's Organization, Location and HealthcareService as ``(fullUrl, resource)``,
    each referring to the others by fullUrl, pruned of empty elements."""
    code = facility.code
    ident = fhir_id(code)
    org_url = organization_url(code)
    loc_url = full_url("Location", code)
    view = status_view(facility, now=now, grace=grace)
    telecom = [{"system": "phone", "value": facility.phone}] if facility.phone else []
    identifier = [{"system": FHIR_CODE_SYSTEM, "value": code}]
    aliases = [facility.name_en] if facility.name_en else []
    address = {
        "state": facility.province,
        "city": facility.city,
        "district": facility.county,
        "line": [facility.township] if facility.township else None,
        "text": facility.address,
    }
    organization = {
        "resourceType": "Organization",
        "id": ident,
        "meta": meta("Organization", updated=facility.updated_at),
        "identifier": identifier,
        "active": facility.active,
        "type": [{"coding": [{"system": FHIR_KIND_SYSTEM, "code": facility.kind.value}]}],
        "name": facility.name,
        "alias": aliases,
        "telecom": telecom,
        "address": [address],
    }
    location = {
        "resourceType": "Location",
        "id": ident,
        "meta": meta("Location", updated=facility.updated_at),
        "extension": _availability(facility, view),
        "identifier": identifier,
        "status": "active" if facility.active else "inactive",
        "operationalStatus": _operational_status(view),
        "name": facility.name,
        "alias": aliases,
        "mode": "instance",
        "telecom": telecom,
        "address": address,
        **_where_description(facility),
        "position": {"longitude": facility.lon, "latitude": facility.lat},
        "managingOrganization": {"reference": org_url},
    }
    levels = [
        {
            "coding": [
                {
                    "system": FHIR_LEVEL_SYSTEM,
                    "code": level_label(prefix, level),
                    "display": display,
                }
            ]
        }
        for prefix, level, display in (
            ("M", facility.maternal_level, "maternal level"),
            ("N", facility.neonatal_level, "neonatal level"),
        )
    ]
    service = {
        "resourceType": "HealthcareService",
        "id": ident,
        "meta": meta("HealthcareService", updated=facility.updated_at),
        "identifier": identifier,
        "active": facility.active,
        "providedBy": {"reference": org_url},
        "location": [{"reference": loc_url}],
        "name": f"{facility.name} maternal and newborn care",
        "type": levels,
        "characteristic": [
            {"coding": [{"system": FHIR_CAPABILITY_SYSTEM, "code": name}]}
            for name in facility.capabilities
        ],
        "telecom": telecom,
    }
    return [
        (org_url, pruned(organization)),
        (loc_url, pruned(location)),
        (full_url("HealthcareService", code), pruned(service)),
    ]


def export_fhir(
    facilities: Iterable[Facility],
    *,
    now: dt.datetime,
    grace: dt.timedelta,
    bundle: str = "collection",
) -> str:
    """A FHIR R4 Bundle of an Organization, a Location and a HealthcareService per facility.

    ``collection``: the resources as they are, with their ids. ``transaction``: each entry a
    conditional update by the facility-code identifier (``PUT Organization?identifier=…``), the
    id left to the server, references by fullUrl (a server rewrites them to the ids it gives),
    so loading the same export twice changes nothing and a later one updates in place.
    """
    if bundle not in BUNDLE_TYPES:
        raise ServiceError(f"bundle: expected one of {', '.join(BUNDLE_TYPES)}", field="bundle")
    entries: list[dict[str, Any]] = []
    for facility in facilities:
        for url, resource in facility_resources(facility, now=now, grace=grace):
            if bundle == "transaction":
                kind = resource["resourceType"]
                resource = {k: v for k, v in resource.items() if k != "id"}
                search = quote(f"{FHIR_CODE_SYSTEM}|{facility.code}", safe=":/|")
                request = {"method": "PUT", "url": f"{kind}?identifier={search}"}
                entries.append({"fullUrl": url, "resource": resource, "request": request})
            else:
                entries.append({"fullUrl": url, "resource": resource})
    document = {
        "resourceType": "Bundle",
        "meta": meta("Bundle"),
        "type": bundle,
        "timestamp": instant(now),
        "entry": entries,
    }
    return json.dumps(pruned(document), ensure_ascii=False, indent=1)
