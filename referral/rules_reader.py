"""Reading a rules file node by node, so that every error names the file, the line and the key."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.vocabulary import CAPABILITIES, VocabularyError, parse_level

ICD10 = re.compile(r"^[A-Z][0-9]{2}(\.[0-9]{1,2})?$")
SNOMED = re.compile(r"^[1-9][0-9]{5,17}$")
# Verhoeff's check digit, which every SNOMED CT identifier ends with: a mistyped code is caught.
_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def verhoeff_ok(digits: str) -> bool:
    """Whether ``digits`` ends with its correct Verhoeff check digit."""
    check = 0
    for position, digit in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[position % 8][int(digit)]]
    return check == 0


class RulesError(ValueError):
    """A rules file that cannot be used; the message names file, line and key."""


@dataclass(frozen=True)
class Need:
    """What a facility must have: minimum levels and a set of capabilities."""

    maternal_level: int = 0
    neonatal_level: int = 0
    capabilities: frozenset[str] = frozenset()

    def merge(self, other: Need) -> Need:
        return Need(
            maternal_level=max(self.maternal_level, other.maternal_level),
            neonatal_level=max(self.neonatal_level, other.neonatal_level),
            capabilities=self.capabilities | other.capabilities,
        )


class RulesReader:
    """Walks the YAML node tree so every error can name the line and the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node, path: str, message: str) -> RulesError:
        line = node.start_mark.line + 1
        return RulesError(f"{self.source}, line {line}, key {path}: {message}")

    def mapping(
        self,
        node: Node,
        path: str,
        *,
        allowed: set[str] | None = None,
        required: set[str] | None = None,
    ) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, path, "expected a mapping")
        result: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if allowed is not None and key not in allowed:
                raise self.fail(
                    key_node,
                    f"{path}.{key}" if path else key,
                    f"unknown key; expected one of {', '.join(sorted(allowed))}",
                )
            if key in result:
                raise self.fail(key_node, f"{path}.{key}" if path else key, "repeated key")
            result[key] = value_node
        missing = (required or set()) - set(result)
        if missing:
            raise self.fail(node, path or "(top)", f"missing key(s) {', '.join(sorted(missing))}")
        return result

    def scalar(self, node: Node, path: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, path, "expected a single value")
        return yaml.safe_load(yaml.serialize(node))

    def number(
        self, node: Node, path: str, *, low: float = 0, high: float = 1e9, integer: bool = False
    ) -> float:
        value = self.scalar(node, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, path, f"expected a number, got {value!r}")
        if integer and not isinstance(value, int):
            raise self.fail(node, path, f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(node, path, f"{value} is outside {low}..{high}")
        return float(value)

    def text(self, node: Node, path: str, *, choices: tuple[str, ...] | None = None) -> str:
        value = self.scalar(node, path)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, path, "expected text")
        if choices is not None and value not in choices:
            raise self.fail(node, path, f"{value!r}: expected one of {', '.join(choices)}")
        return value

    def level(self, node: Node, path: str, prefix: str) -> int:
        try:
            return parse_level(self.scalar(node, path), prefix=prefix, field=path)
        except VocabularyError as exc:
            raise self.fail(node, path, str(exc)) from None

    def need(self, node: Node, path: str) -> Need:
        items = self.mapping(
            node, path, allowed={"maternal_level", "neonatal_level", "capabilities"}
        )
        capabilities: set[str] = set()
        if "capabilities" in items:
            seq = items["capabilities"]
            if not isinstance(seq, SequenceNode):
                raise self.fail(seq, f"{path}.capabilities", "expected a list")
            for index, item in enumerate(seq.value):
                name = self.text(item, f"{path}.capabilities[{index}]")
                if name not in CAPABILITIES:
                    raise self.fail(
                        item, f"{path}.capabilities[{index}]", f"unknown capability {name!r}"
                    )
                capabilities.add(name)
        return Need(
            maternal_level=self.level(items["maternal_level"], f"{path}.maternal_level", "M")
            if "maternal_level" in items
            else 0,
            neonatal_level=self.level(items["neonatal_level"], f"{path}.neonatal_level", "N")
            if "neonatal_level" in items
            else 0,
            capabilities=frozenset(capabilities),
        )

    def languages(self, node: Node, path: str) -> dict[str, str]:
        items = self.mapping(node, path, allowed={"zh", "en"}, required={"zh", "en"})
        return {lang: self.text(value, f"{path}.{lang}") for lang, value in items.items()}

    def checklist(self, node: Node, path: str) -> dict[str, tuple[str, ...]]:
        """Advice per language: a list of short items (a single text, as the first version of
        the file had, is one item)."""
        items = self.mapping(node, path, allowed={"zh", "en"}, required={"zh", "en"})
        out: dict[str, tuple[str, ...]] = {}
        for lang, value in items.items():
            where = f"{path}.{lang}"
            if isinstance(value, SequenceNode):
                if not value.value:
                    raise self.fail(value, where, "expected at least one item")
                out[lang] = tuple(
                    self.text(item, f"{where}[{i}]") for i, item in enumerate(value.value)
                )
            else:
                out[lang] = (self.text(value, where),)
            for i, item in enumerate(out[lang]):
                if len(item) > 160:
                    raise self.fail(
                        value, f"{where}[{i}]", "an advice item is at most 160 characters"
                    )
        if len(out["zh"]) != len(out["en"]):
            raise self.fail(node, path, "zh and en need the same number of items")
        return out

    def flag(self, node: Node, path: str) -> bool:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            raise self.fail(node, path, "expected true or false")
        return value

    def codes(self, node: Node, path: str) -> dict[str, str]:
        """A condition's standard codes: ``snomed`` (a SNOMED CT concept id, its check digit
        right) and/or ``icd10`` (a WHO ICD-10 category or subcategory, ``O72`` or ``O72.1``)."""
        items = self.mapping(node, path, allowed={"snomed", "icd10"})
        if not items:
            raise self.fail(node, path, "expected snomed and/or icd10")
        out: dict[str, str] = {}
        for system, value in items.items():
            where = f"{path}.{system}"
            code = str(self.scalar(value, where)).strip()
            if system == "icd10" and not ICD10.match(code):
                raise self.fail(value, where, f"{code!r} is not an ICD-10 code like O72.1")
            if system == "snomed" and not (SNOMED.match(code) and verhoeff_ok(code)):
                raise self.fail(value, where, f"{code!r} is not a SNOMED CT id (check digit)")
            out[system] = code
        return out

    def voice_call(self, node: Node, path: str, *, within: float) -> dt.timedelta | None:
        """An urgency's call step ``{enabled, after_minutes}``: the delay, or None when off.
        The call must come before the offer's answer timeout (``within`` minutes), or it
        could only ever ring about an offer that has already expired."""
        items = self.mapping(
            node, path, allowed={"enabled", "after_minutes"}, required={"enabled", "after_minutes"}
        )
        enabled = self.flag(items["enabled"], f"{path}.enabled")
        after = self.number(items["after_minutes"], f"{path}.after_minutes", low=0.25)
        if after >= within:
            raise self.fail(
                items["after_minutes"],
                f"{path}.after_minutes",
                f"{after:g} must be less than the answer timeout ({within:g} minutes)",
            )
        return dt.timedelta(minutes=after) if enabled else None
