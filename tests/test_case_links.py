"""The pre-alert's one-time link: it opens that one case for that contact, once, while the offer
waits; it opens nothing else; wrong tokens get the expired page and are throttled."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import routing
from alerts.models import OutboundMessage
from facilities.models import Channel, Contact, FacilityKind, Role
from facilities.status import report_status
from greenchannel.web.db import db
from referral import links, service
from referral.models import AuditEntry, CaseLink, Offer, OfferStatus, Referral
from referral.offering import shock_flags
from referral.placement import Placement
from referral.rules import load_rules
from referral.triage import Case
from tests.world import NOW, PPH_REQUEST, World, add_facility, build_world, csrf_from, make_contact

BASE = "https://gc.test"

LINK = re.compile(r"https://gc\.test(/l/[A-Za-z0-9]{11})")
SHOCKED_PPH = {
    **PPH_REQUEST,
    "case": {
        "conditions": ["PPH"],
        "gestation_weeks": 39,
        "delivered": True,
        "blood_loss_ml": 1800,
        "in_shock": True,
    },
}


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> World:
    return build_world(app, client)


def refer(world: World, body: dict[str, object] = PPH_REQUEST) -> dict[str, object]:
    created = world.post("clinic", "/api/v1/referrals", body)
    assert created.status_code == 201, created.get_json()
    world.tick()  # the pre-alerts leave through the transport
    case: dict[str, object] = created.get_json()
    return case


def link_of(world: World, who: str) -> str:
    """The path of the link in the pre-alert ``who`` (``H-A:obstetrics``) received."""
    [sms] = world.transport.to(world.phones[who])
    found = LINK.search(sms.body)
    assert found, sms.body
    return found.group(1)


def browser(app: Flask) -> FlaskClient:
    """A phone's browser of its own: no cookie of the test's other clients."""
    return app.test_client()


def test_a_pre_alert_carries_the_flags_the_deadline_and_a_working_link(world: World) -> None:
    case = refer(world, SHOCKED_PPH)
    [sms] = world.transport.to(world.phones["H-A:obstetrics"])
    rules = world.app.extensions["greenchannel.rules"]
    with world.app.app_context():
        offer = db.session.scalars(
            select(Offer).join(Offer.facility).where(Offer.referral_id == case["id"])
        ).first()
        assert offer is not None
        deadline = rules.clock_time(offer.expires_at)
    assert deadline == "16:03"  # 08:00 UTC + 3 min, on the region's clock (UTC+8)
    body = sms.body
    assert f"请{deadline}前回复{case['code']} Y" in body
    assert "休克" in body and "出血1800ml" in body and "已分娩" in body
    assert "(估算)" in body  # no road network in this world: straight-line estimates
    assert "+8623000000" in body  # the clinic's call-back number
    words = re.sub(r"https?://\S+", "", body).replace(deadline, "")  # a token holds any digits
    assert "T1-2026-0042" not in body and "28" not in words

    page = browser(world.app).get(link_of(world, "H-A:obstetrics"), follow_redirects=True)
    assert page.status_code == 200
    assert str(case["code"]) in page.get_data(as_text=True)


def test_opening_the_link_shows_the_case_and_lets_the_contact_accept(world: World) -> None:
    case = refer(world)
    phone = browser(world.app)
    opened = phone.get(link_of(world, "H-A:obstetrics"))
    assert opened.status_code == 302 and opened.headers["Location"].endswith("/link")
    page = phone.get("/link").get_data(as_text=True)
    assert str(case["code"]) in page and "接收" in page and "拒绝原因" in page
    assert 'lang="zh-CN"' in page  # the contact's language

    answered = phone.post(
        "/link/accept",
        data={"eta_minutes": "15", "csrf_token": csrf_from(page)},
        follow_redirects=True,
    )
    assert answered.status_code == 200
    assert "已接收：已通知转出机构送来。" in answered.get_data(as_text=True)
    with world.app.app_context():
        contact = db.session.scalar(
            select(Contact).where(Contact.phone == world.phones["H-A:obstetrics"])
        )
        assert contact is not None
        referral = db.session.get(Referral, case["id"])
        assert referral is not None and referral.status.value == "accepted"
        offer = db.session.get(Offer, referral.accepted_offer_id)
        assert offer is not None and offer.facility.code == "H-A"
        assert offer.answered_by == f"link contact {contact.id}" and offer.answer_minutes == 15
        actions = db.session.execute(
            select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.referral_id == case["id"])
        ).all()
        assert ("accept", f"link contact {contact.id}") in actions
        assert ("link_open", f"link contact {contact.id}") in actions
    # The clinic is told, as after any acceptance.
    world.tick()
    assert world.transport.to(world.phones["T-1:obstetrics"])


def test_a_decline_through_the_link_needs_a_reason_and_moves_the_case_on(world: World) -> None:
    case = refer(world)
    phone = browser(world.app)
    phone.get(link_of(world, "H-A:obstetrics"))
    page = phone.get("/link").get_data(as_text=True)
    refused = phone.post(
        "/link/decline", data={"csrf_token": csrf_from(page)}, follow_redirects=True
    ).get_data(as_text=True)
    assert "reason" in refused  # the service's words, after the translated lead
    phone.post(
        "/link/decline",
        data={"reason": "THEATRE", "csrf_token": csrf_from(page)},
        follow_redirects=True,
    )
    with world.app.app_context():
        statuses = {
            o.facility.code: o.status
            for o in db.session.scalars(select(Offer).where(Offer.referral_id == case["id"]))
        }
    assert statuses["H-A"] is OfferStatus.DECLINED and statuses["H-C"] is OfferStatus.PENDING


def test_a_link_opens_once(world: World) -> None:
    refer(world)
    path = link_of(world, "H-A:obstetrics")
    assert browser(world.app).get(path).status_code == 302
    second = browser(world.app).get(path, follow_redirects=True)
    assert second.status_code == 410
    assert "此链接已过期或已被使用" in second.get_data(as_text=True)


def test_each_contact_has_a_link_of_their_own(world: World) -> None:
    refer(world)
    paths = {link_of(world, f"H-A:{team}") for team in ("obstetrics", "anaesthesia", "blood_bank")}
    assert len(paths) == 3
    with world.app.app_context():
        rows = db.session.scalars(select(CaseLink)).all()
        stored = {row.token_hash for row in rows}
    assert not any(path.rsplit("/", 1)[1] in hashed for path in paths for hashed in stored)


def test_an_expired_offers_link_is_refused(world: World) -> None:
    refer(world)
    path = link_of(world, "H-B:obstetrics")
    world.clock.advance(minutes=3, seconds=1)  # the critical answer timeout has passed
    late = browser(world.app).get(path, follow_redirects=True)
    assert late.status_code == 410
    world.tick()  # the offer expires for good: still refused
    assert browser(world.app).get(path, follow_redirects=True).status_code == 410


def test_an_answered_offers_link_is_refused(world: World) -> None:
    case = refer(world)
    offer = next(o for o in case["offers"] if o["facility"] == "H-A")  # type: ignore[attr-defined]
    accepted = world.post("H-A", f"/api/v1/referrals/{case['id']}/offers/{offer['id']}/accept", {})
    assert accepted.status_code == 200
    got = browser(world.app).get(link_of(world, "H-A:anaesthesia"), follow_redirects=True)
    assert got.status_code == 410


def test_the_link_session_opens_that_case_only(world: World) -> None:
    first = refer(world)
    other = world.post(
        "clinic",
        "/api/v1/referrals",
        {**PPH_REQUEST, "patient": {"ref": "T1-2026-0043"}},
    ).get_json()
    phone = browser(world.app)
    phone.get(link_of(world, "H-A:obstetrics"))
    assert str(first["code"]) in phone.get("/link").get_data(as_text=True)
    # Not a login: no page of the hospital, no case page, not even this case's, no API.
    for path in (
        "/hospital",
        "/board",
        "/clinic",
        f"/cases/{other['id']}",
        f"/cases/{first['id']}",
    ):
        response = phone.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert phone.get(f"/api/v1/referrals/{other['id']}").status_code == 401
    assert phone.get("/api/v1/referrals").status_code == 401
    page = phone.get("/link").get_data(as_text=True)
    assert str(other["code"]) not in page


def test_opening_a_link_logs_out_whoever_was_logged_in_here(world: World) -> None:
    from tests.world import PASSWORD, add_user, login

    with world.app.app_context():
        add_user(db.session, "w-hosp-b", "hospital", facility="H-B", password=PASSWORD)
        db.session.commit()
    refer(world)
    phone = browser(world.app)
    login(phone, "w-hosp-b")
    assert phone.get("/hospital").status_code == 200
    phone.get(link_of(world, "H-A:obstetrics"))
    assert phone.get("/hospital").status_code == 302


def test_the_link_session_ends_when_the_contact_is_deactivated(world: World) -> None:
    refer(world)
    phone = browser(world.app)
    phone.get(link_of(world, "H-A:obstetrics"))
    assert phone.get("/link").status_code == 200
    with world.app.app_context():
        contact = db.session.scalar(
            select(Contact).where(Contact.phone == world.phones["H-A:obstetrics"])
        )
        assert contact is not None
        contact.active = False
        db.session.commit()
    ended = phone.get("/link", follow_redirects=True)
    assert ended.status_code == 410


def test_wrong_tokens_get_the_expired_page_and_are_throttled(world: World) -> None:
    world.app.config["GREENCHANNEL_RATE_LIMIT_LINK"] = 3
    refer(world)
    good = link_of(world, "H-A:obstetrics")
    guesser = browser(world.app)
    for wrong in ("/l/AAAAAAAAAAA", "/l/short", "/l/" + "é" * 11):
        answer = guesser.get(wrong, follow_redirects=True)
        assert answer.status_code == 410, wrong
        assert "此链接已过期或已被使用" in answer.get_data(as_text=True)
    throttled = guesser.get(good)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert "一分钟" in throttled.get_data(as_text=True)
    world.clock.advance(seconds=61)  # a new minute, and the offer still waits
    assert guesser.get(good).status_code == 302


def test_english_contacts_get_the_english_page_and_the_refusal_in_english(world: World) -> None:
    with world.app.app_context():
        contact = db.session.scalar(
            select(Contact).where(Contact.phone == world.phones["H-A:obstetrics"])
        )
        assert contact is not None
        contact.language = "en"
        db.session.commit()
    refer(world)
    [sms] = world.transport.to(world.phones["H-A:obstetrics"])
    assert "Reply by 16:03:" in sms.body and "ETA" in sms.body and "(estimate)" in sms.body
    phone = browser(world.app)
    path = link_of(world, "H-A:obstetrics")
    phone.get(path)
    page = phone.get("/link").get_data(as_text=True)
    assert 'lang="en"' in page and "Team ready in (minutes)" in page
    again = browser(world.app).get(path + "?lang=en", follow_redirects=True)
    assert "This link has expired or has already been used." in again.get_data(as_text=True)


def test_no_log_line_carries_the_token(world: World, caplog: pytest.LogCaptureFixture) -> None:
    refer(world)
    path = link_of(world, "H-A:obstetrics")
    token = path.rsplit("/", 1)[1]
    with caplog.at_level(logging.DEBUG):
        phone = browser(world.app)
        phone.get(path)
        phone.get(path)  # refused: logged too
        phone.get("/l/BBBBBBBBBBB")
        assert phone.put(path).status_code == 405  # no route matched: masked all the same
        assert phone.get(path + "/more").status_code == 404
    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
        assert not any(token in str(value) for value in vars(record).values())
        assert "BBBBBBBBBBB" not in str(vars(record))


def test_the_pre_alert_links_expire_with_the_offer(world: World) -> None:
    refer(world)
    with world.app.app_context():
        links = db.session.scalars(select(CaseLink)).all()
        offers = {o.id: o for o in db.session.scalars(select(Offer))}
        assert links
        for link in links:
            assert link.expires_at == offers[link.offer_id].expires_at
            assert link.used_at is None
    assert links[0].expires_at > NOW


# ---------------------------------------------------------------------------- the domain alone


@pytest.fixture
def linked_case(session: Session) -> tuple[Placement, Offer, Contact, str]:
    """A PPH case offered to one hospital whose obstetrician has a link; the token from the
    queued pre-alert, as the contact's phone will receive it."""
    place = Placement(rules=load_rules(), router=routing.Router(None), public_base_url=BASE)
    clinic = add_facility(
        session,
        "T-1",
        kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        maternal_level=1,
        neonatal_level=1,
        capabilities=[],
        lat=29.80,
        lon=106.20,
    )
    hospital = add_facility(
        session,
        "H-0",
        maternal_level=3,
        capabilities=["caesarean_24h", "blood_transfusion", "massive_transfusion", "adult_icu"],
        lat=29.85,
        lon=106.20,
    )
    contact = make_contact(session, hospital, "+8613900000001")
    report_status(
        session,
        facility=hospital,
        beds={"obstetric": 2, "maternal_icu": 1, "nicu": 1},
        reported_by="test",
        user_id=None,
        channel=Channel.API,
        now=NOW - dt.timedelta(minutes=5),
    )
    referral, _ = service.create_referral(
        session,
        place=place,
        actor=service.Actor(name="clinic", channel="web", role=Role.CLINIC, facility_id=clinic.id),
        origin=clinic,
        case=Case(conditions=("PPH",), delivered=True),
        patient={},
        now=NOW,
    )
    [offer] = [o for o in referral.offers if o.status is OfferStatus.PENDING]
    body = session.scalars(
        select(OutboundMessage.body).where(OutboundMessage.to_phone == contact.phone)
    ).one()
    found = re.search(r"/l/([A-Za-z0-9]{11})", body)
    assert found, body
    return place, offer, contact, found.group(1)


def test_a_link_opens_once_for_its_contact_and_case(
    session: Session, linked_case: tuple[Placement, Offer, Contact, str]
) -> None:
    _, offer, contact, token = linked_case
    grant = links.open_link(session, token, now=NOW + dt.timedelta(minutes=1))
    assert (grant.referral_id, grant.offer_id, grant.contact_id) == (
        offer.referral_id,
        offer.id,
        contact.id,
    )
    actor = grant.actor()
    assert actor.name == f"link contact {contact.id}" and actor.role is Role.HOSPITAL
    assert actor.facility_id == offer.facility_id and actor.user_id is None
    with pytest.raises(links.LinkRefused) as refused:
        links.open_link(session, token, now=NOW + dt.timedelta(minutes=1))
    assert refused.value.reason == "used" and refused.value.language == "zh"
    # The opened link is readable a while after opening, then no more.
    assert links.grant_for(session, grant.link_id, now=NOW + dt.timedelta(minutes=30)) is not None
    assert links.grant_for(session, grant.link_id, now=NOW + dt.timedelta(minutes=32)) is None


def test_a_link_does_not_open_after_its_offer_expires_or_once_revoked(
    session: Session, linked_case: tuple[Placement, Offer, Contact, str]
) -> None:
    _, offer, contact, token = linked_case
    with pytest.raises(links.LinkRefused) as late:
        links.open_link(session, token, now=offer.expires_at)
    assert late.value.reason == "expired"

    second = links.mint(session, offer=offer, contact=contact, now=NOW)
    assert links.revoke(session, offer_id=offer.id, now=NOW) == 2
    with pytest.raises(links.LinkRefused) as revoked:
        links.open_link(session, second, now=NOW)
    assert revoked.value.reason == "revoked"

    third = links.mint(session, offer=offer, contact=contact, now=NOW)
    grant = links.open_link(session, third, now=NOW)
    assert links.revoke(session, contact_id=contact.id, now=NOW) == 1
    assert links.grant_for(session, grant.link_id, now=NOW) is None  # the session ends too

    for wrong in ("", "x" * 11, token[:-1], token + "a", "é" * 11):
        with pytest.raises(links.LinkRefused) as unknown:
            links.open_link(session, wrong, now=NOW)
        assert unknown.value.reason in ("unknown", "expired")


def test_retention_deletes_the_links_that_expired_more_than_its_days_ago(
    session: Session, linked_case: tuple[Placement, Offer, Contact, str]
) -> None:
    _, offer, contact, token = linked_case
    grant = links.open_link(session, token, now=NOW)
    unopened = links.mint(session, offer=offer, contact=contact, now=NOW)
    expires = session.scalars(select(CaseLink.expires_at)).all()
    assert len(expires) == 2
    day_after = max(expires) + dt.timedelta(days=1)
    assert links.forget_expired(session, now=day_after - dt.timedelta(minutes=1), days=1) == 0
    assert links.grant_for(session, grant.link_id, now=grant.until - dt.timedelta(seconds=1))
    assert links.forget_expired(session, now=day_after + dt.timedelta(minutes=1), days=1) == 2
    assert session.scalars(select(CaseLink)).all() == []
    with pytest.raises(links.LinkRefused) as refused:
        links.open_link(session, unopened, now=day_after)
    assert refused.value.reason == "unknown"


def test_only_a_hash_of_the_token_is_stored(
    session: Session, linked_case: tuple[Placement, Offer, Contact, str]
) -> None:
    _, _, _, token = linked_case
    row = session.scalars(select(CaseLink)).one()
    assert token not in row.token_hash and len(row.token_hash) == 64


def _referral(case: dict[str, object], in_shock: bool, kind: str = "mother") -> Referral:
    return Referral(case=case, requirements={"in_shock": in_shock}, patient_kind=kind)


@pytest.mark.parametrize(
    ("case", "in_shock", "expected"),
    [
        ({"in_shock": True}, True, (True, None)),
        ({"vitals": {"hr": 130, "sbp": 80}}, True, (True, None)),  # shock index 1.6
        ({"blood_loss_ml": 1800}, True, (False, 1800)),
        ({"in_shock": True, "blood_loss_ml": 2000}, True, (True, 2000)),
        ({"vitals": {"hr": 90, "sbp": 120}, "blood_loss_ml": 600}, False, (False, None)),
        # The decision counted shock under earlier thresholds: it still says shock.
        ({"blood_loss_ml": 1000}, True, (True, None)),
    ],
)
def test_the_pre_alert_reads_shock_and_massive_bleeding_from_the_clinical_rule(
    case: dict[str, object], in_shock: bool, expected: tuple[bool, int | None]
) -> None:
    assert shock_flags(load_rules(), _referral(case, in_shock)) == expected
