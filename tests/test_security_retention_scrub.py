"""Retention leaves no patient text behind: after the scrub, nothing a person typed about the
patient survives, wherever it was kept (the raw SMS, the redirect's reason, the case note)."""

from __future__ import annotations

import json

from flask import Flask
from sqlalchemy import select

from alerts.inbound import handle_inbound
from alerts.models import Alert, AttentionItem, InboundMessage, OutboundMessage
from greenchannel.web.db import db
from referral.models import CaseLink, Referral
from referral.retention import SCRUBBED, scrub_closed_cases
from tests.world import PPH_REQUEST, World

# Words that name the patient or a phone, typed by three different people.
SECRETS = ("Wang", "13900000000", "13911112222", "Zhao", "0042-B")


def _everything_about(app: Flask, referral_id: int) -> str:
    with app.app_context():
        referral = db.session.get_one(Referral, referral_id)
        parts: list[object] = [referral.case, referral.patient, referral.note, referral.outcome]
        for offer in referral.offers:
            parts += [offer.reasons, offer.decline_note]
        parts += [event.detail for event in referral.events]
        for inbound in db.session.scalars(select(InboundMessage)):
            parts += [inbound.body, inbound.answer, inbound.outcome]
        parts += [m.body for m in db.session.scalars(select(OutboundMessage))]
        parts += [a.texts for a in db.session.scalars(select(Alert))]
        parts += [i.words for i in db.session.scalars(select(AttentionItem))]
        parts += [link.id for link in db.session.scalars(select(CaseLink))]
    return json.dumps(parts, ensure_ascii=False, default=str)


def _case_with_free_text(world: World) -> int:
    request = {
        **PPH_REQUEST,
        "case": {**PPH_REQUEST["case"], "note": "Zhao's sister, ID 0042-B, bleeding since 6"},
    }
    case = world.post("clinic", "/api/v1/referrals", request).get_json()
    world.tick()
    # H-B declines by SMS, with a note that names the patient and a phone.
    with world.app.app_context():
        handle_inbound(
            db.session,
            from_phone=world.phones["H-B:obstetrics"],
            body=f"{case['code']} N OTHER Mrs Wang's husband on 13900000000",
            provider_id="SM-decline-1",
            now=world.clock.now,
            handlers=world.app.extensions["greenchannel.handlers"],
        )
        db.session.commit()
    redirected = world.post(
        "coordinator",
        f"/api/v1/referrals/{case['id']}/redirect",
        {"facility": "H-D", "reason": "Wang family asked for H-D, call 13911112222"},
    )
    assert redirected.status_code == 200, redirected.get_json()
    offer = next(
        o
        for o in redirected.get_json()["offers"]
        if o["facility"] == "H-D" and o["status"] == "pending"
    )
    rid = case["id"]
    assert (
        world.post("H-D", f"/api/v1/referrals/{rid}/offers/{offer['id']}/accept").status_code == 200
    )
    world.post("clinic", f"/api/v1/referrals/{rid}/depart")
    world.post("H-D", f"/api/v1/referrals/{rid}/arrive")
    done = world.post("H-D", f"/api/v1/referrals/{rid}/complete", {"outcome": "home"})
    assert done.status_code == 200, done.get_json()
    return int(rid)


def test_the_scrub_removes_the_raw_sms_the_redirect_reason_and_the_case_note(
    world: World, app: Flask
) -> None:
    rid = _case_with_free_text(world)
    before = _everything_about(app, rid)
    assert all(secret in before for secret in SECRETS), before  # the test sees where they are
    with app.app_context():
        kinds = [e.kind for e in db.session.get_one(Referral, rid).events]
    world.clock.advance(days=20)
    with app.app_context():
        assert scrub_closed_cases(db.session, now=world.clock.now, days=10) == 1
    after = _everything_about(app, rid)
    assert not [secret for secret in SECRETS if secret in after], after
    assert SCRUBBED in after
    answer = world.get("admin", f"/api/v1/referrals/{rid}").get_json()
    assert not [secret for secret in SECRETS if secret in repr(answer)]
    # The steps stay: the timeline, the offers, who declined and why (the reason code).
    assert [e["kind"] for e in answer["timeline"]] == kinds
    with app.app_context():
        referral = db.session.get_one(Referral, rid)
        assert [o.decline_reason for o in referral.offers if o.decline_reason] != []
        assert referral.case["conditions"] == ["PPH"]


def test_old_inbound_sms_lose_their_text_whatever_case_they_were_about(
    world: World, app: Flask
) -> None:
    with app.app_context():
        for n, body in enumerate(("hello, Mrs Wang is here", "REF PPH note Zhao")):
            handle_inbound(
                db.session,
                from_phone="+8613700000000",
                body=body,
                provider_id=f"SM-old-{n}",
                now=world.clock.now,
                handlers=world.app.extensions["greenchannel.handlers"],
            )
        db.session.commit()
    world.clock.advance(days=9)
    with app.app_context():
        handle_inbound(
            db.session,
            from_phone="+8613700000000",
            body="recent: Wang",
            provider_id="SM-new",
            now=world.clock.now,
            handlers=world.app.extensions["greenchannel.handlers"],
        )
        db.session.commit()
    world.clock.advance(days=2)
    with app.app_context():
        scrub_closed_cases(db.session, now=world.clock.now, days=10)
        bodies = sorted(db.session.scalars(select(InboundMessage.body)))
    assert bodies == sorted([SCRUBBED, SCRUBBED, "recent: Wang"])
