"""Road routing: the nearest capable facility by real travel time, at province scale.

Plain library code on plain data: no database, no web framework, no import from the other packages.

Typical use
-----------
Import once (``greenchannel roads import``)::

    from routing import RoadNetwork, DEFAULT_SPEEDS
    net = RoadNetwork.from_pbf("guizhou.osm.pbf", speeds=rules_speeds, progress=print_progress)
    print(net.report)              # what was kept and dropped
    net.save("instance/roads.npz") # the compiled network (arrays + Contraction Hierarchy)
    net.to_graphml("roads.graphml")

In each web/worker process, once::

    router = Router(RoadNetwork.load("instance/roads.npz"))   # or Router(None): estimates only

Per request (closures are read from the database and passed every time)::

    table = router.prepare(snapshots)          # optional: reuse while facilities are unchanged
    result = rank((lat, lon), table, Requirements(maternal_level=3,
                  capabilities=frozenset({"adult_icu"}), beds=frozenset({"maternal_icu"})),
                  router=router, policy=Policy(tolerance_minutes=10, time_window_minutes=60),
                  closures=[Closure("c1", lat, lon, radius_m=300)],
                  stabilise=Requirements(maternal_level=2))
    result.candidates[0].facility, result.candidates[0].eta_minutes, result.to_dict()

Public API
----------
RoadNetwork
    ``from_pbf``, ``from_graphml``, ``from_networkx``, ``from_arcs``, ``save``, ``load``,
    ``to_graphml``, ``to_networkx``, ``nearest_nodes``, ``report`` (:class:`ImportReport`).
Router
    Holds a network (or None) and the caches; ``prepare``, ``route``, ``coverage``.
rank, coverage
    The ranking of capable facilities for a case; the nearest capable facility per origin.
FacilitySnapshot, Requirements, Policy, Closure
    Inputs. Ranking, Candidate, Exclusion, Outreach, Reason, CoverageRow, Route: outputs.
DEFAULT_SPEEDS, parse_maxspeed, parse_duration, CAPABILITIES, BED_TYPES, DIVERSIONS
    Vocabulary and helpers.
RoutingError (ValueError) and subclasses
    RoadNetworkError, InvalidCoordinateError, UnknownCapabilityError, InvalidLevelError,
    InvalidInputError; each has ``code`` and ``field``.
"""

from __future__ import annotations

from routing.closures import CLOSURE_KINDS, Closure
from routing.errors import (
    InvalidCoordinateError,
    InvalidInputError,
    InvalidLevelError,
    RoadNetworkError,
    RoutingError,
    UnknownCapabilityError,
)
from routing.facility_table import FacilityTable, prepare_facilities
from routing.model import (
    BED_TYPES,
    CAPABILITIES,
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
    Route,
)
from routing.network import ImportReport, RoadNetwork
from routing.ranking import coverage, rank
from routing.router import Router
from routing.speeds import DEFAULT_FERRY_SPEED_KMH, DEFAULT_SPEEDS, parse_duration, parse_maxspeed

__all__ = [
    "BED_TYPES",
    "CAPABILITIES",
    "CLOSURE_KINDS",
    "DEFAULT_FERRY_SPEED_KMH",
    "DEFAULT_SPEEDS",
    "DIVERSIONS",
    "Candidate",
    "Closure",
    "CoverageRow",
    "Exclusion",
    "FacilitySnapshot",
    "FacilityTable",
    "ImportReport",
    "InvalidCoordinateError",
    "InvalidInputError",
    "InvalidLevelError",
    "Outreach",
    "Partial",
    "Policy",
    "Ranking",
    "Reason",
    "Requirements",
    "RoadNetwork",
    "RoadNetworkError",
    "Route",
    "Router",
    "RoutingError",
    "UnknownCapabilityError",
    "coverage",
    "parse_duration",
    "parse_maxspeed",
    "prepare_facilities",
    "rank",
]
