"""Phone numbers for people: one way, for the whole program, to show a number and to dial it.

Numbers are stored in E.164 (``+8613910000002``, checked on the way in by the registry and the
accounts). People read them grouped as their own country writes them: a mainland mobile as
``139 1000 0002``, a landline with its trunk prefix and area code as ``0851 8888 0000`` (what
one dials from a mainland phone), a number abroad in international form (``+852 9123 4567``,
``+44 7911 123456``). The grouping and the area-code lengths come from Google's libphonenumber
metadata through the ``phonenumbers`` library, not from rules of our own.

Both functions are for display and links: they never raise, so a page with a malformed number
in the registry still renders (the number as stored, or no link).
"""

from __future__ import annotations

import phonenumbers

#: The region whose numbers are shown in national form; every other one is shown international.
HOME_REGION = "CN"


def _parse(text: str, home: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, home)
    except phonenumbers.NumberParseException:
        return None


def display(e164: str, *, home: str = HOME_REGION) -> str:
    """The number grouped for reading; the input unchanged when it is not a valid number.

    ``home`` is the reader's region: its numbers are shown as dialled at home (national
    format, with the trunk prefix), every other number in international format.
    """
    text = (e164 or "").strip()
    number = _parse(text, home) if text else None
    if number is None or not phonenumbers.is_valid_number(number):
        return text
    if phonenumbers.region_code_for_number(number) == home:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def tel_uri(e164: str, *, home: str = HOME_REGION) -> str:
    """A ``tel:`` link (RFC 3966, the global E.164 form) for the number; ``""`` when there is
    nothing a phone could dial.

    A number of a possible length is linked even when the library's metadata does not know its
    range yet (a new mobile prefix): a link that dials what is stored beats no link at all.
    """
    text = (e164 or "").strip()
    number = _parse(text, home) if text else None
    if number is None or not phonenumbers.is_possible_number(number):
        return ""
    return "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
