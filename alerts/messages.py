"""SMS texts in Chinese (the default) and English, and SMS segment counting.

Every function takes plain values, never a patient's name or ID number: an SMS carries only
what its reader needs (docs/conventions.md). Unknown languages fall back to Chinese.

The pre-alert is kept within two SMS segments, with room for the escalation prefix, by
shortening the free-text fields (origin, then condition) when a worst case would overflow, and
then by giving up its least needed parts in a fixed order; the case code, the time by which to
answer, the reply instructions and the link to the case page are never given up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from alerts.segments import (
    _MAX_FITTING_CHARS,
    PREALERT_MAX_SEGMENTS,
    _fit_fields,
    _fits,
    _lang,
    gsm_only,
)
from core.vocabulary import ATTENTION_REASONS

COLOURS = {
    "zh": {"green": "绿", "yellow": "黄", "orange": "橙", "red": "红", "purple": "紫"},
    "en": {
        "green": "GREEN",
        "yellow": "YELLOW",
        "orange": "ORANGE",
        "red": "RED",
        "purple": "PURPLE",
    },
}

REASONS = {
    "zh": {
        "FULL": "满床",
        "THEATRE": "手术室不可用",
        "BLOOD": "血源不足",
        "STAFF": "人员不足",
        "NICU": "新生儿科无位",
        "OTHER": "其他",
    },
    "en": {
        "FULL": "no bed",
        "THEATRE": "theatre unavailable",
        "BLOOD": "no blood",
        "STAFF": "no staff",
        "NICU": "no NICU cot",
        "OTHER": "other",
    },
}

TEAMS = {
    "zh": {
        "obstetrics": "产科",
        "neonatology": "新生儿科",
        "anaesthesia": "麻醉科",
        "blood_bank": "输血科",
        "capacity": "床位管理",
        "coordinator": "协调员",
    },
    "en": {
        "obstetrics": "obstetrics",
        "neonatology": "neonatology",
        "anaesthesia": "anaesthesia",
        "blood_bank": "blood bank",
        "capacity": "bed manager",
        "coordinator": "coordinator",
    },
}


#: What a pre-alert gives up, in this order, when even its shortened names leave it too long:
#: the least a receiving team needs to decide first. The case code, the time by which to answer,
#: how to answer and the link to the case page are never given up; the condition is shortened
#: but stays.
PREALERT_DROP_ORDER = (
    "colour",
    "weight",
    "reasons",
    "origin",
    "gestation",
    "eta",
    "phone",
    "delivered",
    "bleeding",
    "shock",
)

_REASON_LIST = {
    "zh": "(满床/手术室/血/人员/新生儿/其他)",
    "en": "FULL/THEATRE/BLOOD/STAFF/NICU/OTHER",
}


def _fit_prealert(
    build: Callable[[Callable[[str], bool], str, str], str],
    origin: str,
    condition: str,
    *,
    language: str,
) -> str:
    """The pre-alert that fits: names shortened first (:func:`_fit_fields`), then, while that
    is not enough, the parts of :data:`PREALERT_DROP_ORDER` given up one by one."""
    dropped: set[str] = set()
    text = ""
    for name in (None, *PREALERT_DROP_ORDER):
        if name is not None:
            dropped.add(name)

        def build_kept(origin_text: str, condition_text: str) -> str:
            return build(lambda part: part not in dropped, origin_text, condition_text)

        text = _fit_fields(build_kept, origin, condition, language=language)
        if len(text) <= _MAX_FITTING_CHARS and _fits(text, PREALERT_MAX_SEGMENTS, reserve=True):
            return text
    return text  # even the bare text does not fit (an absurd code or link): send it as it is


def prealert(
    language: str,
    *,
    code: str,
    condition: str,
    colour: str,
    origin: str,
    eta_minutes: int | None,
    callback_phone: str,
    gestation_weeks: int | None = None,
    weight_g: int | None = None,
    shock: bool = False,
    massive_bleeding_ml: int | None = None,
    delivered: bool | None = None,
    eta_estimate: bool = False,
    answer_by: str = "",
    link: str = "",
) -> str:
    """The pre-alert to a receiving team: what is coming, from where, when, by when to answer,
    how, and the link to the case page (docs/domain.md, "The pre-alert").

    ``condition`` and ``origin`` come already in the reader's language; ``answer_by`` is a
    clock time on the region's clock (``14:05``); ``massive_bleeding_ml`` is the estimated
    blood loss when the region's rule counts it as massive; ``delivered`` None (unknown) says
    nothing; ``eta_estimate`` marks a straight-line guess. Within two segments with room for
    the escalation prefix: the names are shortened, then the least needed parts given up
    (:data:`PREALERT_DROP_ORDER`).
    """
    lang = _lang(language)
    colour_text = COLOURS[lang].get(colour, colour)
    if lang == "zh":
        facts = [
            ("shock", "休克" if shock else ""),
            ("bleeding", f"出血{massive_bleeding_ml}ml" if massive_bleeding_ml else ""),
            ("delivered", {True: "已分娩", False: "未分娩", None: ""}[delivered]),
            ("gestation", f"孕{gestation_weeks}周" if gestation_weeks is not None else ""),
            ("weight", f"{weight_g}克" if weight_g is not None else ""),
            # No colour graded (an emergency, or a newborn): say nothing, not an empty label.
            ("colour", f"{colour_text}色" if colour else ""),
        ]
        eta = (
            f"约{eta_minutes}分钟到{'(估算)' if eta_estimate else ''}"
            if eta_minutes is not None
            else ""
        )

        def build(keep: Callable[[str], bool], origin_text: str, condition_text: str) -> str:
            told = "".join(f"，{text}" for part, text in facts if text and keep(part))
            where = "，".join(
                [
                    *([f"自{origin_text}"] if keep("origin") else []),
                    *([eta] if eta and keep("eta") else []),
                ]
            )
            phone = f"医生电话{callback_phone}。" if callback_phone and keep("phone") else ""
            by = f"请{answer_by}前回复" if answer_by else "回复"
            reasons = _REASON_LIST["zh"] if keep("reasons") else ""
            return (
                f"【绿色通道】{code}：{condition_text}{told}。"
                + (f"{where}。" if where else "")
                + phone
                + f"{by}{code} Y 接收；{code} N 原因{reasons}"
                + (f"。{link}" if link else "")
            )

        return _fit_prealert(build, origin, condition, language=lang)

    facts = [
        ("shock", "SHOCK" if shock else ""),
        ("bleeding", f"MASSIVE BLEED {massive_bleeding_ml}ml" if massive_bleeding_ml else ""),
        ("delivered", {True: "delivered", False: "baby inside", None: ""}[delivered]),
        ("gestation", f"{gestation_weeks}wk" if gestation_weeks is not None else ""),
        ("weight", f"{weight_g}g" if weight_g is not None else ""),
        ("colour", colour_text if colour else ""),
    ]
    eta = (
        f"ETA {eta_minutes} min{' (estimate)' if eta_estimate else ''}"
        if eta_minutes is not None
        else ""
    )
    origin, condition = gsm_only(origin), gsm_only(condition)

    def build_en(keep: Callable[[str], bool], origin_text: str, condition_text: str) -> str:
        told = "".join(f", {text}" for part, text in facts if text and keep(part))
        where = ", ".join(
            [
                *([f"From {origin_text}"] if keep("origin") else []),
                *([eta] if eta and keep("eta") else []),
            ]
        )
        phone = f"Doctor {callback_phone}. " if callback_phone and keep("phone") else ""
        by = f"Reply by {answer_by}: " if answer_by else "Reply "
        reasons = _REASON_LIST["en"] if keep("reasons") else "<reason>"
        return (
            f"GREEN CHANNEL pre-alert {code}: {condition_text}{told}. "
            + (f"{where}. " if where else "")
            + phone
            + f"{by}{code} Y to accept, or {code} N {reasons}"
            + (f". Case: {link}" if link else "")
        )

    return _fit_prealert(build_en, origin, condition, language=lang)


def escalated(language: str, text: str) -> str:
    """The pre-alert as sent to the next contact after the previous one stayed silent."""
    return ("【升级】" if _lang(language) == "zh" else "ESCALATED: ") + text


def switchboard_relay(language: str, *, teams: Iterable[str], text: str) -> str:
    """For the hospital switchboard: pass the pre-alert on to the teams on duty."""
    lang = _lang(language)
    names = [TEAMS[lang].get(team, team) for team in teams]
    if lang == "zh":
        return f"【请总机转{'/'.join(names)}值班】" + text
    return f"[SWITCHBOARD: please pass to {'/'.join(names)} on duty] " + text


def attention_words(language: str, *, reason: str, detail: str) -> str:
    """Why a case needs a human, in the words the coordinator is texted and the board shows:
    the reason (:data:`core.vocabulary.ATTENTION_REASONS`), then what happened."""
    lang = _lang(language)
    label = ATTENTION_REASONS[reason][lang]
    return f"{label}：{detail}" if lang == "zh" else f"{label}: {detail}"


def unanswered_words(language: str, *, facility_name: str, minutes: float) -> str:
    if _lang(language) == "zh":
        detail = f"{facility_name}{minutes:g}分钟未回复预警"
    else:
        detail = f"{gsm_only(facility_name)} silent for {minutes:g} min"
    return attention_words(language, reason="unanswered", detail=detail)


def late_words(language: str, *, facility_name: str, minutes: float) -> str:
    """A pre-alert left ``minutes`` after the hospital was chosen (the service or the SMS
    provider was down): the hospital's answer clock starts only now."""
    if _lang(language) == "zh":
        detail = f"致{facility_name}的预警晚{minutes:g}分钟发出，答复时限从发出起算"
    else:
        detail = (
            f"pre-alert to {gsm_only(facility_name)} left {minutes:g} min late; its clock restarts"
        )
    return attention_words(language, reason="late_alerts", detail=detail)


def unplaced_words(language: str, *, asked: int) -> str:
    """``asked``: how many hospitals were asked (0: none meets every need)."""
    if _lang(language) == "zh":
        detail = f"已询问{asked}家医院均未接收" if asked else "无医院满足全部需要"
    else:
        detail = f"{asked} asked, none accepted" if asked else "no hospital meets every need"
    return attention_words(language, reason="unplaced", detail=detail)


def safety_net_words(language: str, *, centre: str, rule: str) -> str:
    if _lang(language) == "zh":
        detail = f"已指派{centre}" if rule == "assign" else f"已向{centre}发出最终请求"
    else:
        what = "assigned to" if rule == "assign" else "final offer to"
        detail = f"{what} {gsm_only(centre)}"
    return attention_words(language, reason="safety_net", detail=detail)


def _fit_one(build: Callable[[str], str], field: str, *, language: str) -> str:
    """Shorten ``field`` until ``build(field)`` fits two segments (names first, never the
    numbers to call)."""
    return _fit_fields(lambda a, _b: build(a), field, "", language=language)


def coordinator_unanswered(
    language: str, *, code: str, facility_name: str, minutes: float, clinic_phone: str
) -> str:
    """To the coordinators: a hospital stays silent (its switchboard was told)."""
    lang = _lang(language)

    def build(name: str) -> str:
        words = unanswered_words(lang, facility_name=name, minutes=minutes)
        if lang == "zh":
            return f"【绿色通道】病例{code} {words}，已通知总机，请协调。转出方电话{clinic_phone}"
        return (
            f"GREEN CHANNEL case {code}: {words}; switchboard told. Please follow up. "
            f"Clinic {clinic_phone}"
        )

    return _fit_one(build, facility_name, language=lang)


def coordinator_late(
    language: str, *, code: str, facility_name: str, minutes: float, clinic_phone: str
) -> str:
    """To the coordinators: pre-alerts went out late (an outage); the hospitals' answer clocks
    start when their alert left."""
    lang = _lang(language)

    def build(name: str) -> str:
        words = late_words(lang, facility_name=name, minutes=minutes)
        if lang == "zh":
            return f"【绿色通道】病例{code} {words}，请留意。转出方电话{clinic_phone}"
        return f"GREEN CHANNEL case {code}: {words}. Please keep watch. Clinic {clinic_phone}"

    return _fit_one(build, facility_name, language=lang)


def coordinator_unplaced(
    language: str, *, code: str, condition: str, origin: str, asked: int, clinic_phone: str
) -> str:
    """To the coordinators: nobody accepted and no safety net applies."""
    return _to_coordinators(
        language,
        code=code,
        condition=condition,
        origin=origin,
        words=unplaced_words(_lang(language), asked=asked),
        ask={"zh": "。请立即协调：改派或重新发起。", "en": ". Act now: redirect or re-open."},
        clinic_phone=clinic_phone,
    )


def _to_coordinators(
    language: str,
    *,
    code: str,
    condition: str,
    origin: str,
    words: str,
    ask: Mapping[str, str],
    clinic_phone: str,
) -> str:
    """A coordinator's text about a case: what happened (the board's words), what to do, and
    the clinic's number; the origin and condition shortened to fit."""
    lang = _lang(language)

    def build(origin_text: str, condition_text: str) -> str:
        if lang == "zh":
            return (
                f"【绿色通道】病例{code}（{condition_text}，自{origin_text}）{words}"
                f"{ask['zh']}转出方电话{clinic_phone}"
            )
        return (
            f"GREEN CHANNEL case {code} ({condition_text}, from {origin_text}): {words}"
            f"{ask['en']} Clinic {clinic_phone}"
        )

    if lang == "en":
        origin, condition = gsm_only(origin), gsm_only(condition)
    return _fit_fields(build, origin, condition, language=lang)


def safety_net_assigned(
    language: str,
    *,
    code: str,
    condition: str,
    origin: str,
    eta_minutes: int | None,
    callback_phone: str,
    why: str,
) -> str:
    """To the designated centre's teams: the region's rule makes it the receiving hospital."""
    eta = (
        ""
        if eta_minutes is None
        else (f"，约{eta_minutes}分钟" if _lang(language) == "zh" else f", about {eta_minutes} min")
    )
    if _lang(language) == "zh":
        return (
            f"【绿色通道·兜底】病例{code}（{condition}，自{origin}{eta}）{why}，"
            f"按规定由贵院接收，请立即准备。转出方电话{callback_phone}。"
        )
    return (
        f"GREEN CHANNEL SAFETY NET: case {code} ({condition}, from {origin}{eta}): {why}. "
        f"Under the region's rule your centre receives her; prepare now. Clinic {callback_phone}."
    )


def safety_net_to_coordinator(
    language: str,
    *,
    code: str,
    condition: str,
    origin: str,
    centre: str,
    rule: str,
    clinic_phone: str,
) -> str:
    """To the coordinators: nobody accepted and the region's safety net acted."""
    return _to_coordinators(
        language,
        code=code,
        condition=condition,
        origin=origin,
        words=safety_net_words(_lang(language), centre=centre, rule=rule),
        ask={"zh": "，请跟进。", "en": ". Please follow up."},
        clinic_phone=clinic_phone,
    )


#: Whom a clinic calls when no coordinator covers it: the emergency number.
EMERGENCY_NUMBER = "120"


def clinic_unplaced(language: str, *, code: str, coordinator_phone: str) -> str:
    """To the referring clinic when nobody accepted and no safety net applies: what happens
    next and whom to call (the area coordinator, else the emergency number)."""
    if _lang(language) == "zh":
        call = f"请致电协调员{coordinator_phone}" if coordinator_phone else "如需帮助请拨打120"
        return (
            f"【绿色通道】病例{code}暂无医院接收，协调员正在联系医院。"
            f"请继续抢救，暂勿出发，保持电话畅通；{call}。"
        )
    call = (
        f"call the coordinator on {coordinator_phone}"
        if coordinator_phone
        else f"for help call {EMERGENCY_NUMBER}"
    )
    return (
        f"GREEN CHANNEL case {code}: no hospital has accepted yet; the coordinator is calling "
        f"hospitals. Keep treating, do not leave yet, keep this phone free; {call}."
    )


def clinic_safety_net(
    language: str,
    *,
    code: str,
    centre: str,
    eta_minutes: int | None,
    centre_phone: str,
    coordinator_phone: str,
) -> str:
    """To the referring clinic when the safety net assigned the designated centre: where to
    go, the centre's phone and the coordinator's."""
    lang = _lang(language)
    call = coordinator_phone or EMERGENCY_NUMBER

    def build(name: str) -> str:
        if lang == "zh":
            eta = f"，预计{eta_minutes}分钟" if eta_minutes is not None else ""
            return (
                f"【绿色通道】病例{code}无医院接收，按兜底规则由{name}接收{eta}。"
                f"请医生护送立即出发。接收方电话{centre_phone}，协调员{call}。"
            )
        eta = f", ETA {eta_minutes} min" if eta_minutes is not None else ""
        return (
            f"GREEN CHANNEL case {code}: nobody accepted; under the region's rule {name} "
            f"receives her{eta}. Leave now with a doctor escort. Their phone {centre_phone}, "
            f"coordinator {call}."
        )

    return _fit_one(build, centre if lang == "zh" else gsm_only(centre), language=lang)


def reply_confirmation(
    language: str, *, code: str, accepted: bool, minutes: int | None, reason: str | None
) -> str:
    lang = _lang(language)
    if lang == "zh":
        if accepted:
            ready = f"，{minutes}分钟内准备好" if minutes is not None else ""
            return f"已收到：您接收病例{code}{ready}。谢谢！"
        return f"已收到：您拒绝病例{code}，原因：{REASONS['zh'].get(reason or '', reason)}。"
    if accepted:
        ready = f", ready in {minutes} min" if minutes is not None else ""
        return f"Received: you accept case {code}{ready}. Thank you."
    return f"Received: you decline case {code}, reason: {REASONS['en'].get(reason or '', reason)}."


def case_accepted(
    language: str, *, code: str, destination: str, eta_minutes: int, destination_phone: str
) -> str:
    """To the referring clinic: where to go and whom to call."""
    if _lang(language) == "zh":
        return (
            f"【绿色通道】病例{code}已由{destination}接收，预计{eta_minutes}分钟到达。"
            f"接收方电话{destination_phone}。请医生护送出发。"
        )
    return (
        f"GREEN CHANNEL case {code} accepted by {destination}, ETA {eta_minutes} min. "
        f"Their phone {destination_phone}. Leave with a doctor escort."
    )


STAND_DOWN_REASONS = {
    "zh": {
        "placed": "已由其他医院接收",
        "cancelled": "已取消",
        "redirected": "已由协调员改派",
    },
    "en": {
        "placed": "was accepted by another hospital",
        "cancelled": "was cancelled",
        "redirected": "was redirected by the coordinator",
    },
}


def stand_down(language: str, *, code: str, reason: str) -> str:
    """To a team that was pre-alerted: the patient is not coming; stop preparing."""
    lang = _lang(language)
    why = STAND_DOWN_REASONS[lang].get(reason, STAND_DOWN_REASONS[lang]["cancelled"])
    if lang == "zh":
        return f"【绿色通道】病例{code}{why}，无需再准备，谢谢。"
    return f"GREEN CHANNEL case {code} {why}: no need to prepare. Thank you."


def patient_arrived(language: str, *, code: str, destination: str) -> str:
    if _lang(language) == "zh":
        return f"【绿色通道】病例{code}已到达{destination}。"
    return f"GREEN CHANNEL case {code} has arrived at {destination}."


def capacity_reminder(language: str, *, facility_name: str, hours: int) -> str:
    if _lang(language) == "zh":
        return (
            f"【绿色通道】{facility_name}床位已{hours}小时未更新。请回复空床数："
            "CAP OB 产科 ICU 重症 NICU 新生儿，例如 CAP OB 3 ICU 1 NICU 0"
        )
    return (
        f"GREEN CHANNEL: {facility_name} bed report is over {hours} h old. Reply with free "
        "beds: CAP OB <obstetric> ICU <maternal ICU> NICU <nicu>, e.g. CAP OB 3 ICU 1 NICU 0"
    )


def capacity_confirmation(language: str, *, beds: Mapping[str, int]) -> str:
    lang = _lang(language)
    names = {
        "zh": {"obstetric": "产科", "maternal_icu": "重症", "nicu": "新生儿"},
        "en": {"obstetric": "OB", "maternal_icu": "ICU", "nicu": "NICU"},
    }[lang]
    listing = " ".join(f"{names.get(key, key)} {value}" for key, value in beds.items())
    if lang == "zh":
        return f"已更新空床：{listing}。谢谢！"
    return f"Beds updated: {listing}. Thank you."


def coordinator_stale_capacity(language: str, *, facility_name: str, hours: int) -> str:
    if _lang(language) == "zh":
        return f"【绿色通道】{facility_name}床位已{hours}小时未更新，提醒后仍未回复，请联系。"
    return (
        f"GREEN CHANNEL: {facility_name} has not reported beds for {hours} h, even after a "
        "reminder. Please contact them."
    )


_HELP = {
    "zh": {
        "empty": "未能识别回复。",
        "no_verb": "未能识别回复。",
        "bad_code": "未能识别病例编号。",
        "missing_reason": "拒绝须说明原因。",
        "bad_reason": "无法识别拒绝原因。",
        "bad_minutes": "准备时间应为0-1440分钟。",
        "extra": "回复中有无法识别的内容。",
        "capacity": "床位回复格式：CAP OB 3 ICU 1 NICU 0",
    },
    "en": {
        "empty": "Could not read your reply.",
        "no_verb": "Could not read your reply.",
        "bad_code": "Could not read the case code.",
        "missing_reason": "A decline needs a reason.",
        "bad_reason": "Unknown decline reason.",
        "bad_minutes": "Minutes must be 0-1440.",
        "extra": "Part of your reply was not understood.",
        "capacity": "Bed reply format: CAP OB 3 ICU 1 NICU 0",
    },
}


def reply_help(language: str, *, kind: str, code: str | None) -> str:
    """What to send instead, after a reply we could not read."""
    lang = _lang(language)
    head = _HELP[lang].get(kind, _HELP[lang]["no_verb"])
    if kind == "capacity":
        return head
    c = code or ("编号" if lang == "zh" else "CODE")
    if lang == "zh":
        return f"{head}接收请回复 {c} Y；拒绝请回复 {c} N 原因（满床/手术室/血/人员/新生儿/其他）"
    return (
        f"{head} To accept reply {c} Y; to decline reply {c} N FULL/THEATRE/BLOOD/STAFF/NICU/OTHER"
    )


def unknown_sender() -> str:
    """Both languages: we do not know who wrote."""
    return (
        "此号码未登记为该医院联系人，回复未被采纳。/ This number is not a registered contact "
        "of the hospital; your reply was not recorded."
    )


def not_open(language: str, *, code: str) -> str:
    if _lang(language) == "zh":
        return f"病例{code}的转诊请求已结束，您的回复未改变任何内容。谢谢。"
    return f"The request for case {code} is no longer open; your reply changed nothing. Thank you."


def code_unknown(language: str, *, code: str) -> str:
    if _lang(language) == "zh":
        return f"没有发给您医院的病例{code}。请核对编号。"
    return f"No case {code} was sent to your hospital. Please check the code."


def no_open_alert(language: str) -> str:
    if _lang(language) == "zh":
        return "您医院目前没有待回复的转诊请求。"
    return "Your hospital has no request waiting for an answer."


def code_required(language: str, *, codes: Iterable[str]) -> str:
    listing = ", ".join(codes)
    if _lang(language) == "zh":
        return f"有多个待回复的病例（{listing}），请在回复前加编号，例如 {listing.split(',')[0]} Y"
    return (
        f"Several cases are waiting ({listing}); start your reply with the code, "
        f"e.g. {listing.split(',')[0]} Y"
    )


def ambiguous_sender(language: str) -> str:
    if _lang(language) == "zh":
        return "此号码登记在多家医院，无法确定是哪一家。请在网页上更新床位。"
    return "This number is registered at several hospitals; please update beds on the web."


def received(language: str) -> str:
    return "已收到。" if _lang(language) == "zh" else "Received."
