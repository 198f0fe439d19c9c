"""`greenchannel serve --workers N`: gunicorn with N worker processes on loopback, answering from
the one composition root, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from migrations import upgrade

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from greenchannel.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_serve_with_workers_forks_them_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gc.sqlite'}"
    upgrade(url)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "GREENCHANNEL_ROADS": str(tmp_path / "roads.npz"),
        "SECRET_KEY": "serve-test",
    }
    server = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--threads", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = r.read()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                time.sleep(0.3)
        assert b'"status":"ok"' in body.replace(b" ", b"")
        # The first worker can answer before gunicorn has forked the second.
        while len(children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(children(server.pid)) == 2
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "2 processes, gunicorn" in output
