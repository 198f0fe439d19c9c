"""`greenchannel roads|route|coverage …`: road networks and the one clinical decision."""

from __future__ import annotations

import datetime as dt
import resource
import time
from pathlib import Path
from typing import Any

import click

from core.db import utcnow
from facilities import registry
from greenchannel.cli.common import open_runtime, session_scope


@click.group("roads")
def roads_group() -> None:
    """The road network used for travel times."""


def _progress() -> Any:
    shown: dict[str, int] = {}
    start = time.perf_counter()

    def show(stage: str, fraction: float) -> None:
        step = int(fraction * 10)
        if shown.get(stage, -1) < step:
            shown[stage] = step
            click.echo(
                f"  [{time.perf_counter() - start:7.1f} s] {stage}: {fraction:4.0%}", err=True
            )

    return show


@roads_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
def roads_import(file: str) -> None:
    """Import an OpenStreetMap PBF or GraphML FILE and compile it for fast routing."""
    import routing

    rt = open_runtime()
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
    # save() writes a temporary file and renames it: every process sees the old network or the
    # new one, never half; a process that mapped the old file keeps it until it reloads
    size = network.save(target, build={"speeds_kmh": speeds, "source": Path(file).name})
    report = network.report
    click.echo(
        f"road network: {report.nodes} nodes and {report.arcs} arcs kept; dropped "
        f"{report.nodes_dropped} nodes and {report.arcs_dropped} arcs in "
        f"{report.components_dropped} disconnected parts; {report.ferries} ferry routes"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(
        f"{report.nodes - report.ch_nodes} shape nodes collapsed, {report.ch_nodes} junctions "
        f"contracted; read {report.import_seconds:.1f} s, hierarchy {report.ch_seconds:.1f} s; "
        f"peak memory {peak_mb:.0f} MB"
    )
    click.echo(f"compiled to {target} ({size / 1e6:.1f} MB)")


@roads_group.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
def roads_export(file: str) -> None:
    """Write the routable network as GraphML (x = lon, y = lat, travel_time in seconds)."""
    import routing

    rt = open_runtime()
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


@click.command("route")
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
    rt = open_runtime()
    place = rt.place()
    with session_scope(rt) as session:
        facility = None
        if origin_facility:
            try:
                facility = registry.get_facility(session, origin_facility, field="--from-facility")
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


@click.command("coverage")
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

    rt = open_runtime()
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
    with session_scope(rt) as session:
        rows = township_coverage(session, place=place, need=need, now=utcnow())
    click.echo(f"{'origin':<12} {'nearest':<12} {'minutes':>8}")
    for row in rows:
        minutes = f"{row.eta_minutes:8.1f}" if row.facility else "       -"
        flag = " (estimate)" if row.estimate else ""
        click.echo(f"{row.origin:<12} {row.facility or '-':<12} {minutes}{flag}")
