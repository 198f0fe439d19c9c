# mypy: disable-error-code="untyped-decorator"
# flask-smorest ships no type information (as for the other API modules in setup.cfg).
"""Accounts over HTTP, for administrators: list users, deactivate one, reset a password, issue
and revoke API tokens (thin handlers over ``facilities.accounts``; the CLI's ``users`` and
``tokens`` commands do the same at the server's console). Every change is audited."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.errors import Forbidden
from facilities import accounts
from facilities.models import Role, User
from facilities.registry import NotFound
from greenchannel.web import clock
from greenchannel.web.api_blueprint import Blueprint
from greenchannel.web.auth import audit_by, require_user
from greenchannel.web.db import db

blp = Blueprint("users", __name__, url_prefix="/api/v1", description="Accounts (administrators)")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


class TokenOutSchema(Schema):
    prefix = fields.String(required=True, metadata={"description": "the token's first characters"})
    label = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True)
    last_used_at = fields.DateTime(allow_none=True, required=True)


class UserOutSchema(Schema):
    username = fields.String(required=True)
    role = fields.String(required=True)
    facility = fields.String(allow_none=True, required=True)
    area = fields.String(required=True)
    active = fields.Boolean(required=True)
    tokens = fields.List(fields.Nested(TokenOutSchema), required=True)


class UserListSchema(Schema):
    users = fields.List(fields.Nested(UserOutSchema), required=True)


class PasswordOutSchema(Schema):
    username = fields.String(required=True)
    password = fields.String(
        required=True, metadata={"description": "the new password, shown this once"}
    )


class RevokeInSchema(Schema):
    user = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "revoke every token of this user"},
    )
    prefix = fields.String(
        validate=validate.Length(min=accounts.TOKEN_PREFIX_LENGTH, max=200),
        metadata={"description": "revoke the one token starting so (gc_ and 8 more)"},
    )

    @validates_schema
    def one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        if ("user" in data) == ("prefix" in data):
            raise ValidationError("give either user or prefix", field_name="user")


class IssueInSchema(Schema):
    user = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "whose token"},
    )
    label = fields.String(
        load_default="issued by an administrator",
        validate=validate.Length(max=100),
        metadata={"description": "what it is for (shown in the user list)"},
    )


class IssueOutSchema(Schema):
    user = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "the token, shown this once"})
    prefix = fields.String(required=True, metadata={"description": "how lists name it"})
    expires_at = fields.DateTime(required=True)


class RevokeOutSchema(Schema):
    revoked = fields.Integer(required=True, metadata={"description": "how many tokens"})


def _user_out(user: User) -> dict[str, Any]:
    now = clock.now()
    return {
        "username": user.username,
        "role": user.role.value,
        "facility": user.facility.code if user.facility else None,
        "area": user.area,
        "active": user.active,
        "tokens": [
            {
                "prefix": t.prefix,
                "label": t.label,
                "created_at": t.created_at,
                "expires_at": accounts.token_expires_at(t),
                "last_used_at": t.last_used_at,
            }
            for t in accounts.live_tokens(db.session, user=user, now=now)
        ],
    }


def _target(username: str) -> User:
    if not USERNAME.match(username):
        raise NotFound(f"user: no user named {username[:64]!r}")
    return accounts.get_user(db.session, username)


@blp.route("/users", methods=["GET"])
@blp.response(200, UserListSchema)
def list_users() -> dict[str, Any]:
    """Every user with their live tokens (prefix, expiry, last use). Administrators."""
    require_user(Role.ADMIN)
    return {"users": [_user_out(u) for u in accounts.list_users(db.session)]}


@blp.route("/users/<username>/deactivate", methods=["POST"])
@blp.response(200, UserOutSchema)
def deactivate(username: str) -> dict[str, Any]:
    """The user can no longer log in; their tokens and web sessions end now. Administrators
    (not on themselves)."""
    admin = require_user(Role.ADMIN)
    user = _target(username)
    if user.id == admin.id:
        raise Forbidden("you may not deactivate yourself", field="username")
    accounts.deactivate_user(db.session, username=user.username, now=clock.now())
    audit_by(admin, "user_deactivate", user=user.username, user_ref=user.id)
    db.session.commit()
    return _user_out(user)


@blp.route("/users/<username>/reset-password", methods=["POST"])
@blp.response(200, PasswordOutSchema)
def reset_password(username: str) -> dict[str, Any]:
    """A new random password for the user (in the answer, once); their web sessions end.
    Administrators."""
    admin = require_user(Role.ADMIN)
    user = _target(username)
    password = accounts.reset_password(db.session, username=user.username, now=clock.now())
    audit_by(admin, "password_reset", user=user.username, user_ref=user.id)
    db.session.commit()
    return {"username": user.username, "password": password}


@blp.route("/tokens", methods=["POST"])
@blp.arguments(IssueInSchema)
@blp.response(201, IssueOutSchema)
def issue(body: dict[str, Any]) -> dict[str, Any]:
    """A new API token for ``user`` (in the answer, once): theirs expired, was lost or revoked,
    or another system needs its own; their other tokens stay live. Administrators (not for
    themselves)."""
    admin = require_user(Role.ADMIN)
    target = _target(body["user"])
    if target.id == admin.id:
        raise Forbidden("you may not issue a token to yourself", field="user")
    issued = accounts.new_token(
        db.session,
        user=target,
        label=body["label"],
        now=clock.now(),
        lifetime=accounts.token_lifetime(current_app.config),
    )
    audit_by(admin, "token_issue", user=target.username, token=issued.prefix)
    db.session.commit()
    return {
        "user": target.username,
        "token": issued.token,
        "prefix": issued.prefix,
        "expires_at": issued.expires_at,
    }


@blp.route("/tokens/revoke", methods=["POST"])
@blp.arguments(RevokeInSchema)
@blp.response(200, RevokeOutSchema)
def revoke(body: dict[str, Any]) -> dict[str, Any]:
    """Revoke every token of ``user``, or the one token starting with ``prefix``.
    Administrators (not their own tokens by user)."""
    admin = require_user(Role.ADMIN)
    if "user" in body:
        user = _target(body["user"])
        if user.id == admin.id:
            raise Forbidden("you may not revoke every token of your own", field="user")
        count = accounts.revoke_tokens(db.session, user=user, now=clock.now())
        audit_by(admin, "token_revoke", user=user.username, count=count)
    else:
        token = accounts.revoke_token_by_prefix(db.session, prefix=body["prefix"], now=clock.now())
        audit_by(admin, "token_revoke", token=token.prefix)
        count = 1
    db.session.commit()
    return {"revoked": count}
