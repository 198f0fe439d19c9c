"""Ranking capable facilities for a case (docs/domain.md), with reasons for every decision."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    ExcludedRows,
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
    penalty = table.derived(
        ("penalty", policy.tolerance_minutes), lambda: _penalty(table, policy.tolerance_minutes)
    )
    outset = _out_set(table, requirements)
    eligible = outset.eligible
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
            stab_hits = q.top(_eligible(table, stabilise), penalty, 1).hits
        base_known = q.road and state is None
        base_s = q.base_s
    said = _Said.of(requirements, policy)
    candidates = tuple(_candidate(table, h, said, policy, beyond) for h in top.hits)
    partial = tuple(_partial(table, h, requirements, policy) for h in partial_hits)
    stabilise_at = (
        _candidate(table, stab_hits[0], _Said.of(stabilise, policy), policy, False)
        if stab_hits and stabilise is not None
        else None
    )
    team = best or (partial_hits[0] if partial_hits else None)
    outreach = (
        _outreach(router, table, team, (olat, olon), state, policy) if beyond or stay else None
    )
    warnings = _warnings(q, table, candidates, top.hits, requirements, policy, state, beyond)
    unreachable = set(top.unreachable)
    out_count = len(table) - outset.eligible_count + len(unreachable)
    if excluded_limit is not None and excluded_limit < 0:
        raise InvalidInputError("excluded_limit must be >= 0 or None", field="excluded_limit")
    shown = out_count if excluded_limit is None else min(out_count, excluded_limit)

    def exclusions() -> ExcludedRows:
        return _exclusions(
            table,
            outset,
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


def _penalty(table: FacilityTable, tolerance_minutes: float) -> np.ndarray:
    """Seconds added to the ranking key of a stale or advisory facility."""
    penalty = np.where(table.stale | (table.diversion == _ADVISORY), tolerance_minutes * 60.0, 0.0)
    penalty.flags.writeable = False
    return penalty


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
        for r in _candidate(table, hit, _Said.of(req, policy), policy, False).reasons
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


@dataclass(frozen=True)
class _Said:
    """What every candidate of one requirement set says alike (made once per ranking)."""

    meets: Reason
    after: str  # the tail of the stale/advisory reasons
    beds: tuple[tuple[str, int, str], ...]  # (bed type, column in the table, label), sorted

    @staticmethod
    def of(req: Requirements, policy: Policy) -> _Said:
        label = req.label()
        tol = policy.tolerance_minutes
        return _Said(
            meets=Reason("meets_requirements", f"meets {label}", {"requirements": label}),
            after=f": ranked after confirmed facilities within {tol:g} min" if tol > 0 else "",
            beds=tuple((b, BED_TYPES.index(b), BED_LABELS[b]) for b in sorted(req.beds)),
        )


def _candidate(
    table: FacilityTable,
    hit: Hit,
    said: _Said,
    policy: Policy,
    beyond: bool,
) -> Candidate:
    f = table.facilities[hit.index]
    reasons = [said.meets]
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
    after = said.after
    advisory = f.diversion == "advisory"
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
    for bed, column, label in said.beds:
        count = int(table.beds[hit.index, column])
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


class _OutSet:
    """What every query of one requirement set shares on one facility table: which facilities
    are out, and the signature of each (what its reasons depend on), as one small number.

    Made once per table and requirement set (:meth:`FacilityTable.derived`); the reasons of a
    signature are made on first use and then shared by every query.
    """

    def __init__(self, table: FacilityTable, req: Requirements) -> None:
        self.req = req
        self.caps = sorted(req.capabilities)
        self.beds = sorted(req.beds)
        self.eligible = _eligible(table, req)
        self.eligible_count = int(np.count_nonzero(self.eligible))
        out = np.flatnonzero(~self.eligible)
        self.out = out
        need = capability_mask(req.capabilities)
        zero_bits = np.zeros(out.shape[0], np.int64)
        for bit, bed in enumerate(self.beds):
            zero_bits |= (table.beds[out, BED_TYPES.index(bed)] == 0).astype(np.int64) << bit
        closed = table.diversion[out] == _CLOSED
        # a closed facility's reasons quote its own diversion reason: number the distinct ones
        why = np.zeros(out.shape[0], np.int64)
        why_of: dict[str, int] = {"": 0}
        for j in np.flatnonzero(closed).tolist():
            text = table.facilities[int(out[j])].diversion_reason
            why[j] = why_of.setdefault(text, len(why_of))
        self.whys = list(why_of)
        columns = np.stack(
            [
                table.active[out],
                table.maternal[out],
                table.neonatal[out],
                (table.caps[out] & need) ^ need,
                table.unavailable[out] & need,
                closed,
                zero_bits,
                why,
            ],
            axis=1,
            dtype=np.int64,
        )
        if out.shape[0]:
            unique, inverse = np.unique(columns, axis=0, return_inverse=True)
            self.signatures: list[list[int]] = unique.tolist()
            self.kind = np.asarray(inverse, np.int64).reshape(-1)
        else:
            self.signatures = []
            self.kind = np.empty(0, np.int64)
        self._reasons: list[tuple[Reason, ...] | None] = [None] * len(self.signatures)
        self._on_road: dict[float, np.ndarray] = {}

    def reasons(self, kind: int) -> tuple[Reason, ...]:
        """The reasons of a signature (made once)."""
        reasons = self._reasons[kind]
        if reasons is None:
            active, maternal, neonatal, missing, unav, closed, zero, why = self.signatures[kind]
            reasons = _exclusion_reasons(
                self.req,
                self.caps,
                False,
                bool(active),
                maternal,
                neonatal,
                missing,
                unav,
                bool(closed),
                self.whys[why],
                tuple(b for bit, b in enumerate(self.beds) if zero >> bit & 1),
            )
            self._reasons[kind] = reasons
        return reasons

    def on_road(self, table: FacilityTable, max_snap_m: float) -> np.ndarray:
        """Which of the facilities out get a road ETA under this snapping distance."""
        ok = self._on_road.get(max_snap_m)
        if ok is None:
            ok = table.snap_m[self.out] <= max_snap_m
            self._on_road[max_snap_m] = ok
        return ok


def _requirement_key(req: Requirements) -> tuple[object, ...]:
    return (
        req.maternal_level,
        req.neonatal_level,
        frozenset(req.capabilities),
        frozenset(req.beds),
    )


def _out_set(table: FacilityTable, req: Requirements) -> _OutSet:
    return table.derived(("out", *_requirement_key(req)), lambda: _OutSet(table, req))


def _eligible(table: FacilityTable, req: Requirements) -> np.ndarray:
    """``table.eligible(req)``, once per table and requirement set (read-only)."""

    def make() -> np.ndarray:
        eligible = table.eligible(req)
        eligible.flags.writeable = False
        return eligible

    return table.derived(("eligible", *_requirement_key(req)), make)


def _exclusions(
    table: FacilityTable,
    outset: _OutSet,
    unreachable: set[int],
    base_s: np.ndarray | None,
    policy: Policy,
    shown: int,
) -> ExcludedRows:
    """The ``shown`` nearest facilities that are out, by ETA then code, each with its reasons.

    No search is run for them: their ETAs are the base times of the one-to-many query already
    done for the candidates (unknown under closures, or off the road). The order is taken on
    arrays, the reasons come from the requirement set's signatures (:class:`_OutSet`), and no
    object is made per row.
    """
    if unreachable:
        extra = np.asarray(sorted(unreachable), np.int64)
        every = np.concatenate([outset.out, extra])
        kind_every = np.concatenate([outset.kind, np.full(extra.shape[0], -1, np.int64)])
        on_road = table.snap_m[every] <= policy.max_snap_m
    else:
        every = outset.out
        kind_every = outset.kind
        on_road = outset.on_road(table, policy.max_snap_m)
    n = every.shape[0]
    if base_s is None:
        sort_eta = np.full(n, np.inf)
    else:
        sort_eta = np.where(on_road, base_s[every] / 60.0, np.inf)
    if shown <= 0:
        order = np.empty(0, np.int64)
    elif shown < n:  # sort only the nearest (and those tied with the last)
        kth = np.partition(sort_eta, shown - 1)[shown - 1]
        near = np.flatnonzero(sort_eta <= kth)
        order = near[np.lexsort((table.code_rank[every[near]], sort_eta[near]))][:shown]
    else:
        order = np.lexsort((table.code_rank[every], sort_eta))
    sel = every[order]
    if base_s is None:
        etas = np.full(sel.shape[0], np.nan)
    else:
        # off the road: unknown (NaN, None in the answer); on it but never reached: inf
        etas = np.where(on_road[order], sort_eta[order], np.nan)
    kinds = kind_every[order].tolist()
    distinct = {k: outset.reasons(k) for k in set(kinds) if k >= 0}
    if unreachable:
        _unreachable_reasons(table, outset, sel.tolist(), kinds, distinct)
    codes, names = table.derived("codes and names", lambda: _codes_and_names(table))
    return ExcludedRows(
        codes=codes[sel].tolist(),
        names=names[sel].tolist(),
        etas=etas,
        kinds=kinds,
        distinct=distinct,
    )


def _codes_and_names(table: FacilityTable) -> tuple[np.ndarray, np.ndarray]:
    codes = np.empty(len(table), object)
    names = np.empty(len(table), object)
    codes[:] = [f.code for f in table.facilities]
    names[:] = [f.name for f in table.facilities]
    return codes, names


def _unreachable_reasons(
    table: FacilityTable,
    outset: _OutSet,
    picked: list[int],
    kinds: list[int],
    distinct: dict[int, tuple[Reason, ...]],
) -> None:
    """Give the rows of facilities cut off by closures (kind -1) a kind of their own, < -1."""
    req = outset.req
    need = capability_mask(req.capabilities)
    kind_of: dict[tuple[object, ...], int] = {}
    for j, kind in enumerate(kinds):
        if kind != -1:
            continue
        i = picked[j]
        closed = bool(table.diversion[i] == _CLOSED)
        sig = (
            bool(table.active[i]),
            int(table.maternal[i]),
            int(table.neonatal[i]),
            int((table.caps[i] & need) ^ need),
            int(table.unavailable[i] & need),
            closed,
            table.facilities[i].diversion_reason if closed else "",
            tuple(b for b in outset.beds if table.beds[i, BED_TYPES.index(b)] == 0),
        )
        new = kind_of.get(sig)
        if new is None:
            new = kind_of[sig] = -2 - len(kind_of)
            distinct[new] = _exclusion_reasons(req, outset.caps, True, *sig)
        kinds[j] = new


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
