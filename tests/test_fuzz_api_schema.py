"""Hostile and malformed input against the whole API, generated from its own OpenAPI description.

Schemathesis generates requests for every operation of ``/api/v1/openapi.json`` (valid ones and
ones that break the schema) and each one is sent with the token of every role, and again with
real referral and offer ids so that handlers past the 404 are reached. Every answer must be
something other than a 5xx, with the documented content type, a body that matches the documented
schema and a status code the description lists.

The suite runs a small number of examples per operation; CI runs this file again with
``GREENCHANNEL_FUZZ_EXAMPLES=40``, a few thousand requests (see ``.ci/run``). Generation is
derandomized, so a run is repeatable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from facilities.db import db
from referral.models import Offer, Referral
from tests.referral_world import PPH_REQUEST, World, build_world

EXAMPLES = int(os.environ.get("GREENCHANNEL_FUZZ_EXAMPLES", "3"))
ROLES = ("clinic", "H-A", "coordinator", "outsider", "admin")
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
SENT = {"requests": 0}


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


@pytest.fixture
def api_schema(app: Flask, fuzz_world: tuple[World, dict[str, int]]) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _send(case: Any, world: World, who: str) -> None:
    response = case.call(headers=world.headers(who))
    SENT["requests"] += 1
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_5xx_or_an_answer_outside_the_schema(
    case: Any, fuzz_world: tuple[World, dict[str, int]]
) -> None:
    world, ids = fuzz_world
    for who in ROLES:
        _send(case, world, who)
    real = {k: v for k, v in ids.items() if k in (case.path_parameters or {})}
    if real:
        case.path_parameters = {**case.path_parameters, **real}
        for who in ("admin", "H-A", "clinic"):
            _send(case, world, who)


def test_the_fuzzer_reached_every_operation_and_the_api_is_still_whole(app: Flask) -> None:
    """Runs after the generated tests in this module: report the figures for CI's log."""
    print(f"\nschemathesis: {SENT['requests']} requests, {EXAMPLES} examples per operation")
    minimum = int(os.environ.get("GREENCHANNEL_FUZZ_MIN_REQUESTS", "0"))
    assert SENT["requests"] >= minimum
    with app.app_context():
        assert db.session.query(Referral).count() == 0  # each test's world was wiped
