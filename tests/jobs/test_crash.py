"""Crash safety of the Celery engine, with real processes.

Three Celery worker processes (`nurture worker --engine celery`) and the scheduler
(`nurture scheduler`) run a two-step email campaign against PostgreSQL, Redis as broker,
and an aiosmtpd SMTP server that counts what it accepts. Sized at 2,000 participants
(4,000 emails) so the run stays well under a minute on a 2-core machine.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from nurture.db import Database
from nurture.metrics import render
from tests.jobs.cluster import (
    AMQP_URL,
    Cluster,
    publish,
    received_by_step,
    smtp_server,
    two_step_campaign,
    wait_until,
)

PARTICIPANTS = 2000


def _done(cluster: Cluster, messages: int) -> bool:
    """Every message of the run exists and none is waiting; no trace is waiting."""
    return bool(
        cluster.scalar(
            "SELECT (SELECT count(*) FROM mail_message) = :n "
            "AND NOT EXISTS (SELECT 1 FROM trace WHERE state = 'scheduled') "
            "AND NOT EXISTS (SELECT 1 FROM mail_message WHERE state IN ('queued', 'sending'))",
            n=messages,
        )
    )


def _metric(db: Database, line_start: str) -> float:
    body = render(db)[0].decode()
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics output")


def test_worker_killed_mid_batch_each_email_once(pg: Database, tmp_path: Path) -> None:
    with smtp_server() as (sink, port):
        cluster = Cluster(pg, tmp_path, port)
        _campaign, step1, _step2 = two_step_campaign(pg, PARTICIPANTS)
        try:
            # a duplicated task message: three copies of one "run step 1" and of one delivery
            publish(cluster, "nurture.enrol_model", ["contact", False], copies=3)
            publish(cluster, "nurture.run_activity", [step1, PARTICIPANTS], copies=3)
            publish(cluster, "nurture.deliver", ["email"], copies=3, queue=f"{cluster.prefix}.delivery")
            started = time.monotonic()
            cluster.scheduler()
            # the victim only executes traces (composes and queues email); the others also send
            cluster.worker("victim", queues=cluster.prefix)
            cluster.worker("w1")
            cluster.worker("w2")
            # kill the victim with SIGKILL while it holds a write transaction (mid-batch)
            wait_until(
                lambda: cluster.scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'victim' "
                    "AND backend_xid IS NOT NULL"
                ),
                timeout=45,
                what="the victim worker inside a batch transaction",
                every=0.02,
            )
            cluster.kill("victim", signal.SIGKILL)
            sent_at_kill = len(sink.received)
            print(f"victim killed at {time.monotonic() - started:.1f}s, {sent_at_kill} emails received")
            assert sent_at_kill < 2 * PARTICIPANTS, "the run ended before the kill"
            cluster.worker("victim", queues=cluster.prefix)  # restarted
            wait_until(
                lambda: _done(cluster, 2 * PARTICIPANTS), timeout=90, what="every trace and message done", every=0.5
            )
            print(f"all done at {time.monotonic() - started:.1f}s")
        except AssertionError:
            print(cluster.logs())
            raise
        finally:
            cluster.stop_all()

        counts = received_by_step(sink)
        duplicates = {k: n for k, n in counts.items() if n != 1}
        assert not duplicates, f"received more than once: {list(duplicates.items())[:5]}"
        expected = {(f"p{i}@example.com", s) for i in range(1, PARTICIPANTS + 1) for s in ("Step 1", "Step 2")}
        assert set(counts) == expected, f"missing: {len(expected - set(counts))}"
        assert cluster.scalar("SELECT count(*) FROM trace WHERE claimed_by IS NOT NULL AND state = 'scheduled'") == 0
        assert cluster.scalar("SELECT count(*) FROM trace WHERE state <> 'processed'") == 0
        assert cluster.scalar("SELECT count(*) FROM mail_message WHERE state <> 'sent'") == 0
        assert _metric(pg, 'nurture_messages{channel="email",state="sent"}') == len(sink.received)
        assert _metric(pg, 'nurture_traces{state="processed"}') == 2 * PARTICIPANTS


def test_rabbitmq_broker_and_graceful_sigterm(pg: Database, tmp_path: Path) -> None:
    """The same engine on RabbitMQ (pending keys then per process); SIGTERM stops the
    worker and the scheduler cleanly (exit 0, nothing left claimed)."""
    participants = 50
    with smtp_server() as (sink, port):
        cluster = Cluster(pg, tmp_path, port, broker=AMQP_URL)
        two_step_campaign(pg, participants)
        try:
            cluster.scheduler()
            cluster.worker("w1", concurrency=2)
            wait_until(
                lambda: _done(cluster, 2 * participants), timeout=90, what="every message sent", every=0.5
            )
            procs = dict(cluster.procs)
            for proc in procs.values():
                os.killpg(proc.pid, signal.SIGTERM)
            codes = {name: proc.wait(30) for name, proc in procs.items()}
            assert codes == {"scheduler": 0, "w1": 0}
            cluster.procs.clear()
        except AssertionError:
            print(cluster.logs())
            raise
        finally:
            cluster.stop_all()
        counts = received_by_step(sink)
        assert len(counts) == 2 * participants and set(counts.values()) == {1}
        assert cluster.scalar("SELECT count(*) FROM mail_message WHERE state <> 'sent'") == 0
