"""Hostile and careless input against every page, as every role: no 500, nothing over 1 s of work.

The API has its own fuzz from its OpenAPI description (test_fuzz_api_schema.py). The pages have
no description, so this one is built from the app's URL map: every GET and POST route outside
``/api/`` and the webhooks, with its path ids filled in with real ones (a case, its offer, an
attention item, a road closure, a pre-alert link), is sent generated query arguments (the page's
own, url_for's reserved names, the route's own parameter names) or a generated form (every field
name the forms use, each with none, one or several values: numbers out of range, NUL, long text,
words of the vocabulary) carrying a valid CSRF token, by an anonymous visitor, a township clinic,
a hospital, a coordinator and the holder of a pre-alert link.

Generation is derandomized and bounded (``GREENCHANNEL_FUZZ_EXAMPLES`` examples per role and
method, 20 by default), so the run is repeatable and a few seconds long; CI can raise the number.
It runs on SQLite, and on PostgreSQL when GREENCHANNEL_TEST_DATABASE_URL is set. The one-second
bound is on the CPU time a request costs the app (in this process), with a 5 s wall-clock bound
for requests that wait; a wall-clock second alone failed whenever the shared machine was busy.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenchannel.web.db import db
from greenchannel.web.pages_hospital import BED_TYPES
from greenchannel.web.referral_form import TEXT_FIELDS, VITAL_FIELDS
from referral.models import Offer
from tests.world import PPH_REQUEST, World, csrf_from, login, web_world

EXAMPLES = int(os.environ.get("GREENCHANNEL_FUZZ_EXAMPLES", "20"))
SLOWEST_SECONDS = 1.0
WAITING_SECONDS = 5.0
FUZZ = settings(
    max_examples=EXAMPLES * 2,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

FORM_FIELDS = [
    "username",
    "password",
    "next",
    "back",
    "lang",
    "form_key",
    "patient_ref",
    "risk_colour",
    "conditions",
    "treatments",
    "note",
    "callback_phone",
    "onset_time",
    "born_time",
    "delivered",
    "placenta_delivered",
    "avpu",
    "in_shock",
    "ventilated",
    "purple",
    "do_not_move",
    "move_anyway",
    "outcome",
    "facility",
    "reason",
    "agreed_by_phone",
    "eta_minutes",
    "kind",
    "lat",
    "lon",
    "radius_m",
    "speed_factor",
    "diversion",
    "diversion_reason",
    "unavailable",
]
FORM_FIELDS += [*BED_TYPES, *VITAL_FIELDS, *TEXT_FIELDS]
QUERY_FIELDS = [
    *("lang", "next", "back", "saved", "status", "q", "page", "format", "token"),
    *("_method", "_external", "_scheme", "_anchor", "endpoint", "referral_id", "offer_id"),
]
WORDS = [
    *("zh", "en", "1", "0", "-1", "on", "yes", "closed", "slow", "normal", "advisory"),
    *("red", "orange", "yellow", "green", "pph", "eclampsia", "H-A", "H-B", "T-1", "云省"),
    *("A", "V", "P", "U", "delivered", "arrived", "1e308", "nan", "inf", "-0", "9" * 40),
    *("1,5", "2026-11-24T08:00", "24:61", "+8613911110000", "//evil.example", "/clinic"),
    *("javascript:alert(1)", "<script>x</script>", "' OR 1=1 --", "%00", "\x00", "a\x00b"),
]
# Any character a browser can send (a lone surrogate cannot be sent in a form: it arrives as
# U+FFFD), NUL included.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
NUMBER = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
VALUE = st.one_of(st.sampled_from(WORDS), TEXT, NUMBER, st.just("x" * 5000))


def values() -> st.SearchStrategy[list[str]]:
    return st.lists(VALUE, min_size=0, max_size=3)


FORM = st.dictionaries(st.sampled_from(FORM_FIELDS), values(), max_size=12)
QUERY = st.dictionaries(st.one_of(st.sampled_from(QUERY_FIELDS), TEXT), values(), max_size=4)


@dataclass
class Visitor:
    name: str
    client: FlaskClient
    csrf: str


@dataclass
class Pages:
    get: list[str]
    post: list[str]


def _pages(app: Flask, ids: dict[str, str]) -> Pages:
    """Every page route, its path parameters filled with real ids (and, once, a wrong one)."""
    found = Pages(get=[], post=[])
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if path.startswith(("/api/", "/webhooks/", "/static", "/metrics")) or path == "/logout":
            continue  # logging out would end the visitor's session for the rest of the run
        for method, into in (("GET", found.get), ("POST", found.post)):
            if method not in (rule.methods or set()):
                continue
            if not rule.arguments:
                into.append(path)
                continue
            real = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ids.get(m.group(1), "1"), path)
            real = real.replace("<any(accept, decline):answer>", "accept")
            into.append(real)
            into.append(re.sub(r"/\d+(/|$)", r"/2147483647\1", real))  # someone else's id
    return found


@pytest.fixture
def site(app: Flask, client: FlaskClient) -> tuple[World, list[Visitor], Pages]:
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 0
    world = web_world(app, client)
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.tick()  # the pre-alerts go out, with their links
    closure = world.post(
        "coordinator",
        "/api/v1/roads/closures",
        {"lat": 29.9, "lon": 106.2, "radius_m": 300, "kind": "closed", "reason": "landslide"},
    ).get_json()
    with app.app_context():
        offer = db.session.query(Offer).filter_by(referral_id=case["id"]).first()
        assert offer is not None
        offer_id = offer.id
    link = re.search(r"/l/([A-Za-z0-9]{11})", "\n".join(s.body for s in world.transport.sent))
    assert link, "no pre-alert link was sent"
    ids = {
        "referral_id": str(case["id"]),
        "offer_id": str(offer_id),
        "closure_id": str(closure.get("id", 1)),
        "item_id": "1",
        "token": link.group(1),
    }
    visitors = []
    for name, username, home in (
        ("anonymous", None, "/login"),
        ("clinic", "w-clinic", "/clinic"),
        ("hospital", "w-hosp", "/hospital"),
        ("coordinator", "w-coord", "/board"),
        ("link", None, f"/l/{link.group(1)}"),
    ):
        visitor = app.test_client()
        if username:
            login(visitor, username)
        page = visitor.get(home, follow_redirects=True).get_data(as_text=True)
        visitors.append(Visitor(name, visitor, csrf_from(page)))
    return world, visitors, _pages(app, ids)


def _timed(send: object) -> tuple[int, float, float]:
    """The status, the CPU seconds the app spent (it runs in this process) and the wall time."""
    cpu, wall = time.process_time(), time.perf_counter()
    response = send()  # type: ignore[operator]
    return response.status_code, time.process_time() - cpu, time.perf_counter() - wall


def _check(who: str, method: str, path: str, answer: tuple[int, float, float]) -> None:
    # The one-second bound is on the work a request costs (CPU time: this machine is shared, and
    # a wall clock would fail whenever another process takes the cores); the wall clock still
    # catches a request that waits on something (a lock, a loop in the database) for long.
    status, cpu, wall = answer
    assert status < 500, f"{who}: {method} {path} answered {status}"
    assert cpu < SLOWEST_SECONDS, f"{who}: {method} {path} took {cpu:.2f} s of CPU"
    assert wall < WAITING_SECONDS, f"{who}: {method} {path} took {wall:.2f} s"


def test_no_page_form_or_query_gets_a_500_or_takes_a_second(
    site: tuple[World, list[Visitor], Pages],
) -> None:
    _world, visitors, pages = site
    assert pages.get and pages.post
    failures: list[str] = []
    for visitor in visitors:
        try:
            _fuzz(visitor, pages)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{visitor.name}: {_describe(exc)}")
    assert not failures, "\n\n".join(failures)


def _describe(exc: BaseException) -> str:
    """Each failure of a Hypothesis group with its falsifying example (Hypothesis's notes)."""
    found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
    return "\n".join(
        f"- {type(e).__name__}: {str(e)[:300]} {' '.join(getattr(e, '__notes__', []))[:400]}"
        for e in found
    )


def _fuzz(visitor: Visitor, pages: Pages) -> None:
    """One derandomized run of GETs and one of POSTs for one visitor."""
    role = visitor.name
    # Warm up first: the first render of each template compiles it, once per process.
    for path in pages.get:
        assert visitor.client.get(path).status_code < 500, f"{role}: GET {path}"
    sent = {"GET": 0, "POST": 0}

    @FUZZ
    @given(path=st.sampled_from(pages.get), query=QUERY)
    def get_pages(path: str, query: dict[str, list[str]]) -> None:
        answer = _timed(lambda: visitor.client.get(path, query_string=query))
        sent["GET"] += 1
        _check(role, "GET", f"{path}?{query}", answer)

    @FUZZ
    @given(path=st.sampled_from(pages.post), form=FORM, token=st.booleans())
    def post_forms(path: str, form: dict[str, list[str]], token: bool) -> None:
        data = {**form, "csrf_token": visitor.csrf if token else "forged"}
        answer = _timed(lambda: visitor.client.post(path, data=data))
        sent["POST"] += 1
        _check(role, "POST", f"{path} {form}", answer)

    get_pages()
    post_forms()
    assert sent["GET"] >= EXAMPLES and sent["POST"] >= EXAMPLES
