"""Sending 100,000 personalised, tracked emails from due traces vs a bare smtplib loop.

    .venv/bin/python -m bench.email_send [--backend sqlite|postgresql|both] [--rows N]

Both sides send to the same local SMTP sink in the same run: Postfix's ``smtp-sink``
(``apt-get install postfix`` gives ``/usr/sbin/smtp-sink``), which accepts and discards.

* Nurture: a worker process runs the engine path until the queue is empty — ``run_due``
  batches (claim, checks, the ``email`` executor: blacklist/opt-out/duplicate checks,
  template render per record, tracked links, open pixel, MIME, one ``mail_message`` row
  per trace) then ``deliver_due`` through the pooled SMTP transport (claim with a lease,
  send, record). Its wall time and peak RSS are its own.
* Baseline: one ``smtplib`` connection sending pre-rendered messages of the same size
  (a message rendered by Nurture, sent N times to N recipients).

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

from bench._engine_common import backends, fresh_database, generate_contacts
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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


def worker(db_url: str, port: int, batch: int, overlap: bool = False) -> None:
    """The Nurture side, in its own process: engine batches, then delivery, until empty.

    ``overlap``: delivery runs in a sender thread (``delivery.BackgroundDelivery``) while
    the engine composes the next batch, instead of after each batch in the same thread."""
    from nurture.channels.email import delivery, service
    from nurture.config import load_settings
    from nurture.engine.execute import run_due

    service.configure(load_settings(environ(db_url, port)))
    db = Database(db_url)
    transport = delivery.default_transport()
    sent = processed = 0
    start = time.perf_counter()
    if overlap:
        with delivery.BackgroundDelivery(db, clock=lambda: NOW, transport=transport, limit=batch) as sender:
            while True:
                result = run_due(db, now=NOW, limit=batch, worker_id="bench")
                processed += result.processed
                sender.notify()
                if result.claimed == 0:
                    break
        sent = sender.result.sent
    while not overlap:
        result = run_due(db, now=NOW, limit=batch, worker_id="bench")
        processed += result.processed
        sent += delivery.deliver_due(db, now=NOW, transport=transport, limit=batch).sent
        if result.claimed == 0:
            break
    seconds = time.perf_counter() - start
    transport.close()
    print(json.dumps({"seconds": seconds, "processed": processed, "sent": sent, "rss_mb": peak_rss_mb()}))


def bare_loop(port: int, raw: bytes, rows: int) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(rows):
            smtp.sendmail("bounce@news.example.com", [f"user{i}@example.com"], raw)
    return time.perf_counter() - start


def run(backend: str, rows: int, batch: int, overlap: bool = False) -> float:
    from nurture.campaigns import service as cs
    from nurture.channels.email import service as email_service
    from nurture.config import load_settings
    from nurture.engine.enrol import enrol_campaign

    port = free_port()
    sink = start_sink(port)
    try:
        with fresh_database(backend, "email") as db:
            email_service.configure(load_settings(environ(db.url, port)))
            print(f"[{backend}] generating {rows:,} contacts and their due email traces …", flush=True)
            generate_contacts(db, rows)
            with db.transaction() as s:
                campaign = cs.create_campaign(session=s, now=NOW, name="Spring", model="contact")
                mail = cs.add_activity(
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
            out = subprocess.run(
                [sys.executable, "-m", "bench.email_send", "--worker", db.url, "--port", str(port),
                 "--batch", str(batch), *(["--overlap"] if overlap else [])],
                check=True, capture_output=True, text=True,
            ).stdout
            stats = json.loads(out.strip().splitlines()[-1])
            assert stats["sent"] == rows, stats
            with db.engine.connect() as conn:
                raw = conn.execute(text("SELECT raw FROM mail_message ORDER BY id LIMIT 1")).scalar()
                sent_rows = conn.execute(
                    text("SELECT count(*) FROM mail_message WHERE state = 'sent'")
                ).scalar()
            assert sent_rows == rows, sent_rows
            assert isinstance(raw, bytes)
        bare = bare_loop(port, raw, rows)
    finally:
        sink.terminate()
        sink.wait(10)
    engine = float(stats["seconds"])
    ratio = (rows / engine) / (rows / bare)
    print(
        f"[{backend}{' overlap' if overlap else ''}] email_send {rows:,} messages ({len(raw):,} bytes each): "
        f"nurture {engine:.2f} s ({rows / engine:,.0f} msg/s)  bare smtplib {bare:.2f} s "
        f"({rows / bare:,.0f} msg/s)  ratio {ratio:.2f} (target ≥ 0.5) "
        f"{'OK' if ratio >= 0.5 else 'UNDER'}; worker peak RSS {stats['rss_mb']:.0f} MB "
        f"(target < 300) {'OK' if stats['rss_mb'] < 300 else 'OVER'}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description="Email sending benchmark")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--overlap", action="store_true",
        help="deliver in a sender thread while the engine composes (delivery.BackgroundDelivery)",
    )
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.port, args.batch, args.overlap)
        return
    for backend in backends(args.backend):
        run(backend, args.rows, args.batch, args.overlap)


if __name__ == "__main__":
    main()
