"""The registry written out: CSV and GeoJSON (which import again unchanged) and FHIR R4."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from core.vocabulary import (
    level_label,
)
from facilities.models import Facility
from facilities.registry import FACILITY_COLUMNS, OPTIONAL_FACILITY_COLUMNS, escape_formula


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


FHIR_CAPABILITY_SYSTEM = "https://greenchannel.example/fhir/CodeSystem/capability"
FHIR_LEVEL_SYSTEM = "https://greenchannel.example/fhir/CodeSystem/care-level"
FHIR_KIND_SYSTEM = "https://greenchannel.example/fhir/CodeSystem/facility-kind"
FHIR_CODE_SYSTEM = "https://greenchannel.example/fhir/NamingSystem/facility-code"


FHIR_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


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


def export_fhir(facilities: Iterable[Facility]) -> str:
    """A FHIR R4 ``collection`` Bundle: an Organization, a Location and a HealthcareService each."""
    entries: list[dict[str, Any]] = []
    for facility in facilities:
        org_id = f"org-{facility.code}"
        loc_id = f"loc-{facility.code}"
        telecom = [{"system": "phone", "value": facility.phone}] if facility.phone else []
        identifier = [{"system": FHIR_CODE_SYSTEM, "value": facility.code}]
        names = {"name": facility.name}
        aliases = [facility.name_en] if facility.name_en else []
        address = {
            "state": facility.province or None,
            "city": facility.city or None,
            "district": facility.county or None,
            "line": [facility.township] if facility.township else None,
            "text": facility.address or None,
        }
        address = {k: v for k, v in address.items() if v}
        description = _where_description(facility)
        entries.append(
            {
                "fullUrl": f"urn:uuid:{org_id}",
                "resource": {
                    "resourceType": "Organization",
                    "id": org_id,
                    "identifier": identifier,
                    "active": facility.active,
                    "type": [
                        {"coding": [{"system": FHIR_KIND_SYSTEM, "code": facility.kind.value}]}
                    ],
                    **names,
                    **({"alias": aliases} if aliases else {}),
                    **({"telecom": telecom} if telecom else {}),
                    **({"address": [address]} if address else {}),
                },
            }
        )
        entries.append(
            {
                "fullUrl": f"urn:uuid:{loc_id}",
                "resource": {
                    "resourceType": "Location",
                    "id": loc_id,
                    "identifier": identifier,
                    "status": "active" if facility.active else "inactive",
                    **names,
                    **({"alias": aliases} if aliases else {}),
                    "mode": "instance",
                    **({"telecom": telecom} if telecom else {}),
                    **({"address": address} if address else {}),
                    **description,
                    "position": {"longitude": facility.lon, "latitude": facility.lat},
                    "managingOrganization": {"reference": f"Organization/{org_id}"},
                },
            }
        )
        levels = [
            {
                "coding": [
                    {
                        "system": FHIR_LEVEL_SYSTEM,
                        "code": level_label("M", facility.maternal_level),
                        "display": "maternal level",
                    }
                ]
            },
            {
                "coding": [
                    {
                        "system": FHIR_LEVEL_SYSTEM,
                        "code": level_label("N", facility.neonatal_level),
                        "display": "neonatal level",
                    }
                ]
            },
        ]
        entries.append(
            {
                "fullUrl": f"urn:uuid:hs-{facility.code}",
                "resource": {
                    "resourceType": "HealthcareService",
                    "id": f"hs-{facility.code}",
                    "identifier": identifier,
                    "active": facility.active,
                    "providedBy": {"reference": f"Organization/{org_id}"},
                    "location": [{"reference": f"Location/{loc_id}"}],
                    "name": f"{facility.name} maternal and newborn care",
                    "type": levels,
                    "characteristic": [
                        {"coding": [{"system": FHIR_CAPABILITY_SYSTEM, "code": name}]}
                        for name in facility.capabilities
                    ],
                    **({"telecom": telecom} if telecom else {}),
                },
            }
        )
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return json.dumps(bundle, ensure_ascii=False, indent=1)
