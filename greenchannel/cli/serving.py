"""`greenchannel serve|worker|retention`: the processes of a deployment."""

from __future__ import annotations

import gc
import logging
from typing import Any

import click
from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from alerts.timers import WorkerSettings
from alerts.transports import SmsConfigError
from alerts.voice import VoiceConfigError
from core.db import utcnow
from core.settings import ConfigError
from greenchannel.cli.common import open_runtime, session_scope, web_app
from greenchannel.runtime import Runtime


@click.command("retention")
@click.option("--days", type=int, help="override GREENCHANNEL_RETENTION_DAYS (default 365)")
def retention(days: int | None) -> None:
    """Scrub patient fields and free text of cases closed more than N days ago (timeline and
    intervals stay); delete the sign-in records (ended web sessions, failed logins) and case
    links older than that; forget old rate-limit windows. Run it daily or hourly (cron)."""
    from facilities.accounts import forget_old_sign_ins, session_limits
    from greenchannel.web import ratelimit
    from referral.links import forget_expired
    from referral.retention import retention_days, scrub_closed_cases

    rt = open_runtime()
    try:
        keep = days if days is not None else retention_days()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if keep < 1:
        raise click.ClickException("--days: expected a whole number of days ≥ 1")
    now = utcnow()
    with session_scope(rt) as session:
        count = scrub_closed_cases(session, now=now, days=keep)
    with session_scope(rt) as session:
        idle, absolute = session_limits(rt.settings)
        sessions, failures = forget_old_sign_ins(
            session, now=now, days=keep, idle=idle, absolute=absolute
        )
        links = forget_expired(session, now=now, days=keep)
        session.commit()
    ratelimit.prune(rt.engine, now=now)
    click.echo(f"scrubbed {count} closed case(s) older than {keep} days")
    click.echo(
        f"deleted {sessions} ended web session(s), {failures} failed login(s) and "
        f"{links} case link(s) older than {keep} days"
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option(
    "--connection-limit",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="open client connections kept at once (phones keep theirs open between polls)",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="processes (gunicorn, gthread): one per core; omitted or 1: one waitress process",
)
def serve(host: str, port: int, threads: int, connection_limit: int, workers: int | None) -> None:
    """Serve the web app and the API (no scheduler: run `greenchannel worker` beside it)."""
    rt = open_runtime()
    app = web_app(rt)
    prime_routing(rt)
    warm_up(rt)  # after the app is built: the frozen heap holds it too
    if workers is None or workers == 1:
        click.echo(f"greenchannel web on http://{host}:{port}/")
        run_waitress(app, host=host, port=port, threads=threads, connection_limit=connection_limit)
        return
    from greenchannel.cli.gunicorn_server import run_gunicorn

    click.echo(f"greenchannel web on http://{host}:{port}/ ({workers} processes, gunicorn)")
    run_gunicorn(
        app,
        rt,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        connection_limit=connection_limit,
    )


def run_waitress(
    app: Flask, *, host: str, port: int, threads: int = 8, connection_limit: int = 1000
) -> None:
    """waitress, with room for every board, phone and poller that keeps a connection open (its
    own default of 100 leaves the 101st client waiting, unanswered, for an idle one to close)."""
    from waitress import serve as waitress_serve

    waitress_serve(
        app,
        host=host,
        port=port,
        threads=threads,
        connection_limit=connection_limit,
        ident="greenchannel",
    )


def warm_up(rt: Runtime) -> None:
    """Load the road network and compile the routing kernels before the first patient waits."""
    from referral.placement import router_for

    router = router_for(rt.settings["GREENCHANNEL_ROADS"])
    if router.network is not None:
        click.echo("loading the road network and routing kernels ...", err=True)
        seconds = router.warm_up()
        click.echo(f"routing ready in {seconds:.1f} s", err=True)
    settle_heap()


def prime_routing(rt: Runtime) -> None:
    """Prepare the facility table and its road buckets once, before any worker is forked: the
    first route request of every worker then finds them (a process reloads them only when the
    routing revision moves)."""
    from referral.live import live_state
    from referral.placement import router_for

    router = router_for(rt.settings["GREENCHANNEL_ROADS"])
    if router.network is None:
        return
    try:
        with session_scope(rt) as session:
            table = live_state(session).table(router, now=utcnow(), grace=rt.rules.stale_grace)
    except SQLAlchemyError as exc:  # not migrated yet: the requests will say so
        click.echo(f"routing not primed: {type(exc).__name__}", err=True)
        return
    if len(table):
        router.buckets(table)


def settle_heap() -> None:
    """Take everything loaded so far out of the cyclic garbage collector's sight.

    A long-running process holds a few hundred thousand objects that live as long as it does
    (the app, its schemas, SQLAlchemy's mappers, the rules, the road network). Each full
    collection walked all of them: about 100 ms of a core, paid by whichever request happened to
    allocate at that moment (it was the board's p99). Frozen, a full collection walks only what
    was created since, a few milliseconds.
    """
    gc.collect()
    gc.freeze()


def worker_settings(rt: Runtime) -> WorkerSettings:
    rules = rt.rules
    return WorkerSettings(
        capacity_grace=rules.stale_grace, capacity_second_grace=rules.second_grace
    )


def worker_arguments(rt: Runtime) -> dict[str, Any]:
    try:
        transport = rt.transport()
        voice = rt.voice()
    except (SmsConfigError, VoiceConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    return {
        "voice": voice,
        "session_factory": rt.sessions,
        "transport": transport,
        "handlers": rt.handlers,
        "public_base_url": rt.settings["PUBLIC_BASE_URL"],
        "settings": worker_settings(rt),
    }


@click.command("worker")
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=float,
    help="seconds between polls of the timers and the outbox",
)
def worker(interval: float) -> None:
    """Run the scheduler: escalations, retries, reminders. Run one or more; they never
    double-send (each due row is claimed with a conditional update)."""
    from alerts.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    rt = open_runtime()
    warm_up(rt)
    click.echo(f"greenchannel worker: polling every {interval} s")
    run_worker(**worker_arguments(rt), interval_seconds=interval)
