"""Phone numbers are shown grouped as their readers write them, and dialled from a tel: link."""

from __future__ import annotations

import pytest

from core.phones import display, tel_uri


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+8613910000002", "139 1000 0002"),  # mainland mobile: 3-4-4
        ("+8618600000000", "186 0000 0000"),
        ("+8685188880000", "0851 8888 0000"),  # Guiyang: four-digit area code with trunk 0
        ("+862388880000", "023 8888 0000"),  # Chongqing: three-digit area code
        ("+861088880000", "010 8888 0000"),  # Beijing
    ],
)
def test_a_mainland_number_is_shown_as_dialled_in_china(e164: str, shown: str) -> None:
    assert display(e164) == shown


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        (
            "+85291234567",
            "+852 9123 4567",
        ),  # Hong Kong is dialled internationally from the mainland
        ("+14155550123", "+1 415-555-0123"),
        ("+447400123456", "+44 7400 123456"),
    ],
)
def test_a_number_abroad_is_shown_in_international_form(e164: str, shown: str) -> None:
    assert display(e164) == shown


def test_the_readers_home_region_decides_what_is_national() -> None:
    assert display("+8613910000002", home="GB") == "+86 139 1000 0002"
    assert display("+447400123456", home="GB") == "07400 123456"


@pytest.mark.parametrize("text", ["", "   ", "not a number", "+86400", "+999123", "12"])
def test_what_is_not_a_valid_number_is_shown_as_it_was_given(text: str) -> None:
    assert display(text) == text.strip()


def test_display_tolerates_none_from_an_unset_column() -> None:
    assert display(None) == ""  # type: ignore[arg-type]
    assert tel_uri(None) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("+8613910000002", "tel:+8613910000002"),
        ("+8685188880000", "tel:+8685188880000"),
        ("+85291234567", "tel:+85291234567"),
        (" +86 139 1000 0002 ", "tel:+8613910000002"),
        ("13910000002", "tel:+8613910000002"),  # national form, read as a mainland number
    ],
)
def test_a_tel_link_dials_the_global_number(text: str, uri: str) -> None:
    assert tel_uri(text) == uri


@pytest.mark.parametrize("text", ["", "call me", "+86", "12"])
def test_nothing_dialable_gives_no_tel_link(text: str) -> None:
    assert tel_uri(text) == ""
