"""A hand-worked month of cases for the monthly report's tests (tests/test_reports_monthly.py
says what each case is and what every figure must be)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from facilities.models import Channel, Facility, FacilityKind
from facilities.status import report_status
from referral.models import Offer, OfferStatus, Referral, ReferralEvent, ReferralStatus
from referral.rules import load_rules
from tests.world import add_facility

RULES = load_rules()
Z = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=Z)


def plus(t: dt.datetime, minutes: float | None) -> dt.datetime | None:
    return None if minutes is None else t + dt.timedelta(minutes=minutes)


def add_case(
    session: Session,
    code: str,
    *,
    origin: Facility,
    created: dt.datetime,
    urgency: str,
    conditions: list[str],
    colour: str,
    status: ReferralStatus,
    offers: list[tuple[Facility, str, float, float | None, str | None]] = (),  # type: ignore[assignment]
    destination: Facility | None = None,
    milestones: dict[str, float] | None = None,
    cancel_reason: str = "",
    events: tuple[str, ...] = (),
) -> Referral:
    """A case as the service leaves it; ``offers`` are (hospital, status, offered +min,
    answered +min, decline reason); ``milestones`` are minutes after decision."""
    times = {k: plus(created, v) for k, v in (milestones or {}).items()}
    referral = Referral(
        code=code,
        status=status,
        urgency=urgency,
        patient_kind="mother",
        origin_facility_id=origin.id,
        origin_lat=origin.lat,
        origin_lon=origin.lon,
        created_by="test",
        created_channel="api",
        case={"conditions": conditions, "risk_colour": colour},
        patient={"ref": f"secret-{code}"},
        requirements={},
        destination_facility_id=destination.id if destination else None,
        cancel_reason=cancel_reason,
        outcome="free text that is never exported",
        created_at=created,
        updated_at=created,
        **times,
    )
    session.add(referral)
    session.flush()
    for hospital, state, offered, answered, reason in offers:
        offer = Offer(
            referral_id=referral.id,
            facility_id=hospital.id,
            status=OfferStatus(state),
            kind="safety_net" if reason == "safety_net" else "transfer",
            offered_at=plus(created, offered),
            expires_at=plus(created, offered + 15),
            answered_at=plus(created, answered),
            decline_reason=reason if reason not in (None, "safety_net") else None,
        )
        session.add(offer)
        session.flush()
        if state == "accepted":
            referral.accepted_offer_id = offer.id
    for kind in events:
        session.add(
            ReferralEvent(
                referral_id=referral.id, at=created, kind=kind, actor="system", channel="system"
            )
        )
    session.flush()
    return referral


def build_month(session: Session, f: dict[str, Facility]) -> dict[str, Facility]:
    """The month of the module's docstring over the region's facilities ``f``."""
    f["T-2"] = add_facility(
        session,
        "T-2",
        kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE,
        county="河西县",
        township="河西镇",
        lat=31.80,
        lon=106.20,
        maternal_level=1,
        neonatal_level=1,
        capabilities=[],
    )
    far = add_facility(session, "X-1", kind=FacilityKind.TOWNSHIP_HEALTH_CENTRE, province="别省")
    ha, hb, hc, hd = f["H-A"], f["H-B"], f["H-C"], f["H-D"]
    t1, t2 = f["T-1"], f["T-2"]
    done = {"first_alert_at": 1, "first_answer_at": 4, "accepted_at": 10}
    add_case(
        session, "C1", origin=t1, created=at("2026-11-20T02:00"), urgency="critical",
        conditions=["PPH"], colour="red", status=ReferralStatus.COMPLETED, destination=hb,
        offers=[(ha, "declined", 1, 4, "FULL"), (hb, "accepted", 1, 10, None)],
        milestones={**done, "departed_at": 20, "arrived_at": 50, "completed_at": 90},
    )  # fmt: skip
    add_case(
        session, "C2", origin=t2, created=at("2026-11-21T03:00"), urgency="critical",
        conditions=["PPH", "SEVERE_ANAEMIA"], colour="red", status=ReferralStatus.ARRIVED,
        destination=ha, offers=[(ha, "accepted", 2, 6, None)],
        milestones={"first_alert_at": 2, "first_answer_at": 6, "accepted_at": 6,
                    "departed_at": 16, "arrived_at": 40},
    )  # fmt: skip
    add_case(
        session, "C3", origin=t1, created=at("2026-11-21T05:00"), urgency="urgent",
        conditions=["PRETERM_LABOUR"], colour="orange", status=ReferralStatus.ACCEPTED,
        destination=hd,
        offers=[(ha, "expired", 1, None, None), (hc, "declined", 16, 20, "STAFF"),
                (hd, "accepted", 20, 45, None)],
        milestones={"first_alert_at": 1, "first_answer_at": 20, "accepted_at": 45},
    )  # fmt: skip
    add_case(
        session, "C4", origin=t1, created=at("2026-11-21T17:00"), urgency="critical",
        conditions=["ECLAMPSIA"], colour="red", status=ReferralStatus.ACCEPTED, destination=hd,
        offers=[(ha, "declined", 1, 3, "FULL"), (hb, "declined", 3, 5, "BLOOD"),
                (hd, "accepted", 8, 8, "safety_net")],
        milestones={"first_alert_at": 1, "first_answer_at": 3, "accepted_at": 8},
        events=("unplaced", "safety_net_assigned"),
    )  # fmt: skip
    add_case(
        session, "C5", origin=t2, created=at("2026-11-23T00:00"), urgency="planned",
        conditions=["SEVERE_PE"], colour="yellow", status=ReferralStatus.CANCELLED,
        cancel_reason="stabilised", milestones={"closed_at": 30},
    )  # fmt: skip
    for code, created in (("C6", "2026-10-31T16:30"), ("C7", "2026-10-31T15:30")):
        add_case(
            session, code, origin=t1, created=at(created), urgency="critical",
            conditions=["PPH"], colour="red", status=ReferralStatus.UNPLACED,
            offers=[(ha, "expired", 1, None, None)], milestones={"first_alert_at": 1},
            events=("unplaced",),
        )  # fmt: skip
    add_case(
        session, "C8", origin=far, created=at("2026-11-22T00:00"), urgency="critical",
        conditions=["PPH"], colour="red", status=ReferralStatus.UNPLACED,
    )  # fmt: skip
    # H-A's bed reports: before the month, 11-10 (closing), 11-12 (open again); the region's
    # own report of every hospital is at NOW - 10 min (2026-11-24 07:50).
    for when, diversion in (("2026-10-30T00:00", "normal"), ("2026-11-10T00:00", "closed"),
                            ("2026-11-12T00:00", "normal")):  # fmt: skip
        report_status(
            session, facility=ha, beds={"obstetric": 1}, diversion=diversion,
            diversion_reason="theatre full" if diversion != "normal" else None,
            reported_by="test", user_id=None, channel=Channel.API, now=at(when),
        )  # fmt: skip
    session.flush()
    return f
