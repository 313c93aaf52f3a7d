"""Kill tests: a real ``nurture worker`` process killed with SIGKILL mid-delivery, restarted.

For each outbox (email to an aiosmtpd server, SMS to the Twilio-compatible fake, webhooks
to a loopback receiver) and each database: 300 messages are due; the receiving server
stalls on one of them (the hand-over is open when the worker dies); the worker is killed
with SIGKILL, then a fresh worker is started. Afterwards every message was delivered
exactly once except the stalled one (at most once, never resent), every delivered message
is recorded ``sent``, the stalled one ``failed`` as unknown, and nothing is left
``queued`` or ``sending``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.channels.email import service as email_service
from nurture.channels.email.models import MailMessage
from nurture.channels.queue import MSG_UNKNOWN
from nurture.channels.sms import service as sms_service
from nurture.channels.sms.models import SmsMessage
from nurture.channels.webhook.models import WebhookDelivery
from nurture.db import Database
from nurture.engine.enrol import sync_campaigns
from nurture.engine.models import Trace
from nurture.records.models import Contact
from tests.channels.email.smtp_sink import free_port
from tests.fakes.twilio_server import CallbackReceiver, FakeTwilio, running_receiver, running_twilio

N = 300
STALLED = 150  # the index of the recipient whose hand-over is open at the kill
T0 = datetime(2026, 1, 5, 9, 0, 0)
SECRET = "kill-test-secret-key-0123456789"
LEASE_SECONDS = "1"
TIMEOUT = 90.0


# --------------------------------------------------------------------------- the worker


@pytest.fixture
def environ(db: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "NURTURE_DATA_DIR": str(tmp_path / "data"),
        "NURTURE_DATABASE_URL": db.url,
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_BASE_URL": "http://nurture.test",
        "NURTURE_MAIL_DOMAIN": "mail.nurture.test",
        "NURTURE_MAIL_FROM": "Acme News <news@acme.test>",
        "NURTURE_EMBEDDED_WORKER": "false",
        "NURTURE_DELIVERY_LEASE": LEASE_SECONDS,
        "NURTURE_WEBHOOK_ALLOW_PRIVATE": "true",
        "NURTURE_LOG_LEVEL": "WARNING",
    }


# A worker process that imports everything, then waits for a line on stdin before running
# ``nurture worker``: the replacement is spawned with the first worker, so the restart after
# the kill does not wait for a Python start-up (seconds on a busy 2-core machine).
READY_WORKER = (
    "import sys\n"
    "from nurture.cli import main\n"
    "import nurture.worker.loop\n"
    "sys.stdin.readline()\n"
    "sys.argv = ['nurture', 'worker', '--poll', '1']\n"
    "main()\n"
)


@dataclass
class Workers:
    environ: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self) -> subprocess.Popen[bytes]:
        """A worker process, ready: :meth:`go` starts its loop."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
        env.update(self.environ)
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", READY_WORKER],
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def go(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()

    def start(self) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        """The first worker, running, and its replacement, spawned (not running yet)."""
        first, second = self.spawn(), self.spawn()
        self.go(first)
        return first, second

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                if proc.stdin is not None and not proc.stdin.closed:
                    proc.kill()  # never started its loop
                else:
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck worker
                proc.kill()
                proc.wait(5)


@pytest.fixture
def workers(environ: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(environ, tmp_path / "worker.log")
    try:
        yield ws
    finally:
        ws.stop_all()


def wait_for(condition: Callable[[], bool], what: str, workers: Workers) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            log = workers.log.read_text(errors="replace")[-3000:] if workers.log.exists() else ""
            pytest.fail(f"timed out waiting for {what}; worker log:\n{log}")
        time.sleep(0.05)


def kill_and_restart(
    procs: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]], workers: Workers
) -> None:
    first, replacement = procs
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    workers.go(replacement)


def states(db: Database, model: Any) -> Counter[str]:
    with db.read() as s:
        return Counter({state: n for state, n in s.execute(select(model.state, func.count()).group_by(model.state))})


def settled(db: Database, model: Any) -> Callable[[], bool]:
    def check() -> bool:
        got = states(db, model)
        return sum(got.values()) == N and got["queued"] == 0 and got["sending"] == 0

    return check


def contacts(s: Any, *, phones: bool = False) -> None:
    for i in range(N):
        s.add(
            Contact(
                name=f"P{i}",
                email=f"p{i}@example.org",
                mobile=f"+336{10000000 + i}" if phones else None,
                active=True,
                created_at=T0,
                updated_at=T0,
            )
        )
    s.flush()


def start_campaign(db: Database, kind: str, configure: Callable[[Any, int], None]) -> int:
    """A running campaign with one ``kind`` step on the N contacts; the step's id."""
    with db.transaction() as s:
        contacts(s, phones=kind == "sms")
        cid = cs.create_campaign(session=s, now=T0, name="Kill", model="contact", domain=None).id
        step = activity_service.add_activity(session=s, now=T0, campaign_id=cid, name="Step", activity_type=kind,
                               **({} if kind != "action" else {"server_action_id": configure_action(s)}))
        configure(s, step.id)
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
        return int(step.id)


_webhook_url: list[str] = []


def configure_action(s: Any) -> int:
    return int(
        action_service.create_server_action(
            session=s, now=T0, name="Push", model="contact", action_type="webhook",
            payload={"url": _webhook_url[0], "secret": SECRET, "retries": 0},
        ).id
    )


def check_traces(db: Database, step: int, *, unknown_failure: str) -> None:
    with db.read() as s:
        rows = s.execute(select(Trace.state, Trace.failure_reason).where(Trace.activity_id == step)).all()
    assert len(rows) == N
    assert Counter(state for state, _ in rows) == {"processed": N}
    assert Counter(reason for _, reason in rows) == {None: N - 1, unknown_failure: 1}


# --------------------------------------------------------------------------- email


@dataclass
class StallingSink:
    """aiosmtpd handler: accepts every message, but holds the DATA of one recipient
    (its SMTP transaction is open when the worker dies) and refuses it once released."""

    stall_on: str
    received: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.stall_on in envelope.rcpt_tos:
            self.arrived.set()
            while not self.released.is_set():
                await asyncio.sleep(0.05)
            return "451 4.3.0 stalled"
        self.received.extend(envelope.rcpt_tos)
        return "250 2.0.0 accepted"


def test_email_worker_killed_mid_send(db: Database, environ: dict[str, str], workers: Workers) -> None:
    stalled = f"p{STALLED}@example.org"
    sink = StallingSink(stalled)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        environ["NURTURE_SMTP_URL"] = f"smtp://127.0.0.1:{port}?starttls=0&timeout=60"

        def template(s: Any, step: int) -> None:
            email_service.create_template(session=s, now=T0, activity_id=step, subject="Hi {{ record.name }}",
                                          body_html="<p>Hello {{ record.name }}</p>")

        step = start_campaign(db, "email", template)
        procs = workers.start()
        wait_for(sink.arrived.is_set, "the stalled SMTP transaction", workers)
        before = states(db, MailMessage)
        assert before["sending"] == 1  # only the open transaction is claimed
        assert before["sent"] == len(sink.received) == STALLED  # delivered ones are recorded
        kill_and_restart(procs, workers)
        wait_for(settled(db, MailMessage), "every message settled", workers)
    finally:
        sink.released.set()
        controller.stop()
    counts = Counter(sink.received)
    assert set(counts) == {f"p{i}@example.org" for i in range(N)} - {stalled}
    assert max(counts.values()) == 1
    assert states(db, MailMessage) == {"sent": N - 1, "failed": 1}
    with db.read() as s:
        failed = s.execute(
            select(MailMessage.email, MailMessage.failure_type).where(MailMessage.state == "failed")
        ).all()
    assert failed == [(stalled, "mail_unknown")]
    check_traces(db, step, unknown_failure="mail_unknown")


# --------------------------------------------------------------------------- SMS


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    yield from running_twilio()


def test_sms_worker_killed_mid_send(
    db: Database, environ: dict[str, str], workers: Workers, twilio: FakeTwilio
) -> None:
    stalled = f"+336{10000000 + STALLED}"
    twilio.stall.on = stalled
    environ.update({"NURTURE_SMS_URL": twilio.base_url, "NURTURE_SMS_FROM": "+15005550006"})

    def template(s: Any, step: int) -> None:
        sms_service.create_template(session=s, now=T0, activity_id=step, body="Hi {{ record.name }}")

    try:
        step = start_campaign(db, "sms", template)
        procs = workers.start()
        wait_for(twilio.stall.arrived.is_set, "the stalled provider request", workers)
        before = states(db, SmsMessage)
        assert before["sending"] == 1
        assert before["sent"] == len(twilio.messages) == STALLED
        kill_and_restart(procs, workers)
        twilio.stall.release()  # the provider accepts the request in flight: delivered, once
        wait_for(settled(db, SmsMessage), "every SMS settled", workers)
    finally:
        twilio.stall.release()
    counts = Counter(m.to for m in twilio.messages.values())
    assert set(counts) == {f"+336{10000000 + i}" for i in range(N)}
    assert max(counts.values()) == 1
    assert states(db, SmsMessage) == {"sent": N - 1, "failed": 1}
    with db.read() as s:
        failed = s.execute(
            select(SmsMessage.to_number, SmsMessage.failure_reason).where(SmsMessage.state == "failed")
        ).all()
    assert failed == [(stalled, MSG_UNKNOWN)]
    check_traces(db, step, unknown_failure="sms_unknown")


# --------------------------------------------------------------------------- webhooks


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    yield from running_receiver()


def test_webhook_worker_killed_mid_request(
    db: Database, environ: dict[str, str], workers: Workers, receiver: CallbackReceiver
) -> None:
    _webhook_url[:] = [receiver.url("/hook")]
    os.environ["NURTURE_WEBHOOK_ALLOW_PRIVATE"] = "true"  # the action is validated here too
    try:
        step = start_campaign(db, "action", lambda s, step: None)
    finally:
        del os.environ["NURTURE_WEBHOOK_ALLOW_PRIVATE"]
    sync_campaigns(db, now=T0, full=True)  # the traces (and so the delivery ids) exist now
    with db.read() as s:
        trace_ids = sorted(s.scalars(select(Trace.id).where(Trace.activity_id == step)))
    stalled = str(trace_ids[STALLED])
    receiver.stall.on = stalled
    try:
        procs = workers.start()
        wait_for(receiver.stall.arrived.is_set, "the stalled webhook request", workers)
        before = states(db, WebhookDelivery)
        assert before["sending"] == 1
        assert before["sent"] == len(receiver.received) - 1
        kill_and_restart(procs, workers)
        wait_for(settled(db, WebhookDelivery), "every webhook settled", workers)
    finally:
        receiver.stall.release()
    counts = Counter(r.headers["X-Nurture-Delivery"] for r in receiver.received)
    assert set(counts) == {str(t) for t in trace_ids}
    assert max(counts.values()) == 1  # the stalled one reached the receiver once, never again
    assert states(db, WebhookDelivery) == {"sent": N - 1, "failed": 1}
    with db.read() as s:
        failed = s.execute(
            select(WebhookDelivery.delivery_id, WebhookDelivery.failure_reason)
            .where(WebhookDelivery.state == "failed")
        ).all()
    assert failed == [(stalled, MSG_UNKNOWN)]
    check_traces(db, step, unknown_failure="webhook_unknown")
