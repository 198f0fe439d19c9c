"""The one clinical decision: where this case should go, and what to do when nowhere fits.

Every way into the service (the route API, ``greenchannel route``, a new referral from the API,
the form or SMS, the coverage map) asks :func:`decide`, so they all give the same answer with the
same reasons (docs/domain.md, "Across the table"). The answer is never empty: a capable first
choice, or the best partial matches with exactly what each lacks (never offered by themselves),
the nearest place to stabilise, the region's designated centre (the safety net) and, for a
patient who must not be moved, the outreach request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

import routing
from facilities import areas
from facilities.models import Facility
from referral import live, placement
from referral.rules import Need, Rules
from referral.triage import Case, Triage, need_as_dict, triage
from referral.wording import say

KINDS = ("capable", "beyond_window", "window_passed", "partial", "safety_net", "outreach")


@dataclass(frozen=True)
class SafetyNet:
    """The designated centre that takes the case under the region's rule."""

    facility: str
    name: str
    name_en: str
    rule: str  # assign | offer
    eta_minutes: float | None
    lacks: tuple[routing.Reason, ...]

    def to_dict(self, language: str) -> dict[str, Any]:
        return {
            "facility": self.facility,
            "name": self.name if language == "zh" else (self.name_en or self.name),
            "rule": self.rule,
            "eta_minutes": None if self.eta_minutes is None else round(self.eta_minutes, 1),
            "lacks": [_lack(r, language) for r in self.lacks],
        }


@dataclass(frozen=True)
class Decision:
    """Triage, ranking, window, safety net: everything an answer says about a case."""

    triage: Triage
    ranking: routing.Ranking
    safety_net: SafetyNet | None
    now: dt.datetime
    utc_offset_hours: int
    origin_code: str | None

    @property
    def partial(self) -> tuple[routing.Partial, ...]:
        return self.ranking.partial

    @property
    def first(self) -> routing.Candidate | None:
        return self.ranking.candidates[0] if self.ranking.candidates else None

    @property
    def reachable_in_time(self) -> bool | None:
        window = self.triage.window
        if window is None:
            return None
        first = self.first
        return first is not None and first.eta_minutes <= window.minutes_left(self.now)

    @property
    def kind(self) -> str:
        """What the answer amounts to (:data:`KINDS`)."""
        if self.triage.do_not_move:
            return "outreach"
        if self.first is not None:
            if self.reachable_in_time is False:
                window = self.triage.window
                assert window is not None
                return "window_passed" if window.closed(self.now) else "beyond_window"
            return "capable"
        return "safety_net" if self.safety_net is not None else "partial"

    def local(self, when: dt.datetime) -> str:
        """``HH:MM`` on the region's clock (the rules' working-hours offset)."""
        zone = dt.timezone(dt.timedelta(hours=self.utc_offset_hours))
        return when.astimezone(zone).strftime("%H:%M")

    def summary(self, language: str) -> str:
        """One plain sentence for the person waiting: where, or what to do instead."""
        zh = language == "zh"
        first, window, kind = self.first, self.triage.window, self.kind
        name = first.name if first else ""
        if kind == "outreach":
            team = self.ranking.outreach
            who = team.name if team else (self.safety_net.name if self.safety_net else "")
            return (
                f"不宜转运：就地抢救，请{who}派团队前来。"
                if zh
                else f"Do not move the patient: resuscitate where she is and ask {who} to send "
                "its team."
            )
        if kind == "capable":
            assert first is not None
            return (
                f"首选{name}：道路约{first.eta_minutes:.0f}分钟，满足全部需要（对方接收后再出发）。"
                if zh
                else f"Best choice: {name}, about {first.eta_minutes:.0f} min by road; it meets "
                "every need (leave once it accepts)."
            )
        if kind in ("beyond_window", "window_passed"):
            assert first is not None and window is not None
            closes = self.local(window.closes_at)
            if kind == "window_passed":
                return (
                    f"时间窗已于{closes}关闭；仍需转往{name}（约{first.eta_minutes:.0f}分钟），"
                    "途中按下列建议处理。"
                    if zh
                    else f"The window closed at {closes}; still transfer to {name} (about "
                    f"{first.eta_minutes:.0f} min) and follow the advice on the way."
                )
            return (
                f"{name}满足全部需要，但约{first.eta_minutes:.0f}分钟，无法在{closes}时间窗关闭前"
                "到达：就近稳定病情，或请专家前来，并按下列建议处理。"
                if zh
                else f"{name} meets every need but is about {first.eta_minutes:.0f} min away and "
                f"cannot be reached before the window closes at {closes}: stabilise nearby or "
                "ask its team to come, and follow the advice."
            )
        if kind == "safety_net":
            assert self.safety_net is not None
            centre = self.safety_net.name if zh else self.safety_net.name_en or self.safety_net.name
            how = {
                "assign": ("按本地区兜底规则由其接收", "it takes the case under the region's rule"),
                "offer": (
                    "将向其发出不得以满床拒绝的最终请求",
                    "it gets a final offer it cannot decline for lack of beds",
                ),
            }[self.safety_net.rule]
            return (
                f"没有医院满足全部需要。指定救治中心：{centre}，{how[0]}。"
                if zh
                else f"No hospital meets every need. Designated centre: {centre}; {how[1]}."
            )
        best = self.partial[0].name if self.partial else ""
        return (
            (f"没有医院满足全部需要；最接近的是{best}（见缺少项）。需协调员确认。")
            if zh
            else (
                f"No hospital meets every need; the closest match is {best} (see what it "
                "lacks). A coordinator must confirm."
            )
        )

    def window_dict(self) -> dict[str, Any] | None:
        window = self.triage.window
        if window is None:
            return None
        return {
            "minutes": window.minutes,
            "from": window.start,
            "condition": window.condition,
            "started_at": window.started_at.isoformat(),
            "closes_at": window.closes_at.isoformat(),
            "closes_at_local": self.local(window.closes_at),
            "closed": window.closed(self.now),
            "minutes_left": round(max(0.0, window.minutes_left(self.now)), 1),
            "reachable_in_time": bool(self.reachable_in_time),
        }

    def record(self) -> dict[str, Any]:
        """What a stored case keeps of its first decision, in both languages (for its pages,
        its API document and its timeline)."""

        def lacks(reasons: tuple[routing.Reason, ...]) -> list[dict[str, str]]:
            return [{"code": r.code, "en": r.text, "zh": say(r, "zh")} for r in reasons]

        stabilise = self.ranking.stabilise_at
        outreach = self.ranking.outreach
        return {
            "kind": self.kind,
            "summary": {language: self.summary(language) for language in ("zh", "en")},
            "partial": [
                {
                    "facility": p.facility,
                    "name": p.name,
                    "eta_minutes": round(p.eta_minutes, 1),
                    "lacks": lacks(p.lacks),
                }
                for p in self.partial
            ],
            "stabilise_at": None
            if stabilise is None
            else {
                "facility": stabilise.facility,
                "name": stabilise.name,
                "eta_minutes": round(stabilise.eta_minutes, 1),
            },
            "outreach": None
            if outreach is None
            else {
                "facility": outreach.facility,
                "name": outreach.name,
                "eta_minutes": round(outreach.eta_minutes, 1),
            },
            "safety_net": None
            if self.safety_net is None
            else {
                "facility": self.safety_net.facility,
                "name": self.safety_net.name,
                "rule": self.safety_net.rule,
                "lacks": lacks(self.safety_net.lacks),
            },
            "window": self.window_dict(),
            "window_advice": {k: list(v) for k, v in self.triage.window.advice.items()}
            if self.triage.window is not None and self.reachable_in_time is False
            else {},
            "warnings": [{"en": n.en, "zh": n.zh} for n in self.triage.warnings],
        }

    def to_dict(self, language: str = "en") -> dict[str, Any]:
        """The route answer (CONTRACT field names), reasons in ``language``."""
        t, ranking = self.triage, self.ranking
        # the excluded rows say each distinct set of reasons once, in ``language``
        answer = ranking.to_dict(text=lambda reason: say(reason, language))
        for row, item in zip(answer["candidates"], ranking.candidates, strict=True):
            row["reasons"] = [say(r, language) for r in item.reasons]
        answer["warnings"] = [say(w, language) for w in ranking.warnings] + [
            n.text(language) for n in t.warnings
        ]
        answer["warning_details"] = answer["warning_details"] + [
            {"code": n.code, "text": n.en, "params": {}} for n in t.warnings
        ]
        answer["partial"] = [
            {
                **p.to_dict(),
                "lacks": [_lack(r, language) for r in p.lacks],
                "reasons": [say(r, language) for r in p.reasons],
            }
            for p in self.partial
        ]
        if ranking.stabilise_at is not None:
            answer["stabilise_at"]["reasons"] = [
                say(r, language) for r in ranking.stabilise_at.reasons
            ]
        if ranking.outreach is not None:
            answer["outreach"] = {
                **ranking.outreach.to_dict(),
                "text": say(ranking.outreach.reason, language),
                "advice": t.outreach_advice[language] if t.do_not_move else [],
            }
        window = t.window
        show_window_advice = window is not None and self.reachable_in_time is False
        answer.update(
            requirements={**need_as_dict(t.need), "beds": answer["requirements"]["beds"]},
            urgency=t.urgency,
            patient=t.patient,
            reasons=t.reasons_in(language),
            window_minutes=t.window_minutes,
            window=self.window_dict(),
            beyond_window=bool(window is not None and self.reachable_in_time is False),
            safety_net=self.safety_net.to_dict(language) if self.safety_net else None,
            do_not_move=t.do_not_move,
            in_shock=t.in_shock,
            decision={"kind": self.kind, "text": self.summary(language)},
            advice=t.advice[language],
            window_advice=list(window.advice.get(language, ()))
            if window is not None and show_window_advice
            else [],
            language=language,
        )
        return answer


def _lack(reason: routing.Reason, language: str) -> dict[str, Any]:
    return {"code": reason.code, "text": say(reason, language), "params": dict(reason.params)}


def _missing(need: Need, facility: Facility | live.Centre) -> tuple[routing.Reason, ...]:
    """What ``facility`` lacks of ``need``, as the router's reason codes."""
    out: list[routing.Reason] = []
    if facility.maternal_level < need.maternal_level:
        out.append(
            routing.Reason(
                "maternal_level_below",
                f"maternal level M{facility.maternal_level} below required M{need.maternal_level}",
                {"level": facility.maternal_level, "required": need.maternal_level},
            )
        )
    if facility.neonatal_level < need.neonatal_level:
        out.append(
            routing.Reason(
                "neonatal_level_below",
                f"neonatal level N{facility.neonatal_level} below required N{need.neonatal_level}",
                {"level": facility.neonatal_level, "required": need.neonatal_level},
            )
        )
    for cap in sorted(need.capabilities - set(facility.capabilities)):
        out.append(routing.Reason("lacks_capability", f"lacks {cap}", {"capability": cap}))
    return tuple(out)


def safety_net_for(
    session: Session,
    *,
    rules: Rules,
    urgency: str,
    patient: str,
    need: Need,
    origin: areas.PlacedFacility | None,
    ranking: routing.Ranking | None = None,
    state: live.LiveState | None = None,
) -> SafetyNet | None:
    """The region's designated centre for the origin's area, under the rule for this urgency
    (None when the rule is ``off``, there is no origin to place in an area, or the area has no
    designated centre). A patient who is not at a registered facility (a home birth) belongs to
    the area of the nearest one."""
    rule = rules.safety_net.get(urgency, "off")
    if rule == "off" or origin is None:
        return None
    designation = "neonatal" if patient == "newborn" else "maternal"
    centres = areas.most_local((state or live.live_state(session)).centres, origin, designation)
    centres = [c for c in centres if c.id != origin.id] or centres
    if not centres:
        return None
    centre = centres[0]
    eta = None
    if ranking is not None:
        found: list[routing.Candidate | routing.Partial] = [*ranking.candidates, *ranking.partial]
        for item in found:
            if item.facility == centre.code:
                eta = item.eta_minutes
    return SafetyNet(
        facility=centre.code,
        name=centre.name,
        name_en=centre.name_en,
        rule=rule,
        eta_minutes=eta,
        lacks=_missing(need, centre),
    )


def decide(
    session: Session,
    *,
    rules: Rules,
    router: routing.Router,
    origin: tuple[float, float],
    case: Case,
    now: dt.datetime,
    origin_facility: areas.PlacedFacility | None = None,
    result: Triage | None = None,
    excluded_limit: int | None = None,
) -> Decision:
    """Triage the case and rank the facilities for it from ``origin``, with every fallback
    (``excluded_limit``: list only the nearest facilities that are out)."""
    result = result or triage(rules, case, now=now)
    return decide_for(
        session,
        rules=rules,
        router=router,
        origin=origin,
        result=result,
        now=now,
        origin_facility=origin_facility,
        excluded_limit=excluded_limit,
    )


def decide_for(
    session: Session,
    *,
    rules: Rules,
    router: routing.Router,
    origin: tuple[float, float],
    result: Triage,
    now: dt.datetime,
    origin_facility: areas.PlacedFacility | None = None,
    excluded_limit: int | None = None,
) -> Decision:
    window = result.window
    left = None if window is None else max(0.0, window.minutes_left(now))
    state = live.live_state(session)  # one read of the revision for the ranking and the net
    ranking = placement.rank_case(
        session,
        rules=rules,
        router=router,
        origin=origin,
        need=result.need,
        patient=result.patient,
        window_minutes=left,
        stabilise=result.stabilise,
        now=now,
        partial_k=rules.clinical.partial_matches + 1,
        stay=result.do_not_move,
        excluded_limit=excluded_limit,
        state=state,
    )
    own = origin_facility.code if origin_facility is not None else None
    area_of = origin_facility or state.nearest_active(*origin)
    partial = tuple(p for p in ranking.partial if p.facility != own)
    ranking = _with_partial(ranking, partial[: rules.clinical.partial_matches])
    return Decision(
        triage=result,
        ranking=ranking,
        safety_net=safety_net_for(
            session,
            rules=rules,
            urgency=result.urgency,
            patient=result.patient,
            need=result.need,
            origin=area_of,
            ranking=ranking,
            state=state,
        ),
        now=now,
        utc_offset_hours=rules.working_hours[2],
        origin_code=own,
    )


def _with_partial(
    ranking: routing.Ranking, partial: tuple[routing.Partial, ...]
) -> routing.Ranking:
    return replace(ranking, partial=partial)


def condition_need(
    rules: Rules, *, condition: str, gestation_weeks: float | None = None, now: dt.datetime
) -> Need:
    """What a facility needs to take a condition, by the same triage as a case (for planning:
    the coverage map asks "how far is a facility that can take a PPH?")."""
    case = Case(conditions=(condition.strip().upper(),), gestation_weeks=gestation_weeks)
    return triage(rules, case, now=now).need
