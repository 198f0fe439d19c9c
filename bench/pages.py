"""Pages that poll: the board's statements and latency, and the bytes an open page costs an hour.

    python bench/pages.py [--cases 100] [--minutes 60] [--database-url postgresql://…]

The app runs in this process (Flask's test client: no network, no server; SQLite in a
temporary folder unless ``--database-url`` names an empty database) on the test world (the
clinic T-1, four hospitals) with ``--cases`` open cases made through the API. Rows:

- the coordinator's live fragment ``/board/live`` as ``live.js`` asks for it while nothing
  changes (``If-None-Match`` → 304): SQL statements, p50, p99; then the same fragment rendered
  in full (no tag: the first poll of a page, or after a change; its baseline: the same with 10
  open cases, built in the same run) and the full page. The full render's target is judged on
  CPU time (this process's, SQLite included), wall time beside it: the machine is shared;
- the bytes an open board's polling costs in an hour when nothing changes: the fragment every
  2.5 s and the map's three lists every 3 s (``live.js``, ``board-map.js``), each asked with the
  previous answer's tag and ``Accept-Encoding: gzip, deflate, br, zstd`` as Chromium sends it,
  the app's clock moving with the schedule (so the once-a-minute renders are in); baseline: the
  same requests without tags or compression (what the pages did before);
- the same for a phone on an open case's page (``/cases/<id>/live`` every 5 s), and after
  the case is closed (``live.js`` stops on ``data-final``: the schedule is the script's rule,
  checked in a real browser by ``tests/test_polling_browser.py``).

Bytes on the wire are HTTP/1.1 messages both ways: the request line and the headers sent
(``Host``, ``Cookie``, ``Accept``, ``Accept-Encoding``, ``If-None-Match``, ``X-Requested-With``,
a Chromium ``User-Agent``), and the status line, headers (with the ``Date`` and ``Server`` a
server adds) and body received; no TLS, TCP or HTTP/2 header compression. Latencies are
in-process and include the machine's other load: run it on a quiet machine for figures to
compare. ``ROWS`` are the row functions ``bench/service.py`` prints in its table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import event  # noqa: E402

BOARD_POLL_S, CASE_POLL_S = 2.5, 5.0  # live.js (case.html: data-live-every)
CASE_POLL_BEFORE_S = 2.5  # every live region polled every 2.5 s before
MAP_POLL_S, MAP_POLL_BEFORE_S = 30.0, 3.0  # board-map.js: and on every change of the board
BROWSER = {
    "User-Agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}
SERVER_ADDS = len("Date: Thu, 03 Dec 2026 12:00:00 GMT\r\n") + len("Server: waitress\r\n")
TARGET_BOARD_MS, TARGET_BOARD_BYTES, TARGET_PHONE_BYTES = 50.0, 5_000_000, 1_000_000


# NamedTuples, not dataclasses: bench/service.py runs this file without registering it in
# sys.modules, where a dataclass looks its module up; a row is then the tuple it takes.
class Row(NamedTuple):
    what: str
    measured: str
    target: str
    baseline: str
    ok: bool | None  # None: a figure beside the others, no target of its own

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "measured": self.measured,
            "target": self.target,
            "baseline": self.baseline,
            "ok": self.ok,
        }


# ------------------------------------------------------------------------------- the world


class Bench:
    """The app on a fresh database with the test world, ``cases`` open cases, and a coordinator
    and the clinic logged in on the web."""

    def __init__(self, cases: int, database_url: str | None) -> None:
        from greenchannel.web.app import create_app
        from migrations import import_models, upgrade
        from tests.world import PPH_REQUEST, login, road_grid, web_world

        logging.getLogger("referral.placement").setLevel(logging.ERROR)
        self.folder = tempfile.TemporaryDirectory(prefix="gc-pages-")
        url = database_url or f"sqlite:///{self.folder.name}/pages.sqlite"
        import_models()
        upgrade(url)
        roads = f"{self.folder.name}/roads.npz"
        road_grid(roads)
        self.app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                "SMS_BACKEND": "recording",
                "PUBLIC_BASE_URL": "https://gc.test",
                "GREENCHANNEL_ROADS": roads,
            }
        )
        self.world = web_world(self.app, self.app.test_client())
        self.case_ids: list[int] = []
        for n in range(cases):
            patient = {"ref": f"B-{n:05d}", "age_years": 30}
            answer = self.world.post(
                "clinic", "/api/v1/referrals", {**PPH_REQUEST, "patient": patient}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"creating case {n}: {answer.status_code} {answer.get_json()}")
            self.case_ids.append(int(answer.get_json()["id"]))
        self.board = self.app.test_client()
        login(self.board, "w-coord")
        self.phone = self.app.test_client()
        login(self.phone, "w-clinic")
        self.engine = self.app.extensions["greenchannel.db"][0]
        # as `greenchannel serve` leaves a process before its first request: what was loaded
        # is out of the cyclic collector's sight (a full collection walked all of it: a
        # tail of 100 ms and more on one request in a few hundred, which serve never sees)
        from greenchannel.cli.serving import settle_heap

        settle_heap()

    def close(self) -> None:
        self.engine.dispose()
        self.folder.cleanup()

    def statements(self, call: Callable[[], Any]) -> tuple[int, Any]:
        count = 0

        def counted(*_: object) -> None:
            nonlocal count
            count += 1

        event.listen(self.engine, "before_cursor_execute", counted)
        try:
            answer = call()
        finally:
            event.remove(self.engine, "before_cursor_execute", counted)
        return count, answer


# ------------------------------------------------------------------------------- measuring


class Timings(NamedTuple):
    wall: list[float]  # milliseconds, as a caller waits (the machine's other load included)
    cpu: list[float]  # milliseconds of this process's CPU (SQLite runs in it too)

    def __str__(self) -> str:
        return (
            f"p50 {statistics.median(self.wall):.1f} ms, p99 {percentile(self.wall, 99):.1f} ms"
            f" (CPU p50 {statistics.median(self.cpu):.1f}, p99 {percentile(self.cpu, 99):.1f})"
        )


def timed(call: Callable[[], Any], times: int) -> Timings:
    """``times`` calls (after two to warm up)."""
    for _ in range(2):
        call()
    wall, cpu = [], []
    for _ in range(times):
        started, used = time.perf_counter(), time.process_time()
        call()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    return Timings(wall, cpu)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def wire(client: FlaskClient, path: str, response: Any, headers: dict[str, str]) -> tuple[int, int]:
    """Bytes up and down of one exchange (see the module's docstring)."""
    cookie = "; ".join(f"{c.key}={c.value}" for c in (client._cookies or {}).values())
    sent = {"Host": "gc.example", "Cookie": cookie, **headers}
    up = len(f"GET {path} HTTP/1.1\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in sent.items()) + 2
    status = f"HTTP/1.1 {response.status}\r\n"
    head = sum(len(f"{k}: {v}\r\n") for k, v in response.headers.items()) + 2 + SERVER_ADDS
    return up, len(status) + head + len(response.get_data())


class Poller:
    """One polled URL as the page asks for it: with the last tag and the browser's headers
    (``cached``), or bare, as before this change (baseline)."""

    def __init__(self, client: FlaskClient, path: str, *, cached: bool, **extra: str) -> None:
        self.client, self.path, self.cached, self.extra = client, path, cached, extra
        self.tag: str | None = None
        self.bytes = self.up = self.requests = self.full = 0
        self.final = False
        self.followers: list[Poller] = []  # asked when this one changed (the board's map)

    def poll(self) -> None:
        headers = {**self.extra}
        if self.cached:
            headers.update(BROWSER)
            if self.tag:
                headers["If-None-Match"] = self.tag
        else:
            headers["User-Agent"] = BROWSER["User-Agent"]
        response = self.client.get(self.path, headers=headers)
        if response.status_code not in (200, 304):
            raise RuntimeError(f"{self.path}: {response.status_code}")
        self.requests += 1
        up, down = wire(self.client, self.path, response, headers)
        self.up += up
        self.bytes += up + down
        if response.status_code == 200:
            self.full += 1
            self.tag = response.headers.get("ETag")
            self.final = b"data-final" in _plain(response)
            for follower in self.followers:
                follower.poll()


def _plain(response: Any) -> bytes:
    data: bytes = response.get_data()
    encoding = response.headers.get("Content-Encoding")
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(data))
    if encoding == "gzip":
        import gzip

        return gzip.decompress(data)
    return data


def an_hour(
    bench: Bench, pollers: list[tuple[Poller, float]], minutes: float
) -> tuple[float, list[Poller]]:
    """Run the pollers on their schedule for ``minutes`` of the app's clock; bytes per hour
    (both ways) and the pollers (their requests, full answers and bytes sent up)."""
    clock = bench.world.clock
    start = clock.now
    due = [(0.0, i) for i in range(len(pollers))]
    end = minutes * 60
    while due:
        due.sort()
        at, i = due.pop(0)
        if at > end:
            continue
        clock.now = start + dt.timedelta(seconds=at)
        poller, period = pollers[i]
        poller.poll()
        if not poller.final:  # live.js stops on a closed case
            due.append((at + period, i))
    clock.now = start
    total = sum(p.bytes for p, _ in pollers)
    return total * 60 / minutes, [p for p, _ in pollers]


def mb(value: float) -> str:
    return f"{value / 1e6:.2f} MB/h"


def split(pollers: list[Poller], minutes: float) -> str:
    """How many requests an hour, and how much of the bytes went up (the requests' headers)."""
    requests = sum(p.requests for p in pollers) * 60 / minutes
    up = sum(p.up for p in pollers) / max(1, sum(p.bytes for p in pollers))
    return f"{requests:.0f} requests/h, {up:.0%} of it up"


# ------------------------------------------------------------------------------------ rows


def rows(cases: int = 100, minutes: float = 60, database_url: str | None = None) -> list[Row]:
    """Every row of the table (builds its own app and database, removed afterwards)."""
    bench = Bench(cases, database_url)
    try:
        return _rows(bench, cases, minutes)
    finally:
        bench.close()


def _rows(bench: Bench, cases: int, minutes: float) -> list[Row]:
    board = bench.board
    out: list[Row] = []

    # The board: statements and latency, unchanged (304) and rendered in full (200).
    first = board.get("/board/live")
    tag = first.headers["ETag"]
    unchanged_statements, answer = bench.statements(
        lambda: board.get("/board/live", headers={"If-None-Match": tag})
    )
    assert answer.status_code == 304
    full_statements, _ = bench.statements(lambda: board.get("/board/live"))
    page_statements, _ = bench.statements(lambda: board.get("/board"))
    polled = timed(lambda: board.get("/board/live", headers={"If-None-Match": tag}), 200)
    rendered = timed(lambda: board.get("/board/live"), 100)
    whole = timed(lambda: board.get("/board"), 30)
    # Baseline, same run: the same fragment with 10 open cases (the statements must not grow;
    # the time grows with the rows only).
    few_statements, few_rendered = full_statements, rendered
    if cases != 10:
        few = Bench(10, None)
        try:
            few_statements, _ = few.statements(lambda: few.board.get("/board/live"))
            few_rendered = timed(lambda: few.board.get("/board/live"), 100)
        finally:
            few.close()

    out.append(
        Row(
            f"board poll, {cases} open cases, unchanged (304)",
            f"{unchanged_statements} statements; {polled}",
            f"constant; p99 ≤ {TARGET_BOARD_MS:.0f} ms",
            f"full render: {rendered}",
            percentile(polled.wall, 99) <= TARGET_BOARD_MS,
        )
    )
    out.append(
        Row(
            f"board fragment rendered in full, {cases} open cases (200)",
            f"{full_statements} statements; {rendered}",
            f"constant; CPU p99 ≤ {TARGET_BOARD_MS:.0f} ms",
            f"10 open: {few_statements} statements; {few_rendered} "
            "(issue #18 before: 108 statements, ~280 ms)",
            full_statements == few_statements and percentile(rendered.cpu, 99) <= TARGET_BOARD_MS,
        )
    )
    out.append(
        Row(
            f"board page /board, {cases} open cases",
            f"{page_statements} statements; {whole}",
            "constant",
            "",
            None,
        )
    )

    # An open board's polling for an hour, nothing changing.
    lists = [
        "/api/v1/referrals?status=active&limit=200",
        "/api/v1/facilities?active=true",
        "/api/v1/roads/closures",
    ]

    def board_pollers(cached: bool) -> list[tuple[Poller, float]]:
        live = Poller(board, "/board/live", cached=cached, **{"X-Requested-With": "fetch"})
        maps = [Poller(board, p, cached=cached, Accept="application/json") for p in lists]
        if cached:  # the map asks again when the board's fragment changed, and every 30 s
            live.followers = maps
            return [(live, BOARD_POLL_S), *((m, MAP_POLL_S) for m in maps)]
        return [(live, BOARD_POLL_S), *((m, MAP_POLL_BEFORE_S) for m in maps)]

    cached_bytes, cached = an_hour(bench, board_pollers(True), minutes)
    # The baseline's answers do not change within the hour: ten minutes say it.
    plain_bytes, _ = an_hour(bench, board_pollers(False), min(minutes, 10))
    renders = cached[0].full * 60 / minutes
    out.append(
        Row(
            f"bytes polled by an open board ({cases} open cases), nothing changing",
            f"{mb(cached_bytes)} ({split(cached, minutes)}; {renders:.0f} fragment renders/h)",
            f"≤ {mb(TARGET_BOARD_BYTES)}",
            f"{mb(plain_bytes)} without tags or compression",
            cached_bytes <= TARGET_BOARD_BYTES,
        )
    )
    geometry = board.get("/board").get_data(as_text=True).split('data-geometry="')[1]
    geometry_url = geometry.split('"')[0].replace("&amp;", "&")
    answer = board.get(geometry_url, headers=BROWSER)
    out.append(
        Row(
            "road geometry (once per network: versioned URL)",
            f"{len(answer.get_data()) / 1000:.1f} KB compressed, "
            f"Cache-Control: {answer.headers.get('Cache-Control')}",
            "long-lived, versioned",
            f"{len(board.get('/api/v1/roads/geometry').get_data()) / 1000:.1f} KB no-store",
            "immutable" in answer.headers.get("Cache-Control", ""),
        )
    )

    # A phone on an open case, then on the same case once it is closed.
    case_id = bench.case_ids[-1]
    path = f"/cases/{case_id}/live"

    def phone(cached: bool) -> list[tuple[Poller, float]]:
        poller = Poller(bench.phone, path, cached=cached, **{"X-Requested-With": "fetch"})
        return [(poller, CASE_POLL_S if cached else CASE_POLL_BEFORE_S)]

    open_bytes, opened = an_hour(bench, phone(True), minutes)
    open_plain, _ = an_hour(bench, phone(False), min(minutes, 10))
    out.append(
        Row(
            "a phone's open case page",
            f"{mb(open_bytes)} ({split(opened, minutes)}; {opened[0].full * 60 / minutes:.0f}"
            " renders/h)",
            f"≤ {mb(TARGET_PHONE_BYTES)}",
            f"{mb(open_plain)} without tags or compression",
            open_bytes <= TARGET_PHONE_BYTES,
        )
    )
    hidden_bytes, _ = an_hour(
        bench, [(Poller(bench.phone, path, cached=True), CASE_POLL_S * 4)], minutes
    )
    out.append(
        Row(
            "the same, screen off (hidden tab: 4× slower)",
            mb(hidden_bytes),
            "",
            "",
            None,
        )
    )
    cancelled = bench.world.post(
        "clinic", f"/api/v1/referrals/{case_id}/cancel", {"reason": "duplicate"}
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    closed_bytes, closed = an_hour(bench, phone(True), minutes)
    out.append(
        Row(
            "a phone's case page after the case closed",
            f"{closed[0].requests} request(s), {closed_bytes * minutes / 60 / 1000:.1f} KB, "
            "then nothing",
            "nothing after close",
            "kept polling (~8 MB/h, issue #18)",
            closed[0].requests == 1 and closed[0].final,
        )
    )
    return out


def service_rows() -> list[tuple[str, str, str, str, bool | None]]:
    """The rows as ``bench/service.py`` takes them: (what, measured, target, baseline, passed)."""
    return [(r.what, r.measured, r.target, r.baseline, r.ok) for r in rows()]


ROWS: list[Callable[[], list[tuple[str, str, str, str, bool | None]]]] = [service_rows]


def show(table: list[Row]) -> str:
    header = ("", "what", "measured", "target", "baseline (same run)")
    lines = [header]
    for row in table:
        mark = "" if row.ok is None else ("PASS" if row.ok else "MISS")
        lines.append((mark, row.what, row.measured, row.target, row.baseline))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100, help="open cases on the board")
    parser.add_argument(
        "--minutes", type=float, default=60, help="minutes of polling simulated (scaled to /h)"
    )
    parser.add_argument("--database-url", help="an empty database (default: SQLite, temporary)")
    args = parser.parse_args()
    started = time.perf_counter()
    table = rows(args.cases, args.minutes, args.database_url)
    print(show(table))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    spent = time.perf_counter() - started
    print(f"({spent:.0f} s in-process; load average {load} on {os.cpu_count()} cores)")
    return 0 if all(row.ok is not False for row in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
