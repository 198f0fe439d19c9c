"""What every FHIR document the service writes shares: the version, ids, fullUrls, pruning.

FHIR R4 (4.0.1) JSON. A server or an HIE rejects a document with an empty element (``[]``,
``{}``, ``""``), an id outside ``[A-Za-z0-9\\-\\.]{1,64}``, or a reference it cannot resolve;
the helpers here make each of those impossible by construction (docs/interoperability.md).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

FHIR_VERSION = "4.0.1"
#: The media type of every FHIR answer: the version is declared where a server reads it.
FHIR_JSON = "application/fhir+json; fhirVersion=4.0"
#: The namespace of the service's UUIDv5 fullUrls; fixed for ever (changing it would give every
#: resource a new identity on a server that loaded an earlier export).
NAMESPACE = uuid.UUID("5b0c6b0e-3f0a-5a51-9c1e-6a8d2f6e4f21")
BASE = "https://greenchannel.example/fhir"
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class FhirIdError(ValueError):
    """A string that is not the id of any code (:func:`code_from_id`)."""


def fhir_id(code: str) -> str:
    """The FHIR id of a facility code (or any code of ``[A-Za-z0-9_.-]``), reversibly.

    FHIR ids allow letters, digits, ``-`` and ``.`` but not ``_``, which facility codes may
    hold. ``.`` is the escape character: ``.`` is written ``..`` and ``_`` is written ``.u``.
    A code with neither (nearly every one) is its own id; :func:`code_from_id` undoes it.
    """
    return code.replace(".", "..").replace("_", ".u")


def code_from_id(value: str) -> str:
    """The code whose :func:`fhir_id` is ``value``; :class:`FhirIdError` when there is none."""
    if not FHIR_ID.match(value):
        raise FhirIdError(f"{value!r} is not a FHIR id")
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != ".":
            out.append(char)
            continue
        following = next(chars, "")
        if following == ".":
            out.append(".")
        elif following == "u":
            out.append("_")
        else:
            raise FhirIdError(f"{value!r}: '.' must be followed by '.' or 'u'")
    return "".join(out)


def full_url(resource_type: str, key: str) -> str:
    """A stable ``urn:uuid:`` fullUrl: UUIDv5 of the type and a key unique within it."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{resource_type}/{key}')}"


def meta(resource_type: str, *, updated: dt.datetime | None = None) -> dict[str, Any]:
    """``meta`` declaring the core R4 profile of the type (and the version through it)."""
    return {
        "profile": [f"http://hl7.org/fhir/StructureDefinition/{resource_type}|{FHIR_VERSION}"],
        "lastUpdated": instant(updated) if updated is not None else None,
    }


def instant(when: dt.datetime) -> str:
    """A FHIR ``instant``/``dateTime``: ISO 8601 with seconds and the UTC offset."""
    return when.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def prune(value: Any) -> Any:
    """``value`` without ``None``, ``""``, ``[]`` or ``{}`` anywhere (FHIR JSON forbids empty
    elements); a container left empty by the pruning goes too. ``False`` and ``0`` stay."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if not _empty(v)}
    if isinstance(value, list):
        items = [prune(v) for v in value]
        return [v for v in items if not _empty(v)]
    if isinstance(value, str):
        return value.strip() and value
    return value


def pruned(resource: dict[str, Any]) -> dict[str, Any]:
    """:func:`prune` of a resource (a mapping stays a mapping)."""
    out: dict[str, Any] = prune(resource)
    return out


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)
