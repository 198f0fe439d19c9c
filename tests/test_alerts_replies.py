"""The SMS reply grammar: what it accepts, what it refuses, and that it never crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.replies import (
    CapacityReply,
    DeclineReason,
    OfferReply,
    ReplyParseError,
    is_capacity_reply,
    parse_capacity_reply,
    parse_offer_reply,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A7K2 Y", OfferReply("A7K2", True)),
        ("a7k2 yes 20", OfferReply("A7K2", True, minutes=20)),
        ("  A7K2   Y   20 min ", OfferReply("A7K2", True, minutes=20)),
        ("Ａ７Ｋ２　Ｙ　３０", OfferReply("A7K2", True, minutes=30)),
        ("A7K2:Y,15!", OfferReply("A7K2", True, minutes=15)),
        ("A7K2 Y20", OfferReply("A7K2", True, minutes=20)),
        ("A7K2 是", OfferReply("A7K2", True)),
        ("A7K2接收，30分钟", OfferReply("A7K2", True, minutes=30)),
        ("同意", OfferReply(None, True)),
        ("y", OfferReply(None, True)),
        ("A7K2 N FULL", OfferReply("A7K2", False, reason=DeclineReason.FULL)),
        (
            "a7k2 no theatre busy till 3pm",
            OfferReply("A7K2", False, reason=DeclineReason.THEATRE, note="BUSY TILL 3PM"),
        ),
        ("A7K2 否 满床", OfferReply("A7K2", False, reason=DeclineReason.FULL)),
        ("A7K2拒绝，血源", OfferReply("A7K2", False, reason=DeclineReason.BLOOD)),
        ("不接收 新生儿", OfferReply(None, False, reason=DeclineReason.NICU)),
        ("N staff", OfferReply(None, False, reason=DeclineReason.STAFF)),
        (
            "A7K2 N 其他 设备故障",
            OfferReply("A7K2", False, reason=DeclineReason.OTHER, note="设备故障"),
        ),
        ("A7K2 N 人员", OfferReply("A7K2", False, reason=DeclineReason.STAFF)),
        ("A7K2 N 手术室", OfferReply("A7K2", False, reason=DeclineReason.THEATRE)),
    ],
)
def test_offer_replies_are_read(text: str, expected: OfferReply) -> None:
    assert parse_offer_reply(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   ，。 ", "empty"),
        ("hello there", "no_verb"),
        ("A7K2 N", "missing_reason"),
        ("A7K2 拒绝", "missing_reason"),
        ("A7K2 N BUSY", "bad_reason"),
        ("A7K2 Y 99999", "bad_minutes"),
        ("A7K2 Y 2000", "bad_minutes"),
        ("A7K2 Y maybe", "extra"),
        ("A7K2 Y 20 later", "extra"),
        ("不好", "bad_code"),
        ("case A7K2 Y", "no_verb"),
    ],
)
def test_unreadable_offer_replies_say_what_to_send(text: str, kind: str) -> None:
    with pytest.raises(ReplyParseError) as caught:
        parse_offer_reply(text)
    assert caught.value.kind == kind
    assert str(caught.value)


def test_a_decline_without_reason_keeps_the_code_for_the_help_text() -> None:
    with pytest.raises(ReplyParseError) as caught:
        parse_offer_reply("a7k2 n")
    assert caught.value.code == "A7K2"
    assert "FULL" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "beds"),
    [
        ("CAP OB 3 ICU 1 NICU 0", {"obstetric": 3, "maternal_icu": 1, "nicu": 0}),
        ("cap nicu 2", {"nicu": 2}),
        ("CAP ICU 1, OB 4", {"maternal_icu": 1, "obstetric": 4}),
        ("CAP OB3 ICU1", {"obstetric": 3, "maternal_icu": 1}),
        ("ＣＡＰ　ＯＢ　５", {"obstetric": 5}),
        ("床位 产科 3 重症 1 新生儿 2", {"obstetric": 3, "maternal_icu": 1, "nicu": 2}),
        ("床位 产科3 新生儿0", {"obstetric": 3, "nicu": 0}),
    ],
)
def test_capacity_replies_are_read(text: str, beds: dict[str, int]) -> None:
    assert is_capacity_reply(text)
    assert parse_capacity_reply(text) == CapacityReply(beds=beds)


@pytest.mark.parametrize(
    "text", ["CAP", "CAP OB", "CAP OB three", "CAP OB 3 OB 4", "CAP XX 3", "CAP OB 5000", "OB 3"]
)
def test_unreadable_capacity_replies_are_refused(text: str) -> None:
    with pytest.raises(ReplyParseError):
        parse_capacity_reply(text)


def test_offer_replies_are_not_capacity_replies() -> None:
    assert not is_capacity_reply("A7K2 Y")
    assert not is_capacity_reply("")


REPLYISH = st.lists(
    st.sampled_from(
        [
            "A7K2",
            "Y",
            "N",
            "YES",
            "是",
            "否",
            "接收",
            "满床",
            "FULL",
            "CAP",
            "OB",
            "ICU",
            "NICU",
            "3",
            "20",
            "99999",
            "，",
            " ",
            "　",
            "分钟",
            "不",
            "Ｙ",
            "新生儿",
            "-",
            "Y20",
            "0",
        ]
    ),
    max_size=8,
).map(" ".join)
ANY_TEXT = st.one_of(st.text(max_size=300), REPLYISH)


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_the_offer_parser_never_crashes(text: str) -> None:
    try:
        reply = parse_offer_reply(text)
    except ReplyParseError:
        return
    assert reply.accept == (reply.reason is None)
    assert reply.minutes is None or 0 <= reply.minutes <= 1440


@settings(max_examples=400, deadline=None)
@given(ANY_TEXT)
def test_the_capacity_parser_never_crashes(text: str) -> None:
    is_capacity_reply(text)
    try:
        reply = parse_capacity_reply(text)
    except ReplyParseError:
        return
    assert reply.beds
    assert all(0 <= value <= 999 for value in reply.beds.values())
