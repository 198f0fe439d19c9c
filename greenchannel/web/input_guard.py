"""One guard in front of every route: text the database cannot keep is refused with a 400.

Every string that reaches the service (the path, the query string, a header, a form field, a
JSON body's keys and values, a CSV body) is checked before any view runs, so that no single
route has to remember it:

- a NUL character (PostgreSQL's text columns refuse it, so a query naming it fails with a 500);
- a lone UTF-16 surrogate (``"\\ud800"`` in a JSON body: Python keeps it, but it cannot be encoded
  to UTF-8, so writing it to a database, a log line or an SMS fails);
- a JSON body nested deeper than :data:`MAX_JSON_DEPTH` (the parser recurses and runs out of
  stack) or that the parser cannot read at all (an integer of thousands of digits).

The refusal names the field: ``{"error": "invalid", "message": "...", "field": "patient.ref"}``
on the API and the webhooks; the pages answer with their own 400 page (their error handler).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest

MAX_JSON_DEPTH = 32
# NUL, and a surrogate code point (never valid on its own in text that leaves Python).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BadInput(BadRequest):
    """A 400 that names the field it refuses."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def unstorable(value: str) -> str | None:
    """Why ``value`` cannot be kept, or None when it can."""
    match = _UNSTORABLE.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "must not contain a NUL character"
    return "must not contain a lone UTF-16 surrogate (invalid Unicode)"


def _printable(name: str) -> str:
    """A field name fit for the answer, even when the name itself is the bad text."""
    return _UNSTORABLE.sub("?", name)[:80] or "?"


def _check(field: str, value: str) -> None:
    reason = unstorable(value)
    if reason:
        raise BadInput(_printable(field), reason)


def _walk(parsed: Any) -> Iterator[tuple[str, str, int]]:
    """Every (field, text, depth) of a parsed JSON value, keys included (``patient.ref``,
    ``conditions[2]``); iterative, so that depth is measured and not recursed into."""
    stack: list[tuple[Any, str, int]] = [(parsed, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            yield path or "body", value, depth
        elif isinstance(value, dict):
            yield path or "body", "", depth + 1
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                yield sub, str(key), depth + 1
                stack.append((item, sub, depth + 1))
        elif isinstance(value, list):
            yield path or "body", "", depth + 1
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_json(data: bytes) -> None:
    if _plainly_fine(data):
        return
    _check_json_fully(data)


def _plainly_fine(data: bytes) -> bool:
    """True when ``data`` cannot hold anything :func:`_check_json_fully` refuses, told without
    parsing it (the usual body). In UTF-8 JSON text a NUL or a surrogate reaches the parsed
    strings only as a ``\\u`` escape or as the bytes of an encoded surrogate (``json.loads``
    decodes with ``surrogatepass``), whose lead byte is 0xED; a NUL byte means UTF-16 or UTF-32
    text (or a raw NUL): each of those goes the whole way. Nesting cannot go deeper than the
    count of brackets; no integer is longer than the text."""
    return (
        len(data) < sys.get_int_max_str_digits()
        and b"\\u" not in data
        and b"\xed" not in data
        and b"\x00" not in data
        and data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH
    )


def _check_json_fully(data: bytes) -> None:
    try:
        parsed = json.loads(data)
    except RecursionError:
        raise BadInput("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        # Malformed JSON is the views' to refuse (their parser answers 400); but an integer too
        # long to convert is a ValueError that is not a JSONDecodeError, and would be a 500.
        try:
            json.loads(data, parse_int=lambda digits: 0)
        except (ValueError, RecursionError):
            return
        raise BadInput("body", "a number in the JSON body is too long") from None
    for field, text, depth in _walk(parsed):
        if depth > MAX_JSON_DEPTH:
            raise BadInput("body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        _check(field, text)


def check_request() -> None:
    """Refuse the request when any of its text cannot be stored (see the module's doc)."""
    texts = [("path", request.path)]
    texts += [(k, v) for k, v in (request.view_args or {}).items() if isinstance(v, str)]
    for key, value in request.args.items(multi=True):
        texts += [(key, key), (key, value)]
    for key, value in request.headers.items():
        texts += [(f"header {key}", key), (f"header {key}", value)]
    # one search over all of it; only a request that fails is searched field by field
    if _UNSTORABLE.search("".join(value for _, value in texts)) is not None:
        for field, value in texts:
            _check(field, value)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    mimetype = request.mimetype or ""
    if "json" in mimetype:
        data = request.get_data(cache=True)
        if data:
            _check_json(data)
    elif request.form:
        for key, value in request.form.items(multi=True):
            _check(key, key)
            _check(key, value)
    elif mimetype.startswith("text/"):
        data = request.get_data(cache=True)
        if b"\x00" in data:
            raise BadInput("body", "must not contain a NUL character")


def init_app(app: Flask) -> None:
    app.before_request(check_request)
