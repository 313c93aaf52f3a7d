"""Real processes for the Celery engine tests: `nurture worker --engine celery` workers and
`nurture scheduler`, on a PostgreSQL database of their own, Redis (or RabbitMQ) as the
broker, and an aiosmtpd server in the test process that counts what arrives."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import text

from nurture.clock import utcnow
from nurture.db import Database
from tests.channels.email.smtp_sink import Sink, free_port

REDIS_URL = os.environ.get("NURTURE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("NURTURE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def smtp_server() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def received_by_step(sink: Sink) -> Counter[tuple[str, str]]:
    """(recipient, subject) → how many times the SMTP server accepted it."""
    counts: Counter[tuple[str, str]] = Counter()
    with sink.lock:
        items = list(sink.received)
    for item in items:
        subject = str(email.message_from_bytes(item.content)["Subject"])
        for rcpt in item.rcpt_tos:
            counts[(rcpt, subject)] += 1
    return counts


@dataclass
class Cluster:
    db: Database
    tmp: Path
    smtp_port: int
    broker: str = REDIS_URL
    prefix: str = field(default_factory=lambda: f"nurture-test-{uuid.uuid4().hex[:8]}")
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, app_name: str) -> dict[str, str]:
        url = self.db.url.replace("postgresql+psycopg://", "postgresql://")
        sep = "&" if "?" in url else "?"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        env.update(
            {
                "NURTURE_DATA_DIR": str(self.tmp / "data"),
                "NURTURE_DATABASE_URL": f"{url}{sep}application_name={app_name}",
                "NURTURE_SECRET_KEY": "cluster-test-secret-0123456789",
                "NURTURE_BASE_URL": "https://nurture.example.com",
                "NURTURE_MAIL_DOMAIN": "news.example.com",
                "NURTURE_MAIL_FROM": "Acme News <news@example.com>",
                "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}?starttls=0",
                "NURTURE_BROKER_URL": self.broker,
                "NURTURE_QUEUE_PREFIX": self.prefix,
                "NURTURE_SCHEDULER_INTERVAL": "0.5",
                "NURTURE_PENDING_TTL": "5",
                "NURTURE_TASK_BATCH": "200",
                "NURTURE_DELIVERY_BATCH": "100",
                "NURTURE_DELIVERY_LEASE": "10",
                "NURTURE_LOG_LEVEL": "WARNING",
                "NURTURE_EMBEDDED_WORKER": "false",
                **self.extra_env,
            }
        )
        return env

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (kept by the process)
        proc = subprocess.Popen(
            [sys.executable, "-m", "nurture", *args],
            env=self.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes the pool too
        )
        self.procs[name] = proc
        return proc

    def worker(self, name: str, *, queues: str | None = None, concurrency: int = 1) -> None:
        args = ["worker", "--engine", "celery", f"--concurrency={concurrency}", f"--id={name}"]
        if queues:
            args.append(f"--queues={queues}")
        self.start(name, *args)

    def scheduler(self, name: str = "scheduler") -> None:
        self.start(name, "scheduler")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            self.procs.pop(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.tmp.glob("*.log"))
        )

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.db.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()


def two_step_campaign(db: Database, participants: int) -> tuple[int, int, int]:
    """``participants`` contacts and a running campaign: email "Step 1" to each, then
    "Step 2" at once after it. Returns (campaign id, step 1 id, step 2 id)."""
    from nurture.campaigns import activities as activity_service
    from nurture.campaigns import campaigns as cs
    from nurture.channels.email import service as email_service

    now = utcnow()
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contact (name, email, active, created_at, updated_at) "
                "SELECT 'Person ' || i, 'p' || i || '@example.com', true, :now, :now "
                "FROM generate_series(1, :n) AS i"
            ),
            {"now": now, "n": participants},
        )
    with db.transaction() as s:
        campaign = cs.create_campaign(session=s, now=now, name="Two steps", model="contact")
        step1 = activity_service.add_activity(
            session=s, now=now, campaign_id=campaign.id, name="Step 1", activity_type="email"
        )
        email_service.create_template(
            session=s, now=now, activity_id=step1.id, subject="Step 1",
            body_html="<p>Hello {{ record.name }}, welcome.</p>",
        )
        step2 = activity_service.add_activity(
            session=s, now=now, campaign_id=campaign.id, name="Step 2", activity_type="email",
            trigger_type="activity", parent_id=step1.id, interval_number=0,
        )
        email_service.create_template(
            session=s, now=now, activity_id=step2.id, subject="Step 2",
            body_html="<p>Hello again {{ record.name }}.</p>",
        )
        cs.start_campaign(session=s, now=now - timedelta(minutes=1), campaign_id=campaign.id)
        return campaign.id, step1.id, step2.id


def publish(cluster: Cluster, task: str, args: list[Any], *, copies: int, queue: str | None = None) -> None:
    """Put ``copies`` identical messages of ``task`` (one task id) on the cluster's broker,
    bypassing Nurture's pending keys: what a duplicated delivery by the broker looks like."""
    from celery import Celery

    app = Celery("publisher", broker=cluster.broker)
    task_id = str(uuid.uuid4())
    try:
        for _ in range(copies):
            app.send_task(task, args=args, queue=queue or cluster.prefix, task_id=task_id)
    finally:
        app.close()


def run_in_process(cluster: Cluster, name: str, code: str) -> str:
    """Run ``code`` in a separate Python process configured like a web process of the
    cluster (its changes send follow-up tasks); returns its output."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cluster.env(name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class PrivateRedis:
    """A redis-server of the test's own (no persistence) that can be restarted mid-run
    without disturbing anything else on the machine's Redis."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(up, 20, "redis-server to start")
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
