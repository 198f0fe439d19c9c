"""SMS segments: how many a text costs on the network (GSM-7 or UCS-2, concatenated), and the
fitting of a text's free fields into a number of segments by shortening them, fast even for
absurd lengths. The wording lives in :mod:`alerts.messages`."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# GSM 03.38 basic character set (the escape character itself excluded) and extension table;
# an extension character costs two septets (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

PREALERT_MAX_SEGMENTS = 2
# The escalation prefix must still fit: room kept free in the pre-alert, in units.
_ESCALATION_RESERVE = {"GSM-7": 12, "UCS-2": 4}


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def _pack(costs: Iterable[int], limit: int) -> int:
    """Segments needed when no character (escape pair, surrogate pair) is split across two."""
    segments, used = 1, 0
    for cost in costs:
        if used + cost > limit:
            segments += 1
            used = 0
        used += cost
    return segments


def sms_segments(text: str) -> SegmentInfo:
    """How the network will carry ``text``: encoding, number of segments, units used."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        costs = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
        single, multi, encoding = GSM_SINGLE, GSM_MULTI, "GSM-7"
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi, encoding = UCS2_SINGLE, UCS2_MULTI, "UCS-2"
    units = sum(costs)
    segments = 1 if units <= single else _pack(costs, multi)
    return SegmentInfo(encoding=encoding, segments=segments, units=units)


def _lang(language: str) -> str:
    return "en" if language == "en" else "zh"


def _fits(text: str, segments: int, reserve: bool) -> bool:
    info = sms_segments(text)
    limit = UCS2_MULTI if info.encoding == "UCS-2" else GSM_MULTI
    budget = limit * segments if segments > 1 else (UCS2_SINGLE if limit == 67 else GSM_SINGLE)
    if reserve:
        budget -= _ESCALATION_RESERVE[info.encoding]
    return info.units <= budget and info.segments <= segments


# No longer text can fit: every character costs at least one unit.
_MAX_FITTING_CHARS = max(
    GSM_MULTI * PREALERT_MAX_SEGMENTS - _ESCALATION_RESERVE["GSM-7"],
    UCS2_MULTI * PREALERT_MAX_SEGMENTS - _ESCALATION_RESERVE["UCS-2"],
)


def _core(value: str, language: str) -> str:
    """What shortening eats into: ``value`` without the ellipsis a shortening puts on it."""
    if language == "zh":
        return value[1:] if value.startswith("…") else value
    return value[:-3] if value.endswith("...") else value


_ADMIN_PREFIX = re.compile(r"^(?:[^省市县区旗州盟镇乡]{1,8}?[省市县区旗州盟])+")
_TOWNSHIP = re.compile(r"(?:镇|乡|街道)")
_CENTRE_SUFFIXES = ("社区卫生服务中心", "卫生服务中心", "中心卫生院", "卫生院")


def _zh_whole_units(core: str) -> tuple[int, int]:
    """For a township's name (``临河县青石镇卫生院``): how many leading characters name the
    county or city above it (3) and how many trailing ones only say "health centre" (3). A
    shortening removes these whole before it touches the township's own name, which is what a
    reader needs (``…青石镇``, never ``…石镇卫生院``). Other names: (0, 0)."""
    prefix = _ADMIN_PREFIX.match(core)
    head = prefix.end() if prefix else 0
    body = core[head:]
    if not _TOWNSHIP.search(body):
        return 0, 0
    for suffix in _CENTRE_SUFFIXES:
        rest = body.removesuffix(suffix)
        if rest != body and _TOWNSHIP.search(rest[-2:]) and len(rest) >= 2:
            return head, len(suffix)
    return head, 0


def _shortened(value: str, times: int, language: str) -> str:
    """``value`` shortened by ``times`` characters (at least). Chinese names carry their
    distinctive part (the township, the hospital) at the end, so they lose their head, a
    township's county and its "health centre" whole first; English ones lose their tail. The
    first time, the ellipsis takes the place of the lost character. Removing whole units may
    remove more than asked, never less, so a longer shortening is never a longer text."""
    if times <= 0:
        return value
    core = _core(value, language)
    if language == "zh":
        head, tail = _zh_whole_units(core)
        if head and times <= head:
            return "…" + core[head:]
        if head or tail:
            body, extra = core[head:], times - head
            if tail:
                if extra <= tail:
                    return "…" + body[: len(body) - tail]
                body, extra = body[: len(body) - tail], extra - tail
            return "…" + body[extra:]
        return "…" + core[times:]
    return core[: max(len(core) - times, 0)] + "..."


def _shortening_order(first: str, second: str, language: str) -> bytearray:
    """Which field loses a character at each step (0 the first, 1 the second): always the
    longer one (the first on a tie), until both are down to 6 characters.

    Only the lengths decide, so this walks integers and never builds a text.
    """
    ellipsis = 1 if language == "zh" else 3
    cores = (len(_core(first, language)), len(_core(second, language)))
    lengths = [len(first), len(second)]
    times = [0, 0]
    order = bytearray()
    while True:
        if lengths[0] >= lengths[1] and lengths[0] > 6:
            field = 0
        elif lengths[1] > 6:
            field = 1
        else:
            return order
        times[field] += 1
        lengths[field] = ellipsis + max(cores[field] - times[field], 0)
        order.append(field)


def _fit_fields(build: Callable[[str, str], str], first: str, second: str, *, language: str) -> str:
    """Shorten the longer of ``first`` and ``second`` until the pre-alert fits its segments.

    The answer is the text that shortening one character at a time, and measuring after each,
    would give; but that costs time quadratic in the length of the fields (a case with 10,000
    conditions held its transaction for more than 12 minutes). Here the order of the steps comes
    from the lengths alone (:func:`_shortening_order`) and the step that first fits is found by
    binary search: except for the first shortening of each field, which puts an ellipsis in,
    every step deletes one character, and deleting a character never makes a text need more
    units or segments; so between those steps, "fits" turns from no to yes at most once. Texts
    longer than any that could fit are refused by their length, without measuring them.
    """
    order = _shortening_order(first, second, language)

    def text_after(steps: int) -> str:
        times_first = order.count(0, 0, steps)
        return build(
            _shortened(first, times_first, language),
            _shortened(second, steps - times_first, language),
        )

    def fits(steps: int) -> bool:
        text = text_after(steps)
        return len(text) <= _MAX_FITTING_CHARS and _fits(text, PREALERT_MAX_SEGMENTS, reserve=True)

    # Runs of steps that only delete: cut where a field is shortened for the first time.
    starts = sorted({0, *(order.index(field) + 1 for field in (0, 1) if field in order)})
    ends = [*starts[1:], len(order) + 1]
    for low, end in zip(starts, ends, strict=True):
        high = end - 1
        if not fits(high):
            continue
        while low < high:
            middle = (low + high) // 2
            if fits(middle):
                high = middle
            else:
                low = middle + 1
        return text_after(low)
    return text_after(len(order))  # even the shortest does not fit: send it as it is


_TYPOGRAPHY = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "}
)


def gsm_only(text: str) -> str:
    """Text an English SMS can carry in GSM-7: typography simplified, anything else as '?'.

    One character outside GSM-7 would turn the whole message into UCS-2 and more than double
    its segments, so English texts give up exotic characters instead.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHY)
    return "".join(
        ch if ch in _GSM_BASIC or ch in _GSM_EXTENSION else ("" if ch < " " else "?")
        for ch in text
        if ch not in "\r\n\f"
    )
