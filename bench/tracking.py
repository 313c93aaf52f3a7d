"""Open and click hits recorded by the running server vs a hello-world endpoint under ``wrk``.

    .venv/bin/python -m bench.tracking [--backend sqlite|postgresql|both] [--rows N]
        [--rounds R] [--duration S] [--threads T] [--connections C]

Needs Debian's ``wrk`` (``apt-get install -y wrk``); only the benchmark uses it.

Set-up (in this process, through the product's services): ``N`` contacts, a running
campaign whose email step has a template with three links and three children (``mail_open``
and ``mail_click`` actions, a ``mail_not_open`` action three days later), enrolled and
sent through the engine (``run_due``) and the default ``outbox`` transport
(``deliver_due``): ``N`` sent traces, their messages and the campaign's tracked links. The
signed URLs are then built for every trace — the open pixel ``/t/o/<token>.gif`` and the
click ``/t/c/<token>`` of one of the three links — checked against a mailed message, and
shuffled.

The server is ``nurture serve`` in its own process (as the product runs it, one uvicorn
process; ``NURTURE_EMBEDDED_WORKER=false`` so no worker competes for the CPU). Both sides
use the same ``wrk`` settings and the same Lua script, which hands each request the next
path of a file (a browser ``User-Agent``, so hits count as human and fire their triggers):

* tracking: a fresh slice of the shuffled open/click URLs each round (every hit is a new
  trace's first open or click: the hit row, the trace's statistics, its children dated or
  canceled, all committed before the response — group commit under load, see
  :mod:`nurture.channels.email.tracking`);
* hello world: ``/healthz``, the server's liveness route (no database; a coroutine, like
  the tracking routes, so neither goes through the threadpool: the strictest baseline the
  server has).

Rounds alternate hello/tracking after a warm-up; the ratio is best tracking requests/s
over best hello requests/s (target ≥ 0.5), with the per-round spread. Durability check:
after each tracking round the hit rows (``mail_open`` + ``link_click``) written during the
round are counted and must cover every 2xx/3xx response wrk saw (a few more may land for
requests in flight when wrk stopped, at most one per connection).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench._engine_common import backends, free_port, fresh_database, generate_contacts
from nurture.db import Database

NOW = datetime(2026, 1, 5, 9, 0)
BASE_URL = "https://nurture.example.com"
SECRET = "bench-secret-key-0123456789abcdef"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"
HTML = """<html><body>
<h1>Hello {{ record.name | default('there') }}!</h1>
<p>Our spring collection is here. As a customer in
{{ record.country_code | default('your country') }} you get free shipping this week.</p>
<p><a href="https://shop.example.com/spring">See the collection</a></p>
<p><a href="https://shop.example.com/account">Your account</a> ·
<a href="https://blog.example.com/spring-tips">Spring tips</a></p>
</body></html>"""

# One Lua state per wrk thread: thread k takes paths k, k+T, k+2T… of the file, so the
# threads never send the same path; ``done`` prints the summary as one JSON line.
LUA = r"""
local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  step = tonumber(args[2])
  i = tid + 1
  wrapped = 0
  headers = { ["User-Agent"] = args[3] }
end
function request()
  local path = paths[i]
  i = i + step
  if i > #paths then
    i = ((i - 1) % #paths) + 1
    wrapped = 1
  end
  return wrk.format("GET", path, headers)
end
function done(summary, latency, requests)
  local wrapped_any = 0
  for _, t in ipairs(threads) do
    if t:get("wrapped") == 1 then wrapped_any = 1 end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "wrapped": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), wrapped_any))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int  # non-2xx/3xx statuses, plus socket errors
    p50_ms: float
    p99_ms: float
    wrapped: bool

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def ok(self) -> int:
        return self.requests - self.errors


def environ(db_url: str, log_level: str) -> dict[str, str]:
    return {
        "NURTURE_DATA_DIR": "/tmp/nurture-bench-tracking-data",
        "NURTURE_DATABASE_URL": db_url,
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_BASE_URL": BASE_URL,
        "NURTURE_MAIL_DOMAIN": "news.example.com",
        "NURTURE_MAIL_FROM": "Acme News <news@example.com>",
        "NURTURE_EMBEDDED_WORKER": "false",
        "NURTURE_LOG_LEVEL": log_level,
    }


# --------------------------------------------------------------------------- set-up


def prepare(db: Database, rows: int) -> tuple[list[str], list[str]]:
    """Sent email traces through the product's services; their open and click paths."""
    from nurture.actions import service as action_service
    from nurture.campaigns import activities as activity_service
    from nurture.campaigns import campaigns as cs
    from nurture.channels.email import context as email_context
    from nurture.channels.email import delivery
    from nurture.channels.email import service as email_service
    from nurture.channels.email.models import MailMessage, TrackedLink
    from nurture.config import load_settings
    from nurture.engine.enrol import enrol_campaign
    from nurture.engine.execute import run_due
    from nurture.engine.models import Trace
    from nurture.tracking.tokens import TokenSigner
    from nurture.tracking.urls import click_url, open_url

    settings = load_settings(environ(db.url, "WARNING"))
    email_context.configure(settings)
    generate_contacts(db, rows)
    with db.transaction() as s:
        campaign = cs.create_campaign(session=s, now=NOW, name="Spring", model="contact")
        mail = activity_service.add_activity(
            session=s, now=NOW, campaign_id=campaign.id, name="Spring mail", activity_type="email"
        )
        email_service.create_template(
            session=s, now=NOW, activity_id=mail.id,
            subject="{{ record.name }}, our spring collection is here", body_html=HTML,
        )
        for trigger, days in (("mail_open", 1), ("mail_click", 0), ("mail_not_open", 3)):
            action = action_service.create_server_action(
                session=s, now=NOW, name=f"tag {trigger}", model="contact", add_tags=[trigger]
            )
            activity_service.add_activity(
                session=s, now=NOW, campaign_id=campaign.id, name=f"On {trigger}",
                activity_type="action", server_action_id=action.id, trigger_type=trigger,
                parent_id=mail.id, interval_number=days, interval_unit="days",
            )
        cs.start_campaign(session=s, now=NOW - timedelta(hours=1), campaign_id=campaign.id)
        campaign_id, mail_id = campaign.id, mail.id
    with db.transaction() as s:
        enrol_campaign(s, campaign_id=campaign_id, now=NOW)
    transport = delivery.default_transport()
    while True:
        result = run_due(db, now=NOW, limit=1000, worker_id="bench")
        delivery.deliver_due(db, now=NOW, transport=transport, limit=1000)
        if result.claimed == 0:
            break
    signer = TokenSigner.from_settings(settings)
    with db.read() as s:
        traces = list(
            s.scalars(
                select(Trace.id)
                .where(Trace.activity_id == mail_id, Trace.sent_at.is_not(None))
                .order_by(Trace.id)
            )
        )
        links = list(
            s.scalars(select(TrackedLink.id).where(TrackedLink.campaign_id == campaign_id).order_by(TrackedLink.id))
        )
        first = s.execute(
            select(MailMessage.trace_id, MailMessage.raw)
            .where(MailMessage.state == "sent")
            .order_by(MailMessage.id)
            .limit(1)
        ).one()
    assert len(traces) == rows, (len(traces), rows)
    assert len(links) == 3, links
    # the URLs built here are the ones mailed: check against the first message
    mailed = _mailed_urls(first.raw)
    assert open_url(BASE_URL, signer, first.trace_id) in mailed, "open URL not in the message"
    assert click_url(BASE_URL, signer, links[0], first.trace_id) in mailed, "click URL not in the message"
    cut = len(BASE_URL)
    opens = [open_url(BASE_URL, signer, t)[cut:] for t in traces]
    clicks = [click_url(BASE_URL, signer, links[i % 3], t)[cut:] for i, t in enumerate(traces)]
    return opens, clicks


def _mailed_urls(raw: bytes) -> set[str]:
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    assert part is not None
    return {u.replace("&amp;", "&") for u in re.findall(r'(?:href|src)="([^"]+)"', part.get_content())}


def hit_rows(db: Database) -> int:
    from nurture.channels.email.models import LinkClick, MailOpen

    with db.read() as s:
        opens = s.scalar(select(func.count()).select_from(MailOpen)) or 0
        clicks = s.scalar(select(func.count()).select_from(LinkClick)) or 0
    return int(opens) + int(clicks)


def fired_stats(db: Database) -> dict[str, int]:
    """What the hits did to the engine: traces opened/clicked, children dated by an event
    (``mail_open`` / ``mail_click``), ``mail_not_open`` children canceled."""
    from nurture.campaigns.models import Activity
    from nurture.engine.models import Trace

    def count(*where: Any) -> int:
        with db.read() as s:
            stmt = select(func.count()).select_from(Trace).join(Activity, Activity.id == Trace.activity_id)
            return int(s.scalar(stmt.where(*where)) or 0)

    return {
        "opened": count(Trace.opened_at.is_not(None)),
        "clicked": count(Trace.clicked_at.is_not(None)),
        "dated": count(Activity.trigger_type.in_(["mail_open", "mail_click"]), Trace.schedule_date.is_not(None)),
        "canceled": count(Activity.trigger_type == "mail_not_open", Trace.state == "canceled"),
    }


# --------------------------------------------------------------------------- server and wrk


def start_server(db_url: str, port: int, log_level: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **environ(db_url, log_level)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nurture", "serve", "--port", str(port), "--no-demo"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"nurture serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit("nurture serve did not start")


def run_wrk(port: int, paths_file: Path, script: Path, args: argparse.Namespace, seconds: float) -> WrkResult:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s", "--timeout", "30s",
        "-s", str(script), f"http://127.0.0.1:{port}", "--", str(paths_file), str(args.threads), USER_AGENT,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    data: dict[str, Any] = json.loads(line[len("WRKJSON "):])
    errors = sum(int(data[k]) for k in ("status", "connect", "read", "write", "timeout"))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=int(data["duration_us"]) / 1e6,
        errors=errors,
        p50_ms=int(data["p50_us"]) / 1000,
        p99_ms=int(data["p99_us"]) / 1000,
        wrapped=bool(data["wrapped"]),
    )


def settle(db: Database, before: int) -> int:
    """Hit rows written since ``before`` once in-flight requests have finished."""
    last, stable = -1, 0
    while stable < 3:
        time.sleep(0.2)
        now = hit_rows(db) - before
        stable = stable + 1 if now == last else 0
        last = now
    return last


def run(backend: str, args: argparse.Namespace, workdir: Path) -> float:
    with fresh_database(backend, "tracking") as db:
        print(f"[{backend}] sending {args.rows:,} tracked emails (engine + outbox) …", flush=True)
        start = time.perf_counter()
        opens, clicks = prepare(db, args.rows)
        print(f"[{backend}] set-up {time.perf_counter() - start:.1f} s", flush=True)
        paths = opens + clicks
        random.Random(42).shuffle(paths)
        slices = args.rounds + 1  # one warm-up slice
        per = len(paths) // slices
        script = workdir / "tracking.lua"
        script.write_text(LUA, encoding="utf-8")
        hello_file = workdir / "hello.txt"
        hello_file.write_text("/healthz\n", encoding="utf-8")
        files = []
        for k in range(slices):
            f = workdir / f"{backend}-{k}.txt"
            f.write_text("\n".join(paths[k * per : (k + 1) * per]) + "\n", encoding="utf-8")
            files.append(f)

        port = free_port()
        server = start_server(db.url, port, args.log_level)
        hello: list[WrkResult] = []
        tracking: list[WrkResult] = []
        problems: list[str] = []
        try:
            run_wrk(port, hello_file, script, args, args.warmup)
            warm = run_wrk(port, files[0], script, args, args.warmup)
            if warm.errors:
                problems.append(f"warm-up: {warm.errors} errors")
            for k in range(1, slices):
                hello.append(run_wrk(port, hello_file, script, args, args.duration))
                before = hit_rows(db)
                t = run_wrk(port, files[k], script, args, args.duration)
                written = settle(db, before)
                tracking.append(t)
                extra = written - t.ok
                durable = t.errors == 0 and 0 <= extra <= args.connections
                print(
                    f"[{backend}] round {k}: hello {hello[-1].rps:,.0f} req/s "
                    f"(p99 {hello[-1].p99_ms:.1f} ms)  tracking {t.rps:,.0f} req/s "
                    f"(p50 {t.p50_ms:.1f} ms, p99 {t.p99_ms:.1f} ms)  ratio {t.rps / hello[-1].rps:.2f}; "
                    f"{t.ok:,} 2xx/3xx responses, {t.errors} errors, {written:,} hit rows written "
                    f"({'OK' if durable else 'MISMATCH'}){'; URL list wrapped: raise --rows' if t.wrapped else ''}",
                    flush=True,
                )
                if not durable:
                    problems.append(f"round {k}: {t.ok} responses vs {written} hit rows, {t.errors} errors")
        finally:
            server.terminate()
            server.wait(30)
        stats = fired_stats(db)
    best_t = max(r.rps for r in tracking)
    best_h = max(r.rps for r in hello)
    ratio = best_t / best_h
    pair = [t.rps / h.rps for t, h in zip(tracking, hello, strict=True)]
    print(
        f"[{backend}] tracking (open + click hits, each committed) best {best_t:,.0f} req/s "
        f"[{min(r.rps for r in tracking):,.0f}–{best_t:,.0f}]  hello world (/healthz) best {best_h:,.0f} req/s "
        f"[{min(r.rps for r in hello):,.0f}–{best_h:,.0f}]  ratio {ratio:.2f} "
        f"(per round {min(pair):.2f}–{max(pair):.2f}; target ≥ 0.5) {'OK' if ratio >= 0.5 else 'UNDER'}; "
        f"durability {'OK' if not problems else 'FAILED: ' + '; '.join(problems)}; "
        f"traces opened {stats['opened']:,}, clicked {stats['clicked']:,}, "
        f"event children dated {stats['dated']:,}, mail_not_open canceled {stats['canceled']:,}",
        flush=True,
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description="Tracking hits vs hello world under wrk")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=30_000, help="sent emails (2 URLs each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--log-level", default="INFO", help="NURTURE_LOG_LEVEL of the server")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="nurture-bench-tracking-") as tmp:
        for backend in backends(args.backend):
            run(backend, args, Path(tmp))


if __name__ == "__main__":
    main()
