"""The floor under the route request: the service's app with two views that do nothing.

    python bench/floor.py --port 8000 [--workers 2]     (serves until SIGTERM)

The app is built by the composition root as ``greenchannel serve`` builds it (roads loaded,
kernels compiled, the facility table primed, the heap settled) and served by the same gunicorn
settings (``greenchannel.cli.gunicorn_server``, ``serve``'s own defaults for threads and
connections). Two views are added for the bench only, both ``POST``:

- ``/api/v1/bench/nothing``: every guard and hook a route request passes (input guard, request
  id, rate limit, security headers, access log line), then an empty JSON answer;
- ``/api/v1/bench/nothing_but_the_token``: the same with the token check (its session and the
  revision statement) that every API request pays.

Whatever the route request costs above these is the route's own; what these cost above the bare
WSGI hello is Flask's and the service's hooks. ``bench/service.py`` serves this beside the
route and prints both; ``bench/route_cpu.py`` calls the same views in process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIEWS = ("nothing", "nothing_but_the_token")


def path_of(view: str) -> str:
    return f"/api/v1/bench/{view}"


def add_floor_views(app: Any) -> None:
    """The two views that do nothing (``POST``, exempt from CSRF like the API's blueprints)."""
    from greenchannel.web.app import csrf
    from greenchannel.web.auth import require_user
    from greenchannel.web.responses import json_response

    def nothing() -> Any:
        return json_response({})

    def nothing_but_the_token() -> Any:
        require_user()
        return json_response({})

    for view in (nothing, nothing_but_the_token):
        csrf.exempt(view)
        app.add_url_rule(path_of(view.__name__), view.__name__, view, methods=["POST"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from greenchannel.cli.common import open_runtime, web_app
    from greenchannel.cli.gunicorn_server import run_gunicorn
    from greenchannel.cli.serving import prime_routing, serve, warm_up

    defaults = {param.name: param.default for param in serve.params}
    runtime = open_runtime()
    app = web_app(runtime)
    add_floor_views(app)
    prime_routing(runtime)
    warm_up(runtime)
    run_gunicorn(
        app,
        runtime,
        host=args.host,
        port=args.port,
        workers=args.workers,
        threads=defaults["threads"],
        connection_limit=defaults["connection_limit"],
    )


if __name__ == "__main__":
    main()
