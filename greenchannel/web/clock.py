"""The time as the web app sees it: real UTC, or a test's controlled clock.

Handlers ask here instead of the wall clock so that an end-to-end test can step time forward
(an offer's timeout, a stale report) exactly, without sleeping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flask import current_app

from core.db import utcnow

CLOCK_KEY = "greenchannel.clock"


def now() -> dt.datetime:
    clock: Callable[[], dt.datetime] = current_app.extensions.get(CLOCK_KEY, utcnow)
    return clock()
