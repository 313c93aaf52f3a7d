"""``/metrics`` and ``/readyz`` with a broker, through the web app; JSON logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from fastapi.testclient import TestClient

from nurture.config import load_settings
from nurture.db import Database
from nurture.jobs.app import configure
from nurture.logs import JsonFormatter
from nurture.runtime import Runtime
from nurture.web.app import create_app
from tests.jobs.cluster import REDIS_URL, two_step_campaign


def _app(db: Database, tmp_path: Path, **env: str) -> TestClient:
    settings = load_settings(
        {"NURTURE_DATA_DIR": str(tmp_path), "NURTURE_SECRET_KEY": "s" * 20,
         "NURTURE_DATABASE_URL": db.url, **env}
    )
    rt = Runtime(settings=settings, db=db)
    if "NURTURE_BROKER_URL" in env:
        configure(rt=rt)
    return TestClient(create_app(rt))


def test_metrics_need_loopback_or_token_and_report_the_database(pg: Database, tmp_path: Path) -> None:
    campaign_id, _s1, _s2 = two_step_campaign(pg, 5)
    from nurture.clock import utcnow
    from nurture.engine.enrol import sync_campaigns

    sync_campaigns(pg, now=utcnow(), full=True)
    client = _app(pg, tmp_path, NURTURE_METRICS_TOKEN="metrics-token-123")
    assert client.get("/metrics").status_code == 403  # the test client is not on loopback
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-token-123"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert f'nurture_due_backlog{{campaign="{campaign_id}"}} 5.0' in body
    assert 'nurture_traces{state="scheduled"} 5.0' in body
    assert "nurture_traces_executed_total" in body or "# HELP nurture_traces_executed" in body


def test_readyz_checks_the_broker(database: Database, tmp_path: Path) -> None:
    ok = _app(database, tmp_path, NURTURE_BROKER_URL=REDIS_URL).get("/readyz")
    assert ok.status_code == 200 and ok.json()["broker"] == "ok"
    down = _app(database, tmp_path, NURTURE_BROKER_URL="redis://127.0.0.1:1/0").get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "broker unreachable"
    embedded = _app(database, tmp_path).get("/readyz")
    assert embedded.status_code == 200 and "broker" not in embedded.json()


def test_json_log_lines_carry_extra_fields() -> None:
    record = logging.LogRecord("nurture.jobs", logging.INFO, __file__, 1, "activity %s ran", (7,), None)
    record.activity_id = 7
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "activity 7 ran"
    assert line["level"] == "INFO" and line["logger"] == "nurture.jobs"
    assert line["activity_id"] == 7


def test_serve_with_several_web_processes(pg: Database, tmp_path: Path) -> None:
    """`nurture serve --workers 2` on PostgreSQL with a broker: both processes answer,
    /readyz checks the broker, /metrics sums the processes; SIGTERM stops them all."""
    import os
    import signal

    import httpx

    from tests.channels.email.smtp_sink import free_port
    from tests.jobs.cluster import Cluster, wait_until

    two_step_campaign(pg, 3)
    cluster = Cluster(pg, tmp_path, smtp_port=free_port())
    port = free_port()
    proc = cluster.start("web", "serve", "--no-demo", "--workers", "2", "--port", str(port))
    try:
        def ready() -> dict[str, object] | None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx.TransportError:
                assert proc.poll() is None, cluster.logs()
                return None
            return response.json() if response.status_code == 200 else None

        body = wait_until(ready, 90, "the web processes to be ready", every=0.3)
        assert body["broker"] == "ok" and body["database"] == "postgresql"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2  # uvicorn's supervisor and its web processes
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert metrics.status_code == 200  # loopback client
        assert "# HELP nurture_due_backlog" in metrics.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
        cluster.procs.clear()
    assert code == 0, cluster.logs()
