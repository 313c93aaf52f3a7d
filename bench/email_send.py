"""Sending 100,000 personalised, tracked emails from due traces vs a bare smtplib loop.

    .venv/bin/python -m bench.email_send [--backend sqlite|postgresql|both] [--rows N]

Both sides send to the same local SMTP sink in the same run: Postfix's ``smtp-sink``
(``apt-get install postfix`` gives ``/usr/sbin/smtp-sink``), which accepts and discards.

* Nurture: a worker process runs the product's ``Worker`` loop (what ``nurture worker``
  runs) until every message is sent — engine batches (claim, checks, the ``email``
  executor: blacklist/opt-out/duplicate checks, template render per record, tracked links,
  open pixel, MIME, one ``mail_message`` row per trace) while its sender thread delivers
  the committed ones through the pooled SMTP transport (claim with a lease, pipelined
  send, record). Its wall time and peak RSS are its own. ``--serial``: the same worker
  without the sender thread.
* Baseline: one ``smtplib`` connection sending pre-rendered messages of the same size
  (a message rendered by Nurture, sent N times to N recipients), run twice after Nurture;
  the faster run is the baseline.

Targets: throughput ratio (Nurture / bare loop) ≥ 0.5; worker peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy import text

from bench._engine_common import backends, free_port, fresh_database, generate_contacts, peak_rss_mb
from nurture.db import Database

NOW = datetime(2026, 1, 5, 9, 0)
HTML = """<html><head><style>p { font-family: Arial, sans-serif; color: #333333; }
.btn { background: #0a7; color: #ffffff; padding: 8px 16px; }</style></head><body>
<h1>Hello {{ record.name | default('there') }}!</h1>
<p>Our spring collection is here, {{ record.name }}. As a customer in
{{ record.country_code | default('your country') }} you get free shipping this week.</p>
<p><a class="btn" href="https://shop.example.com/spring">See the collection</a></p>
<p><a href="https://shop.example.com/account">Your account</a> ·
<a href="https://blog.example.com/spring-tips">Spring tips</a></p>
<p>Write to us at {{ record.email }} if anything is wrong.</p>
</body></html>"""


def start_sink(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not shutil.which(exe):
        sys.exit("smtp-sink not found: apt-get install -y postfix")
    proc = subprocess.Popen(
        [exe, "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("smtp-sink did not start")


def environ(db_url: str, port: int) -> dict[str, str]:
    return {
        "NURTURE_DATA_DIR": "/tmp/nurture-bench-email-data",
        "NURTURE_DATABASE_URL": db_url,
        "NURTURE_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "NURTURE_BASE_URL": "https://nurture.example.com",
        "NURTURE_MAIL_DOMAIN": "news.example.com",
        "NURTURE_MAIL_FROM": "Acme News <news@example.com>",
        "NURTURE_SMTP_URL": f"smtp://127.0.0.1:{port}?starttls=0&max_per_connection=1000000",
    }


def worker(db_url: str, port: int, batch: int, serial: bool = False) -> None:
    """One Nurture worker process: the product's ``Worker`` loop (what ``nurture worker``
    runs), its clock pinned to NOW, until nothing is left to send (by any worker).

    Prints ``ready`` once imported and connected, starts on a line from stdin (the parent
    times from there), prints its stats as JSON when done. ``serial``: no sender thread
    (each cycle sends after its batches, in the same thread)."""
    import threading

    from nurture.channels.email import context, delivery
    from nurture.config import load_settings
    from nurture.worker.loop import Worker

    context.configure(load_settings(environ(db_url, port)))
    delivery.reset_transport()
    db = Database(db_url)
    _count(db, PENDING_QUERY)  # connected before "ready"
    loop = Worker(db, batch_size=batch, clock=lambda: NOW, poll_interval=0.05,
                  background_delivery=not serial)
    print("ready", flush=True)
    sys.stdin.readline()
    thread = threading.Thread(target=loop.run, name="bench-worker")
    thread.start()
    while _count(db, PENDING_QUERY):  # cheap (indexed) check, so polling costs the worker little
        time.sleep(0.2)
    loop.stop()
    thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"rss_mb": peak_rss_mb(), "cpu": usage.ru_utime + usage.ru_stime}), flush=True)


def run_workers(db_url: str, port: int, batch: int, workers: int, serial: bool) -> tuple[float, float]:
    """(seconds from "go" until every worker saw all messages sent, max peak RSS in MB)."""
    cmd = [sys.executable, "-m", "bench.email_send", "--worker", db_url, "--port", str(port),
           "--batch", str(batch), *(["--serial"] if serial else [])]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for proc in procs:
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and line.strip() != "ready":  # (a profiler's banner)
            pass
        assert line, "a worker exited before it was ready"
    start = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.perf_counter() - start
    assert all(proc.returncode == 0 for proc in procs), outputs
    stats = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    rss = max(float(st["rss_mb"]) for st in stats)
    cpu = sum(float(st["cpu"]) for st in stats)
    print(f"  workers: {seconds:.2f} s wall, {cpu:.2f} s CPU (incl. start-up imports)", flush=True)
    return seconds, rss


SENT_QUERY = "SELECT count(*) FROM mail_message WHERE state = 'sent'"
PENDING_QUERY = (
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM trace WHERE state = 'scheduled') "
    "OR EXISTS (SELECT 1 FROM mail_message WHERE state IN ('queued', 'sending')) THEN 1 ELSE 0 END"
)


def _count(db: Database, query: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(query)).scalar() or 0)


def bare_loop(port: int, raw: bytes, rows: int) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(rows):
            smtp.sendmail("bounce@news.example.com", [f"user{i}@example.com"], raw)
    return time.perf_counter() - start


def run(backend: str, rows: int, batch: int, serial: bool = False, workers: int = 1) -> float:
    from nurture.campaigns import activities as activity_service
    from nurture.campaigns import campaigns as cs
    from nurture.channels.email import context as email_context
    from nurture.channels.email import service as email_service
    from nurture.config import load_settings
    from nurture.engine.enrol import enrol_campaign

    port = free_port()
    sink = start_sink(port)
    try:
        with fresh_database(backend, "email") as db:
            email_context.configure(load_settings(environ(db.url, port)))
            print(f"[{backend}] generating {rows:,} contacts and their due email traces …", flush=True)
            generate_contacts(db, rows)
            with db.transaction() as s:
                campaign = cs.create_campaign(session=s, now=NOW, name="Spring", model="contact")
                mail = activity_service.add_activity(
                    session=s, now=NOW, campaign_id=campaign.id, name="Spring mail", activity_type="email"
                )
                email_service.create_template(
                    session=s, now=NOW, activity_id=mail.id,
                    subject="{{ record.name }}, our spring collection is here",
                    preview="Free shipping this week", body_html=HTML,
                )
                cs.start_campaign(session=s, now=NOW - timedelta(hours=1), campaign_id=campaign.id)
                cid = campaign.id
            with db.transaction() as s:
                enrol_campaign(s, campaign_id=cid, now=NOW)
            engine, rss = run_workers(db.url, port, batch, workers, serial)
            with db.engine.connect() as conn:
                raw = conn.execute(text("SELECT raw FROM mail_message ORDER BY id LIMIT 1")).scalar()
                sent_rows = conn.execute(text(SENT_QUERY)).scalar()
            assert sent_rows == rows, sent_rows
            assert isinstance(raw, bytes)
        bare = min(bare_loop(port, raw, rows) for _ in range(2))  # the faster of two: stricter
    finally:
        sink.terminate()
        sink.wait(10)
    ratio = (rows / engine) / (rows / bare)
    print(
        f"[{backend}{' serial' if serial else ''}, {workers} worker{'s' if workers > 1 else ''}] email_send {rows:,} messages ({len(raw):,} bytes each): "
        f"nurture {engine:.2f} s ({rows / engine:,.0f} msg/s)  bare smtplib {bare:.2f} s "
        f"({rows / bare:,.0f} msg/s)  ratio {ratio:.2f} (target ≥ 0.5) "
        f"{'OK' if ratio >= 0.5 else 'UNDER'}; worker peak RSS {rss:.0f} MB "
        f"(target < 300) {'OK' if rss < 300 else 'OVER'}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description="Email sending benchmark")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--serial", action="store_true",
        help="worker without its sender thread: send after each cycle's batches, same thread",
    )
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (PostgreSQL: they share the queue with SKIP LOCKED)")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.port, args.batch, args.serial)
        return
    for backend in backends(args.backend):
        run(backend, args.rows, args.batch, args.serial, args.workers)


if __name__ == "__main__":
    main()
