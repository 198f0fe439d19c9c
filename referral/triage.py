"""Triage: from a case to what the receiving facility must have, how urgent it is, and why.

Everything clinical comes from the region rules (docs/domain.md, "Triage"); this module only
combines them. The highest requirement of every condition and colour wins, purple adds
isolation, and the rules that apply across the table are applied to every case:

- the baby inside: an undelivered mother below the region's gestation adds her baby's band;
- a newborn's gestation and weight always count, whatever its condition;
- shock is read from the vital signs as well as from the clinician's tick;
- a window runs from its own start (birth, onset or the decision);
- some patients are not moved: the answer becomes an outreach request.

Every reason is written in both languages (:class:`Note`), so each answer can speak the
user's language.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from core.errors import Invalid
from core.vocabulary import level_label
from referral.limits import MAX_CONDITIONS
from referral.rules import COLOURS, URGENCIES, Condition, Need, Rules

URGENCY_ORDER = {name: index for index, name in enumerate(URGENCIES)}  # critical first
COLOUR_ORDER = {"green": 0, "yellow": 1, "orange": 2, "red": 3}

#: The one definition of what a case may say (the API schema, the form and SMS use these).
GESTATION_WEEKS = (20.0, 44.0)
NEWBORN_GESTATION_WEEKS = (22.0, 44.0)
BIRTH_WEIGHT_G = (300.0, 6500.0)
FETAL_WEIGHT_G = (200.0, 6500.0)
BLOOD_LOSS_ML = (0.0, 10_000.0)
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "sbp": (20.0, 300.0),
    "dbp": (10.0, 200.0),
    "hr": (20.0, 250.0),
    "spo2": (30.0, 100.0),
    "rr": (0.0, 120.0),
    "temp_c": (25.0, 45.0),
}
AVPU = ("A", "V", "P", "U")
MAX_TREATMENTS = 20
NOTE_LENGTH = 500
#: how far in the future a time of birth or onset may be (clocks of phones drift)
CLOCK_SLACK = dt.timedelta(minutes=10)


class TriageError(Invalid):
    """A case that cannot be triaged; ``field`` names the offending field, ``kind`` what is
    wrong with it (a form words it in the user's language from ``kind`` and ``params``)."""

    def __init__(self, message: str, *, field: str, kind: str = "invalid", **params: Any) -> None:
        super().__init__(message, field=field)
        self.kind = kind
        self.params = params


@dataclass(frozen=True)
class Vitals:
    sbp: float | None = None
    dbp: float | None = None
    hr: float | None = None
    spo2: float | None = None
    rr: float | None = None
    temp_c: float | None = None
    avpu: str | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Case:
    conditions: tuple[str, ...] = ()
    risk_colour: str | None = None
    purple: bool = False
    gestation_weeks: float | None = None
    birth_weight_g: float | None = None
    in_shock: bool = False
    ventilated: bool = False
    #: None: the rules decide (a collapsed mother is not moved); True/False: the clinician says
    do_not_move: bool | None = None
    #: None: unknown, read as "not yet delivered" for a condition that can happen before birth
    delivered: bool | None = None
    estimated_fetal_weight_g: float | None = None
    onset_at: dt.datetime | None = None
    born_at: dt.datetime | None = None
    placenta_delivered: bool | None = None
    vitals: Vitals = field(default_factory=Vitals)
    blood_loss_ml: float | None = None
    treatments: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Note:
    """One reason or warning, in both languages."""

    code: str
    en: str
    zh: str

    def text(self, language: str) -> str:
        return self.zh if language == "zh" else self.en


@dataclass(frozen=True)
class Window:
    """A condition's time window, measured from its own start.

    ``start`` is what the window runs from (``birth``, ``onset``, ``decision``);
    ``started_at`` is None when the case did not give that time, in which case the window is
    measured from the decision and ``start`` says ``decision``.
    """

    condition: str
    minutes: int
    start: str
    started_at: dt.datetime
    closes_at: dt.datetime
    advice: dict[str, tuple[str, ...]]

    def minutes_left(self, now: dt.datetime) -> float:
        return (self.closes_at - now).total_seconds() / 60.0

    def closed(self, now: dt.datetime) -> bool:
        return self.closes_at <= now


@dataclass(frozen=True)
class Triage:
    need: Need
    urgency: str
    patient: str
    notes: list[Note]
    window: Window | None
    stabilise: Need
    do_not_move: bool
    in_shock: bool
    before_birth: bool
    warnings: list[Note] = field(default_factory=list)
    advice: dict[str, list[str]] = field(default_factory=dict)
    outreach_advice: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        return [note.en for note in self.notes]

    def reasons_in(self, language: str) -> list[str]:
        return [note.text(language) for note in self.notes]

    @property
    def window_minutes(self) -> int | None:
        return self.window.minutes if self.window else None

    def requirements(self) -> dict[str, Any]:
        return need_as_dict(self.need)


def need_as_dict(need: Need) -> dict[str, Any]:
    return {
        "maternal_level": level_label("M", need.maternal_level),
        "neonatal_level": level_label("N", need.neonatal_level),
        "capabilities": sorted(need.capabilities),
    }


def describe(need: Need) -> str:
    parts = []
    if need.maternal_level:
        parts.append(level_label("M", need.maternal_level))
    if need.neonatal_level:
        parts.append(level_label("N", need.neonatal_level))
    parts.extend(sorted(need.capabilities))
    return ", ".join(parts) or "no particular level"


def neonatal_level_for(rules: Rules, *, weeks: float | None, grams: float | None) -> int:
    for band in rules.neonatal_bands:
        by_weeks = band.below_weeks is not None and weeks is not None and weeks < band.below_weeks
        by_grams = band.below_grams is not None and grams is not None and grams < band.below_grams
        if by_weeks or by_grams or (band.below_weeks is None and band.below_grams is None):
            return band.level
    return 1  # unreachable: the rules guarantee a last band without limits


def _in_range(
    value: float | None, bounds: tuple[float, float], name: str, unit: str
) -> Iterator[TriageError]:
    if value is None:
        return
    low, high = bounds
    if value != value or not low <= value <= high:  # NaN fails too
        yield TriageError(
            f"{name}: {value:g} is outside {low:g}–{high:g} {unit}",
            field=name,
            kind="range",
            low=low,
            high=high,
            unit=unit,
        )


def _before_birth(condition: Condition, case: Case) -> bool:
    """Whether the mother is still carrying her baby for this condition."""
    if condition.patient != "mother":
        return False
    if condition.timing == "antepartum":
        return True
    if condition.timing == "postpartum":
        return False
    return case.delivered is not True


def validate_case(rules: Rules, case: Case, *, now: dt.datetime | None = None) -> None:
    """Refuse a case that cannot be triaged, naming the first field at fault."""
    for problem in case_problems(rules, case, now=now):
        raise problem


def case_problems(
    rules: Rules, case: Case, *, now: dt.datetime | None = None
) -> Iterator[TriageError]:
    """Every problem of a case, field by field, in form order (a form shows them all at once;
    the API and SMS refuse on the first). Problems that depend on a field already at fault are
    not repeated."""
    if not case.conditions and case.risk_colour is None and not case.purple:
        yield TriageError(
            "conditions: name at least one condition or a risk colour",
            field="conditions",
            kind="required",
        )
    if len(case.conditions) > MAX_CONDITIONS:
        yield TriageError(
            f"conditions: at most {MAX_CONDITIONS} conditions per case",
            field="conditions",
            kind="too_many",
            high=MAX_CONDITIONS,
        )
    if len(set(case.conditions)) != len(case.conditions):
        yield TriageError(
            "conditions: a condition is named twice", field="conditions", kind="twice"
        )
    for code in case.conditions:
        if code not in rules.conditions:
            known = ", ".join(sorted(rules.conditions))
            yield TriageError(
                f"conditions: unknown condition {code[:40]!r}; known: {known}",
                field="conditions",
                kind="unknown",
            )
    if case.risk_colour is not None and case.risk_colour not in COLOURS:
        yield TriageError(
            f"risk_colour: expected one of {', '.join(COLOURS)}, got {case.risk_colour[:20]!r}",
            field="risk_colour",
            kind="unknown",
        )
    conditions = [rules.conditions[code] for code in case.conditions if code in rules.conditions]
    patients = {c.patient for c in conditions}
    if len(patients) > 1:
        yield TriageError(
            "conditions: a referral is for the mother or for the newborn, not both "
            "(refer the baby separately after birth)",
            field="conditions",
            kind="mother_and_newborn",
        )
    newborn = patients == {"newborn"}
    if newborn and case.risk_colour is not None:
        yield TriageError(
            "risk_colour: the five-colour risk grades the mother, not a newborn",
            field="risk_colour",
            kind="newborn_colour",
        )
    weeks = NEWBORN_GESTATION_WEEKS if newborn else GESTATION_WEEKS
    yield from _in_range(case.gestation_weeks, weeks, "gestation_weeks", "weeks")
    yield from _in_range(case.birth_weight_g, BIRTH_WEIGHT_G, "birth_weight_g", "g")
    yield from _in_range(
        case.estimated_fetal_weight_g, FETAL_WEIGHT_G, "estimated_fetal_weight_g", "g"
    )
    yield from _in_range(case.blood_loss_ml, BLOOD_LOSS_ML, "blood_loss_ml", "ml")
    for name, bounds in VITAL_RANGES.items():
        yield from _in_range(getattr(case.vitals, name), bounds, f"vitals.{name}", "")
    if case.vitals.avpu is not None and case.vitals.avpu not in AVPU:
        yield TriageError(
            "vitals.avpu: expected one of A, V, P, U", field="vitals.avpu", kind="unknown"
        )
    if len(case.treatments) > MAX_TREATMENTS or len(set(case.treatments)) != len(case.treatments):
        yield TriageError(
            f"treatments: at most {MAX_TREATMENTS}, each named once",
            field="treatments",
            kind="too_many",
            high=MAX_TREATMENTS,
        )
    for code in case.treatments:
        if code not in rules.treatments:
            known = ", ".join(sorted(rules.treatments))
            yield TriageError(
                f"treatments: unknown treatment {code[:40]!r}; known: {known}",
                field="treatments",
                kind="unknown",
            )
    if len(case.note) > NOTE_LENGTH:
        yield TriageError(
            f"note: at most {NOTE_LENGTH} characters",
            field="note",
            kind="too_long",
            high=NOTE_LENGTH,
        )
    for name in ("born_at", "onset_at"):
        when = getattr(case, name)
        if when is None:
            continue
        if when.tzinfo is None:
            yield TriageError(f"{name}: give the time with its time zone", field=name)
            continue
        if now is not None and when > now + CLOCK_SLACK:
            yield TriageError(f"{name}: the time is in the future", field=name, kind="future")
        if now is not None and when < now - dt.timedelta(days=60):
            yield TriageError(f"{name}: more than 60 days ago", field=name, kind="too_old")
    if newborn:
        if case.delivered is False:
            yield TriageError(
                "delivered: a newborn case is after birth", field="delivered", kind="timing"
            )
        return
    for condition in conditions:
        if condition.timing == "antepartum" and case.delivered is True:
            yield TriageError(
                f"delivered: {condition.code} ({condition.name['en']}) happens before birth, "
                "but the case says the mother has delivered",
                field="delivered",
                kind="timing",
            )
        if condition.timing == "postpartum" and case.delivered is False:
            yield TriageError(
                f"delivered: {condition.code} ({condition.name['en']}) happens after birth, "
                "but the case says the mother has not delivered",
                field="delivered",
                kind="timing",
            )


def shock_from(rules: Rules, case: Case) -> Note | None:
    """Why the case counts as shock, or None (the tick, the shock index, the blood loss)."""
    clinical = rules.clinical
    if case.in_shock:
        return Note("shock_ticked", "in shock (the clinician says)", "休克（临床医生判断）")
    hr, sbp = case.vitals.hr, case.vitals.sbp
    if hr is not None and sbp:
        index = hr / sbp
        if index >= clinical.shock_index:
            return Note(
                "shock_index",
                f"shock index {index:.1f} (HR {hr:g} / SBP {sbp:g}) ≥ {clinical.shock_index:g}",
                f"休克指数{index:.1f}（心率{hr:g}/收缩压{sbp:g}）≥{clinical.shock_index:g}",
            )
    if case.blood_loss_ml is not None and case.blood_loss_ml >= clinical.shock_blood_loss_ml:
        return Note(
            "shock_blood_loss",
            f"blood loss {case.blood_loss_ml:g} ml ≥ {clinical.shock_blood_loss_ml:g} ml",
            f"出血量{case.blood_loss_ml:g} ml≥{clinical.shock_blood_loss_ml:g} ml",
        )
    return None


def _baby_text(weeks: float | None, grams: float | None, *, zh: bool) -> str:
    parts = []
    if weeks is not None:
        parts.append(f"{weeks:g}周" if zh else f"{weeks:g} weeks")
    if grams is not None:
        parts.append(f"{grams:g} g")
    return ("、" if zh else ", ").join(parts)


def triage(rules: Rules, case: Case, *, now: dt.datetime | None = None) -> Triage:
    """Requirements, urgency class, window, stabilisation need and reasons for a case."""
    now = now or dt.datetime.now(dt.UTC)
    validate_case(rules, case, now=now)
    conditions: list[Condition] = [rules.conditions[code] for code in case.conditions]
    patient = conditions[0].patient if conditions else "mother"
    need = Need()
    notes: list[Note] = []
    warnings: list[Note] = []
    urgency = "planned"
    stabilise: Need | None = None
    advice: dict[str, list[str]] = {"zh": [], "en": []}
    outreach_advice: dict[str, list[str]] = {"zh": [], "en": []}
    shock = shock_from(rules, case) if patient == "mother" else None
    before_birth = patient == "mother" and (
        any(_before_birth(c, case) for c in conditions)
        or (not conditions and case.delivered is not True)
    )

    for condition in conditions:
        condition_need = condition.need
        en = f"{condition.code} ({condition.name['en']}) needs {describe(condition.need)}"
        zh = f"{condition.name['zh']}需要{describe(condition.need)}"
        if shock is not None and condition.in_shock is not None:
            condition_need = condition_need.merge(condition.in_shock)
            en += f"; {shock.en}: {describe(condition.in_shock)}"
            zh += f"；{shock.zh}：需要{describe(condition.in_shock)}"
        if case.ventilated and condition.ventilated is not None:
            condition_need = condition_need.merge(condition.ventilated)
            en += f"; ventilated: {describe(condition.ventilated)}"
            zh += f"；已上呼吸机：需要{describe(condition.ventilated)}"
        if condition.neonatal_by_gestation and (
            case.gestation_weeks is None
            and case.birth_weight_g is None
            and case.estimated_fetal_weight_g is None
        ):
            # Never refuse to answer in an emergency: a floor, and the clinic is asked to say.
            floor = rules.clinical.unknown_baby_level
            condition_need = condition_need.merge(Need(neonatal_level=floor))
            en += (
                f"; the baby's gestation and weight are unknown: at least {level_label('N', floor)}"
            )
            zh += f"；孕周和体重未知：至少{level_label('N', floor)}"
            warnings.append(
                Note(
                    "baby_size_unknown",
                    f"{condition.code}: give the gestation (or the baby's weight) to choose the "
                    "neonatal level",
                    f"{condition.name['zh']}：请填写孕周（或体重）以确定新生儿级别",
                )
            )
        need = need.merge(condition_need)
        notes.append(Note(f"condition:{condition.code}", en, zh))
        if URGENCY_ORDER[condition.urgency] < URGENCY_ORDER[urgency]:
            urgency = condition.urgency
        if condition.stabilise is not None:
            stabilise = (
                condition.stabilise if stabilise is None else stabilise.merge(condition.stabilise)
            )
        for language in ("zh", "en"):
            advice[language].extend(condition.advice[language])
            outreach_advice[language].extend(condition.outreach_advice.get(language, ()))

    if shock is not None and not any(c.in_shock for c in conditions):
        notes.append(Note("shock", shock.en, shock.zh))

    if case.risk_colour is not None and case.risk_colour != "purple":
        colour_need = rules.colours[case.risk_colour]
        need = need.merge(colour_need)
        notes.append(
            Note(
                f"colour:{case.risk_colour}",
                f"risk colour {case.risk_colour} needs {describe(colour_need)}",
                f"妊娠风险{_COLOUR_ZH[case.risk_colour]}需要{describe(colour_need)}",
            )
        )
    if case.purple or case.risk_colour == "purple":
        need = need.merge(rules.colours["purple"])
        notes.append(
            Note(
                "colour:purple",
                f"purple (infectious) needs {describe(rules.colours['purple'])}",
                f"紫色（传染病）需要{describe(rules.colours['purple'])}",
            )
        )

    need = _the_baby(rules, case, patient, before_birth, need, notes, warnings)

    do_not_move = (
        case.do_not_move if case.do_not_move is not None else any(c.do_not_move for c in conditions)
    )
    if do_not_move:
        by_rule = case.do_not_move is None
        notes.append(
            Note(
                "do_not_move",
                "do not move: "
                + ("the rules say resuscitate where she is" if by_rule else "the clinician says")
                + "; the capable team is asked to come (outreach)",
                "不宜转运："
                + ("按规则就地抢救" if by_rule else "临床医生判断")
                + "；请有能力的团队前来（下沉）",
            )
        )
    if not outreach_advice["en"]:
        outreach_advice = {
            "zh": ["不要转运：就地稳定病情", "请上级医院派专家团队前来"],
            "en": [
                "Do not move the patient; stabilise where she is",
                "Ask the capable team to come",
            ],
        }

    return Triage(
        need=need,
        urgency=urgency,
        patient=patient,
        notes=notes,
        window=_window(conditions, case, now, warnings),
        stabilise=stabilise or rules.clinical.stabilise_default[patient],
        do_not_move=do_not_move,
        in_shock=shock is not None,
        before_birth=before_birth,
        warnings=warnings,
        advice=advice,
        outreach_advice=outreach_advice,
    )


_COLOUR_ZH = {"green": "绿色", "yellow": "黄色", "orange": "橙色", "red": "红色", "purple": "紫色"}


def _the_baby(
    rules: Rules,
    case: Case,
    patient: str,
    before_birth: bool,
    need: Need,
    notes: list[Note],
    warnings: list[Note],
) -> Need:
    """The neonatal band: of the newborn itself, or of the baby an undelivered mother carries."""
    weeks = case.gestation_weeks
    if patient == "newborn":
        grams = case.birth_weight_g
        if weeks is None and grams is None:
            return need
        level = neonatal_level_for(rules, weeks=weeks, grams=grams)
        if level > need.neonatal_level:
            text_en = _baby_text(weeks, grams, zh=False)
            text_zh = _baby_text(weeks, grams, zh=True)
            notes.append(
                Note(
                    "newborn_band",
                    f"the baby at {text_en} needs {level_label('N', level)}",
                    f"新生儿{text_zh}需要{level_label('N', level)}",
                )
            )
        return need.merge(Need(neonatal_level=level))
    if not before_birth:
        return need
    grams = case.estimated_fetal_weight_g
    if weeks is None and grams is None:
        if any(w.code == "baby_size_unknown" for w in warnings):
            return need  # said already, with the level it floors at
        warnings.append(
            Note(
                "gestation_unknown",
                "not yet delivered and no gestation given: the baby's neonatal need is not "
                "counted; give the gestation",
                "尚未分娩且未填孕周：无法判断胎儿所需的新生儿级别，请填写孕周",
            )
        )
        return need
    if weeks is not None and weeks < rules.clinical.baby_inside_from_weeks:
        notes.append(
            Note(
                "baby_not_viable",
                f"not yet delivered at {weeks:g} weeks, before "
                f"{rules.clinical.baby_inside_from_weeks:g} weeks: the mother's need alone decides",
                f"孕{weeks:g}周未分娩（未满{rules.clinical.baby_inside_from_weeks:g}周）：按孕妇需要决定",
            )
        )
        return need
    by_weeks = weeks is not None and weeks < rules.clinical.baby_inside_below_weeks
    level = neonatal_level_for(rules, weeks=weeks if by_weeks else None, grams=grams)
    if not by_weeks and level <= 1:
        return need  # a term baby of normal size: the maternal requirement is enough
    text_en = _baby_text(weeks, grams, zh=False)
    text_zh = _baby_text(weeks, grams, zh=True)
    notes.append(
        Note(
            "baby_inside",
            f"not yet delivered: the baby inside ({text_en}) needs {level_label('N', level)} "
            "(in-utero transfer beats newborn transfer)",
            f"尚未分娩：宫内胎儿（{text_zh}）需要{level_label('N', level)}"
            "（宫内转运优于出生后转运）",
        )
    )
    return need.merge(Need(neonatal_level=level))


def _window(
    conditions: list[Condition], case: Case, now: dt.datetime, warnings: list[Note]
) -> Window | None:
    """The window that closes first, each measured from its own start."""
    best: Window | None = None
    for condition in conditions:
        if condition.window_minutes is None:
            continue
        start = condition.window_from
        given = {"birth": case.born_at, "onset": case.onset_at, "decision": now}[start]
        if given is None:
            if start == "birth":
                warnings.append(
                    Note(
                        "born_at_unknown",
                        f"time of birth not given: the {condition.window_minutes // 60 or 1}-hour "
                        "window is counted from now, which may be too late; give born_at",
                        "未填出生时间：时间窗从现在起算，可能已经过晚，请填写出生时间",
                    )
                )
            start, given = "decision", now
        window = Window(
            condition=condition.code,
            minutes=condition.window_minutes,
            start=start,
            started_at=given,
            closes_at=given + dt.timedelta(minutes=condition.window_minutes),
            advice=condition.window_advice,
        )
        if best is None or window.closes_at < best.closes_at:
            best = window
    return best
