"""Delivery of queued messages, after the batch that queued them committed.

:func:`deliver_queued` runs one round; :func:`deliver_due` runs rounds until nothing is
due (the engine loop calls it after each drain of due traces: ``nurture tick``,
``nurture worker``, the in-process runner).

**Exactly once (a retried send never reaches the recipient twice).** Each round:

1. *recover*: a message still ``sending`` whose lease ran out belongs to a worker that
   crashed between handing it to the transport and recording the outcome. It may or may
   not have reached the recipient, so it is **never resent**: it becomes ``failed`` with
   failure type ``mail_unknown`` (at most once, not at least once);
2. *claim*: up to ``limit`` ``queued`` messages whose ``next_attempt_at`` has come are
   moved to ``sending`` with a lease and a claim token, ``attempts + 1``, in a short
   committed transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, SQLite's write lock);
   only the worker whose token is on a row sends it;
3. *send* each claimed message through the transport, outside any transaction;
4. *record* the outcomes in one transaction every :data:`MARK_EVERY` messages (and at the
   end of the round): ``sent`` (the trace's ``sent_at`` stamped); a temporary failure goes
   back to ``queued`` with ``next_attempt_at`` = exponential backoff (``transports.decide``);
   a permanent one (or the last attempt) makes the message ``failed``, the trace ``error``
   with the reason, and counts as a bounce (engine ``record_event(bounce)``, and the
   auto-blacklist rule of :mod:`.bounces` for the address). The updates
   check the claim token, so a stale worker cannot overwrite another's outcome. On
   PostgreSQL a record holding only ``sent`` outcomes commits without waiting for the WAL
   flush (``synchronous_commit = off``): losing it in a crash is the crash-before-record
   case below.

A crash in step 3 or 4 therefore loses at most the outcome of the messages sent since the
last record (they end ``failed``/``mail_unknown`` after the lease), and never sends one
twice. Every attempt of a message carries the same Message-ID (the signed trace token),
so the rare SMTP-level duplicate (connection lost after the server accepted ``DATA`` but
before its reply arrived — a temporary failure, retried) is detectable downstream.

Transports: ``smtp`` when ``NURTURE_SMTP_URL`` is set (one pooled transport per process),
otherwise the database ``outbox``: "sending" only marks the row sent; the row with its raw
source *is* the outbox.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.campaigns.models import Activity
from nurture.channels.email import service
from nurture.channels.email.models import MailMessage
from nurture.channels.email.receive import apply_auto_blacklist
from nurture.channels.email.transports import (
    SENT,
    Delivery,
    SendResult,
    SmtpTransport,
    Transport,
    decide,
)
from nurture.channels.email.transports import Outcome as SendOutcome
from nurture.channels.queue import DeliveryResult, claim_queued, recover_interrupted
from nurture.engine.events import record_event
from nurture.engine.models import Trace

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)
DEFAULT_LIMIT = 500
MARK_EVERY = 100
_IN_CHUNK = 900  # ids per IN (...) list (SQLite's bound-parameter limit is far above)
FAILURE_UNKNOWN = "mail_unknown"


class DatabaseOutbox:
    """The default transport: the message row (with its raw source) is the outbox."""

    name = "outbox"

    def send(self, message: Any, *, envelope_from: str, recipients: Sequence[str]) -> SendResult:
        return SENT

    def close(self) -> None:
        pass


_transport: Transport | None = None
_transport_lock = threading.Lock()


def reset_transport() -> None:
    """Forget the process transport (after :func:`service.configure`)."""
    global _transport
    with _transport_lock:
        old, _transport = _transport, None
    if old is not None:
        old.close()


def default_transport() -> Transport:
    """``smtp`` from ``NURTURE_SMTP_URL`` (pooled, one per process), else the outbox."""
    global _transport
    with _transport_lock:
        if _transport is None:
            url = service.email_context().settings.extra.get("NURTURE_SMTP_URL", "").strip()
            _transport = SmtpTransport.from_url(url) if url else DatabaseOutbox()
        return _transport


@dataclass(frozen=True)
class _Claimed:
    id: int
    trace_id: int
    email: str
    recipient: str
    envelope_from: str
    raw: bytes
    attempts: int


def claim(session: Session, *, now: datetime, limit: int, token: str, lease: timedelta) -> list[_Claimed]:
    ids = claim_queued(session, MailMessage, now=now, limit=limit, token=token, lease=lease)
    if not ids:
        return []
    rows = session.execute(
        select(
            MailMessage.id,
            MailMessage.trace_id,
            MailMessage.email,
            MailMessage.recipient,
            MailMessage.envelope_from,
            MailMessage.raw,
            MailMessage.attempts,
        )
        .where(MailMessage.id.in_(ids), MailMessage.claimed_by == token, MailMessage.state == "sending")
        .order_by(MailMessage.id)
    ).all()
    return [_Claimed(r[0], r[1], r[2], r[3], r[4], r[5] or b"", r[6]) for r in rows]


def _record(
    db: Any,
    outcomes: list[tuple[_Claimed, Delivery]],
    *,
    token: str,
    now: datetime,
    keep_source: bool,
    result: DeliveryResult,
) -> None:
    if not outcomes:
        return
    sent = [c for c, d in outcomes if d.state == "sent"]
    retry = [(c, d) for c, d in outcomes if d.state == "retry"]
    failed = [(c, d) for c, d in outcomes if d.state == "failed"]
    table = MailMessage.__table__
    with db.transaction() as session:
        conn = session.connection()
        if not retry and not failed and conn.dialect.name == "postgresql":
            # Only "sent" outcomes: this commit need not wait for the WAL flush. A crash that
            # loses it leaves the rows "sending", which step 1 turns into "mail_unknown" after
            # the lease: the same as a crash just before recording (never resent). Retries and
            # failures (bounce events) stay durable.
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        if sent:
            values: dict[str, Any] = {
                "state": "sent",
                "sent_at": now,
                "lease_until": None,
                "updated_at": now,
                "failure_reason": None,
            }
            if not keep_source:
                values["raw"] = None
            # the same values for every sent row: one statement per chunk of ids, not one
            # round trip per row
            trace_table = Trace.__table__
            for start in range(0, len(sent), _IN_CHUNK):
                part = sent[start : start + _IN_CHUNK]
                conn.execute(
                    table.update()  # type: ignore[attr-defined]
                    .where(table.c.id.in_([c.id for c in part]), table.c.claimed_by == token)  # type: ignore[attr-defined]
                    .values(**values)
                )
                conn.execute(
                    trace_table.update()  # type: ignore[attr-defined]
                    .where(
                        trace_table.c.id.in_([c.trace_id for c in part]),  # type: ignore[attr-defined]
                        trace_table.c.sent_at.is_(None),  # type: ignore[attr-defined]
                    )
                    .values(sent_at=now)
                )
            result.sent += len(sent)
        for c, d in retry:
            session.execute(
                update(MailMessage)
                .where(MailMessage.id == c.id, MailMessage.claimed_by == token)
                .values(
                    state="queued",
                    next_attempt_at=d.retry_at,
                    lease_until=None,
                    failure_reason=d.reason[:1000],
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            result.retried += 1
        for c, d in failed:
            res = session.execute(
                update(MailMessage)
                .where(MailMessage.id == c.id, MailMessage.claimed_by == token)
                .values(
                    state="failed",
                    lease_until=None,
                    failure_type=d.failure_type,
                    failure_reason=d.reason[:1000],
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(res, "rowcount", 0):
                continue
            session.execute(
                update(Trace)
                .where(Trace.id == c.trace_id)
                .values(
                    state="error",
                    state_message=f"Not delivered: {d.reason}"[:1000],
                    failure_reason=d.failure_type,
                )
                .execution_options(synchronize_session=False)
            )
            # a send-time refusal of a campaign email counts as a bounce: bounce children
            # run, others cancel (a transactional email sent by an action step has no
            # message events)
            if _sent_by_email_step(session, c.trace_id):
                record_event(session, trace_id=c.trace_id, event="bounce", now=now)
            apply_auto_blacklist(session, email=c.email, now=now)
            result.failed += 1


def _sent_by_email_step(session: Session, trace_id: int) -> bool:
    kind = session.scalar(
        select(Activity.activity_type)
        .join(Trace, Trace.activity_id == Activity.id)
        .where(Trace.id == trace_id)
    )
    return kind == "email"


def deliver_queued(
    db: Any,
    *,
    now: datetime,
    transport: Transport | None = None,
    limit: int = DEFAULT_LIMIT,
    lease: timedelta = DEFAULT_LEASE,
    worker_id: str = "deliver",
    mark_every: int = MARK_EVERY,
) -> DeliveryResult:
    """One round: recover, claim up to ``limit`` due messages, send, record (module doc).

    Outcomes are recorded every ``mark_every`` messages (a crash leaves at most that many
    ``mail_unknown``, never resent)."""
    result = DeliveryResult()
    with db.read() as session:
        due = session.scalar(
            select(MailMessage.id)
            .where(MailMessage.state == "queued", MailMessage.next_attempt_at <= now)
            .limit(1)
        )
        stale = session.scalar(
            select(MailMessage.id)
            .where(MailMessage.state == "sending", MailMessage.lease_until < now)
            .limit(1)
        )
    if due is None and stale is None:
        return result
    transport = transport or default_transport()
    keep_source = transport.name == "outbox" or service.email_context().keep_sent_source
    token = f"{worker_id[:48]}:{uuid.uuid4().hex[:12]}"
    with db.transaction() as session:
        if stale is not None:
            result.unknown += recover_interrupted(
                session,
                MailMessage,
                now=now,
                trace_failure=FAILURE_UNKNOWN,
                message_values={"failure_type": FAILURE_UNKNOWN},
            )
        claimed = claim(session, now=now, limit=limit, token=token, lease=lease) if due is not None else []
    result.claimed = len(claimed)
    pending: list[tuple[_Claimed, Delivery]] = []
    try:
        for item in claimed:
            try:
                send_result = transport.send(
                    item.raw, envelope_from=item.envelope_from, recipients=[item.recipient]
                )
            except Exception as exc:  # a transport bug must not lose the whole round
                log.exception("transport %s failed on message %s", transport.name, item.id)
                send_result = SendResult(SendOutcome.TEMPORARY, f"{type(exc).__name__}: {exc}")
            pending.append((item, decide(send_result, item.attempts, now)))
            if len(pending) >= mark_every:
                _record(db, pending, token=token, now=now, keep_source=keep_source, result=result)
                pending = []
    finally:
        _record(db, pending, token=token, now=now, keep_source=keep_source, result=result)
    return result


def deliver_due(
    db: Any,
    *,
    now: datetime,
    transport: Transport | None = None,
    limit: int = DEFAULT_LIMIT,
    worker_id: str = "deliver",
    max_rounds: int = 1000,
    mark_every: int = MARK_EVERY,
) -> DeliveryResult:
    """Rounds of :func:`deliver_queued` until nothing due is left."""
    total = DeliveryResult()
    for _ in range(max_rounds):
        result = deliver_queued(
            db, now=now, transport=transport, limit=limit, worker_id=worker_id, mark_every=mark_every
        )
        total.add(result)
        if result.claimed == 0:
            break
    return total


class BackgroundDelivery:
    """Delivery rounds in a sender thread while the caller composes the next batches.

    Composing is CPU work; sending mostly waits for the SMTP server's replies. Run in one
    thread after the other, the waits add up; here the sender thread sends the messages of
    committed batches while the caller's thread runs the next engine batch::

        with BackgroundDelivery(db, clock=lambda: now, transport=transport) as sender:
            while run_due(db, ...).claimed:
                sender.notify()  # a batch committed: there is mail to send
        # leaving the block stops the thread, then delivers whatever is still due

    The thread only uses :func:`deliver_queued`, so the exactly-once rules are the same
    (claims with a lease, outcomes checked against the claim token). Outcomes are recorded
    once per round (``mark_every`` = ``limit`` by default): each record waits for the
    write lock, which on SQLite the engine's batch transaction holds while it composes.
    A failing round is logged and retried at the next wake-up, as in the worker loop.
    """

    def __init__(
        self,
        db: Any,
        *,
        clock: Any,
        transport: Transport | None = None,
        limit: int = DEFAULT_LIMIT,
        worker_id: str = "deliver",
        mark_every: int | None = None,
        idle_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.clock = clock  # () -> datetime: "now" of each round
        self.transport = transport
        self.limit = limit
        self.worker_id = worker_id
        self.mark_every = mark_every or limit
        self.idle_seconds = idle_seconds
        self.result = DeliveryResult()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nurture-email-delivery", daemon=True)

    def __enter__(self) -> BackgroundDelivery:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New messages were queued (a batch committed)."""
        self._wake.set()

    def _round(self) -> DeliveryResult:
        return deliver_queued(
            self.db,
            now=self.clock(),
            transport=self.transport,
            limit=self.limit,
            worker_id=self.worker_id,
            mark_every=self.mark_every,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self._round()
            except Exception:
                log.exception("email delivery failed; retrying at the next wake-up")
                result = DeliveryResult()
            self.result.add(result)
            if result.claimed == 0:
                self._wake.wait(self.idle_seconds)
                self._wake.clear()

    def stop(self, *, flush: bool = True) -> DeliveryResult:
        """Stop the thread (after its round in flight); with ``flush``, deliver what is
        still due in this thread. The total result."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if not flush:
            return self.result
        self.result.add(
            deliver_due(
                self.db,
                now=self.clock(),
                transport=self.transport,
                limit=self.limit,
                worker_id=self.worker_id,
                mark_every=self.mark_every,
            )
        )
        return self.result
