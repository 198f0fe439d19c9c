"""The input guard's quick look at a JSON body (``input_guard._plainly_fine``) lets through only
bodies the whole check (parse every string, measure the depth) would let through too.

Generated JSON values with NULs, lone surrogates, deep nesting and long integers, written every
way a client might (escaped or raw UTF-8, UTF-16 and UTF-32, with a byte-order mark), and raw
bytes: whenever the quick look says "plainly fine", the whole check must agree.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenchannel.web.input_guard import (
    MAX_JSON_DEPTH,
    BadInput,
    _check_json_fully,
    _plainly_fine,
)

_TEXT = st.text(alphabet=st.characters(codec=None), max_size=12) | st.sampled_from(
    ["\x00", "\ud800", "a\udfffb", "产后出血", "\u0000x"]
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=40,
)


def _refused(data: bytes) -> bool:
    try:
        _check_json_fully(data)
    except BadInput:
        return True
    return False


def _encodings(value: object) -> list[bytes]:
    ascii_text = json.dumps(value, ensure_ascii=True)
    text = json.dumps(value, ensure_ascii=False)
    out = [ascii_text.encode()]
    for codec in ("utf-8", "utf-16", "utf-16-le", "utf-32", "utf-8-sig"):
        out.append(text.encode(codec, "surrogatepass"))
    return out


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_a_body_the_quick_look_passes_is_one_the_whole_check_passes(value: object) -> None:
    for data in _encodings(value):
        if _plainly_fine(data):
            assert not _refused(data), data


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_raw_bytes_the_quick_look_passes_are_bytes_the_whole_check_passes(data: bytes) -> None:
    if _plainly_fine(data):
        assert not _refused(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"case": {"conditions": ["PPH"], "note": "\\u0000"}}',
        '{"note": "\ud800"}'.encode("utf-8", "surrogatepass"),
        b'{"note": "\\u0000"}'.decode().encode("utf-16"),
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"n": ' + b"9" * 5000 + b"}",
    ],
    ids=["escaped NUL", "encoded surrogate", "UTF-16 escaped NUL", "deep", "long integer"],
)
def test_what_the_guard_refuses_is_never_waved_through(data: bytes) -> None:
    assert not _plainly_fine(data)
    assert _refused(data)


def test_an_everyday_route_body_is_plainly_fine() -> None:
    body = b'{"origin": {"facility": "LH-T01"}, "case": {"conditions": ["PPH"]}}'
    assert _plainly_fine(body)
