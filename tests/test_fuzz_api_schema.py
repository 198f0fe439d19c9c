"""Hostile and malformed input against the whole API, generated from its own OpenAPI description.

Schemathesis generates requests for every operation of ``/api/v1/openapi.json``, valid ones and
ones that break the schema, and each one is sent with the token of every role, and again with
real referral and offer ids so that handlers past the 404 are reached. Every answer must be
something other than a 5xx, with the documented content type, a body that matches the documented
schema and a status code the description lists.

Schemathesis is used through its Python API only (load the schema, one Hypothesis strategy per
operation, ``case.call`` and ``case.validate_response``), not through its pytest plugin, which
reaches into pytest's private attributes and broke with pytest 9.2 (``'Function' object has no
attribute '_nodeid'``). Each operation is its own Hypothesis run; the failures of all operations
are gathered and reported together, each under its method and path.

The suite runs a small number of examples per operation and mode; CI runs this file again with
more (``GREENCHANNEL_FUZZ_EXAMPLES``, see ``.ci/run``). Generation is derandomized, so a run is
repeatable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from greenchannel.web.db import db
from referral.models import Offer, Referral
from tests.world import PPH_REQUEST, World, build_world

EXAMPLES = int(os.environ.get("GREENCHANNEL_FUZZ_EXAMPLES", "20"))
ROLES = ("clinic", "H-A", "coordinator", "outsider", "admin")
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
SENT = {"requests": 0, "operations": 0}
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def fuzz_world(app: Flask, client: FlaskClient) -> Iterator[tuple[World, dict[str, int]]]:
    # Rate limits would answer 429 to a fuzzer sending hundreds of requests a minute.
    app.config["GREENCHANNEL_RATE_LIMIT_TOKEN"] = 0
    world = build_world(app, client)
    first = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    second_body = {**PPH_REQUEST, "patient": {"ref": "T1-2", "age_years": 30}}
    world.post("clinic", "/api/v1/referrals", second_body)
    with app.app_context():
        offer = db.session.query(Offer).filter_by(referral_id=first["id"]).first()
        assert offer is not None
        ids = {"referral_id": first["id"], "offer_id": offer.id}
    yield world, ids


def _send(case: Any, world: World, who: str) -> None:
    # Schemathesis calls the app through WSGI and reads the body as sent: ask for it
    # uncompressed (compression itself: tests/test_http_cache.py).
    response = case.call(headers={**world.headers(who), "Accept-Encoding": "identity"})
    SENT["requests"] += 1
    case.validate_response(response, checks=CHECKS)


def _send_as_everyone(case: Any, world: World, ids: dict[str, int]) -> None:
    for who in ROLES:
        _send(case, world, who)
    real = {k: v for k, v in ids.items() if k in (case.path_parameters or {})}
    if real:
        case.path_parameters = {**case.path_parameters, **real}
        for who in ("admin", "H-A", "clinic"):
            _send(case, world, who)


def _fuzz(operation: Any, world: World, ids: dict[str, int]) -> None:
    """One derandomized Hypothesis run for one operation: valid and schema-breaking cases."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @FUZZ_SETTINGS
    @given(case=cases)
    def run(case: Any) -> None:
        _send_as_everyone(case, world, ids)

    run()


def test_no_input_gets_a_5xx_or_an_answer_outside_the_schema(
    app: Flask, fuzz_world: tuple[World, dict[str, int]]
) -> None:
    world, ids = fuzz_world
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    results: Iterable[Any] = schema.get_all_operations()  # each an Ok(operation) or an Err
    for result in results:
        if hasattr(result, "err"):
            failures.append(f"a part of the description schemathesis cannot read: {result.err()}")
            continue
        operation = result.ok()
        SENT["operations"] += 1
        try:
            _fuzz(operation, world, ids)
        # Gather every operation's failure, then report them all. Schemathesis's FailureGroup is
        # a BaseExceptionGroup, not an Exception.
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert SENT["operations"] > 0
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)


def test_the_fuzzer_reached_every_operation_and_the_api_is_still_whole(app: Flask) -> None:
    """Runs after the fuzzing test in this module: report the figures for CI's log."""
    print(
        f"\nschemathesis: {SENT['requests']} requests, {SENT['operations']} operations,"
        f" {EXAMPLES} examples per operation"
    )
    minimum = int(os.environ.get("GREENCHANNEL_FUZZ_MIN_REQUESTS", "0"))
    assert SENT["requests"] >= minimum
    with app.app_context():
        assert db.session.query(Referral).count() == 0  # each test's world was wiped
