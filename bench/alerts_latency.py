"""How long from a referral being created to its pre-alert handed to the SMS provider?

    python bench/alerts_latency.py [--referrals 200] [--database-url URL]

Runs the real processes against a fake Twilio REST server on loopback (the real SDK sends to
it through TWILIO_API_BASE) and measures, for each referral, the time from the POST that
creates it to the provider receiving its first pre-alert. Two deployments:

- ``demo``: one ``greenchannel demo`` process (web, API and scheduler together);
- ``split``: one ``greenchannel serve`` process and one ``greenchannel worker`` process.

Target (issue 5): p99 under 1 s in both. The worker polls every 0.5 s (``--interval``), which is
the main term: the plain baseline printed beside the figures is that poll interval.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fake_twilio import FakeTwilio, running_fake_twilio  # noqa: E402

POLL_SECONDS = 0.5


def first_seen(fake: FakeTwilio, stamps: dict[str, float]) -> None:
    """Record when the provider first saw each case code (codes are in every pre-alert)."""
    original = fake._handle

    def handle(request: Any) -> Any:
        response = original(request)
        body = request.form.get("Body", "")
        now = time.perf_counter()
        for word in body.replace("：", " ").replace("，", " ").split():
            if word.startswith("【绿色通道】") and "转诊" in word:
                code = word.removeprefix("【绿色通道】").split("转诊")[0]
                stamps.setdefault(code, now)
        return response

    fake._handle = handle  # type: ignore[method-assign]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run(mode: str, *, referrals: int, database_url: str | None, port: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder, running_fake_twilio() as fake:
        stamps: dict[str, float] = {}
        first_seen(fake, stamps)
        env = {
            **os.environ,
            "DATABASE_URL": database_url or f"sqlite:///{folder}/bench.sqlite",
            "SECRET_KEY": "bench",
            "SMS_BACKEND": "twilio",
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": "+8610690000",
            "TWILIO_API_BASE": fake.base_url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "GREENCHANNEL_ROADS": f"{folder}/roads.npz",
        }
        run_cli = ["greenchannel"]
        subprocess.run([*run_cli, "demo", "--no-serve"], env=env, check=True, capture_output=True)
        token_out = subprocess.run(
            [*run_cli, "users", "create", "--username", "bench", "--role", "coordinator"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        token = token_out.strip().split()[-1]
        if mode == "demo":
            commands = [[*run_cli, "demo", "--port", str(port)]]
        else:
            commands = [
                [*run_cli, "serve", "--port", str(port)],
                [*run_cli, "worker", "--interval", str(POLL_SECONDS)],
            ]
        processes = [
            subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for c in commands
        ]
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/healthz")
            time.sleep(2)  # let the first capacity-reminder burst of the demo region drain
            facilities = requests.get(
                base + "/api/v1/facilities",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).json()["facilities"]
            townships = [f["code"] for f in facilities if f["kind"] == "township_health_centre"]
            created: dict[str, float] = {}
            for number in range(referrals):
                body = {
                    "origin_facility": townships[number % len(townships)],
                    "case": {"conditions": ["PPH"]},
                    "patient": {"ref": f"bench-{mode}-{number}"},
                }
                start = time.perf_counter()
                answer = requests.post(
                    base + "/api/v1/referrals",
                    json=body,
                    timeout=30,
                    headers={"Authorization": f"Bearer {token}"},
                )
                answer.raise_for_status()
                created[answer.json()["code"]] = start
                time.sleep(0.05)  # a busy evening, not a flood: 20 referrals a second
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not set(created) <= set(stamps):
                time.sleep(0.1)
            missing = set(created) - set(stamps)
            if missing:
                print(f"  {len(missing)} pre-alerts never reached the provider", file=sys.stderr)
            return [stamps[code] - start for code, start in created.items() if code in stamps]
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--referrals", type=int, default=200)
    parser.add_argument("--database-url", help="default: a fresh SQLite file per deployment")
    parser.add_argument("--port", type=int, default=5099)
    arguments = parser.parse_args()
    print(
        f"referral created → pre-alert handed to the provider, {arguments.referrals} "
        "referrals per deployment; target p99 < 1000 ms"
    )
    print(f"plain baseline: the worker's poll interval, {POLL_SECONDS * 1000:.0f} ms")
    for mode in ("demo", "split"):
        latencies = run(
            mode,
            referrals=arguments.referrals,
            database_url=arguments.database_url,
            port=arguments.port,
        )
        if not latencies:
            print(f"{mode:>6}: no pre-alert arrived")
            continue
        ms = [value * 1000 for value in latencies]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        verdict = "PASS" if p99 < 1000 and len(ms) == arguments.referrals else "MISS"
        print(
            f"{mode:>6}: n={len(ms)} p50={p50:.0f} ms p99={p99:.0f} ms "
            f"max={max(ms):.0f} ms mean={statistics.fmean(ms):.0f} ms "
            f"p99/poll={p99 / (POLL_SECONDS * 1000):.2f}  {verdict}"
        )


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    main()
