"""`greenchannel demo`: the demo region in one process, or a scripted scenario."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
from flask import Flask
from sqlalchemy.engine import make_url

from core.db import utcnow
from core.settings import ConfigError
from facilities import registry
from greenchannel.cli.common import APP_MODULE, open_runtime, session_scope, web_app
from greenchannel.cli.serving import run_waitress, warm_up, worker_arguments
from referral.rules import RulesError


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="build the demo region and stop")
@click.option(
    "--scenario",
    type=click.Choice(["pph", "safety-net"]),
    help="play a scripted case end to end in simulated time (temporary database) and stop",
)
@click.option(
    "--fast",
    is_flag=True,
    envvar="GREENCHANNEL_DEMO_FAST",
    help="with --scenario: no pauses for reading (also GREENCHANNEL_DEMO_FAST=1)",
)
def demo(host: str, port: int, no_serve: bool, scenario: str | None, fast: bool) -> None:
    """Build the demo region (first run only), then serve everything in one process."""
    from greenchannel.demo import region as region
    from greenchannel.demo.console import LabelledConsoleTransport, phone_labels, walkthrough
    from greenchannel.demo.roads import save_network
    from migrations import upgrade

    if scenario:
        from greenchannel.demo.scenario import run_scenario

        try:
            run_scenario(scenario, fast=fast)
        except (RulesError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None
        return
    rt = open_runtime()
    # A newcomer reads this terminal: migration chatter would bury the logins and the SMS.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(rt.settings["DATABASE_URL"])
    rules = rt.rules
    now = utcnow()
    with session_scope(rt) as session:
        if registry.list_facilities(session):
            click.echo("demo region already built; using it")
        else:
            region.build_demo_region(session, now=now)
            session.commit()
            click.echo("built the demo region: 39 facilities, contacts, users")
        is_demo = region.is_demo_region(session)
        if is_demo:
            refreshed = region.refresh_demo_capacity(session, now=now, grace=rules.stale_grace)
            if refreshed:
                click.echo(f"bed figures of {len(refreshed)} demo hospitals reported again")
        logins = region.demo_logins(session)
        kept_file = demo_tokens_file(rt.settings["DATABASE_URL"])
        tokens = (
            region.issue_demo_tokens(session, now=now, kept=read_demo_tokens(kept_file))
            if is_demo
            else {}
        )
        session.commit()
        if tokens:
            write_demo_tokens(kept_file, tokens)
        labels = phone_labels(session)
    roads = Path(rt.settings["GREENCHANNEL_ROADS"])
    if is_demo and not roads.exists():
        click.echo("building the demo road network ...")
        built = region.demo_road_network(speeds=rules.road_speeds_kmh)
        save_network(built.network, roads)
        click.echo(f"road network: {built.summary()}; compiled to {roads}")
    elif not roads.exists():
        click.echo(f"no road network at {roads}: travel times are straight-line estimates")
    base = f"http://{host}:{port}"
    click.echo(f"\n  greenchannel demo: {base}/")
    click.echo(f"  API description:   {base}/api/v1/openapi.json\n")
    click.echo("  demo logins (username / password):")
    for login in logins:
        where = f" at {login.facility}" if login.facility else ""
        click.echo(f"    {login.username:<12} {login.password}   ({login.role}{where})")
    click.echo("")
    if tokens:
        click.echo(walkthrough(base, tokens))
    if no_serve:
        return
    from alerts.worker import start_background_worker

    warm_up(rt)
    # One window shows the SMS; the request logs would bury them (warnings still show).
    logging.getLogger().setLevel(logging.WARNING)
    arguments = worker_arguments(rt)
    if rt.settings["SMS_BACKEND"] == "console":
        arguments["transport"] = LabelledConsoleTransport(labels)
    click.echo("  SMS are printed below instead of being sent. Ctrl-C stops the demo.\n")
    scheduler = start_background_worker(**arguments, interval_seconds=0.5)
    try:
        run_waitress(web_app(rt), host=host, port=port)
    finally:
        scheduler.shutdown(wait=False)


def demo_tokens_file(database_url: str) -> Path:
    """Where the demo users' API tokens are kept (mode 600) so that a restart prints the same
    ones and scripts written against them keep working: beside the SQLite file they belong
    to, or in the instance folder for another database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).with_suffix(".demo-tokens.json")
    return Path(Flask(APP_MODULE, instance_relative_config=True).instance_path) / "demo_tokens.json"


def read_demo_tokens(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def write_demo_tokens(path: Path, tokens: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(tokens, indent=1))
