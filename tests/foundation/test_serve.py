"""The README's run command: `nurture serve` on a fresh data dir answers health with demo data."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_migrates_loads_demo_and_stops_gracefully(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env["NURTURE_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if response.status_code == 200:
                    body = response.json()
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        assert body is not None, "server never became ready"
        assert body["status"] == "ok"
        assert body["database"] == "sqlite"
        assert body["records"]["contact"] >= 1000
        assert body["records"]["lead"] > 0
        assert body["records"]["mailing_contact"] > 0
        assert body["records"]["event_registration"] > 0
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        assert (tmp_path / "nurture.db").is_file()
        # the demo campaigns' history is made by the engine thread while the server answers
        states: list[str] = []
        while time.monotonic() < deadline + 120 and len(states) < 3:
            with sqlite3.connect(tmp_path / "nurture.db") as conn:
                states = sorted(row[0] for row in conn.execute("SELECT state FROM campaign"))
            if len(states) < 3:
                time.sleep(0.5)
        assert states == ["draft", "running", "stopped"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    output = proc.stdout.read() if proc.stdout else ""
    assert code == 0, output
    assert "demo data loaded" in output
    assert "Nurture stopped" in output
