"""Independent checks of the FHIR documents: the ``fhir.resources`` R4B models (the R4 line the
installed version ships), FHIR JSON's ban on empty elements, the id rule and references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def validate(resource: dict[str, Any]) -> None:
    """Raise (pydantic's ValidationError) when the model of its type refuses ``resource``."""
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def empty_elements(value: Any, path: str = "$") -> Iterator[str]:
    """Every path in a JSON value that holds ``null``, ``""``, ``[]`` or ``{}``."""
    if value is None or (isinstance(value, str | list | dict) and not value):
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from empty_elements(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from empty_elements(item, f"{path}[{index}]")


def references(value: Any) -> Iterator[str]:
    """Every ``reference`` string in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)
