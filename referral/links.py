"""One-time links from a pre-alert to its case page (docs/domain.md, "The link in the pre-alert").

Each contact a pre-alert may reach gets a link of their own, bound to that contact, that offer
and so that case: ``PUBLIC_BASE_URL/l/<token>``, the token 11 random letters and digits
(62¹¹ ≈ 2⁶⁵·⁵). Only the token's SHA-256 is stored, so the table alone opens nothing; a token
of 65 random bits needs no slow hash. A link opens once, while its offer is still waiting for
an answer and before its expiry (the offer's, at most :data:`MAX_LIFETIME`), unless revoked or
its contact was deactivated. Opening it is a compare-and-swap on ``used_at``: of two openings
racing, one wins.

The opened link is a *grant*: this contact may see this one case and answer this one offer, for
:data:`SESSION_MINUTES` after opening or as long as the link would have lived. It is no user
account and carries no role scope: the web layer keeps it apart from logins.

No token is ever logged; log lines name the link's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import string
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, delete, select, update
from sqlalchemy.orm import Session

from core.errors import ServiceError
from facilities.models import Contact, Role
from referral.access import Actor
from referral.models import CaseLink, Offer, OfferStatus

log = logging.getLogger(__name__)

TOKEN_ALPHABET = string.ascii_letters + string.digits
# Letters and digits only: nothing an SMS client could leave out of the link it underlines.
TOKEN_LENGTH = 11
PATH = "/l/"
#: However long an offer waits, its links die after this.
MAX_LIFETIME = dt.timedelta(hours=24)
#: An opened link keeps its case readable at least this long (the answer, the ETA after it).
SESSION_MINUTES = 30


class LinkRefused(ServiceError):
    """The link does not open: unknown, used, expired, revoked. ``reason`` says which (for
    tests and the log); the person is told the same thing whatever it is."""

    status = 410
    code = "link_refused"

    def __init__(self, reason: str, *, language: str | None = None) -> None:
        super().__init__(f"the link cannot be opened ({reason})", field="token")
        self.reason = reason
        #: the contact's language, when the link was one of ours: they are told in it
        self.language = language


@dataclass(frozen=True)
class LinkGrant:
    """What an opened link allows: one contact, one case, one offer, until ``until``."""

    link_id: int
    referral_id: int
    offer_id: int
    contact_id: int
    facility_id: int
    language: str
    until: dt.datetime

    def actor(self) -> Actor:
        """The contact, acting on the web for the hospital they are registered at."""
        return Actor(
            name=f"link contact {self.contact_id}",
            channel="web",
            role=Role.HOSPITAL,
            facility_id=self.facility_id,
        )


def _changed(session: Session, statement: Executable) -> int:
    return int(cast(CursorResult[Any], session.execute(statement)).rowcount)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def is_token_shaped(token: str) -> bool:
    """Could ``token`` be one of ours (before any database work)?"""
    return len(token) == TOKEN_LENGTH and all(ch in TOKEN_ALPHABET for ch in token)


def mint(session: Session, *, offer: Offer, contact: Contact, now: dt.datetime) -> str:
    """A new link for ``contact`` to ``offer``'s case; returns the token (stored hashed)."""
    token = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
    link = CaseLink(
        token_hash=_digest(token),
        referral_id=offer.referral_id,
        offer_id=offer.id,
        contact_id=contact.id,
        created_at=now,
        expires_at=min(offer.expires_at, now + MAX_LIFETIME),
    )
    session.add(link)
    return token


def url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PATH + token


def open_link(session: Session, token: str, *, now: dt.datetime) -> LinkGrant:
    """Use the link once: the grant it gives, or :class:`LinkRefused` (nothing changed)."""
    if not is_token_shaped(token):
        raise LinkRefused("unknown")
    link = session.scalar(select(CaseLink).where(CaseLink.token_hash == _digest(token)))
    if link is None:
        raise LinkRefused("unknown")
    contact = session.get(Contact, link.contact_id)
    language = _language(contact)
    if link.revoked_at is not None:
        raise LinkRefused("revoked", language=language)
    if link.used_at is not None:
        raise LinkRefused("used", language=language)
    offer = session.get(Offer, link.offer_id)
    if (
        offer is None
        or offer.status is not OfferStatus.PENDING
        or now >= min(link.expires_at, offer.expires_at)
    ):
        raise LinkRefused("expired", language=language)
    if contact is None or not contact.active or contact.facility_id != offer.facility_id:
        raise LinkRefused("revoked", language=language)
    claimed = _changed(
        session,
        update(CaseLink)
        .where(CaseLink.id == link.id, CaseLink.used_at.is_(None))
        .values(used_at=now),
    )
    if claimed != 1:
        raise LinkRefused("used")
    log.info("case link %s opened (offer %s, contact %s)", link.id, offer.id, contact.id)
    session.refresh(link)
    return _grant(link, contact, facility_id=offer.facility_id)


def grant_for(session: Session, link_id: int, *, now: dt.datetime) -> LinkGrant | None:
    """The grant of an opened link, while it lasts (each request of its session asks again)."""
    link = session.get(CaseLink, link_id)
    if link is None or link.used_at is None or link.revoked_at is not None:
        return None
    contact = session.get(Contact, link.contact_id)
    if contact is None or not contact.active:
        return None
    offer = session.get(Offer, link.offer_id)
    if offer is None:
        return None
    grant = _grant(link, contact, facility_id=offer.facility_id)
    return grant if now < grant.until else None


def forget_expired(session: Session, *, now: dt.datetime, days: int) -> int:
    """Delete the links that expired more than ``days`` ago (each a token's hash and the ids
    of its case, offer and contact; a link's grant ends at most half an hour after it
    expires): returns how many."""
    return _changed(
        session, delete(CaseLink).where(CaseLink.expires_at < now - dt.timedelta(days=days))
    )


def _language(contact: Contact | None) -> str:
    return "en" if contact is not None and contact.language == "en" else "zh"


def _grant(link: CaseLink, contact: Contact, *, facility_id: int) -> LinkGrant:
    assert link.used_at is not None
    return LinkGrant(
        link_id=link.id,
        referral_id=link.referral_id,
        offer_id=link.offer_id,
        contact_id=link.contact_id,
        facility_id=facility_id,
        language=_language(contact),
        until=max(link.expires_at, link.used_at + dt.timedelta(minutes=SESSION_MINUTES)),
    )


def revoke(
    session: Session,
    *,
    now: dt.datetime,
    contact_id: int | None = None,
    offer_id: int | None = None,
    link_id: int | None = None,
) -> int:
    """Revoke the links (unopened, or opened and their sessions) of a contact, an offer or
    one link; returns how many. A revoked link never opens, its session ends at once."""
    if contact_id is None and offer_id is None and link_id is None:
        raise ValueError("revoke: name a contact, an offer or a link")
    statement = update(CaseLink).where(CaseLink.revoked_at.is_(None)).values(revoked_at=now)
    if contact_id is not None:
        statement = statement.where(CaseLink.contact_id == contact_id)
    if offer_id is not None:
        statement = statement.where(CaseLink.offer_id == offer_id)
    if link_id is not None:
        statement = statement.where(CaseLink.id == link_id)
    return _changed(session, statement)
