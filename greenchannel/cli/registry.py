"""`greenchannel db|facilities|contacts|users …`: the database and the registry."""

from __future__ import annotations

import getpass
import sys

import click
from sqlalchemy.orm import Session

from core.db import utcnow
from facilities import export, registry
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
def facilities_export(fmt: str) -> None:
    """Write the registry to standard output."""
    rt = open_runtime()
    with session_scope(rt) as session:
        facilities = registry.list_facilities(session)
        writer = {
            "csv": export.export_csv,
            "geojson": export.export_geojson,
            "fhir": export.export_fhir,
        }[fmt]
        sys.stdout.write(writer(facilities))
        if fmt != "csv":
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
            )
        except (AccountError, RegistryError) as exc:
            session.rollback()
            raise click.ClickException(str(exc)) from None
        session.commit()
    click.echo(f"created {role} user {username}")
    click.echo(f"API token (shown once, keep it safe): {created.token}")
