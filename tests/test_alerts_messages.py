"""SMS texts and segment counting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import messages, segments
from alerts.messages import prealert
from alerts.segments import SegmentInfo, sms_segments


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


LINK = "https://gc.test/l/AbCdEfGhIjK"
# A production address of a plausible length, and the longest case code the database holds.
LONG_LINK = "https://greenchannel.example.gov.cn/l/AbCdEfGhIjK"
LONG_CODE = "ACDEFHJK"


def assert_kept(text: str, language: str, *, code: str, deadline: str, link: str) -> None:
    """What a pre-alert never gives up: the code, the deadline, the reply, the link."""
    assert sms_segments(text).segments <= 2, text
    assert sms_segments(messages.escalated(language, text)).segments <= 2, text
    assert link in text and text.endswith(link), text
    if language == "zh":
        assert f"请{deadline}前回复{code} Y 接收；{code} N 原因" in text, text
    else:
        assert f"Reply by {deadline}: {code} Y to accept, or {code} N " in text, text


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


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_pre_alert_says_what_the_receiving_team_needs_to_decide(language: str) -> None:
    zh = language == "zh"
    text = prealert(
        language,
        code="A7K2",
        condition="产后出血" if zh else "Postpartum haemorrhage",
        colour="",
        origin="高岭镇卫生院" if zh else "Gaoling THC",
        eta_minutes=35,
        eta_estimate=True,
        callback_phone="+8613812345678",
        shock=True,
        massive_bleeding_ml=1800,
        delivered=True,
        answer_by="16:03",
        link=LINK,
    )
    assert_kept(text, language, code="A7K2", deadline="16:03", link=LINK)
    if zh:
        # Two UCS-2 segments are 130 characters with the escalation's room: the list of
        # decline words gives way first (a wrong word gets the list back in the help reply).
        assert text == (
            "【绿色通道】A7K2：产后出血，休克，出血1800ml，已分娩。自高岭镇卫生院，约35分钟到(估算)。"
            f"医生电话+8613812345678。请16:03前回复A7K2 Y 接收；A7K2 N 原因。{LINK}"
        )
    else:
        assert text == (
            "GREEN CHANNEL pre-alert A7K2: Postpartum haemorrhage, SHOCK, MASSIVE BLEED 1800ml, "
            "delivered. From Gaoling THC, ETA 35 min (estimate). Doctor +8613812345678. "
            "Reply by 16:03: A7K2 Y to accept, or A7K2 N FULL/THEATRE/BLOOD/STAFF/NICU/OTHER. "
            f"Case: {LINK}"
        )


def test_a_tight_pre_alert_keeps_the_township_and_drops_county_and_health_centre_whole() -> None:
    # Seen in the demo: "自…石镇卫生院" lost the 青 of 青石镇, the one word that says where.
    text = prealert(
        "zh",
        code="VMNW",
        condition="产后出血",
        colour="",
        origin="临河县青石镇卫生院",
        eta_minutes=15,
        callback_phone="+8613910000002",
        shock=True,
        massive_bleeding_ml=1500,
        delivered=True,
        answer_by="18:19",
        link="http://127.0.0.1:5077/l/CdJDAQwvWMT",
    )
    assert segments.sms_segments(text).segments <= 2
    assert "青石镇" in text and "…石镇" not in text
    assert segments._shortened("临河县青石镇卫生院", 1, "zh") == "…青石镇卫生院"
    assert segments._shortened("临河县青石镇卫生院", 4, "zh") == "…青石镇"
    # A county hospital has no township to keep: it loses its head one character at a time.
    assert segments._shortened("白湾县妇幼保健院", 1, "zh") == "…湾县妇幼保健院"


@pytest.mark.parametrize("language", ["zh", "en"])
def test_undelivered_says_baby_inside_and_unknown_says_nothing(language: str) -> None:
    def text(delivered: bool | None) -> str:
        return prealert(
            language,
            code="A7K2",
            condition="子痫" if language == "zh" else "Eclampsia",
            colour="",
            origin="镇" if language == "zh" else "THC",
            eta_minutes=20,
            callback_phone="+8613812345678",
            delivered=delivered,
        )

    inside, unknown = ("未分娩", "已分娩") if language == "zh" else ("baby inside", "delivered")
    assert inside in text(False)
    assert inside not in text(None) and unknown not in text(None)
    assert "(估算)" not in text(None) and "estimate" not in text(None)  # a road-network ETA


_FLAGS = st.fixed_dictionaries(
    {
        "shock": st.booleans(),
        "massive_bleeding_ml": st.sampled_from([None, 1500, 12000]),
        "delivered": st.sampled_from([None, True, False]),
        "eta_estimate": st.booleans(),
        "eta_minutes": st.sampled_from([None, 5, 999]),
        "gestation_weeks": st.sampled_from([None, 24, 41]),
        "weight_g": st.sampled_from([None, 480, 4500]),
        "colour": st.sampled_from(["", "red", "purple"]),
        "callback_phone": st.sampled_from(["", "+8613812345678", "+86 138 1234 5678"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    _FLAGS,
    st.text(max_size=120),
    st.text(max_size=120),
    st.sampled_from(["zh", "en"]),
    st.sampled_from(["A7K2", "A7K2X9", LONG_CODE]),
    st.sampled_from([LINK, LONG_LINK]),
    st.sampled_from(["00:00", "16:03", "23:59"]),
)
def test_every_combination_of_flags_names_and_codes_fits_and_keeps_code_deadline_reply_and_link(
    flags: dict[str, object],
    condition: str,
    origin: str,
    language: str,
    code: str,
    link: str,
    deadline: str,
) -> None:
    text = prealert(
        language,
        code=code,
        condition=condition,
        origin=origin,
        answer_by=deadline,
        link=link,
        **flags,  # type: ignore[arg-type]
    )
    assert_kept(text, language, code=code, deadline=deadline, link=link)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_crowded_pre_alert_gives_up_colour_and_weight_before_shock(language: str) -> None:
    zh = language == "zh"
    text = prealert(
        language,
        code=LONG_CODE,
        condition="产后出血伴失血性休克；胎盘植入" if zh else "Postpartum haemorrhage; accreta",
        colour="purple",
        origin="都安瑶族自治县高岭镇中心卫生院" if zh else "Gaoling Township Central Health Centre",
        eta_minutes=185,
        callback_phone="+8613812345678",
        gestation_weeks=32,
        weight_g=1450,
        shock=True,
        massive_bleeding_ml=1800,
        delivered=False,
        eta_estimate=True,
        answer_by="16:03",
        link=LONG_LINK,
    )
    assert_kept(text, language, code=LONG_CODE, deadline="16:03", link=LONG_LINK)
    shock, bleed, inside, colour, weight = (
        ("休克", "出血1800ml", "未分娩", "紫色", "1450克")
        if zh
        else ("SHOCK", "MASSIVE BLEED 1800ml", "baby inside", "PURPLE", "1450g")
    )
    assert shock in text and bleed in text and inside in text
    assert colour not in text and weight not in text


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
        if segments._fits(text, segments.PREALERT_MAX_SEGMENTS, reserve=True):
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
    assert segments._fit_fields(build, first, second, language=language) == expected


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
    measure = segments.sms_segments

    def counting(text: str) -> SegmentInfo:
        nonlocal measured
        measured += len(text)
        if measured > budget:
            raise AssertionError(f"more than {budget} characters measured: not linear")
        return measure(text)

    monkeypatch.setattr(segments, "sms_segments", counting)
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
