"""Ranking capable facilities for a case (docs/domain.md), with reasons for every decision."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from routing.closures import Closure
from routing.errors import InvalidInputError
from routing.facility_table import CAP_BIT, FacilityTable, capability_mask
from routing.model import (
    BED_LABELS,
    BED_TYPES,
    DIVERSIONS,
    Candidate,
    CoverageRow,
    Exclusion,
    FacilitySnapshot,
    Outreach,
    Partial,
    Policy,
    Ranking,
    Reason,
    Requirements,
    check_coordinates,
)
from routing.query import Hit, OriginQuery, _ClosureState
from routing.router import Router

_ADVISORY = DIVERSIONS.index("advisory")
_CLOSED = DIVERSIONS.index("closed")


def rank(
    origin: tuple[float, float],
    facilities: Sequence[FacilitySnapshot] | FacilityTable,
    requirements: Requirements,
    *,
    router: Router,
    policy: Policy | None = None,
    closures: Iterable[Closure] = (),
    stabilise: Requirements | None = None,
    partial_k: int = 0,
    stay: bool = False,
    excluded_limit: int | None = None,
) -> Ranking:
    """Rank the facilities able to take a case by road travel time from the origin.

    Parameters
    ----------
    origin
        ``(lat, lon)`` of the patient.
    facilities
        Snapshots of every facility (or a table from :meth:`Router.prepare`, which skips the
        validation and snapping: reuse it while the facilities do not change).
    requirements
        What the receiving facility must have.
    router
        The process's router (``Router(None)`` answers with straight-line estimates).
    policy
        Tolerance for stale/advisory facilities, time window, ``top_k``, estimate parameters.
    closures
        The closures and slowdowns in effect now (pass them on every query).
    stabilise
        What a facility needs to stabilise the patient (e.g. ``Requirements(maternal_level=2)``
        for bleeding); the nearest one is proposed when no candidate exists or the best is
        beyond the time window.
    partial_k
        When no facility meets every requirement: how many partial matches to list, ranked by
        what they lack (level gaps first, then capabilities, then beds) and then road time.
    stay
        The patient must not be moved: always propose the outreach of the best capable (or,
        when none, the best partial) facility's team.
    excluded_limit
        List only this many exclusions, the nearest first (None: every facility that is out;
        ``Ranking.more_excluded`` counts the rest). A province has thousands of facilities that
        are out; a person asks why not the nearer ones.

    Returns
    -------
    Ranking
        Candidates (never one lacking a requirement), exclusions, warnings, and the
        stabilise/outreach alternatives when beyond the window.

    Raises
    ------
    RoutingError
        (a ``ValueError``) for bad coordinates, levels, capability names, bed types, policy values
        or closures; ``field`` names the culprit.
    """
    policy = policy or Policy()
    olat, olon = check_coordinates(origin[0], origin[1], "origin")
    requirements.validate("requirements")
    policy.validate()
    if stabilise is not None:
        stabilise.validate("stabilise")
    table = router.prepare(facilities)
    state = router.closure_state(closures)
    penalty = np.where(
        table.stale | (table.diversion == _ADVISORY), policy.tolerance_minutes * 60.0, 0.0
    )
    eligible = table.eligible(requirements)
    stab_hits: list[Hit] = []
    partial_hits: list[Hit] = []
    with router.query(olat, olon, table, policy=policy, state=state) as q:
        top = q.top(eligible, penalty, policy.top_k)
        best = top.hits[0] if top.hits else None
        window = policy.time_window_minutes
        beyond = window is not None and (best is None or best.eta_s / 60.0 > window)
        if best is None and partial_k > 0:
            pool, gaps = _partial_pool(table, requirements, eligible)
            partial_hits = q.top(pool, gaps * _GAP_SECONDS, partial_k).hits
        if (beyond or best is None) and stabilise is not None:
            stab_hits = q.top(table.eligible(stabilise), penalty, 1).hits
        base_known = q.road and state is None
        base_s = q.base_s
    candidates = tuple(
        _candidate(table, h, requirements, policy, penalty, beyond) for h in top.hits
    )
    partial = tuple(_partial(table, h, requirements, policy) for h in partial_hits)
    stabilise_at = (
        _candidate(table, stab_hits[0], stabilise, policy, penalty, False)
        if stab_hits and stabilise is not None
        else None
    )
    team = best or (partial_hits[0] if partial_hits else None)
    outreach = (
        _outreach(router, table, team, (olat, olon), state, policy) if beyond or stay else None
    )
    warnings = _warnings(q, table, candidates, top.hits, requirements, policy, state, beyond)
    unreachable = set(top.unreachable)
    out_count = int(len(table) - int(np.count_nonzero(eligible))) + len(unreachable)
    if excluded_limit is not None and excluded_limit < 0:
        raise InvalidInputError("excluded_limit must be >= 0 or None", field="excluded_limit")
    shown = out_count if excluded_limit is None else min(out_count, excluded_limit)

    def exclusions() -> tuple[Exclusion, ...]:
        return _exclusions(
            table,
            requirements,
            eligible,
            unreachable,
            base_s if base_known else None,
            policy,
            shown,
        )

    return Ranking(
        requirements=requirements,
        origin=(olat, olon),
        origin_snap_m=q.snap_m,
        candidates=candidates,
        more_candidates=top.more,
        warnings=warnings,
        beyond_window=beyond,
        stabilise_at=stabilise_at,
        outreach=outreach,
        _exclusions=exclusions,
        partial=partial,
        more_excluded=out_count - shown,
    )


# A partial match's ranking key is its gap score in this many seconds plus its road time, so
# that one query orders them by what they lack first and by road time within the same lack.
_GAP_SECONDS = 1.0e6
_LEVEL_GAP, _CAPABILITY_GAP, _BED_GAP = 10_000, 100, 1


def _partial_pool(
    table: FacilityTable, req: Requirements, eligible: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Facilities open to new cases that meet some requirement, and the size of their gap."""
    need = capability_mask(req.capabilities)
    pool = table.active & ~eligible & (table.diversion != _CLOSED)
    if req.maternal_level:
        pool &= table.maternal >= 1
    if req.neonatal_level:
        pool &= table.neonatal >= 1
    levels = np.maximum(req.maternal_level - table.maternal, 0) + np.maximum(
        req.neonatal_level - table.neonatal, 0
    )
    lacking = (table.caps & need) ^ need | (table.unavailable & need)
    capabilities = np.zeros(len(table), np.int64)
    for bit in CAP_BIT.values():
        if need & bit:
            capabilities += (lacking & bit) != 0
    beds = np.zeros(len(table), np.int64)
    for bed in req.beds:
        beds += table.beds[:, BED_TYPES.index(bed)] == 0
    gaps = levels * _LEVEL_GAP + capabilities * _CAPABILITY_GAP + beds * _BED_GAP
    return pool, gaps.astype(np.float64)


def _partial(table: FacilityTable, hit: Hit, req: Requirements, policy: Policy) -> Partial:
    f = table.facilities[hit.index]
    i = hit.index
    need = capability_mask(req.capabilities)
    caps = sorted(req.capabilities)
    zero = tuple(b for b in sorted(req.beds) if table.beds[i, BED_TYPES.index(b)] == 0)
    lacks = tuple(
        r
        for r in _exclusion_reasons(
            req,
            caps,
            False,
            True,
            int(table.maternal[i]),
            int(table.neonatal[i]),
            int((table.caps[i] & need) ^ need),
            int(table.unavailable[i] & need),
            False,
            "",
            zero,
        )
    )
    reasons = [
        r
        for r in _candidate(table, hit, req, policy, np.zeros(len(table)), False).reasons
        if r.code != "meets_requirements"
    ]
    return Partial(
        facility=f.code,
        name=f.name,
        eta_minutes=hit.eta_s / 60.0,
        distance_km=hit.length_m / 1000.0,
        estimate=hit.estimate,
        lacks=lacks,
        reasons=tuple(reasons),
    )


def coverage(
    origins: Sequence[tuple[str, float, float]],
    facilities: Sequence[FacilitySnapshot] | FacilityTable,
    requirements: Requirements,
    *,
    router: Router,
    policy: Policy | None = None,
    closures: Iterable[Closure] = (),
) -> tuple[CoverageRow, ...]:
    """Travel time from each origin to the nearest facility meeting a requirement.

    Parameters
    ----------
    origins
        ``(code, lat, lon)`` per origin, e.g. every township health centre.
    facilities, requirements, router, policy, closures
        As in :func:`rank` (the stale/advisory tolerance does not apply: this is pure distance).

    Returns
    -------
    tuple of CoverageRow
        One row per origin, in input order.
    """
    return router.coverage(origins, facilities, requirements, policy=policy, closures=closures)


def _minutes(seconds: float) -> str:
    minutes = seconds / 60.0
    return f"{minutes:.0f}" if minutes >= 1 else "<1"


def _candidate(
    table: FacilityTable,
    hit: Hit,
    req: Requirements,
    policy: Policy,
    penalty: np.ndarray,
    beyond: bool,
) -> Candidate:
    f = table.facilities[hit.index]
    label = req.label()
    reasons = [Reason("meets_requirements", f"meets {label}", {"requirements": label})]
    minutes = hit.eta_s / 60.0
    if hit.estimate:
        reasons.append(
            Reason(
                "eta_estimate",
                f"about {_minutes(hit.eta_s)} min (estimate: {hit.length_m / 1000:.1f} km at "
                f"{policy.rural_speed_kmh:g} km/h, no road route)",
                {"minutes": round(minutes, 1), "km": round(hit.length_m / 1000, 2)},
            )
        )
    else:
        reasons.append(
            Reason("eta_road", f"{_minutes(hit.eta_s)} min by road", {"minutes": round(minutes, 1)})
        )
        delay = hit.eta_s - hit.base_eta_s
        if delay > 0.5:
            reasons.append(
                Reason(
                    "closure_delay",
                    f"{delay / 60:.0f} min slower because of road closures",
                    {"minutes": round(delay / 60, 1)},
                )
            )
    tol = policy.tolerance_minutes
    after = f": ranked after confirmed facilities within {tol:g} min" if tol > 0 else ""
    advisory = bool(table.diversion[hit.index] == _ADVISORY)
    if f.stale:
        reasons.append(
            Reason(
                "stale_ranked_after",
                f"capacity unconfirmed (stale){after}",
                {"tolerance_minutes": tol},
            )
        )
    if advisory:
        why = f" ({f.diversion_reason})" if f.diversion_reason else ""
        reasons.append(
            Reason(
                "advisory_ranked_after",
                f"on advisory{why}{after}",
                {"tolerance_minutes": tol, "reason": f.diversion_reason},
            )
        )
    for bed in sorted(req.beds):
        count = int(table.beds[hit.index, BED_TYPES.index(bed)])
        label = BED_LABELS[bed]
        if count < 0:
            reasons.append(Reason("beds_unknown", f"free {label}s not reported", {"bed_type": bed}))
        else:
            reasons.append(
                Reason(
                    "beds_free",
                    f"{count} {label}{'s' if count != 1 else ''} free",
                    {"bed_type": bed, "count": count},
                )
            )
    if beyond and policy.time_window_minutes is not None:
        w = policy.time_window_minutes
        reasons.append(
            Reason(
                "beyond_window",
                f"cannot arrive within the {w:.0f} min left in this condition's window",
                {"window_minutes": w},
            )
        )
    return Candidate(
        facility=f.code,
        name=f.name,
        eta_minutes=minutes,
        distance_km=hit.length_m / 1000.0,
        estimate=hit.estimate,
        confirmed=not (f.stale or advisory),
        reasons=tuple(reasons),
    )


def _outreach(
    router: Router,
    table: FacilityTable,
    best: Hit | None,
    origin: tuple[float, float],
    state: _ClosureState | None,
    policy: Policy,
) -> Outreach | None:
    if best is None:
        return None
    f = table.facilities[best.index]
    net = router.network
    estimate = True
    seconds = best.eta_s
    if net is not None and not best.estimate:
        # the team drives the other way: one-way streets can make it differ
        onode, snap = net.nearest_nodes([origin[0]], [origin[1]])
        if float(snap[0]) <= policy.max_snap_m:
            seconds, _ = router.travel_time_to(
                (float(table.lat[best.index]), float(table.lon[best.index])),
                int(onode[0]),
                state=state,
            )
            estimate = False
    text = (
        f"bring the experts of {f.name} to the patient (上级专家下沉): about "
        f"{_minutes(seconds)} min {'(estimate)' if estimate else 'by road'}"
    )
    return Outreach(
        f.code,
        f.name,
        seconds / 60.0,
        estimate,
        Reason("outreach", text, {"facility": f.code, "minutes": round(seconds / 60.0, 1)}),
    )


def _warnings(
    q: OriginQuery,
    table: FacilityTable,
    candidates: tuple[Candidate, ...],
    hits: list[Hit],
    req: Requirements,
    policy: Policy,
    state: _ClosureState | None,
    beyond: bool,
) -> tuple[Reason, ...]:
    out: list[Reason] = []
    if q.router.network is None:
        out.append(
            Reason(
                "no_road_network",
                "no road network loaded: every ETA is a straight-line estimate",
                {},
            )
        )
    elif q.snap_m is not None and q.snap_m > policy.max_snap_m:
        out.append(
            Reason(
                "origin_off_road",
                f"the origin is {q.snap_m / 1000:.1f} km from the nearest road: every ETA is a "
                f"straight-line estimate",
                {"km": round(q.snap_m / 1000, 2)},
            )
        )
    else:
        n_est = sum(1 for c in candidates if c.estimate)
        if n_est:
            out.append(
                Reason(
                    "estimate_used",
                    f"{n_est} candidate ETA{'s are' if n_est > 1 else ' is a'} straight-line "
                    f"estimate{'s' if n_est > 1 else ''} (facility far from any road)",
                    {"count": n_est},
                )
            )
    if state is not None:
        segments = int(state.arcs.shape[0])
        out.append(
            Reason(
                "closures_in_effect",
                f"{len(state.closures)} road closure{'s' if len(state.closures) > 1 else ''} or "
                f"slowdown{'s' if len(state.closures) > 1 else ''} in effect "
                f"({segments} road segment{'s' if segments != 1 else ''} affected)",
                {"closures": [c.id for c in state.closures], "segments": segments},
            )
        )
    if not candidates:
        out.append(
            Reason(
                "no_capable_facility",
                f"no reachable facility meets {req.label()} and is open to new cases",
                {"requirements": req.label()},
            )
        )
    if candidates and beyond and policy.time_window_minutes is not None:
        w = policy.time_window_minutes
        out.append(
            Reason(
                "beyond_window",
                f"the best capable facility is {candidates[0].eta_minutes:.0f} min away, beyond "
                f"the {w:.0f} min left in the window: stabilise nearby or bring the experts",
                {"minutes": round(candidates[0].eta_minutes, 1), "window_minutes": w},
            )
        )
    return tuple(out)


def _exclusions(
    table: FacilityTable,
    req: Requirements,
    eligible: np.ndarray,
    unreachable: set[int],
    base_s: np.ndarray | None,
    policy: Policy,
    shown: int,
) -> tuple[Exclusion, ...]:
    """The ``shown`` nearest facilities that are out, by ETA then code, each with its reasons.

    No search is run for them: their ETAs are the base times of the one-to-many query already
    done for the candidates (unknown under closures, or off the road). The order is taken on
    arrays; objects are made only for the rows shown.
    """
    need = capability_mask(req.capabilities)
    every = np.concatenate(
        [np.flatnonzero(~eligible), np.asarray(sorted(unreachable), np.int64)]
    ).astype(np.int64)
    if base_s is None:
        eta_all = np.full(every.shape[0], np.nan)
    else:
        eta_all = np.where(table.snap_m[every] <= policy.max_snap_m, base_s[every] / 60.0, np.nan)
    sort_eta = np.where(np.isnan(eta_all), np.inf, eta_all)
    near = np.arange(every.shape[0])
    if 0 < shown < every.shape[0]:  # sort only the nearest (and those tied with the last)
        kth = np.partition(sort_eta, shown - 1)[shown - 1]
        near = np.flatnonzero(sort_eta <= kth)
    order = near[np.lexsort((table.code_rank[every[near]], sort_eta[near]))][:shown]
    sel = every[order]
    picked = sel.tolist()
    is_unreachable = (order >= every.shape[0] - len(unreachable)).tolist()
    # plain lists: numpy scalars are slow one by one
    active = table.active[sel].tolist()
    maternal = table.maternal[sel].tolist()
    neonatal = table.neonatal[sel].tolist()
    missing = ((table.caps[sel] & need) ^ need).tolist()
    unav = (table.unavailable[sel] & need).tolist()
    closed = (table.diversion[sel] == _CLOSED).tolist()
    etas = eta_all[order].tolist()
    beds = sorted(req.beds)
    columns = [BED_TYPES.index(b) for b in beds]
    free = table.beds[sel][:, columns].tolist() if columns else [[] for _ in picked]
    caps = sorted(req.capabilities)
    memo: dict[tuple[object, ...], tuple[Reason, ...]] = {}
    rows: list[Exclusion] = []
    for j, i in enumerate(picked):
        f = table.facilities[i]
        why = f.diversion_reason if closed[j] else ""
        zero_beds = tuple(b for b, n in zip(beds, free[j], strict=True) if n == 0)
        sig = (
            is_unreachable[j], active[j], maternal[j], neonatal[j], missing[j], unav[j],
            closed[j], why, zero_beds,
        )  # fmt: skip
        reasons = memo.get(sig)
        if reasons is None:
            reasons = _exclusion_reasons(req, caps, *sig)
            memo[sig] = reasons
        eta = etas[j]
        rows.append(Exclusion(f.code, f.name, reasons, None if eta != eta else eta))
    return tuple(rows)


def _exclusion_reasons(
    req: Requirements,
    caps: list[str],
    unreachable: bool,
    active: bool,
    maternal: int,
    neonatal: int,
    missing: int,
    unavailable: int,
    closed: bool,
    diversion_reason: str,
    zero_beds: tuple[str, ...],
) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    if unreachable:
        reasons.append(Reason("unreachable", "unreachable by road (closures)", {}))
    if not active:
        reasons.append(Reason("inactive", "not active in the registry", {}))
    if maternal < req.maternal_level:
        reasons.append(
            Reason(
                "maternal_level_below",
                f"maternal level M{maternal} below required M{req.maternal_level}",
                {"level": maternal, "required": req.maternal_level},
            )
        )
    if neonatal < req.neonatal_level:
        reasons.append(
            Reason(
                "neonatal_level_below",
                f"neonatal level N{neonatal} below required N{req.neonatal_level}",
                {"level": neonatal, "required": req.neonatal_level},
            )
        )
    for cap in caps:
        if missing & CAP_BIT[cap]:
            reasons.append(Reason("lacks_capability", f"lacks {cap}", {"capability": cap}))
        elif unavailable & CAP_BIT[cap]:
            reasons.append(
                Reason(
                    "capability_unavailable",
                    f"{cap} temporarily unavailable",
                    {"capability": cap},
                )
            )
    if closed:
        why = f": {diversion_reason}" if diversion_reason else ""
        reasons.append(
            Reason(
                "diversion_closed",
                f"closed to new cases (diversion{why})",
                {"reason": diversion_reason},
            )
        )
    for bed in zero_beds:
        reasons.append(Reason("no_bed", f"no {BED_LABELS[bed]} free", {"bed_type": bed}))
    return tuple(reasons)
