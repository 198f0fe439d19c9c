"""Referrals as FHIR Tasks: valid R4, states and codes mapped, nothing that identifies the
patient, and the same scopes as the API; the endpoint answers errors as OperationOutcome."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from facilities.models import FacilityKind
from greenchannel.web.db import db
from referral import fhir
from referral.models import AuditEntry, ReferralStatus
from referral.rules import DEFAULT_RULES_PATH, RulesError, load_rules, parse_rules
from tests.fhir_checks import empty_elements, references, validate
from tests.world import NOW, PPH_REQUEST, World, add_facility, add_user

FHIR_JSON = "application/fhir+json; fhirVersion=4.0"
TASK_STATUS_CODES = {
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
}  # fmt: skip
NEWBORN_REQUEST = {
    "origin_facility": "T-1",
    "case": {"conditions": ["NB_RESP"], "gestation_weeks": 34, "birth_weight_g": 2100},
    "patient": {"ref": "T1-NB-7", "sex": "male"},
}


@pytest.fixture
def fhir_world(world: World) -> World:
    """The world plus a second township clinic with its own user (it refers nobody here)."""
    with world.app.app_context():
        add_facility(
            db.session,
            "T-2",
            kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
            lat=29.5,
            lon=106.0,
            maternal_level=1,
            neonatal_level=1,
            capabilities=[],
        )
        world.tokens["other-clinic"] = add_user(db.session, "clinic-2", "clinic", facility="T-2")
        db.session.commit()
    return world


def start(world: World, body: dict[str, Any] = PPH_REQUEST) -> dict[str, Any]:
    created = world.post("clinic", "/api/v1/referrals", body)
    assert created.status_code == 201, created.get_json()
    case: dict[str, Any] = created.get_json()
    return case


def read(world: World, who: str, path: str) -> tuple[int, dict[str, Any], str]:
    response = world.get(who, path)
    return response.status_code, json.loads(response.data), response.headers["Content-Type"]


def check_task(task: dict[str, Any]) -> None:
    """Valid R4 (the Task and each contained resource), every reference resolved inside it,
    nothing empty, a real Task status."""
    validate(task)
    contained = {f"#{resource['id']}": resource for resource in task["contained"]}
    for resource in contained.values():
        validate(resource)
    for reference in references(task):
        assert reference in contained, reference
    assert list(empty_elements(task)) == []
    assert task["status"] in TASK_STATUS_CODES


def contained(task: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(r for r in task["contained"] if r["resourceType"] == kind)


def test_an_offered_pph_case_is_a_requested_stat_task_with_coded_reasons(
    fhir_world: World,
) -> None:
    case = start(fhir_world)
    status, task, content_type = read(fhir_world, "clinic", f"/fhir/Task/{case['id']}")
    assert status == 200 and content_type == FHIR_JSON
    check_task(task)
    assert task["id"] == str(case["id"])
    assert task["status"] == "requested" and task["priority"] == "stat"
    assert task["businessStatus"]["coding"][0]["code"] == "offered"
    assert task["requester"]["identifier"]["value"] == "T-1"
    assert "owner" not in task  # nobody has accepted yet
    asked = {r["identifier"]["value"] for r in task["restriction"]["recipient"]}
    assert asked == {o["facility"] for o in case["offers"] if o["status"] == "pending"}
    request = contained(task, "ServiceRequest")
    assert task["focus"] == {"reference": "#request"} and task["for"] == {"reference": "#patient"}
    assert request["priority"] == "stat" and request["status"] == "active"
    [reason] = request["reasonCode"]
    assert {"system": "http://snomed.info/sct", "code": "47821001"} in reason["coding"]
    assert {"system": "http://hl7.org/fhir/sid/icd-10", "code": "O72"} in reason["coding"]
    assert task["note"][0]["text"] == "created"


def test_the_patient_carries_nothing_that_identifies_her(fhir_world: World) -> None:
    case = start(fhir_world)
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{case['id']}")
    assert contained(task, "Patient") == {
        "resourceType": "Patient",
        "id": "patient",
        "gender": "female",
    }
    text = json.dumps(task, ensure_ascii=False)
    assert "T1-2026-0042" not in text and '"age' not in text and "birthDate" not in text


def test_a_newborn_keeps_only_the_sex_the_clinic_gave(fhir_world: World) -> None:
    case = start(fhir_world, NEWBORN_REQUEST)
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{case['id']}")
    check_task(task)
    assert contained(task, "Patient")["gender"] == "male"
    assert "T1-NB-7" not in json.dumps(task)
    [reason] = contained(task, "ServiceRequest")["reasonCode"]
    assert {"system": "http://hl7.org/fhir/sid/icd-10", "code": "P22.9"} in reason["coding"]
    unknown = start(fhir_world, {**NEWBORN_REQUEST, "patient": {"ref": "T1-NB-8"}})
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{unknown['id']}")
    assert contained(task, "Patient")["gender"] == "unknown"


def test_the_task_follows_the_case_from_accepted_to_completed(fhir_world: World) -> None:
    case = start(fhir_world)
    rid = case["id"]
    offer = next(o for o in case["offers"] if o["facility"] == "H-A")
    fhir_world.clock.advance(minutes=2)
    accept = f"/api/v1/referrals/{rid}/offers/{offer['id']}/accept"
    assert fhir_world.post("H-A", accept, {"eta_minutes": 10}).status_code == 200
    _, task, _ = read(fhir_world, "H-A", f"/fhir/Task/{rid}")
    check_task(task)
    assert task["status"] == "accepted"
    assert task["owner"]["identifier"] == {"system": fhir.FHIR_CODE_SYSTEM, "value": "H-A"}
    assert "restriction" not in task  # the other offers were withdrawn
    assert task["lastModified"] == "2026-11-24T08:02:00Z"
    assert any(note["text"].startswith("accepted: H-A") for note in task["note"])

    fhir_world.clock.advance(minutes=3)
    assert fhir_world.post("clinic", f"/api/v1/referrals/{rid}/depart").status_code == 200
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{rid}")
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "in-progress",
        "in_transit",
    )
    fhir_world.clock.advance(minutes=30)
    assert fhir_world.post("H-A", f"/api/v1/referrals/{rid}/arrive").status_code == 200
    fhir_world.clock.advance(minutes=60)
    done = fhir_world.post("H-A", f"/api/v1/referrals/{rid}/complete", {"outcome": "well"})
    assert done.status_code == 200
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{rid}")
    check_task(task)
    assert task["status"] == "completed"
    assert contained(task, "ServiceRequest")["status"] == "completed"
    assert task["executionPeriod"] == {
        "start": "2026-11-24T08:00:00Z",
        "end": "2026-11-24T09:35:00Z",
    }


def test_a_cancelled_case_is_a_cancelled_task_with_its_reason(fhir_world: World) -> None:
    case = start(fhir_world)
    body = {"reason": "stabilised", "note": "Mrs Wang stabilised"}
    assert (
        fhir_world.post("clinic", f"/api/v1/referrals/{case['id']}/cancel", body).status_code == 200
    )
    _, task, _ = read(fhir_world, "clinic", f"/fhir/Task/{case['id']}")
    check_task(task)
    assert task["status"] == "cancelled"
    assert task["statusReason"]["coding"][0]["code"] == "stabilised"
    assert contained(task, "ServiceRequest")["status"] == "revoked"
    assert "Wang" not in json.dumps(task)  # free text from the clinic stays out


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("clinic", 200),
        ("H-A", 200),  # offered
        ("coordinator", 200),
        ("admin", 200),
        ("other-clinic", 404),
        ("outsider", 404),  # a coordinator of another province
    ],
)
def test_a_task_is_seen_by_whoever_sees_the_case_in_the_api(
    fhir_world: World, who: str, status: int
) -> None:
    case = start(fhir_world)
    code, body, content_type = read(fhir_world, who, f"/fhir/Task/{case['id']}")
    api = fhir_world.get(who, f"/api/v1/referrals/{case['id']}").status_code
    assert code == api == status
    if status == 404:
        assert content_type == FHIR_JSON and body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == "not-found"
        assert str(case["id"]) in body["issue"][0]["diagnostics"]


def test_reading_a_task_is_audited_like_reading_the_case(fhir_world: World) -> None:
    case = start(fhir_world)
    read(fhir_world, "H-A", f"/fhir/Task/{case['id']}")
    with fhir_world.app.app_context():
        views = db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "view", AuditEntry.referral_id == case["id"]
            )
        ).all()
    assert [(v.actor, v.detail.get("via")) for v in views] == [("user-H-A", "fhir")]


def test_the_search_filters_by_status_and_last_update_within_the_user_s_cases(
    fhir_world: World,
) -> None:
    first = start(fhir_world)
    fhir_world.clock.advance(hours=2)
    second = start(fhir_world, {**PPH_REQUEST, "patient": {"ref": "T1-2"}})
    status, bundle, content_type = read(fhir_world, "clinic", "/fhir/Task?status=requested")
    assert status == 200 and content_type == FHIR_JSON
    validate(bundle)
    assert bundle["type"] == "searchset" and list(empty_elements(bundle)) == []
    ids = [entry["resource"]["id"] for entry in bundle["entry"]]
    assert ids == [str(second["id"]), str(first["id"])]  # newest first
    assert bundle["entry"][0]["fullUrl"] == f"http://localhost/fhir/Task/{second['id']}"
    for entry in bundle["entry"]:
        check_task(entry["resource"])

    def found(query: str, who: str = "clinic") -> list[str]:
        _, answer, _ = read(fhir_world, who, f"/fhir/Task?{query}")
        return [entry["resource"]["id"] for entry in answer.get("entry", [])]

    assert found("status=completed,cancelled") == []
    assert found("status=requested,accepted") == [str(second["id"]), str(first["id"])]
    assert found("_lastUpdated=ge2026-11-24T09:00:00Z") == [str(second["id"])]
    assert found("_lastUpdated=lt2026-11-24T09:00:00%2B00:00") == [str(first["id"])]
    assert found("_lastUpdated=gt2026-11-24&_lastUpdated=le2026-11-25") == []
    assert found("_lastUpdated=ge2026-11-24&_lastUpdated=lt2026-11-25") == [
        str(second["id"]),
        str(first["id"]),
    ]
    assert found("", "other-clinic") == []
    assert found("", "outsider") == []


def test_the_search_pages_with_a_next_link(fhir_world: World) -> None:
    made = [start(fhir_world, {**PPH_REQUEST, "patient": {"ref": f"P-{n}"}}) for n in range(3)]
    _, page, _ = read(fhir_world, "admin", "/fhir/Task?_count=2&status=requested")
    assert [e["resource"]["id"] for e in page["entry"]] == [str(made[2]["id"]), str(made[1]["id"])]
    [link] = page["link"]
    assert (
        link["relation"] == "next"
        and "_count=2" in link["url"]
        and "status=requested" in link["url"]
    )
    _, rest, _ = read(fhir_world, "admin", link["url"].removeprefix("http://localhost"))
    assert [e["resource"]["id"] for e in rest["entry"]] == [str(made[0]["id"])]
    assert "link" not in rest


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=bogus", "status"),
        ("status=requested&status=accepted", "status"),
        ("status=" + "requested," * 30, "status"),
        (
            "_lastUpdated=ge2026-01-01&_lastUpdated=ge2026-01-02&_lastUpdated=ge2026-01-03",
            "_lastUpdated",
        ),
        ("_lastUpdated=2026-11-24", "_lastUpdated"),
        ("_lastUpdated=eq2026-11-24", "_lastUpdated"),
        ("_lastUpdated=ge2026-13-01", "_lastUpdated"),
        ("_lastUpdated=le9999-12-31", "_lastUpdated"),
        ("_lastUpdated=ge0001-01-01T00:00:00%2B14:00", "_lastUpdated"),
        ("_lastUpdated=ge2026-11-24T08:00:00", "_lastUpdated"),
        ("_count=0", "_count"),
        ("_count=101", "_count"),
        ("_count=abc", "_count"),
        ("_cursor=-1", "_cursor"),
        ("patient=1", "patient"),
        ("_format=xml", "_format"),
    ],
)
def test_a_bad_search_is_an_operation_outcome_naming_the_parameter(
    fhir_world: World, query: str, field: str
) -> None:
    status, body, content_type = read(fhir_world, "clinic", f"/fhir/Task?{query}")
    assert status == 400 and content_type == FHIR_JSON
    validate(body)
    [issue] = body["issue"]
    assert issue["severity"] == "error" and issue["code"] == "invalid"
    assert issue["expression"] == [field]


def test_no_token_and_no_such_task_are_operation_outcomes(fhir_world: World) -> None:
    anonymous = fhir_world.client.get("/fhir/Task")
    assert anonymous.status_code == 401
    assert json.loads(anonymous.data)["issue"][0]["code"] == "login"
    for missing in ("999999", "abc", "99999999999999"):
        status, body, _ = read(fhir_world, "admin", f"/fhir/Task/{missing}")
        assert status == 404 and body["resourceType"] == "OperationOutcome"


def test_the_capability_statement_says_r4_and_what_can_be_searched(app: Flask) -> None:
    response = app.test_client().get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == FHIR_JSON
    statement = json.loads(response.data)
    validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    [rest] = statement["rest"]
    [task] = rest["resource"]
    assert task["type"] == "Task"
    assert {p["name"] for p in task["searchParam"]} == {"status", "_lastUpdated", "_count"}


def test_every_referral_state_maps_to_a_task_status() -> None:
    assert set(fhir.TASK_STATUS) == set(ReferralStatus)
    assert set(fhir.TASK_STATUS.values()) <= TASK_STATUS_CODES
    assert set(fhir.TASK_STATUSES) == TASK_STATUS_CODES
    assert fhir.TASK_STATUSES["requested"] == {
        ReferralStatus.REQUESTED,
        ReferralStatus.OFFERED,
        ReferralStatus.UNPLACED,
    }


def test_every_shipped_condition_has_an_icd10_code() -> None:
    rules = load_rules()
    for code, condition in rules.conditions.items():
        assert "icd10" in condition.codes, code
    assert rules.conditions["PPH"].codes == {"icd10": "O72", "snomed": "47821001"}


@pytest.mark.parametrize(
    ("codes", "words"),
    [
        ('{icd10: O72, snomed: "47821002"}', "check digit"),
        ("{icd10: pph}", "not an ICD-10 code"),
        ("{loinc: 123}", "unknown key"),
        ("{}", "expected snomed and/or icd10"),
    ],
)
def test_a_wrong_condition_code_is_refused_naming_the_line_and_key(codes: str, words: str) -> None:
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    broken = text.replace('codes: {icd10: O72, snomed: "47821001"}', f"codes: {codes}", 1)
    assert broken != text
    with pytest.raises(RulesError, match=words) as caught:
        parse_rules(broken, source="region.yaml")
    assert "conditions.PPH.codes" in str(caught.value) and "line" in str(caught.value)


def test_a_task_is_written_the_same_without_flask(fhir_world: World) -> None:
    """The mapping is a plain function of the rows (the CLI or a worker could send it)."""
    case = start(fhir_world)
    with fhir_world.app.app_context():
        [loaded] = fhir.load(db.session, [case["id"]])
    task = fhir.task(loaded, load_rules())
    check_task(task)
    assert task["authoredOn"] == NOW.isoformat().replace("+00:00", "Z")
