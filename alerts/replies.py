"""The SMS reply grammar (docs/domain.md).

Offer replies::

    [<code>] Y [minutes]          accept; also YES, OK, 是, 接收, 同意, 可以
    [<code>] N <reason> [note]    decline; also NO, 否, 拒绝, 不接收, 不同意, 无法接收

``minutes`` (0–1440) is when the team will be ready; ``分钟``/``分``/``MIN`` after it is allowed.
Reasons, as words or their Chinese equivalents:

    FULL     满床 床满 无床 没床 BED BEDS
    THEATRE  手术室 THEATER OR
    BLOOD    血 缺血 血源 输血
    STAFF    人员 人手 医生
    NICU     新生儿 新生儿科
    OTHER    其他 其它

Capacity replies: ``CAP OB 3 ICU 1 NICU 0`` (any subset, any order; also 床位 / 产科 / 重症 /
新生儿; ``OB3`` without a space works too).

Input is normalised first: NFKC (full-width letters, digits and spaces become ASCII), upper
case, punctuation read as a space. Both parsers raise :class:`ReplyParseError` and nothing else.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass


class DeclineReason(enum.StrEnum):
    FULL = "FULL"
    THEATRE = "THEATRE"
    BLOOD = "BLOOD"
    STAFF = "STAFF"
    NICU = "NICU"
    OTHER = "OTHER"


class ReplyParseError(ValueError):
    """A reply we cannot act on; ``kind`` selects the help text sent back."""

    def __init__(self, message: str, *, kind: str, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


@dataclass(frozen=True)
class OfferReply:
    code: str | None
    accept: bool
    minutes: int | None = None
    reason: DeclineReason | None = None
    note: str = ""
    #: how the answer came: "sms" (a text) or "voice" (keys pressed on a call)
    channel: str = "sms"


@dataclass(frozen=True)
class CapacityReply:
    beds: dict[str, int]  # keys from core.vocabulary.BED_TYPES


_ACCEPT = {"Y", "YES", "OK", "ACCEPT", "是", "接收", "同意", "可以", "好"}
_DECLINE = {"N", "NO", "DECLINE", "否", "拒绝", "不接收", "不同意", "无法接收", "不能接收", "不行"}
_REASONS = {
    "FULL": DeclineReason.FULL,
    "BED": DeclineReason.FULL,
    "BEDS": DeclineReason.FULL,
    "满床": DeclineReason.FULL,
    "床满": DeclineReason.FULL,
    "无床": DeclineReason.FULL,
    "没床": DeclineReason.FULL,
    "THEATRE": DeclineReason.THEATRE,
    "THEATER": DeclineReason.THEATRE,
    "OR": DeclineReason.THEATRE,
    "手术室": DeclineReason.THEATRE,
    "BLOOD": DeclineReason.BLOOD,
    "血": DeclineReason.BLOOD,
    "缺血": DeclineReason.BLOOD,
    "血源": DeclineReason.BLOOD,
    "输血": DeclineReason.BLOOD,
    "STAFF": DeclineReason.STAFF,
    "人员": DeclineReason.STAFF,
    "人手": DeclineReason.STAFF,
    "医生": DeclineReason.STAFF,
    "NICU": DeclineReason.NICU,
    "新生儿": DeclineReason.NICU,
    "新生儿科": DeclineReason.NICU,
    "OTHER": DeclineReason.OTHER,
    "其他": DeclineReason.OTHER,
    "其它": DeclineReason.OTHER,
}
_MINUTE_UNITS = {"MIN", "MINS", "MINUTE", "MINUTES", "M", "分钟", "分"}
_CAPACITY_WORDS = {"CAP", "CAPACITY", "BEDS", "床位", "空床"}
_BED_KEYS = {
    "OB": "obstetric",
    "OBS": "obstetric",
    "产科": "obstetric",
    "ICU": "maternal_icu",
    "MICU": "maternal_icu",
    "重症": "maternal_icu",
    "NICU": "nicu",
    "新生儿": "nicu",
    "新生儿科": "nicu",
}

# Chinese keywords are cut out of their neighbours, longest first ("不接收" before "接收").
_CJK_WORDS = sorted(
    {
        w
        for w in (*_ACCEPT, *_DECLINE, *_REASONS, *_MINUTE_UNITS, *_CAPACITY_WORDS, *_BED_KEYS)
        if not w.isascii()
    },
    key=len,
    reverse=True,
)
_CJK_SPLIT = re.compile("(" + "|".join(re.escape(w) for w in _CJK_WORDS) + ")")
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,15}$")
_JOINED_ACCEPT = re.compile(r"^(Y|YES|OK)(\d{1,4})$")
_ASCII_RUN = re.compile(r"[A-Z]+|\d+")
MAX_LENGTH = 480


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)[:MAX_LENGTH].upper()
    # Punctuation and symbols separate words; letters, digits and CJK stay.
    kept = [
        ch if (ch.isalnum() or ch == "-") and unicodedata.category(ch) != "No" else " "
        for ch in text
    ]
    return _CJK_SPLIT.sub(r" \1 ", "".join(kept))


def tokens(text: str) -> list[str]:
    return _normalise(text).split()


def parse_offer_reply(text: str) -> OfferReply:
    """Read a receiving team's answer to a pre-alert; see the module docstring for the grammar."""
    words = tokens(text)
    if not words:
        raise ReplyParseError("empty reply", kind="empty")
    verb_at = next(
        (
            i
            for i, word in enumerate(words)
            if word in _ACCEPT or word in _DECLINE or _JOINED_ACCEPT.match(word)
        ),
        None,
    )
    if verb_at is None:
        raise ReplyParseError(
            "no answer found: reply '<code> Y' to accept or '<code> N <reason>' to decline",
            kind="no_verb",
        )
    if verb_at > 1:
        raise ReplyParseError(
            "could not read the reply: write the case code, then Y or N", kind="no_verb"
        )
    code: str | None = None
    if verb_at == 1:
        code = words[0]
        if not _CODE.match(code):
            raise ReplyParseError(f"{code!r} is not a case code", kind="bad_code")
    verb, rest = words[verb_at], words[verb_at + 1 :]

    joined = _JOINED_ACCEPT.match(verb)
    if joined:
        rest = [joined.group(2), *rest]
    if joined or verb in _ACCEPT:
        return OfferReply(code=code, accept=True, minutes=_minutes(rest, code))

    if not rest:
        raise ReplyParseError(
            "a decline needs a reason: FULL, THEATRE, BLOOD, STAFF, NICU or OTHER",
            kind="missing_reason",
            code=code,
        )
    reason = _REASONS.get(rest[0])
    if reason is None:
        raise ReplyParseError(
            f"unknown reason {rest[0]!r}: use FULL, THEATRE, BLOOD, STAFF, NICU or OTHER",
            kind="bad_reason",
            code=code,
        )
    return OfferReply(code=code, accept=False, reason=reason, note=" ".join(rest[1:])[:200])


def _minutes(rest: list[str], code: str | None) -> int | None:
    if not rest:
        return None
    if not rest[0].isdecimal() or not rest[0].isascii():
        raise ReplyParseError(
            "after Y, only the minutes until you are ready may follow (e.g. Y 20)",
            kind="extra",
            code=code,
        )
    if any(word not in _MINUTE_UNITS for word in rest[1:]):
        raise ReplyParseError(
            "after the minutes, nothing else may follow (e.g. Y 20)", kind="extra", code=code
        )
    if len(rest[0]) > 4 or int(rest[0]) > 1440:
        raise ReplyParseError("minutes must be between 0 and 1440", kind="bad_minutes", code=code)
    return int(rest[0])


def is_capacity_reply(text: str) -> bool:
    words = tokens(text)
    return bool(words) and (words[0] in _CAPACITY_WORDS or words[0].startswith("CAP"))


def parse_capacity_reply(text: str) -> CapacityReply:
    """``CAP OB 3 ICU 1 NICU 0`` → ``{"obstetric": 3, "maternal_icu": 1, "nicu": 0}``."""
    words: list[str] = []
    for word in tokens(text):
        # "OB3" and "CAP" glued to a key are split into letter and digit runs.
        words.extend(_ASCII_RUN.findall(word) if word.isascii() else [word])
    if not words or words[0] not in _CAPACITY_WORDS:
        raise ReplyParseError("a bed report starts with CAP", kind="capacity")
    pairs = words[1:]
    if not pairs:
        raise ReplyParseError("no beds given: e.g. CAP OB 3 ICU 1 NICU 0", kind="capacity")
    beds: dict[str, int] = {}
    i = 0
    while i < len(pairs):
        key = _BED_KEYS.get(pairs[i])
        if key is None:
            raise ReplyParseError(
                f"unknown bed type {pairs[i]!r}: use OB, ICU or NICU", kind="capacity"
            )
        if i + 1 >= len(pairs) or not (pairs[i + 1].isdecimal() and pairs[i + 1].isascii()):
            raise ReplyParseError(f"{pairs[i]} needs a number of free beds", kind="capacity")
        if key in beds:
            raise ReplyParseError(f"{pairs[i]} is given twice", kind="capacity")
        value = pairs[i + 1]
        if len(value) > 4 or int(value) > 999:
            raise ReplyParseError(f"{pairs[i]}: {value} beds is not plausible", kind="capacity")
        beds[key] = int(value)
        i += 2
    return CapacityReply(beds=beds)
