"""The ``greenchannel`` command line (CONTRACT.md)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import Flask
from sqlalchemy.orm import Session

from facilities import registry
from facilities.accounts import AccountError, create_user
from facilities.db import db, utcnow
from facilities.registry import RegistryError
from referral.config import ConfigError
from referral.rules import RulesError


def _app() -> Flask:
    from referral.app import create_app

    try:
        return create_app()
    except (RulesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield db.session


def _read(path: str) -> bytes:
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > registry.MAX_IMPORT_BYTES:
            raise click.ClickException(
                f"{path}: {size} bytes is over the "
                f"{registry.MAX_IMPORT_BYTES // (1024 * 1024)} MB limit"
            )
        return file.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None


def _fail_import(exc: RegistryError) -> click.ClickException:
    errors = getattr(exc, "errors", None)
    if errors:
        lines = [f"nothing imported: {len(errors)} error(s)"]
        lines += [f"  {error}" for error in errors]
        return click.ClickException("\n".join(lines))
    return click.ClickException(str(exc))


@click.group()
def main() -> None:
    """greenchannel: green-channel referral of critically ill mothers and newborns."""


@main.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database to the newest schema."""
    from migrations import upgrade

    app = _app()
    upgrade(app.config["DATABASE_URL"])
    click.echo("database is at the newest schema")


@main.group("facilities")
def facilities_group() -> None:
    """The facility registry."""


@facilities_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def facilities_import(file: str) -> None:
    """Create or update facilities from a CSV or GeoJSON FILE (all rows or none)."""
    data = _read(file)
    app = _app()
    with _session(app) as session:
        try:
            summary = registry.import_facilities(
                session, data=data, fmt=registry.detect_format(file, data), now=utcnow()
            )
        except RegistryError as exc:
            session.rollback()
            raise _fail_import(exc) from None
        session.commit()
    click.echo(f"imported {summary.created} new and {summary.updated} updated facilities")


@facilities_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "geojson", "fhir"]), default="csv")
def facilities_export(fmt: str) -> None:
    """Write the registry to standard output."""
    app = _app()
    with _session(app) as session:
        facilities = registry.list_facilities(session)
        writer = {
            "csv": registry.export_csv,
            "geojson": registry.export_geojson,
            "fhir": registry.export_fhir,
        }[fmt]
        sys.stdout.write(writer(facilities))
        if fmt != "csv":
            sys.stdout.write("\n")


@main.group("contacts")
def contacts_group() -> None:
    """Teams and phones of the facilities."""


@contacts_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def contacts_import(file: str) -> None:
    """Create or update contacts from a CSV FILE (all rows or none)."""
    data = _read(file)
    app = _app()
    with _session(app) as session:
        try:
            summary = registry.import_contacts(session, data=data)
        except RegistryError as exc:
            session.rollback()
            raise _fail_import(exc) from None
        session.commit()
    click.echo(f"imported {summary.created} new and {summary.updated} updated contacts")


@main.group("users")
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
    app = _app()
    with _session(app) as session:
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


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app and the API (no scheduler: run `greenchannel worker` beside it)."""
    from waitress import serve as waitress_serve

    app = _app()
    click.echo(f"greenchannel web on http://{host}:{port}/")
    waitress_serve(app, host=host, port=port, threads=threads, ident="greenchannel")


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="build the demo region and stop")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Build the demo region (first run only), then serve everything in one process."""
    from migrations import upgrade
    from referral.demo import build_demo_region, demo_logins

    app = _app()
    upgrade(app.config["DATABASE_URL"])
    with _session(app) as session:
        if registry.list_facilities(session):
            logins = demo_logins(session)
            click.echo("demo region already built; using it")
        else:
            logins = build_demo_region(session, now=utcnow())
            session.commit()
            click.echo("built the demo region")
    click.echo(f"\n  greenchannel demo: http://{host}:{port}/")
    click.echo(f"  API description:   http://{host}:{port}/api/v1/openapi.json\n")
    click.echo("  demo logins (username / password):")
    for login in logins:
        where = f" at {login.facility}" if login.facility else ""
        click.echo(f"    {login.username:<12} {login.password}   ({login.role}{where})")
    click.echo("")
    if no_serve:
        return
    from waitress import serve as waitress_serve

    waitress_serve(app, host=host, port=port, threads=8, ident="greenchannel")
