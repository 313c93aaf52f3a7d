"""The same backlog processed by the embedded runner, by 1 and by 2 Celery workers.

    .venv/bin/python -m bench.scale_out [--rows N] [--emails M] [--concurrency C]

PostgreSQL only (several processes share one database). The backlog: ``--rows`` due
field-update traces (a server action tagging each contact) and ``--emails`` due email
traces, sent to Postfix's ``smtp-sink`` (``apt-get install postfix``). For each engine:

* ``embedded``: one ``nurture worker`` process (the loop the in-process runner runs);
* ``celery xN``: ``nurture scheduler`` plus N ``nurture worker --engine celery`` processes
  (``--concurrency`` pool processes each) on a local Redis.

Reported: wall seconds from start until nothing is due or queued, total CPU seconds of every
process of the engine (getrusage of the reaped children, start-up imports subtracted: an idle
start/stop of the same processes is measured first) per 1,000 traces and per 1,000 messages,
and the CPU ratio to the embedded runner (target ≤ 1.2). Every trace is checked to have run
once (no trace processed twice: each is ``processed`` exactly once, the contacts carry the tag
once, and ``mail_message`` has one row per email trace).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from sqlalchemy import text

from bench._engine_common import free_port, fresh_database, generate_contacts
from bench.email_send import HTML, start_sink
from nurture.clock import utcnow
from nurture.db import Database

REDIS = os.environ.get("NURTURE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def setup(db: Database, rows: int, emails: int) -> None:
    from nurture.actions import service as action_service
    from nurture.campaigns import activities as activity_service
    from nurture.campaigns import campaigns as cs
    from nurture.channels.email import service as email_service
    from nurture.engine.enrol import enrol_campaign

    generate_contacts(db, rows)
    now = utcnow()
    with db.transaction() as s:
        tag = action_service.create_server_action(session=s, now=now, name="tag", model="contact", add_tags=["Bench"])
        update = cs.create_campaign(session=s, now=now, name="Field updates", model="contact")
        activity_service.add_activity(session=s, now=now, campaign_id=update.id, name="Tag", activity_type="action",
                        server_action_id=tag.id)
        mail = cs.create_campaign(session=s, now=now, name="Emails", model="contact",
                                  domain=[["id", "<=", emails]])
        step = activity_service.add_activity(session=s, now=now, campaign_id=mail.id, name="Mail", activity_type="email")
        email_service.create_template(session=s, now=now, activity_id=step.id,
                                      subject="{{ record.name }}, hello", body_html=HTML)
        for campaign in (update, mail):
            cs.start_campaign(session=s, now=now - timedelta(minutes=1), campaign_id=campaign.id)
        ids = (update.id, mail.id)
    for cid in ids:
        with db.transaction() as s:
            enrol_campaign(s, campaign_id=cid, now=now)


def pending(db: Database) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT EXISTS (SELECT 1 FROM trace WHERE state = 'scheduled') "
            "OR EXISTS (SELECT 1 FROM mail_message WHERE state IN ('queued', 'sending'))"
        )).scalar())


def environ(db: Database, port: int, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update({
        "NURTURE_DATA_DIR": "/tmp/nurture-bench-scale-out",
        "NURTURE_DATABASE_URL": db.url.replace("postgresql+psycopg://", "postgresql://"),
        "NURTURE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "NURTURE_BASE_URL": "https://nurture.example.com",
        "NURTURE_MAIL_DOMAIN": "news.example.com",
        "NURTURE_MAIL_FROM": "Acme News <news@example.com>",
        "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=0&max_per_connection=1000000",
        "NURTURE_LOG_LEVEL": "WARNING",
        "NURTURE_QUEUE_PREFIX": prefix,
        "NURTURE_EMBEDDED_WORKER": "false",
    })
    return env


def commands(engine: str, workers: int, concurrency: int) -> list[list[str]]:
    base = [sys.executable, "-m", "nurture"]
    if engine == "embedded":
        return [[*base, "worker", "--poll", "0.05"]]
    return [[*base, "scheduler"]] + [
        [*base, "worker", "--engine", "celery", f"--concurrency={concurrency}", f"--id=bench{i}"]
        for i in range(workers)
    ]


def run(engine: str, workers: int, concurrency: int, db: Database, env: dict[str, str],
        wait: bool) -> tuple[float, float]:
    """(wall seconds until nothing is pending, CPU seconds of every process)."""
    if engine != "embedded":
        env = {**env, "NURTURE_BROKER_URL": REDIS}
    cpu0 = children_cpu()
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for cmd in commands(engine, workers, concurrency)]
    if wait:
        while pending(db):
            time.sleep(0.2)
    else:
        time.sleep(8)  # start-up only
    wall = time.perf_counter() - start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(120)
    return wall, children_cpu() - cpu0


def check_once(db: Database, rows: int, emails: int) -> None:
    with db.engine.connect() as conn:
        processed = conn.execute(text("SELECT count(*) FROM trace WHERE state = 'processed'")).scalar()
        tagged = conn.execute(text("SELECT count(*) FROM contact_tag")).scalar()
        messages = conn.execute(text("SELECT count(*), count(DISTINCT trace_id) FROM mail_message")).first()
    assert processed == rows + emails, (processed, rows + emails)
    assert messages is not None and messages[0] == messages[1] == emails, messages
    assert tagged == rows, tagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--emails", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--engines", default="embedded,celery1,celery2",
                        help="which runs (embedded, celery1, celery2); the ratio needs embedded")
    parser.add_argument("--task-batch", type=int, default=None, help="NURTURE_TASK_BATCH of the workers")
    args = parser.parse_args()
    chosen = {e.strip() for e in args.engines.split(",")}
    port = free_port()
    sink = start_sink(port)
    results: dict[str, tuple[float, float]] = {}
    try:
        for engine, workers in (("embedded", 1), ("celery", 1), ("celery", 2)):
            if (engine if engine == "embedded" else f"celery{workers}") not in chosen:
                continue
            label = engine if engine == "embedded" else f"celery x{workers}"
            with fresh_database("postgresql", "scale_out") as db:
                env = environ(db, port, f"bench-{uuid.uuid4().hex[:8]}")
                if args.task_batch:
                    env["NURTURE_TASK_BATCH"] = str(args.task_batch)
                _, idle_cpu = run(engine, workers, args.concurrency, db, env, wait=False)
                print(f"[{label}] generating {args.rows:,} field-update and {args.emails:,} email traces …",
                      flush=True)
                setup(db, args.rows, args.emails)
                wall, cpu = run(engine, workers, args.concurrency, db, env, wait=True)
                check_once(db, args.rows, args.emails)
                work_cpu = max(cpu - idle_cpu, 0.0)
                results[label] = (wall, work_cpu)
                total = args.rows + args.emails
                print(f"[{label}] {wall:.1f} s wall, {work_cpu:.1f} s CPU (start-up {idle_cpu:.1f} s excluded), "
                      f"{total / wall:,.0f} traces/s, {1000 * work_cpu / total:.2f} CPU s per 1,000 traces",
                      flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
    base_cpu = results.get("embedded", (0.0, 0.0))[1]
    print("\nengine        wall s   CPU s   CPU ratio to embedded (target <= 1.2)")
    for label, (wall, cpu) in results.items():
        print(f"{label:12s} {wall:7.1f} {cpu:7.1f}   {cpu / base_cpu if base_cpu else float('nan'):.2f}")


if __name__ == "__main__":
    main()
