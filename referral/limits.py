"""Bounds on what a caller may send: every list and every string that comes in has one.

Without them one request could make the service work for minutes inside a transaction (issue 22:
a case with 10,000 conditions held SQLite's write lock for more than 12 minutes). The schemas and
forms refuse what is over a bound before any work starts; :func:`check_conditions` guards the
domain for every other way a case comes in (SMS, the command line).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from core.errors import ServiceError
from core.vocabulary import CAPABILITIES

# A case names a handful of conditions; the rulebook of the region has 18 in all, and a case is
# for the mother or for the newborn, never both.
MAX_CONDITIONS = 10
CONDITION_CODE_LENGTH = 32
FACILITY_CODE_LENGTH = 32  # facilities.registry's code pattern allows 1 + 31 characters
# Each capability at most once would do; a repeated one is harmless and folded away later.
MAX_CAPABILITIES = len(CAPABILITIES)


def duplicates(codes: Sequence[str]) -> list[str]:
    """The codes given more than once, in the order of their first appearance."""
    counts = Counter(codes)
    return [code for code in counts if counts[code] > 1]


def check_conditions(conditions: Sequence[str]) -> None:
    """At most :data:`MAX_CONDITIONS` conditions, each named once, each code of bounded length."""
    if len(conditions) > MAX_CONDITIONS:
        raise ServiceError(
            f"conditions: at most {MAX_CONDITIONS} conditions, got {len(conditions)}",
            field="conditions",
        )
    if any(len(code) > CONDITION_CODE_LENGTH for code in conditions):
        raise ServiceError(
            f"conditions: a condition code has at most {CONDITION_CODE_LENGTH} characters",
            field="conditions",
        )
    repeated = duplicates(conditions)
    if repeated:
        raise ServiceError(
            f"conditions: {', '.join(repeated)} given more than once", field="conditions"
        )
