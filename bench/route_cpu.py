"""The route request's CPU time in process: where a served request's time goes, without a server.

    python bench/route_cpu.py [--requests 3000] [--database-url postgresql://…]

The demo region is built into a temporary SQLite database (or ``--database-url``, an empty
database); the app is built by the composition root as ``greenchannel serve`` builds it (roads
loaded, kernels compiled, the facility table primed) and called as a WSGI application, one
request after another in this thread, with the bench's body (``bench/service.py``: the demo's
clinic token, PPH from a township) and the rate limit off as in that bench. Access log lines go
to a null stream (formatted, not written). Rows, each in ms of this process's CPU per request,
measured in the same run:

- ``POST /api/v1/route`` whole (the figure). Its target is what the route row of
  ``bench/service.py`` leaves the app: 1,000 req/s on 2 cores is 2 ms of CPU a request for
  everything, the server's own part (about 0.45 ms more served than in process) and wrk's
  included, so about 1.3 ms; 1.0 ms keeps 1,000 req/s when the machine runs a quarter slower;
- the floor under it: an authenticated view that does nothing (every guard and hook, the token
  check with its session and revision statement), and the same without the token check;
- the route's parts, timed around the functions the view calls (inclusive, nested parts inside
  their parents).

Nothing is asserted; the exit status is 0. The figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 1.0


def _bench_service() -> ModuleType:
    """bench/service.py: its body, its environment, its demo region and its loader of the other
    bench files (loaded from its path: bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_service", ROOT / "bench" / "service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def caller(app: Any, token: str, path: str, body: bytes) -> Callable[[], int]:
    def call() -> int:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {token}",
        }
        status: list[str] = []
        b"".join(app(environ, lambda s, h, e=None: status.append(s)))
        return int(status[0].split()[0])

    return call


def cpu_ms(call: Callable[[], int], requests: int) -> float:
    for _ in range(min(200, requests)):
        status = call()
        if status != 200:
            raise SystemExit(f"the request answered {status}")
    started = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - started) / requests * 1000


@contextmanager
def timed(parts: list[tuple[Any, str, str]]) -> Iterator[collections.Counter[str]]:
    """Wrap ``owner.name`` for each part: inclusive nanoseconds per label while the block runs."""
    spent: collections.Counter[str] = collections.Counter()
    saved = []
    for owner, name, label in parts:
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def wrapper(*a: Any, _f: Any = original, _label: str = label, **k: Any) -> Any:
            t = time.perf_counter_ns()
            try:
                return _f(*a, **k)
            finally:
                spent[_label] += time.perf_counter_ns() - t

        setattr(owner, name, wrapper)
    try:
        yield spent
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--database-url", help="an empty database (default: SQLite, temporary)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with (
        tempfile.TemporaryDirectory(prefix="gc-route-cpu-") as folder,
        open(os.devnull, "w") as null,
    ):
        tmp = Path(folder)
        service = _bench_service()
        floor = service._bench_module("floor")
        env = service.service_env(tmp, args.database_url)
        os.environ.update(env)  # this process's runtime reads the same settings
        token = service.Context(args=args, tmp=tmp, env=env).region()["clinic"]
        body = service.ROUTE_BODY.encode()
        from greenchannel.cli.common import open_runtime, web_app
        from greenchannel.cli.serving import prime_routing, warm_up

        runtime = open_runtime()
        app = web_app(runtime)
        # the floor: a view that does nothing, with and without the token check (bench only)
        floor.add_floor_views(app)
        prime_routing(runtime)
        warm_up(runtime)
        for handler in logging.getLogger().handlers:  # formatted, not written
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(null)
        n = args.requests
        route = cpu_ms(caller(app, token, "/api/v1/route", body), n)
        floor_token = cpu_ms(caller(app, token, floor.path_of("nothing_but_the_token"), body), n)
        floor_plain = cpu_ms(caller(app, token, floor.path_of("nothing"), body), n)

        import flask.app
        import webargs.core

        import greenchannel.web.api_routing as api_routing
        from referral import decision, placement

        parts = [
            (api_routing, "require_user", "the token check (session, revision statement, user)"),
            (webargs.core.Parser, "parse", "webargs and marshmallow (body and query)"),
            (api_routing, "decide", "the decision (triage, ranking, safety net)"),
            (placement, "rank_case", "  of which the ranking"),
            (decision.Decision, "to_dict", "the answer's dict (reasons in its language)"),
            (api_routing, "route_answer", "the answer's JSON"),
            (flask.app.Flask, "preprocess_request", "before-request hooks"),
            (flask.app.Flask, "process_response", "after-request hooks"),
            (flask.app.Flask, "do_teardown_appcontext", "teardown (the session closed)"),
        ]
        call = caller(app, token, "/api/v1/route", body)
        with timed(parts) as spent:
            started = time.process_time()
            for _ in range(n):
                call()
            timed_total = (time.process_time() - started) / n * 1000

    print(f"\nroute request CPU in process, {n} requests, {os.cpu_count()} CPUs\n")
    print("| what | ms CPU per request | target | |")
    print("|---|---|---|---|")
    verdict = "PASS" if route <= TARGET_MS else "MISS"
    print(f"| POST /api/v1/route | {route:.3f} | ≤ {TARGET_MS} | {verdict} |")
    print(f"| baseline: a view that does nothing, token checked | {floor_token:.3f} | | |")
    print(f"| baseline: a view that does nothing | {floor_plain:.3f} | | |")
    print(f"\nparts (inclusive, wall ms per request; the route timed again: {timed_total:.3f})\n")
    for label, ns in spent.most_common():
        print(f"  {ns / n / 1e6:6.3f}  {label}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n(load average {load})")


if __name__ == "__main__":
    main()
