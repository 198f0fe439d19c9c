"""`greenchannel db|facilities|contacts|users|tokens …`: the database, the registry, accounts."""

from __future__ import annotations

import getpass
import sys
from typing import Any

import click
from sqlalchemy.orm import Session

from core.db import utcnow
from facilities import accounts, export, registry
from facilities.accounts import AccountError, create_user
from facilities.registry import RegistryError
from greenchannel.cli.common import import_failure, open_runtime, read_file, session_scope
from referral import audit


@click.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to the newest schema."""
    from migrations import upgrade

    rt = open_runtime()
    upgrade(rt.settings["DATABASE_URL"])
    click.echo("database is at the newest schema")


def _audit_import(session: Session, action: str, summary: registry.ImportSummary) -> None:
    """Registry changes from the command line are in the audit trail too (the system user of
    the machine is the actor: the CLI has no login)."""
    audit.record(
        session,
        action=action,
        actor=f"cli:{getpass.getuser()}",
        channel="import",
        now=utcnow(),
        created=summary.created,
        updated=summary.updated,
        codes=summary.codes[:1000],
    )


@click.group("facilities")
def facilities_group() -> None:
    """The facility registry."""


@facilities_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def facilities_import(file: str) -> None:
    """Create or update facilities from a CSV or GeoJSON FILE (all rows or none)."""
    data = read_file(file)
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            summary = registry.import_facilities(
                session, data=data, fmt=registry.detect_format(file, data), now=utcnow()
            )
        except RegistryError as exc:
            session.rollback()
            raise import_failure(exc) from None
        _audit_import(session, "facilities_imported", summary)
        session.commit()
    click.echo(f"imported {summary.created} new and {summary.updated} updated facilities")


@facilities_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "geojson", "fhir"]), default="csv")
@click.option(
    "--bundle",
    type=click.Choice(list(export.BUNDLE_TYPES)),
    default="collection",
    help="FHIR only: a collection, or a transaction a FHIR server loads (PUT by identifier)",
)
def facilities_export(fmt: str, bundle: str) -> None:
    """Write the registry to standard output."""
    rt = open_runtime()
    with session_scope(rt) as session:
        facilities = registry.list_facilities(session)
        if fmt == "csv":
            sys.stdout.write(export.export_csv(facilities))
            return
        if fmt == "geojson":
            sys.stdout.write(export.export_geojson(facilities))
        else:
            sys.stdout.write(
                export.export_fhir(
                    facilities, now=utcnow(), grace=rt.rules.stale_grace, bundle=bundle
                )
            )
        sys.stdout.write("\n")


@click.group("contacts")
def contacts_group() -> None:
    """Teams and phones of the facilities."""


@contacts_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def contacts_import(file: str) -> None:
    """Create or update contacts from a CSV FILE (all rows or none)."""
    data = read_file(file)
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            summary = registry.import_contacts(session, data=data)
        except RegistryError as exc:
            session.rollback()
            raise import_failure(exc) from None
        _audit_import(session, "contacts_imported", summary)
        session.commit()
    click.echo(f"imported {summary.created} new and {summary.updated} updated contacts")


@click.group("users")
def users_group() -> None:
    """People who use the service."""


@users_group.command("create")
@click.option("--username", required=True)
@click.option(
    "--role", type=click.Choice(["clinic", "hospital", "coordinator", "admin"]), required=True
)
@click.option("--facility", "facility_code", help="facility code (clinic and hospital users)")
@click.option("--area", default="", help='coordinators: "Province/City/County" (default: all)')
@click.option("--password", help="also lets the user log in on the web")
@click.option("--phone", default="", help="E.164 phone, for coordinators' SMS notices")
@click.option("--language", type=click.Choice(["zh", "en"]), default="zh")
def users_create(
    username: str,
    role: str,
    facility_code: str | None,
    area: str,
    password: str | None,
    phone: str,
    language: str,
) -> None:
    """Create a user and print an API token (shown this once)."""
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            created = create_user(
                session,
                username=username,
                role=role,
                facility_code=facility_code,
                area=area,
                password=password,
                phone=phone,
                language=language,
                now=utcnow(),
                token_lifetime=accounts.token_lifetime(rt.settings),
            )
        except (AccountError, RegistryError) as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f"created {role} user {username}")
    click.echo(f"API token (shown once, keep it safe): {created.token}")


def _audit_cli(session: Session, action: str, **detail: Any) -> None:
    """Account changes made at the server's console, in the audit trail like the API's."""
    audit.record(session, action=action, actor="cli", channel="cli", now=utcnow(), **detail)


@users_group.command("list")
def users_list() -> None:
    """Every user: role, facility or area, active or not, live tokens and last use."""
    rt = open_runtime()
    now = utcnow()
    with session_scope(rt) as session:
        for user in accounts.list_users(session):
            tokens = accounts.live_tokens(session, user=user, now=now)
            used = [t.last_used_at for t in tokens if t.last_used_at is not None]
            where = user.facility.code if user.facility else (user.area or "-")
            click.echo(
                f"{user.username:<20} {user.role.value:<12} {where:<16} "
                f"{'active' if user.active else 'deactivated':<12} "
                f"tokens {len(tokens)} ({', '.join(t.prefix or '?' for t in tokens) or '-'}) "
                f"last use {max(used).isoformat(timespec='minutes') if used else 'never'}"
            )


@users_group.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """USERNAME can no longer log in; their tokens and web sessions end now."""
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            user = accounts.deactivate_user(session, username=username, now=utcnow())
        except RegistryError as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        _audit_cli(session, "user_deactivate", user=user.username, user_ref=user.id)
        session.commit()
    click.echo(f"deactivated {username}: tokens revoked, web sessions ended")


@users_group.command("reset-password")
@click.argument("username")
@click.option(
    "--read",
    "read_stdin",
    is_flag=True,
    help="read the new password from standard input instead of generating one",
)
def users_reset_password(username: str, read_stdin: bool) -> None:
    """Give USERNAME a new password (printed once) and end their web sessions."""
    chosen = sys.stdin.readline().rstrip("\r\n") if read_stdin else None
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            password = accounts.reset_password(
                session, username=username, password=chosen, now=utcnow()
            )
        except RegistryError as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        _audit_cli(session, "password_reset", user=username)
        session.commit()
    click.echo(f"password of {username} reset; their web sessions are ended")
    if chosen is None:
        click.echo(f"new password (shown once, hand it over safely): {password}")


@click.group("tokens")
def tokens_group() -> None:
    """API tokens."""


@tokens_group.command("issue")
@click.argument("username")
@click.option("--label", default="issued at the console", show_default=True, help="what it is for")
def tokens_issue(username: str, label: str) -> None:
    """A new API token for USERNAME (shown this once); their other tokens stay live."""
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            issued = accounts.new_token(
                session,
                user=accounts.get_user(session, username),
                label=label[:100],
                now=utcnow(),
                lifetime=accounts.token_lifetime(rt.settings),
            )
            _audit_cli(session, "token_issue", user=username, token=issued.prefix)
        except RegistryError as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        session.commit()
    expires = issued.expires_at.date().isoformat()
    click.echo(
        f"API token for {username} (shown once, keep it safe; expires {expires}): {issued.token}"
    )


@tokens_group.command("revoke")
@click.option("--user", "username", help="revoke every token of this user")
@click.argument("token_prefix", required=False)
def tokens_revoke(username: str | None, token_prefix: str | None) -> None:
    """Revoke one token by its first characters (TOKEN_PREFIX, as `users list` shows), or
    every token of a user (--user USERNAME)."""
    if (username is None) == (token_prefix is None):
        raise click.UsageError("give either --user USERNAME or TOKEN_PREFIX")
    rt = open_runtime()
    with session_scope(rt) as session:
        try:
            if username is not None:
                user = accounts.get_user(session, username)
                count = accounts.revoke_tokens(session, user=user, now=utcnow())
                _audit_cli(session, "token_revoke", user=username, count=count)
                message = f"revoked {count} token(s) of {username}"
            else:
                assert token_prefix is not None
                token = accounts.revoke_token_by_prefix(session, prefix=token_prefix, now=utcnow())
                _audit_cli(session, "token_revoke", token=token.prefix)
                message = f"revoked token {token.prefix}…"
        except RegistryError as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(message)
