"""The excluded list: the nearest facilities that are out, from the one query already done, bounded
on the API unless every one is asked for (``?excluded=all``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing import Closure, Policy, Requirements, Router, rank
from routing.model import rounded
from tests.routing_helpers import grid_network, random_facilities
from tests.world import World


@pytest.mark.parametrize("closed", [False, True])
def test_a_limited_excluded_list_is_the_head_of_the_full_one(closed: bool) -> None:
    net = grid_network(30, 30, seed=3)
    router = Router(net)
    table = router.prepare(random_facilities(net, 300, seed=4))
    req = Requirements(maternal_level=3, capabilities=frozenset({"adult_icu"}))
    policy = Policy(top_k=5)
    lat, lon = float(net.lat[400]), float(net.lon[400])
    closures = (
        [Closure("c", float(net.lat[410]), float(net.lon[410]), radius_m=400)] if closed else []
    )
    full = rank((lat, lon), table, req, router=router, policy=policy, closures=closures)
    for limit in (0, 1, 7, 50, 10_000):
        some = rank(
            (lat, lon),
            table,
            req,
            router=router,
            policy=policy,
            closures=closures,
            excluded_limit=limit,
        )
        assert some.excluded == full.excluded[:limit]
        assert some.more_excluded == len(full.excluded) - len(some.excluded)
        assert some.candidates == full.candidates
    assert full.more_excluded == 0
    known = [e.eta_minutes for e in full.excluded if e.eta_minutes is not None]
    assert known == sorted(known)


def test_a_negative_limit_names_the_field() -> None:
    net = grid_network(5, 5, seed=1)
    router = Router(net)
    with pytest.raises(ValueError, match="excluded_limit"):
        rank(
            (float(net.lat[0]), float(net.lon[0])),
            random_facilities(net, 5, seed=1),
            Requirements(),
            router=router,
            excluded_limit=-1,
        )


def test_the_api_lists_the_nearest_excluded_and_all_on_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenchannel.web import api_routing

    body = {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}}
    every = world.post("clinic", "/api/v1/route?excluded=all", body).get_json()
    assert every["more_excluded"] == 0 and len(every["excluded"]) >= 1
    default = world.post("clinic", "/api/v1/route", body).get_json()
    assert default == every  # the region is smaller than the default bound
    monkeypatch.setattr(api_routing, "EXCLUDED_SHOWN", 0)
    bounded = world.post("clinic", "/api/v1/route", body).get_json()
    assert bounded["excluded"] == []
    assert bounded["more_excluded"] == len(every["excluded"])
    bad = world.post("clinic", "/api/v1/route?excluded=some", body)
    assert bad.status_code == 422 and bad.get_json()["field"] == "excluded"


def test_the_excluded_reasons_are_said_in_the_answers_language(world: World) -> None:
    from referral.wording import say
    from routing.model import Reason

    body = {"origin": {"facility": "T-1"}, "case": {"conditions": ["PPH"]}}
    english = world.post("clinic", "/api/v1/route?lang=en", body).get_json()
    chinese = world.post("clinic", "/api/v1/route?lang=zh", body).get_json()
    assert english["excluded"] and len(english["excluded"]) == len(chinese["excluded"])
    for en, zh in zip(english["excluded"], chinese["excluded"], strict=True):
        assert en["facility"] == zh["facility"] and en["reason_details"] == zh["reason_details"]
        assert en["reasons"] == [d["text"] for d in en["reason_details"]]
        said = [say(Reason(d["code"], d["text"], d["params"]), "zh") for d in zh["reason_details"]]
        assert zh["reasons"] == said and zh["reasons"] != en["reasons"]


@pytest.mark.parametrize("closed", [False, True])
def test_the_answer_lists_the_same_exclusions_as_the_objects(closed: bool) -> None:
    net = grid_network(20, 20, seed=5)
    router = Router(net)
    facilities = random_facilities(net, 200, seed=6)
    req = Requirements(maternal_level=2, capabilities=frozenset({"adult_icu"}), beds={"obstetric"})
    closures = [Closure("c", float(net.lat[210]), float(net.lon[210]), radius_m=600)]
    for limit in (None, 3, 40):
        ranking = rank(
            (float(net.lat[200]), float(net.lon[200])),
            facilities,
            req,
            router=router,
            closures=closures if closed else [],
            excluded_limit=limit,
        )
        assert ranking.to_dict()["excluded"] == [e.to_dict() for e in ranking.excluded]


HALVES = [k / 20 for k in range(-200, 200)] + [k / 200 for k in range(-200, 200)]


@given(
    st.lists(
        st.floats(allow_nan=True, allow_infinity=True)
        | st.floats(-1e4, 1e4)
        | st.sampled_from(HALVES)
        | st.sampled_from(HALVES).map(lambda h: math.nextafter(h, math.inf))
        | st.sampled_from(HALVES).map(lambda h: math.nextafter(h, -math.inf)),
        max_size=60,
    ),
    st.sampled_from([1, 2]),
)
def test_rounding_many_etas_at_once_gives_the_floats_round_gives(
    values: list[float], ndigits: int
) -> None:
    got = rounded(np.asarray(values, np.float64), ndigits)
    want = [None if v != v else round(v, ndigits) for v in values]
    assert [None if g is None else (g, math.copysign(1.0, g)) for g in got] == [
        None if w is None else (w, math.copysign(1.0, w)) for w in want
    ]
