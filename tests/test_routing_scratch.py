"""The router's work arrays: borrowed by one search at a time, as many sets as ran at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from routing import Closure, FacilitySnapshot, Policy, Requirements, Router, rank
from routing.query import ScratchPool
from tests.routing_helpers import grid_network, random_facilities

POLICY = Policy(top_k=5)
REQ = Requirements(maternal_level=1)


NET = grid_network(12, 12, seed=11, keep=0.9)
FACILITIES = random_facilities(NET, 30, seed=12)
ORIGINS = [(float(NET.lat[i]), float(NET.lon[i])) for i in (0, 17, 70, 143)]
CLOSURE = Closure("c", float(NET.lat[66]), float(NET.lon[66]), radius_m=400.0)


def _answer(
    router: Router, origin: tuple[float, float], closures: list[Closure]
) -> dict[str, object]:
    facilities: list[FacilitySnapshot] = FACILITIES
    return rank(origin, facilities, REQ, router=router, policy=POLICY, closures=closures).to_dict()


def _all_clean(pool: ScratchPool) -> bool:
    return all(
        bool(np.isinf(s.dist).all() and np.isinf(s.dist2).all() and (s.pos == -1).all())
        for s in pool._free
    )


def test_two_queries_open_at_once_get_their_own_arrays_and_the_right_answers() -> None:
    router, origins, closure = Router(NET), ORIGINS, CLOSURE
    expected = {o: _answer(Router(NET), o, [closure]) for o in origins}
    table = router.prepare(FACILITIES)
    state = router.closure_state([closure])
    both_open = threading.Barrier(2)
    got: dict[tuple[float, float], object] = {}
    errors: list[BaseException] = []

    def ask(origin: tuple[float, float]) -> None:
        try:
            # a query under closures keeps its arrays until it closes: hold two open at once
            with router.query(origin[0], origin[1], table, policy=POLICY, state=state) as q:
                both_open.wait(timeout=30)
                q.top(np.ones(len(table), bool), np.zeros(len(table)), 3)
            got[origin] = _answer(router, origin, [closure])
        except BaseException as e:  # reported below
            errors.append(e)

    for pair in (origins[:2], origins[2:]):
        threads = [threading.Thread(target=ask, args=(o,)) for o in pair]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert got == expected
    assert router.scratch_pool.sets == 2
    assert _all_clean(router.scratch_pool)


def test_threads_that_query_one_after_the_other_share_one_set_of_arrays() -> None:
    router, origins, closure = Router(NET), ORIGINS, CLOSURE
    for closures in ([], [closure]):
        threads = [
            threading.Thread(target=_answer, args=(router, o, closures)) for o in origins * 2
        ]
        for t in threads:  # eight threads, one query each, never two at once
            t.start()
            t.join()
    assert router.scratch_pool.sets == 1


def test_an_exception_inside_a_query_leaves_no_dirty_arrays_behind() -> None:
    router, origins, closure = Router(NET), ORIGINS, CLOSURE
    table = router.prepare(FACILITIES)
    state = router.closure_state([closure])
    expected = _answer(Router(NET), origins[1], [closure])
    query = router.query(origins[0][0], origins[0][1], table, policy=POLICY, state=state)
    with pytest.raises(RuntimeError), query as q:
        q.top(np.ones(len(table), bool), np.zeros(len(table)), 3)
        raise RuntimeError("the caller fails while the query holds its arrays")
    assert router.scratch_pool.sets == 0  # the set it held is dropped, not reused
    assert _answer(router, origins[1], [closure]) == expected
    assert _all_clean(router.scratch_pool)
