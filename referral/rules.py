"""Region rules: the triage table, colours, bands, timers, road speeds and grace periods.

The rules are data (``referral/data/rules.yaml`` by default, a region's own file through
``GREENCHANNEL_RULES``). They are validated in full at start: any mistake is reported with the
file, line and key, and the service refuses to start rather than run on half a rulebook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# Need and RulesError live with the reader (it builds them); they are read from here too.
from referral.rules_reader import Need as Need
from referral.rules_reader import RulesError as RulesError
from referral.rules_reader import RulesReader

DEFAULT_RULES_PATH = Path(__file__).parent / "data" / "rules.yaml"
COLOURS = ("green", "yellow", "orange", "red", "purple")
URGENCIES = ("critical", "urgent", "planned")
TIMINGS = ("antepartum", "postpartum", "any")
WINDOW_STARTS = ("decision", "birth", "onset")
SAFETY_NET_RULES = ("assign", "offer", "off")


@dataclass(frozen=True)
class Condition:
    """One row of the condition table (docs/domain.md, "Triage").

    ``timing`` says when the condition happens for a mother: ``antepartum`` (she has not
    delivered: the baby inside counts), ``postpartum`` (the baby is born: nothing is added for
    it) or ``any`` (the case's ``delivered`` decides). ``advice`` is a short checklist per
    language; ``window_advice`` is what to do when the window cannot be met.
    """

    code: str
    name: dict[str, str]
    patient: str
    need: Need
    urgency: str
    window_minutes: int | None
    window_from: str
    neonatal_by_gestation: bool
    in_shock: Need | None
    ventilated: Need | None
    stabilise: Need | None
    advice: dict[str, tuple[str, ...]]
    timing: str = "any"
    do_not_move: bool = False
    window_advice: dict[str, tuple[str, ...]] = field(default_factory=dict)
    outreach_advice: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: standard codes of the condition: ``snomed`` (SNOMED CT) and/or ``icd10`` (WHO ICD-10),
    #: what the FHIR ServiceRequest's reasonCode carries (referral/fhir.py)
    codes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClinicalRules:
    """The rules that apply across the condition table (docs/domain.md, "Across the table").

    Every value is region-editable; a rules file without the block gets these defaults.
    """

    #: an undelivered mother below this gestation adds her baby's neonatal band
    baby_inside_below_weeks: float = 37.0
    #: ... from this gestation on (before it the fetus is not viable)
    baby_inside_from_weeks: float = 24.0
    #: the neonatal level when a condition needs the baby's size and it is not known
    unknown_baby_level: int = 2
    #: heart rate / systolic pressure at or above this counts as shock
    shock_index: float = 1.0
    #: an estimated blood loss at or above this counts as shock
    shock_blood_loss_ml: float = 1500.0
    #: how many partial matches an answer lists when nobody meets every requirement
    partial_matches: int = 3
    #: the gestation from which a perimortem caesarean is advised for a collapsed mother
    perimortem_from_weeks: float = 20.0
    #: where a patient can be stabilised when her condition names no place of its own
    stabilise_default: dict[str, Need] = field(
        default_factory=lambda: {
            "mother": Need(maternal_level=2),
            "newborn": Need(neonatal_level=2),
        }
    )


@dataclass(frozen=True)
class UrgencyPolicy:
    name: str
    answer_timeout: dt.timedelta
    escalate_after: dt.timedelta
    parallel_offers: int
    target: dt.timedelta
    pre_alert: str
    #: phone the on-call contact after this long without an answer (None: no call step)
    call_after: dt.timedelta | None = None


@dataclass(frozen=True)
class NeonatalBand:
    below_weeks: float | None
    below_grams: float | None
    level: int


@dataclass(frozen=True)
class Rules:
    source: str
    stale_grace: dt.timedelta
    second_grace: dt.timedelta
    tolerance_minutes: float
    top_k: int
    colours: dict[str, Need]
    neonatal_bands: tuple[NeonatalBand, ...]
    urgency: dict[str, UrgencyPolicy]
    working_hours: tuple[dt.time, dt.time, int]
    road_speeds_kmh: dict[str, float]
    fallback_detour_factor: float
    fallback_speed_kmh: float
    max_snap_km: float
    conditions: dict[str, Condition] = field(default_factory=dict)
    clinical: ClinicalRules = field(default_factory=ClinicalRules)
    #: per urgency class: ``assign``, ``offer`` or ``off`` (docs/domain.md, "The safety net")
    safety_net: dict[str, str] = field(
        default_factory=lambda: {"critical": "assign", "urgent": "offer", "planned": "off"}
    )
    #: the treatments a clinic may say it has given, with their names
    treatments: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the checklist for the road once a destination has accepted, per patient kind
    journey: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def zone(self) -> dt.timezone:
        """The region's clock (the working hours' UTC offset): every clock time a person reads,
        in a text or on a page, is on it."""
        return dt.timezone(dt.timedelta(hours=self.working_hours[2]))

    def clock_time(self, when: dt.datetime) -> str:
        """``HH:MM`` on the region's clock."""
        return when.astimezone(self.zone).strftime("%H:%M")


_CONDITION_KEYS = {
    "name",
    "codes",
    "patient",
    "maternal_level",
    "neonatal_level",
    "capabilities",
    "urgency",
    "window_minutes",
    "window_from",
    "neonatal_by_gestation",
    "in_shock",
    "ventilated",
    "stabilise",
    "advice",
    "timing",
    "do_not_move",
    "window_advice",
    "outreach_advice",
}


def parse_rules(text: str, *, source: str) -> Rules:
    reader = RulesReader(source)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise RulesError(f"{source}{line}: not valid YAML: {exc}") from None
    if root is None:
        raise RulesError(f"{source}: the file is empty")
    top = reader.mapping(
        root,
        "",
        allowed={
            "version",
            "staleness",
            "ranking",
            "colours",
            "neonatal_bands",
            "urgency",
            "working_hours",
            "road_speeds_kmh",
            "fallback",
            "conditions",
            "clinical",
            "safety_net",
            "treatments",
            "journey",
        },
        required={
            "version",
            "staleness",
            "ranking",
            "colours",
            "neonatal_bands",
            "urgency",
            "road_speeds_kmh",
            "fallback",
            "conditions",
        },
    )
    if reader.number(top["version"], "version", integer=True) != 1:
        raise reader.fail(top["version"], "version", "only version 1 is understood")

    staleness = reader.mapping(
        top["staleness"],
        "staleness",
        allowed={"grace_hours", "second_grace_hours"},
        required={"grace_hours", "second_grace_hours"},
    )
    ranking = reader.mapping(
        top["ranking"],
        "ranking",
        allowed={"tolerance_minutes", "top_k"},
        required={"tolerance_minutes", "top_k"},
    )
    colours_node = reader.mapping(
        top["colours"], "colours", allowed=set(COLOURS), required=set(COLOURS)
    )
    colours = {name: reader.need(node, f"colours.{name}") for name, node in colours_node.items()}

    bands_node = top["neonatal_bands"]
    if not isinstance(bands_node, SequenceNode) or not bands_node.value:
        raise reader.fail(bands_node, "neonatal_bands", "expected a non-empty list")
    bands = []
    for index, band_node in enumerate(bands_node.value):
        path = f"neonatal_bands[{index}]"
        band = reader.mapping(
            band_node, path, allowed={"below_weeks", "below_grams", "level"}, required={"level"}
        )
        bands.append(
            NeonatalBand(
                below_weeks=reader.number(band["below_weeks"], f"{path}.below_weeks", high=45)
                if "below_weeks" in band
                else None,
                below_grams=reader.number(band["below_grams"], f"{path}.below_grams", high=7000)
                if "below_grams" in band
                else None,
                level=reader.level(band["level"], f"{path}.level", "N"),
            )
        )
    if bands[-1].below_weeks is not None or bands[-1].below_grams is not None:
        raise reader.fail(
            bands_node.value[-1],
            f"neonatal_bands[{len(bands) - 1}]",
            "the last band must have no limits (it catches every other baby)",
        )

    urgency_node = reader.mapping(
        top["urgency"], "urgency", allowed=set(URGENCIES), required=set(URGENCIES)
    )
    urgency = {}
    for name, node in urgency_node.items():
        path = f"urgency.{name}"
        keys = {
            "answer_timeout_minutes",
            "escalate_after_minutes",
            "parallel_offers",
            "target_minutes",
            "pre_alert",
        }
        items = reader.mapping(node, path, allowed=keys | {"voice_call"}, required=keys)
        timeout = reader.number(
            items["answer_timeout_minutes"],
            f"{path}.answer_timeout_minutes",
            low=0.5,
            high=7 * 24 * 60,
        )
        escalate = reader.number(
            items["escalate_after_minutes"],
            f"{path}.escalate_after_minutes",
            low=0.25,
            high=timeout,
        )
        urgency[name] = UrgencyPolicy(
            name=name,
            answer_timeout=dt.timedelta(minutes=timeout),
            escalate_after=dt.timedelta(minutes=escalate),
            parallel_offers=int(
                reader.number(
                    items["parallel_offers"], f"{path}.parallel_offers", low=1, high=5, integer=True
                )
            ),
            target=dt.timedelta(
                minutes=reader.number(items["target_minutes"], f"{path}.target_minutes", low=1)
            ),
            pre_alert=reader.text(
                items["pre_alert"], f"{path}.pre_alert", choices=("immediately", "working_hours")
            ),
            call_after=reader.voice_call(items["voice_call"], f"{path}.voice_call", within=timeout)
            if "voice_call" in items
            else None,
        )

    working = (dt.time(8), dt.time(18), 8)
    if "working_hours" in top:
        items = reader.mapping(
            top["working_hours"],
            "working_hours",
            allowed={"start", "end", "utc_offset_hours"},
            required={"start", "end", "utc_offset_hours"},
        )
        try:
            start = dt.time.fromisoformat(reader.text(items["start"], "working_hours.start"))
            end = dt.time.fromisoformat(reader.text(items["end"], "working_hours.end"))
        except ValueError:
            raise reader.fail(top["working_hours"], "working_hours", "times are HH:MM") from None
        offset = int(
            reader.number(
                items["utc_offset_hours"],
                "working_hours.utc_offset_hours",
                low=-12,
                high=14,
                integer=True,
            )
        )
        working = (start, end, offset)

    speeds_node = reader.mapping(top["road_speeds_kmh"], "road_speeds_kmh")
    speeds = {
        name: reader.number(node, f"road_speeds_kmh.{name}", low=1, high=200)
        for name, node in speeds_node.items()
    }
    fallback = reader.mapping(
        top["fallback"],
        "fallback",
        allowed={"detour_factor", "speed_kmh", "max_snap_km"},
        required={"detour_factor", "speed_kmh", "max_snap_km"},
    )

    conditions_node = reader.mapping(top["conditions"], "conditions")
    conditions = {}
    for code, node in conditions_node.items():
        path = f"conditions.{code}"
        items = reader.mapping(
            node, path, allowed=_CONDITION_KEYS, required={"name", "patient", "urgency", "advice"}
        )
        need_items = {
            k: items[k] for k in ("maternal_level", "neonatal_level", "capabilities") if k in items
        }
        need = Need()
        if need_items:
            need = reader.need(
                MappingNode(
                    "tag:yaml.org,2002:map",
                    [(ScalarNode("tag:yaml.org,2002:str", k), v) for k, v in need_items.items()],
                    start_mark=node.start_mark,
                    end_mark=node.end_mark,
                ),
                path,
            )
        by_gestation = (
            reader.flag(items["neonatal_by_gestation"], f"{path}.neonatal_by_gestation")
            if "neonatal_by_gestation" in items
            else False
        )
        patient = reader.text(items["patient"], f"{path}.patient", choices=("mother", "newborn"))
        timing = (
            reader.text(items["timing"], f"{path}.timing", choices=TIMINGS)
            if "timing" in items
            else ("antepartum" if by_gestation and patient == "mother" else "any")
        )
        if patient == "newborn" and timing != "any":
            raise reader.fail(
                items["timing"], f"{path}.timing", "only a mother's condition has a timing"
            )
        conditions[code] = Condition(
            code=code,
            name=reader.languages(items["name"], f"{path}.name"),
            patient=patient,
            need=need,
            urgency=reader.text(items["urgency"], f"{path}.urgency", choices=URGENCIES),
            window_minutes=int(
                reader.number(
                    items["window_minutes"], f"{path}.window_minutes", low=1, integer=True
                )
            )
            if "window_minutes" in items
            else None,
            window_from=reader.text(
                items["window_from"], f"{path}.window_from", choices=WINDOW_STARTS
            )
            if "window_from" in items
            else "decision",
            neonatal_by_gestation=by_gestation,
            in_shock=reader.need(items["in_shock"], f"{path}.in_shock")
            if "in_shock" in items
            else None,
            ventilated=reader.need(items["ventilated"], f"{path}.ventilated")
            if "ventilated" in items
            else None,
            stabilise=reader.need(items["stabilise"], f"{path}.stabilise")
            if "stabilise" in items
            else None,
            advice=reader.checklist(items["advice"], f"{path}.advice"),
            timing=timing,
            do_not_move=reader.flag(items["do_not_move"], f"{path}.do_not_move")
            if "do_not_move" in items
            else False,
            window_advice=reader.checklist(items["window_advice"], f"{path}.window_advice")
            if "window_advice" in items
            else {},
            outreach_advice=reader.checklist(items["outreach_advice"], f"{path}.outreach_advice")
            if "outreach_advice" in items
            else {},
            codes=reader.codes(items["codes"], f"{path}.codes") if "codes" in items else {},
        )
    if not conditions:
        raise reader.fail(top["conditions"], "conditions", "at least one condition is needed")

    return Rules(
        source=source,
        stale_grace=dt.timedelta(
            hours=reader.number(staleness["grace_hours"], "staleness.grace_hours", low=0.1)
        ),
        second_grace=dt.timedelta(
            hours=reader.number(
                staleness["second_grace_hours"], "staleness.second_grace_hours", low=0.1
            )
        ),
        tolerance_minutes=reader.number(
            ranking["tolerance_minutes"], "ranking.tolerance_minutes", high=240
        ),
        top_k=int(reader.number(ranking["top_k"], "ranking.top_k", low=1, high=100, integer=True)),
        colours=colours,
        neonatal_bands=tuple(bands),
        urgency=urgency,
        working_hours=working,
        road_speeds_kmh=speeds,
        fallback_detour_factor=reader.number(
            fallback["detour_factor"], "fallback.detour_factor", low=1, high=5
        ),
        fallback_speed_kmh=reader.number(
            fallback["speed_kmh"], "fallback.speed_kmh", low=1, high=200
        ),
        max_snap_km=reader.number(
            fallback["max_snap_km"], "fallback.max_snap_km", low=0.01, high=100
        ),
        conditions=conditions,
        clinical=_clinical(reader, top.get("clinical")),
        safety_net=_safety_net(reader, top.get("safety_net")),
        treatments=_treatments(reader, top.get("treatments")),
        journey=_journey(reader, top.get("journey")),
    )


def _clinical(reader: RulesReader, node: Node | None) -> ClinicalRules:
    """The cross-table block; every key is optional (a first-version file has none)."""
    default = ClinicalRules()
    if node is None:
        return default
    keys = {
        "baby_inside_below_weeks",
        "baby_inside_from_weeks",
        "unknown_baby_level",
        "shock_index",
        "shock_blood_loss_ml",
        "partial_matches",
        "perimortem_from_weeks",
        "stabilise_default",
    }
    items = reader.mapping(node, "clinical", allowed=keys)

    def number(key: str, low: float, high: float, *, integer: bool = False) -> float:
        if key not in items:
            return float(getattr(default, key))
        return reader.number(items[key], f"clinical.{key}", low=low, high=high, integer=integer)

    stabilise = dict(default.stabilise_default)
    if "stabilise_default" in items:
        given = reader.mapping(
            items["stabilise_default"], "clinical.stabilise_default", allowed={"mother", "newborn"}
        )
        for patient, need_node in given.items():
            stabilise[patient] = reader.need(need_node, f"clinical.stabilise_default.{patient}")
    unknown = default.unknown_baby_level
    if "unknown_baby_level" in items:
        unknown = reader.level(items["unknown_baby_level"], "clinical.unknown_baby_level", "N")
    return ClinicalRules(
        baby_inside_below_weeks=number("baby_inside_below_weeks", 20, 45),
        baby_inside_from_weeks=number("baby_inside_from_weeks", 0, 45),
        unknown_baby_level=unknown,
        shock_index=number("shock_index", 0.3, 3),
        shock_blood_loss_ml=number("shock_blood_loss_ml", 100, 10_000),
        partial_matches=int(number("partial_matches", 1, 10, integer=True)),
        perimortem_from_weeks=number("perimortem_from_weeks", 0, 45),
        stabilise_default=stabilise,
    )


def _safety_net(reader: RulesReader, node: Node | None) -> dict[str, str]:
    rule = {"critical": "assign", "urgent": "offer", "planned": "off"}
    if node is None:
        return rule
    items = reader.mapping(node, "safety_net", allowed=set(URGENCIES))
    for name, value in items.items():
        rule[name] = reader.text(value, f"safety_net.{name}", choices=SAFETY_NET_RULES)
    return rule


def _treatments(reader: RulesReader, node: Node | None) -> dict[str, dict[str, str]]:
    if node is None:
        return {}
    items = reader.mapping(node, "treatments")
    out = {}
    for code, value in items.items():
        if not code.replace("_", "").isalnum() or len(code) > 32:
            raise reader.fail(value, f"treatments.{code}", "a code is letters, digits and _")
        out[code] = reader.languages(value, f"treatments.{code}")
    return out


def _journey(reader: RulesReader, node: Node | None) -> dict[str, dict[str, tuple[str, ...]]]:
    """The checklist for the road, per patient (mother, newborn); optional."""
    if node is None:
        return {}
    items = reader.mapping(node, "journey", allowed={"mother", "newborn"})
    return {kind: reader.checklist(value, f"journey.{kind}") for kind, value in items.items()}


def load_rules(path: str | Path | None = None) -> Rules:
    """Load and validate a rules file (the shipped defaults when ``path`` is empty)."""
    target = Path(path) if path else DEFAULT_RULES_PATH
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{target}: cannot read the rules file ({exc.strerror})") from None
    return parse_rules(text, source=str(target))
