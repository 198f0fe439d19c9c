"""Privacy: an append-only audit trail of every view and change of a case, patient fields kept
to the minimum, and closed cases scrubbed after the retention period."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import delete, select, update

from core.settings import ConfigError
from greenchannel.cli import main
from greenchannel.web.db import db
from referral import audit
from referral.models import AuditEntry, Referral
from referral.retention import SCRUBBED, retention_days, scrub_closed_cases
from tests.world import PPH_REQUEST, World


def _trail(app: Flask, referral_id: int) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [
            (row.action, row.actor, row.channel)
            for row in audit.trail(db.session, referral_id=referral_id)
        ]


def test_every_view_and_change_of_a_case_is_in_the_audit_trail_with_who_when_and_what(
    world: World, app: Flask
) -> None:
    created = world.post("clinic", "/api/v1/referrals", PPH_REQUEST, **{"X-Request-Id": "req-1"})
    case = created.get_json()
    rid = case["id"]
    offer = case["offers"][0]
    world.get("coordinator", f"/api/v1/referrals/{rid}")
    world.post(
        offer["facility"],
        f"/api/v1/referrals/{rid}/offers/{offer['id']}/accept",
        {"eta_minutes": 10},
    )
    world.post("clinic", f"/api/v1/referrals/{rid}/depart")
    world.get("admin", "/api/v1/referrals?status=active")
    assert _trail(app, rid) == [
        ("create", "clinic", "api"),
        ("view", "coord", "api"),
        ("accept", f"user-{offer['facility']}", "api"),
        ("depart", "clinic", "api"),
    ]
    with app.app_context():
        first = audit.trail(db.session, referral_id=rid)[0]
        assert first.request_id == "req-1" and first.role == "clinic" and first.user_id
        assert first.at == world.clock.now
        viewers = [row.actor for row in audit.viewers_of(db.session, referral_id=rid)]
        assert viewers == ["coord", "admin"]


def test_a_refused_change_leaves_no_audit_row_and_changes_nothing(world: World, app: Flask) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    refused = world.post("clinic", f"/api/v1/referrals/{case['id']}/depart")
    assert refused.status_code == 409  # not accepted yet
    assert [a for a, _, _ in _trail(app, case["id"])] == ["create"]


def test_the_application_cannot_update_or_delete_audit_rows(world: World, app: Flask) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    with app.app_context():
        row = audit.trail(db.session, referral_id=case["id"])[0]
        row.actor = "someone else"
        with pytest.raises(audit.AuditTampering):
            db.session.flush()
        db.session.rollback()
        with pytest.raises(audit.AuditTampering):
            db.session.delete(db.session.get_one(AuditEntry, row.id))
            db.session.flush()
        db.session.rollback()
        with pytest.raises(audit.AuditTampering):
            db.session.execute(update(AuditEntry).values(actor="x"))
        with pytest.raises(audit.AuditTampering):
            db.session.execute(delete(AuditEntry))
        db.session.rollback()
        assert (
            db.session.scalar(select(AuditEntry.actor).where(AuditEntry.id == row.id)) == "clinic"
        )


@pytest.mark.parametrize(
    "patient",
    [
        {"name": "王芳"},
        {"ref": "x", "id_number": "110101199003070000"},
        {"ref": "x", "phone": "+8613900000000"},
        {"ref": "x", "address": "somewhere"},
    ],
)
def test_patient_fields_beyond_ref_age_and_sex_are_refused(
    world: World, patient: dict[str, Any]
) -> None:
    response = world.post("clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": patient})
    assert response.status_code == 422
    assert response.get_json()["field"].startswith("patient.")


def _closed_case(world: World, *, note: str, patient_ref: str) -> int:
    body = {**PPH_REQUEST, "patient": {"ref": patient_ref, "age_years": 31, "sex": "female"}}
    case = world.post("clinic", "/api/v1/referrals", body).get_json()
    offers = case["offers"]
    declined = world.post(
        offers[1]["facility"],
        f"/api/v1/referrals/{case['id']}/offers/{offers[1]['id']}/decline",
        {"reason": "OTHER", "note": "Dr Li on leave, call 13900000000"},
    )
    assert declined.status_code == 200
    world.post(
        offers[0]["facility"], f"/api/v1/referrals/{case['id']}/offers/{offers[0]['id']}/accept"
    )
    world.post("clinic", f"/api/v1/referrals/{case['id']}/depart")
    world.post(offers[0]["facility"], f"/api/v1/referrals/{case['id']}/arrive")
    done = world.post(
        offers[0]["facility"], f"/api/v1/referrals/{case['id']}/complete", {"outcome": note}
    )
    assert done.status_code == 200, done.get_json()
    return int(case["id"])


def test_retention_scrubs_patient_fields_and_free_text_but_keeps_the_timeline(
    world: World, app: Flask
) -> None:
    old = _closed_case(world, note="Mrs Wang delivered, haemorrhage controlled", patient_ref="A-1")
    world.clock.advance(days=20)
    recent = _closed_case(world, note="well", patient_ref="A-2")
    with app.app_context():
        before = db.session.get_one(Referral, old)
        intervals = world.get("admin", f"/api/v1/referrals/{old}").get_json()["intervals"]
        kinds = [e.kind for e in before.events]
        count = scrub_closed_cases(db.session, now=world.clock.now, days=10)
        assert count == 1
        assert scrub_closed_cases(db.session, now=world.clock.now, days=10) == 0  # idempotent
    answer = world.get("admin", f"/api/v1/referrals/{old}").get_json()
    assert answer["outcome"] == SCRUBBED
    assert answer["intervals"] == intervals
    assert [e["kind"] for e in answer["timeline"]] == kinds
    text = repr(answer)
    assert "Wang" not in text and "13900000000" not in text and "A-1" not in text
    with app.app_context():
        scrubbed = db.session.get_one(Referral, old)
        assert scrubbed.patient == {} and scrubbed.patient_ref is None
        assert all(o.decline_note in ("", SCRUBBED) for o in scrubbed.offers)
        kept = db.session.get_one(Referral, recent)
        assert kept.patient_ref == "A-2" and kept.patient["age_years"] == 31
        assert [a for a, _, _ in _trail(app, old)].count("scrub") == 1


def test_open_cases_are_never_scrubbed(world: World, app: Flask) -> None:
    case = world.post("clinic", "/api/v1/referrals", PPH_REQUEST).get_json()
    world.clock.advance(days=400)
    with app.app_context():
        assert scrub_closed_cases(db.session, now=world.clock.now, days=1) == 0
        assert db.session.get_one(Referral, case["id"]).patient_ref == PPH_REQUEST["patient"]["ref"]


def test_the_retention_setting_and_command(
    world: World, app: Flask, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert retention_days({}) == 365
    assert retention_days({"GREENCHANNEL_RETENTION_DAYS": "30"}) == 30
    for bad in ("0", "-3", "a year"):
        with pytest.raises(ConfigError, match="GREENCHANNEL_RETENTION_DAYS"):
            retention_days({"GREENCHANNEL_RETENTION_DAYS": bad})
    _closed_case(world, note="fine", patient_ref="B-1")
    # The command runs on the real clock: the case closed "now" in the world is in 2026.
    monkeypatch.setenv("DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("GREENCHANNEL_ROADS", app.config["GREENCHANNEL_ROADS"])
    monkeypatch.setenv("GREENCHANNEL_RETENTION_DAYS", "1")
    with app.app_context():
        closed_at = db.session.scalars(select(Referral.closed_at)).one()
    result = runner.invoke(main, ["retention"])
    assert result.exit_code == 0, result.output
    expected = 1 if closed_at and closed_at < dt.datetime.now(dt.UTC) - dt.timedelta(days=1) else 0
    assert f"scrubbed {expected} closed case(s) older than 1 days" in result.output
    assert "ended web session(s)" in result.output and "case link(s) older than 1 days" in (
        result.output
    )
    monkeypatch.setenv("GREENCHANNEL_RETENTION_DAYS", "soon")
    assert runner.invoke(main, ["retention"]).exit_code != 0
