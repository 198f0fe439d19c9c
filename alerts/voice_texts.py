"""What a call says, in Mandarin (the default) or English: the spoken pre-alert and the menus.

The same content rules as the SMS pre-alert (:func:`alerts.messages.prealert`): the case code,
condition, what the team must know (shock, massive bleeding, gestation, weight), where from,
when, by when to answer; never a name or an ID number. Shorter than the text: no link, no
call-back number read out digit by digit (the SMS carries it), and the code spelt letter by
letter so a listener can write it down.
"""

from __future__ import annotations

from alerts.messages import REASONS
from alerts.replies import DeclineReason

#: The decline menu, digit by digit: the reply grammar's reasons in their order
#: (1 FULL … 6 OTHER), the same words the SMS confirmation uses.
DECLINE_MENU: tuple[DeclineReason, ...] = tuple(DeclineReason)

#: Twilio ``<Say>`` voice and language per reader's language (Amazon Polly through Twilio).
SAY = {
    "zh": {"voice": "Polly.Zhiyu", "language": "cmn-CN"},
    "en": {"voice": "Polly.Joanna", "language": "en-US"},
}


def _lang(language: str) -> str:
    return "en" if language == "en" else "zh"


def spell(code: str) -> str:
    """``AB12`` → ``A B 1 2``: a text-to-speech voice reads a code as a word otherwise."""
    return " ".join(ch for ch in code if ch.strip())


def prealert_speech(
    language: str,
    *,
    code: str,
    condition: str,
    origin: str,
    eta_minutes: int | None,
    eta_estimate: bool = False,
    answer_by: str = "",
    gestation_weeks: int | None = None,
    weight_g: int | None = None,
    shock: bool = False,
    massive_bleeding_ml: int | None = None,
) -> str:
    """The spoken pre-alert; ``condition`` and ``origin`` already in the listener's language,
    ``answer_by`` a clock time on the region's clock."""
    if _lang(language) == "zh":
        facts = "，".join(
            part
            for part in (
                "休克" if shock else "",
                f"出血{massive_bleeding_ml}毫升" if massive_bleeding_ml else "",
                f"孕{gestation_weeks}周" if gestation_weeks is not None else "",
                f"{weight_g}克" if weight_g is not None else "",
            )
            if part
        )
        eta = (
            f"预计{'约' if eta_estimate else ''}{eta_minutes}分钟到达。"
            if eta_minutes is not None
            else ""
        )
        return (
            f"绿色通道转诊预警。病例 {spell(code)}。{condition}"
            + (f"，{facts}" if facts else "")
            + f"。来自{origin}。{eta}"
            + (f"请在{answer_by}前答复。" if answer_by else "")
        )
    facts_en = ", ".join(
        part
        for part in (
            "in shock" if shock else "",
            f"blood loss {massive_bleeding_ml} millilitres" if massive_bleeding_ml else "",
            f"{gestation_weeks} weeks" if gestation_weeks is not None else "",
            f"{weight_g} grams" if weight_g is not None else "",
        )
        if part
    )
    eta_en = (
        f"Arriving in {'about ' if eta_estimate else ''}{eta_minutes} minutes. "
        if eta_minutes is not None
        else ""
    )
    return (
        f"Green channel pre-alert. Case {spell(code)}. {condition}"
        + (f", {facts_en}" if facts_en else "")
        + f". From {origin}. {eta_en}"
        + (f"Please answer by {answer_by}." if answer_by else "")
    ).strip()


def main_menu(language: str) -> str:
    if _lang(language) == "zh":
        return "接收请按1，拒绝请按2。"
    return "To accept, press 1. To decline, press 2."


def reason_menu(language: str) -> str:
    lang = _lang(language)
    if lang == "zh":
        return (
            "请选择拒绝原因："
            + "，".join(
                f"{REASONS['zh'][reason.value]}请按{index}"
                for index, reason in enumerate(DECLINE_MENU, start=1)
            )
            + "。"
        )
    return "Why do you decline? " + " ".join(
        f"For {REASONS['en'][reason.value]}, press {index}."
        for index, reason in enumerate(DECLINE_MENU, start=1)
    )


def no_key(language: str) -> str:
    if _lang(language) == "zh":
        return "未收到按键，您也可以回复短信答复。再见。"
    return "No key was pressed. You can still answer by text message. Goodbye."


def not_open(language: str, code: str) -> str:
    if _lang(language) == "zh":
        return f"病例 {spell(code)} 已不再等待您的答复，无需操作。再见。"
    return f"Case {spell(code)} is no longer waiting for your answer. Nothing to do. Goodbye."


def goodbye(language: str) -> str:
    return "再见。" if _lang(language) == "zh" else "Goodbye."
