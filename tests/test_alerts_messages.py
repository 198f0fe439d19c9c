"""SMS texts and segment counting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import messages
from alerts.messages import SegmentInfo, prealert, sms_segments


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", SegmentInfo("GSM-7", 1, 0)),
        ("a" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("a" * 161, SegmentInfo("GSM-7", 2, 161)),
        ("a" * 306, SegmentInfo("GSM-7", 2, 306)),
        ("a" * 307, SegmentInfo("GSM-7", 3, 307)),
        ("€" * 80, SegmentInfo("GSM-7", 1, 160)),
        ("[" * 81, SegmentInfo("GSM-7", 2, 162)),
        # An escape pair is never split across segments.
        ("a" * 152 + "€" + "a" * 152, SegmentInfo("GSM-7", 3, 306)),
        ("中" * 70, SegmentInfo("UCS-2", 1, 70)),
        ("中" * 71, SegmentInfo("UCS-2", 2, 71)),
        ("a" * 100 + "中", SegmentInfo("UCS-2", 2, 101)),
        ("é" * 160, SegmentInfo("GSM-7", 1, 160)),
        ("ê", SegmentInfo("UCS-2", 1, 1)),
        ("😀" * 35, SegmentInfo("UCS-2", 1, 70)),
        # A surrogate pair is never split either.
        ("中" * 66 + "😀" + "中" * 66, SegmentInfo("UCS-2", 3, 134)),
    ],
)
def test_segments_are_counted_as_the_network_does(text: str, expected: SegmentInfo) -> None:
    assert sms_segments(text) == expected


WORST_CASES = [
    {
        "zh": (
            "产后出血伴失血性休克；胎盘植入",
            "广西壮族自治区河池市都安瑶族自治县高岭镇中心卫生院",
        ),
        "en": (
            "Postpartum haemorrhage with haemorrhagic shock; placenta accreta",
            "Du'an Yao Autonomous County Gaoling Township Central Health Centre, Hechi",
        ),
    },
    {
        "zh": ("早产儿呼吸窘迫", "南宁市武鸣区两江镇卫生院"),
        "en": ("Preterm newborn respiratory distress", "Liangjiang Township Health Centre"),
    },
]


@pytest.mark.parametrize("case", WORST_CASES)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_pre_alert_fits_two_segments_even_when_escalated(
    case: dict[str, tuple[str, str]], language: str
) -> None:
    condition, origin = case[language]
    text = prealert(
        language,
        code="A7K2X9",
        condition=condition,
        colour="purple",
        origin=origin,
        eta_minutes=185,
        callback_phone="+8613812345678",
        gestation_weeks=32,
        weight_g=1450,
    )
    assert sms_segments(text).segments <= 2
    assert sms_segments(messages.escalated(language, text)).segments <= 2
    assert "A7K2X9 Y" in text and "A7K2X9 N" in text
    assert "+8613812345678" in text and "185" in text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200), st.sampled_from(["zh", "en"]))
def test_a_pre_alert_never_grows_past_two_segments(
    condition: str, origin: str, language: str
) -> None:
    text = prealert(
        language,
        code="A7K2X9",
        condition=condition,
        colour="red",
        origin=origin,
        eta_minutes=999,
        callback_phone="+8613812345678",
        gestation_weeks=40,
        weight_g=4500,
    )
    assert sms_segments(text).segments <= 2


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_other_texts_are_short_and_in_the_readers_language(language: str) -> None:
    zh = language == "zh"
    hospital = "南宁市妇幼保健院" if zh else "Nanning Maternal and Child Health Hospital"
    county = "武鸣区妇幼保健院" if zh else "Wuming District MCH Hospital"
    texts = [
        messages.reply_confirmation(language, code="A7K2", accepted=True, minutes=20, reason=None),
        messages.reply_confirmation(
            language, code="A7K2", accepted=False, minutes=None, reason="FULL"
        ),
        messages.case_accepted(
            language,
            code="A7K2",
            destination=hospital,
            eta_minutes=45,
            destination_phone="+867712345678",
        ),
        messages.patient_arrived(language, code="A7K2", destination=hospital),
        messages.capacity_reminder(language, facility_name=county, hours=12),
        messages.coordinator_unanswered(
            language, code="A7K2", facility_name=county, minutes=20, clinic_phone="+8613800000001"
        ),
        messages.coordinator_unplaced(
            language,
            code="A7K2",
            condition="PPH" if not zh else "产后出血",
            origin="高岭镇卫生院" if zh else "Gaoling THC",
            asked=4,
            clinic_phone="+8613800000001",
        ),
        messages.coordinator_stale_capacity(language, facility_name=county, hours=24),
        messages.reply_help(language, kind="missing_reason", code="A7K2"),
    ]
    for text in texts:
        assert sms_segments(text).segments <= 2, text
    assert ("接收" in texts[0]) == (language == "zh")
    assert "CAP OB 3 ICU 1 NICU 0" in texts[4]


def _one_character_at_a_time(
    build: Callable[[str, str], str], first: str, second: str, *, language: str
) -> str:
    """The plain reading of the rule (the code before issue 22): shorten the longer field by
    one character, measure the whole text, again, until it fits."""

    def shorten(value: str) -> str:
        if language == "zh":
            core = value[1:] if value.startswith("…") else value
            return "…" + core[1:]
        core = value[:-3] if value.endswith("...") else value
        return core[:-1] + "..."

    while True:
        text = build(first, second)
        if messages._fits(text, messages.PREALERT_MAX_SEGMENTS, reserve=True):
            return text
        if len(first) >= len(second) and len(first) > 6:
            first = shorten(first)
        elif len(second) > 6:
            second = shorten(second)
        else:
            return text


_AWKWARD = st.text(alphabet="aZ .…€[中😀éê", max_size=400)


@settings(max_examples=300, deadline=None)
@given(
    _AWKWARD,
    _AWKWARD,
    st.sampled_from(["zh", "en"]),
    st.text(alphabet="a中€", max_size=150),
    st.text(alphabet="a中€", max_size=150),
)
def test_shortening_gives_the_text_the_one_character_at_a_time_reading_gives(
    first: str, second: str, language: str, head: str, tail: str
) -> None:
    def build(a: str, b: str) -> str:
        return f"{head}{a}/{b}{tail}"

    expected = _one_character_at_a_time(build, first, second, language=language)
    assert messages._fit_fields(build, first, second, language=language) == expected


@pytest.mark.parametrize("language", ["zh", "en"])
def test_shortening_a_pre_alert_of_any_length_takes_linear_time(
    language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The condition text of a case with 10,000 conditions: 50,000 characters in Chinese,
    # 240,000 in English. Measuring such a text once per character shortened (the old way)
    # examined billions of characters, inside the transaction creating the case.
    name = "产后出血" if language == "zh" else "Postpartum haemorrhage"
    condition = ("、" if language == "zh" else ", ").join([name] * 10_000)
    origin = "高岭镇中心卫生院" * 1000 if language == "zh" else "Gaoling Township " * 1000
    budget = 20 * (len(condition) + len(origin))
    measured = 0
    measure = messages.sms_segments

    def counting(text: str) -> SegmentInfo:
        nonlocal measured
        measured += len(text)
        if measured > budget:
            raise AssertionError(f"more than {budget} characters measured: not linear")
        return measure(text)

    monkeypatch.setattr(messages, "sms_segments", counting)
    text = prealert(
        language,
        code="A7K2X9",
        condition=condition,
        colour="red",
        origin=origin,
        eta_minutes=45,
        callback_phone="+8613812345678",
    )
    assert measure(text).segments <= 2
    assert measure(messages.escalated(language, text)).segments <= 2
    assert "A7K2X9 Y" in text and "+8613812345678" in text
