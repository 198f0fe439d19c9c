"""The ``greenchannel`` command line (the public names: README)."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy.orm import Session

from alerts.timers import WorkerSettings
from alerts.transports import SmsConfigError
from core.db import utcnow
from core.settings import ConfigError
from facilities import registry
from facilities.accounts import AccountError, create_user
from facilities.registry import RegistryError
from greenchannel.runtime import Runtime, build_runtime, default_settings
from referral.rules import RulesError

# The instance folder (settings, the SQLite file, the road network) is the web app's, wherever
# the command runs: Flask finds it from the app's module.
APP_MODULE = "greenchannel.web.app"


def _runtime() -> Runtime:
    """The composition root for this command (no web app is built for it)."""
    try:
        instance = Flask(APP_MODULE, instance_relative_config=True).instance_path
        return build_runtime(default_settings(instance))
    except (RulesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


def _app(runtime: Runtime) -> Flask:
    from greenchannel.web.app import create_app

    try:
        return create_app(runtime=runtime)
    except (RulesError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as session:
        yield session


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

    rt = _runtime()
    upgrade(rt.settings["DATABASE_URL"])
    click.echo("database is at the newest schema")


@main.group("facilities")
def facilities_group() -> None:
    """The facility registry."""


@facilities_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def facilities_import(file: str) -> None:
    """Create or update facilities from a CSV or GeoJSON FILE (all rows or none)."""
    data = _read(file)
    rt = _runtime()
    with _session(rt) as session:
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
    rt = _runtime()
    with _session(rt) as session:
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
    rt = _runtime()
    with _session(rt) as session:
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
    rt = _runtime()
    with _session(rt) as session:
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


@main.group("roads")
def roads_group() -> None:
    """The road network used for travel times."""


def _progress() -> Any:
    shown: dict[str, int] = {}

    def show(stage: str, fraction: float) -> None:
        step = int(fraction * 10)
        if shown.get(stage, -1) < step:
            shown[stage] = step
            click.echo(f"  {stage}: {fraction:4.0%}", err=True)

    return show


@roads_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def roads_import(file: str) -> None:
    """Import an OpenStreetMap PBF or GraphML FILE and compile it for fast routing."""
    import routing

    rt = _runtime()
    rules = rt.rules
    speeds = {**routing.DEFAULT_SPEEDS, **rules.road_speeds_kmh}
    click.echo(f"reading {file} ...", err=True)
    try:
        if file.lower().endswith((".graphml", ".xml")):
            network = routing.RoadNetwork.from_graphml(file, speeds=speeds, progress=_progress())
        else:
            network = routing.RoadNetwork.from_pbf(file, speeds=speeds, progress=_progress())
    except (routing.RoutingError, OSError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    target = Path(rt.settings["GREENCHANNEL_ROADS"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part.npz")
    network.save(partial)
    partial.replace(target)  # every process sees the old network or the new one, never half
    report = network.report
    click.echo(
        f"road network: {report.nodes} nodes and {report.arcs} arcs kept; dropped "
        f"{report.nodes_dropped} nodes and {report.arcs_dropped} arcs in "
        f"{report.components_dropped} disconnected parts; {report.ferries} ferry routes"
    )
    click.echo(f"compiled to {target}")


@roads_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
def roads_export(file: str) -> None:
    """Write the routable network as GraphML (x = lon, y = lat, travel_time in seconds)."""
    import routing

    rt = _runtime()
    path = Path(rt.settings["GREENCHANNEL_ROADS"])
    if not path.exists():
        raise click.ClickException(f"no road network at {path}: run `greenchannel roads import`")
    try:
        routing.RoadNetwork.load(path).to_graphml(file)
    except (routing.RoutingError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {file}")


def _when(value: str | None, name: str) -> dt.datetime | None:
    """An ISO time (``2026-12-03T14:05+08:00``); a time without zone is read as UTC."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "expected an ISO time, e.g. 2026-12-03T14:05+08:00", param_hint=name
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@main.command("route")
@click.option("--from", "origin", help="origin as LAT,LON")
@click.option("--from-facility", "origin_facility", help="origin as a facility code")
@click.option("--condition", "conditions", multiple=True, help="condition code (repeatable)")
@click.option("--colour", "risk_colour", help="five-colour risk of the mother")
@click.option("--gestation", "gestation_weeks", type=float, help="weeks of gestation")
@click.option("--weight", "birth_weight_g", type=float, help="birth weight of a newborn (g)")
@click.option("--fetal-weight", "fetal_weight_g", type=float, help="estimated fetal weight (g)")
@click.option(
    "--delivered/--undelivered", "delivered", default=None, help="has the mother delivered?"
)
@click.option("--born-at", "born_at", help="time of birth, ISO (e.g. 2026-12-03T14:05+08:00)")
@click.option("--onset-at", "onset_at", help="time of onset, ISO")
@click.option("--hr", type=float, help="heart rate")
@click.option("--sbp", type=float, help="systolic blood pressure")
@click.option("--blood-loss", "blood_loss_ml", type=float, help="estimated blood loss (ml)")
@click.option("--shock", "in_shock", is_flag=True)
@click.option("--ventilated", is_flag=True)
@click.option(
    "--do-not-move/--move", "do_not_move", default=None, help="too ill to move (or insist)"
)
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", help="answer language")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def route(
    origin: str | None,
    origin_facility: str | None,
    conditions: tuple[str, ...],
    risk_colour: str | None,
    gestation_weeks: float | None,
    birth_weight_g: float | None,
    fetal_weight_g: float | None,
    delivered: bool | None,
    born_at: str | None,
    onset_at: str | None,
    hr: float | None,
    sbp: float | None,
    blood_loss_ml: float | None,
    in_shock: bool,
    ventilated: bool,
    do_not_move: bool | None,
    lang: str,
    as_json: bool,
) -> None:
    """The ranked destinations for a case, with ETA and reasons (the same decision as the API)."""
    import json

    import routing
    from referral.decision import decide
    from referral.triage import Case, TriageError, Vitals

    if (origin is None) == (origin_facility is None):
        raise click.UsageError("give exactly one of --from LAT,LON or --from-facility CODE")
    rt = _runtime()
    place = rt.place()
    with _session(rt) as session:
        facility = None
        if origin_facility:
            try:
                facility = registry.get_facility(session, origin_facility)
            except registry.NotFound as exc:
                raise click.ClickException(str(exc)) from None
            point = (facility.lat, facility.lon)
        else:
            try:
                lat_text, lon_text = (origin or "").split(",")
                point = (float(lat_text), float(lon_text))
            except ValueError:
                raise click.BadParameter("expected LAT,LON", param_hint="--from") from None
        case = Case(
            conditions=tuple(c.upper() for c in conditions),
            risk_colour=risk_colour,
            gestation_weeks=gestation_weeks,
            birth_weight_g=birth_weight_g,
            estimated_fetal_weight_g=fetal_weight_g,
            delivered=delivered,
            born_at=_when(born_at, "--born-at"),
            onset_at=_when(onset_at, "--onset-at"),
            vitals=Vitals(hr=hr, sbp=sbp),
            blood_loss_ml=blood_loss_ml,
            in_shock=in_shock,
            ventilated=ventilated,
            do_not_move=do_not_move,
        )
        try:
            decision = decide(
                session,
                rules=place.rules,
                router=place.router,
                origin=point,
                case=case,
                now=utcnow(),
                origin_facility=facility,
            )
            answer = decision.to_dict(lang)
        except (TriageError, routing.RoutingError) as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False, indent=1, default=str))
        return
    _print_answer(answer)


def _print_answer(answer: dict[str, Any]) -> None:
    """The route answer as text: the decision first, then the places and the reasons."""
    zh = answer["language"] == "zh"
    click.echo(answer["decision"]["text"])
    needs = "；".join(answer["reasons"]) if zh else "; ".join(answer["reasons"])
    click.echo(
        f"{'紧急程度' if zh else 'urgency'} {answer['urgency']}; "
        f"{'需要' if zh else 'needs'}: {needs}"
    )
    window = answer["window"]
    if window:
        state = "closed" if window["closed"] else f"{window['minutes_left']:g} min left"
        click.echo(
            f"window: {window['minutes']} min from {window['from']}, closes at "
            f"{window['closes_at_local']} ({state}); "
            f"reachable in time: {'yes' if window['reachable_in_time'] else 'NO'}"
        )
    for warning in answer["warnings"]:
        click.echo(f"warning: {warning}")
    for number, candidate in enumerate(answer["candidates"], start=1):
        flag = " (estimate)" if candidate["estimate"] else ""
        click.echo(
            f"{number:>2}. {candidate['facility']:<12} {candidate['eta_minutes']:>6} min "
            f"{candidate['distance_km']:>7} km{flag}  {candidate['name']}"
        )
        for reason in candidate["reasons"]:
            click.echo(f"      - {reason}")
    if not answer["candidates"]:
        click.echo("no facility meets every requirement")
    if answer["partial"]:
        click.echo("partial matches (never offered without a coordinator's confirmation):")
        for item in answer["partial"]:
            lacks = "; ".join(lack["text"] for lack in item["lacks"])
            click.echo(f"    {item['facility']:<12} {item['eta_minutes']:>6} min  lacks: {lacks}")
    net = answer["safety_net"]
    if net:
        click.echo(f"safety net ({net['rule']}): {net['facility']} {net['name']}")
    stabilise = answer["stabilise_at"]
    if stabilise:
        click.echo(
            f"stabilise at: {stabilise['facility']} {stabilise['name']} "
            f"({stabilise['eta_minutes']} min)"
        )
    outreach = answer["outreach"]
    if outreach:
        click.echo(f"outreach: {outreach['text']}")
        for item in outreach.get("advice", []):
            click.echo(f"    - {item}")
    for title, items in (
        ("advice", answer["advice"]),
        ("if the window cannot be met", answer["window_advice"]),
    ):
        if items:
            click.echo(f"{title}:")
            for item in items:
                click.echo(f"    - {item}")
    if answer["excluded"]:
        click.echo("excluded:")
        for item in answer["excluded"]:
            click.echo(f"    {item['facility']:<12} " + "; ".join(item["reasons"]))


@main.command("coverage")
@click.option("--maternal-level", default="M0")
@click.option("--neonatal-level", default="N0")
@click.option("--capability", "capabilities", multiple=True)
@click.option("--condition", help="the need of a condition, as triage reads it (e.g. PPH)")
@click.option("--gestation", "gestation_weeks", type=float, help="with --condition: the baby")
def coverage(
    maternal_level: str,
    neonatal_level: str,
    capabilities: tuple[str, ...],
    condition: str | None,
    gestation_weeks: float | None,
) -> None:
    """From every township health centre: minutes to the nearest facility meeting the need."""
    from core.vocabulary import VocabularyError, parse_capabilities, parse_level
    from referral.decision import condition_need
    from referral.placement import township_coverage
    from referral.rules import Need
    from referral.triage import TriageError

    rt = _runtime()
    place = rt.place()
    try:
        need = Need(
            maternal_level=parse_level(maternal_level, prefix="M", field="--maternal-level"),
            neonatal_level=parse_level(neonatal_level, prefix="N", field="--neonatal-level"),
            capabilities=frozenset(parse_capabilities(list(capabilities), field="--capability")),
        )
        if condition:
            need = need.merge(
                condition_need(
                    place.rules, condition=condition, gestation_weeks=gestation_weeks, now=utcnow()
                )
            )
    except (VocabularyError, TriageError) as exc:
        raise click.ClickException(str(exc)) from None
    with _session(rt) as session:
        rows = township_coverage(session, place=place, need=need, now=utcnow())
    click.echo(f"{'origin':<12} {'nearest':<12} {'minutes':>8}")
    for row in rows:
        minutes = f"{row.eta_minutes:8.1f}" if row.facility else "       -"
        flag = " (estimate)" if row.estimate else ""
        click.echo(f"{row.origin:<12} {row.facility or '-':<12} {minutes}{flag}")


@main.command("retention")
@click.option("--days", type=int, help="override GREENCHANNEL_RETENTION_DAYS (default 365)")
def retention(days: int | None) -> None:
    """Scrub patient fields and free text of cases closed more than N days ago (timeline and
    intervals stay), and forget old rate-limit windows. Run it daily or hourly (cron)."""
    from greenchannel.web import ratelimit
    from referral.retention import retention_days, scrub_closed_cases

    rt = _runtime()
    try:
        keep = days if days is not None else retention_days()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if keep < 1:
        raise click.ClickException("--days: expected a whole number of days ≥ 1")
    now = utcnow()
    with _session(rt) as session:
        count = scrub_closed_cases(session, now=now, days=keep)
        ratelimit.prune(rt.engine, now=now)
    click.echo(f"scrubbed {count} closed case(s) older than {keep} days")


@main.command("serve")
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
def serve(host: str, port: int, threads: int, connection_limit: int) -> None:
    """Serve the web app and the API (no scheduler: run `greenchannel worker` beside it)."""
    rt = _runtime()
    _warm_up(rt)
    click.echo(f"greenchannel web on http://{host}:{port}/")
    _waitress(_app(rt), host=host, port=port, threads=threads, connection_limit=connection_limit)


def _waitress(
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


def _warm_up(rt: Runtime) -> None:
    """Load the road network and compile the routing kernels before the first patient waits."""
    from referral.placement import router_for

    router = router_for(rt.settings["GREENCHANNEL_ROADS"])
    if router.network is not None:
        click.echo("loading the road network and routing kernels ...", err=True)
        seconds = router.warm_up()
        click.echo(f"routing ready in {seconds:.1f} s", err=True)
    settle_heap()


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


def _worker_settings(rt: Runtime) -> WorkerSettings:
    rules = rt.rules
    return WorkerSettings(
        capacity_grace=rules.stale_grace, capacity_second_grace=rules.second_grace
    )


def _worker_arguments(rt: Runtime) -> dict[str, Any]:
    try:
        transport = rt.transport()
    except SmsConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return {
        "session_factory": rt.sessions,
        "transport": transport,
        "handlers": rt.handlers,
        "public_base_url": rt.settings["PUBLIC_BASE_URL"],
        "settings": _worker_settings(rt),
    }


@main.command("worker")
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
    rt = _runtime()
    _warm_up(rt)
    click.echo(f"greenchannel worker: polling every {interval} s")
    run_worker(**_worker_arguments(rt), interval_seconds=interval)


@main.command("demo")
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
    rt = _runtime()
    # A newcomer reads this terminal: migration chatter would bury the logins and the SMS.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    upgrade(rt.settings["DATABASE_URL"])
    rules = rt.rules
    now = utcnow()
    with _session(rt) as session:
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
        tokens = region.issue_demo_tokens(session, now=now) if is_demo else {}
        session.commit()
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

    _warm_up(rt)
    # One window shows the SMS; the request logs would bury them (warnings still show).
    logging.getLogger().setLevel(logging.WARNING)
    arguments = _worker_arguments(rt)
    if rt.settings["SMS_BACKEND"] == "console":
        arguments["transport"] = LabelledConsoleTransport(labels)
    click.echo("  SMS are printed below instead of being sent. Ctrl-C stops the demo.\n")
    scheduler = start_background_worker(**arguments, interval_seconds=0.5)
    try:
        _waitress(_app(rt), host=host, port=port)
    finally:
        scheduler.shutdown(wait=False)
