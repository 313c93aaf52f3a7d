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

import pytest
from sqlalchemy import text

from nurture.db import Database
from nurture.metrics import render
from tests.jobs.cluster import (
    AMQP_URL,
    REDIS_URL,
    Cluster,
    PrivateRedis,
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


def _in_transaction(cluster: Cluster, app_name: str) -> bool:
    return bool(
        cluster.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
            "AND backend_xid IS NOT NULL",
            name=app_name,
        )
    )


FAULTS = ["sigkill_engine_worker", "sigkill_sending_worker", "pg_terminate_backend", "redis_restart"]


@pytest.mark.parametrize("fault", FAULTS)
def test_two_step_campaign_survives(fault: str, pg: Database, tmp_path: Path) -> None:
    """Each fault strikes mid-run; afterwards every email arrived once, nothing is left
    claimed, and the metrics agree with the SMTP server.

    * ``sigkill_engine_worker``: a worker that executes traces (composes and queues email)
      is SIGKILLed inside its batch transaction, then restarted;
    * ``sigkill_sending_worker``: the only sending worker is SIGKILLed while it sends; the
      message whose hand-over was open is in doubt: never sent twice, recorded failed
      "mail_unknown" (at most one: the delivery core claims right before each hand-over),
      everyone else got each email once;
    * ``pg_terminate_backend``: every worker connection to PostgreSQL is dropped mid-batch;
    * ``redis_restart``: the broker (a private redis-server) is restarted empty mid-run:
      queued tasks and pending keys are lost, the scheduler finds the work again.
    """
    redis_server = PrivateRedis(tmp_path) if fault == "redis_restart" else None
    if redis_server is not None:
        redis_server.start()
    with smtp_server() as (sink, port):
        cluster = Cluster(pg, tmp_path, port, broker=redis_server.url if redis_server else REDIS_URL)
        _campaign, step1, _step2 = two_step_campaign(pg, PARTICIPANTS)
        try:
            # a duplicated task message: three copies of one enrol, one "run step 1", one delivery
            publish(cluster, "nurture.enrol_model", ["contact", False], copies=3)
            publish(cluster, "nurture.run_activity", [step1, PARTICIPANTS], copies=3)
            publish(cluster, "nurture.deliver", ["email"], copies=3, queue=f"{cluster.prefix}.delivery")
            started = time.monotonic()
            cluster.scheduler()
            if fault == "sigkill_sending_worker":
                cluster.worker("victim", queues=f"{cluster.prefix}.delivery")
                cluster.worker("w1", queues=cluster.prefix)
                cluster.worker("w2", queues=cluster.prefix)
                wait_until(lambda: len(sink.received) >= 200, 60, "the victim sending", every=0.02)
            else:
                cluster.worker("victim", queues=cluster.prefix)
                cluster.worker("w1")
                cluster.worker("w2")
                wait_until(lambda: _in_transaction(cluster, "victim"), 60, "a batch in progress", every=0.02)
            received_then = len(sink.received)
            if fault.startswith("sigkill"):
                cluster.kill("victim", signal.SIGKILL)
                cluster.worker("victim", queues=cluster.prefix if "engine" in fault else f"{cluster.prefix}.delivery")
            elif fault == "pg_terminate_backend":
                dropped = cluster.scalar(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name IN ('victim', 'w1', 'w2')) AS t"
                )
                assert dropped >= 1
            elif redis_server is not None:
                redis_server.stop()
                time.sleep(1)
                redis_server.start()
            print(f"{fault} at {time.monotonic() - started:.1f}s, {received_then} emails received then")
            assert received_then < 2 * PARTICIPANTS, "the run ended before the fault"
            wait_until(
                lambda: _done(cluster, 2 * PARTICIPANTS), timeout=150, what="every trace and message done", every=0.5
            )
            print(f"all done at {time.monotonic() - started:.1f}s")
        except AssertionError:
            print(cluster.logs())
            raise
        finally:
            cluster.stop_all()
            if redis_server is not None:
                redis_server.stop()

        counts = received_by_step(sink)
        duplicates = {k: n for k, n in counts.items() if n != 1}
        assert not duplicates, f"received more than once: {list(duplicates.items())[:5]}"
        expected = {(f"p{i}@example.com", s) for i in range(1, PARTICIPANTS + 1) for s in ("Step 1", "Step 2")}
        missing = expected - set(counts)
        with pg.engine.connect() as conn:
            unknown = {
                (email_, step)
                for email_, step in conn.execute(
                    text(
                        "SELECT m.email, a.name FROM mail_message m JOIN trace t ON t.id = m.trace_id "
                        "JOIN activity a ON a.id = t.activity_id WHERE m.failure_type = 'mail_unknown'"
                    )
                )
            }
        sent = cluster.scalar("SELECT count(*) FROM mail_message WHERE state = 'sent'")
        if fault == "sigkill_sending_worker":
            # in doubt = the hand-over open at the kill:
            # recorded failed "mail_unknown", never resent; the server got some of them
            assert len(unknown) <= 1  # the one hand-over open at the kill (concurrency 1)
            assert missing <= unknown
            assert sent == len(sink.received) - len(unknown - missing)
            print(f"killed round: {len(unknown)} in doubt, {len(unknown - missing)} of them had arrived")
        else:
            assert not missing, f"missing: {len(missing)}"
            assert not unknown
            assert sent == len(sink.received)
        assert cluster.scalar("SELECT count(*) FROM trace WHERE state = 'scheduled'") == 0
        assert cluster.scalar("SELECT count(*) FROM mail_message WHERE state IN ('queued', 'sending')") == 0
        assert _metric(pg, 'nurture_messages{channel="email",state="sent"}') == sent
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
