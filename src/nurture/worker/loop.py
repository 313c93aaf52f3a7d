"""The engine loop shared by every runner: enrolment, event-window expiry, due traces.

``nurture tick`` runs it once to exhaustion at a given time; ``nurture worker`` and the
in-process runner of ``nurture serve`` run it forever with the wall clock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nurture.channels import delivery as channel_delivery
from nurture.channels.email.transports import Transport
from nurture.clock import utcnow
from nurture.db import Database
from nurture.engine import events as engine_events
from nurture.engine.enrol import sync_campaigns
from nurture.engine.execute import BatchResult, release_leases, run_due
from nurture.engine.schedule import expire_waiting

# --- channel delivery hook ------------------------------------------------------------------
# Executors and actions only queue messages (email, SMS, webhooks) in their batch
# transaction; sending happens after commit (nurture.channels.delivery).


def deliver_messages(
    db: Database,
    *,
    now: datetime,
    worker_id: str,
    lease: timedelta | None = None,
    email_transport: Transport | None = None,
) -> int:
    """Send what committed batches queued, every channel (returns how many were claimed);
    ``email_transport`` replaces the process's email transport (SMTP or the outbox)."""
    return channel_delivery.deliver_all(
        db, now=now, worker_id=worker_id, lease=lease, transport=email_transport
    ).claimed


# ---------------------------------------------------------------------------------------------

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
MAX_BATCH = 20_000
# A full batch that took less than this doubles the next one; one that took more than
# twice this halves it (never below the configured batch size).
BATCH_SECONDS = 0.5


def new_worker_id(prefix: str = "worker") -> str:
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"[:64]


@dataclass
class CycleResult:
    enrolled: int = 0
    expired_waits: int = 0
    traces: BatchResult = field(default_factory=BatchResult)


def drain(
    db: Database,
    *,
    now: datetime,
    worker_id: str,
    batch_size: int = DEFAULT_BATCH,
    max_batch: int = MAX_BATCH,
    should_stop: Callable[[], bool] = lambda: False,
    after_batch: Callable[[BatchResult], None] | None = None,
) -> BatchResult:
    """Run batches of due traces until none is left (or a stop is asked between batches).

    While batches come back full (a backlog) and quick, the next one doubles, up to
    ``max_batch``: fewer, larger set-based statements catch up faster; a trickle keeps small
    batches, and so does slow per-trace work such as composing email (a batch is one write
    transaction: on SQLite the sender thread waits for it to record what it sent). ``after_batch`` is called after each committed batch (the
    worker wakes its sender thread there).
    """
    total = BatchResult()
    size = batch_size
    while not should_stop():
        started = time.monotonic()
        result = run_due(db, now=now, limit=size, worker_id=worker_id)
        took = time.monotonic() - started
        total.add(result)
        if result.claimed == 0:
            break
        if after_batch is not None:
            after_batch(result)
        if result.claimed < size:
            size = batch_size
        elif took < BATCH_SECONDS:
            size = min(size * 2, max(max_batch, batch_size))
        elif took > 2 * BATCH_SECONDS:  # slow work (composing email): keep the write lock short
            size = max(size // 2, batch_size)
    return total


def tick(
    db: Database,
    *,
    now: datetime,
    batch_size: int = DEFAULT_BATCH,
    worker_id: str | None = None,
    email_transport: Transport | None = None,
) -> CycleResult:
    """Process everything due as of ``now``: full enrolment, expiries, all due traces.

    ``email_transport`` sends the email instead of the process transport (the demo history
    uses an outbox that never touches the network)."""
    worker_id = worker_id or new_worker_id("tick")
    result = CycleResult()
    result.enrolled = sync_campaigns(db, now=now, full=True)
    with db.transaction() as session:
        result.expired_waits = expire_waiting(session, now=now)
    result.traces = drain(db, now=now, worker_id=worker_id, batch_size=batch_size)
    if deliver_messages(db, now=now, worker_id=worker_id, email_transport=email_transport):
        # send-time bounces may date children
        result.traces.add(drain(db, now=now, worker_id=worker_id, batch_size=batch_size))
    with db.transaction() as session:
        result.expired_waits += expire_waiting(session, now=now)
    return result


class Worker:
    """The long-running loop (``nurture worker``, the in-process runner).

    While :meth:`run` runs, email, SMS and webhooks are sent by a sender thread
    (:class:`~nurture.channels.delivery.BackgroundDelivery`) woken after every batch:
    composing the next batch (CPU) overlaps with waiting for the SMTP server. ``lease`` is
    the delivery lease (default ``NURTURE_DELIVERY_LEASE``, 30 s). Without it
    (``background_delivery=False``, or :meth:`cycle` called on its own) each cycle sends
    after its batches, in the same thread.
    """

    def __init__(
        self,
        db: Database,
        *,
        worker_id: str | None = None,
        batch_size: int = DEFAULT_BATCH,
        poll_interval: float = 0.2,
        full_sync_every: float = 300.0,
        expire_every: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        background_delivery: bool = True,
        lease: timedelta | None = None,
    ) -> None:
        self.db = db
        self.lease = lease
        self.background_delivery = background_delivery
        self._sender: channel_delivery.BackgroundDelivery | None = None
        self.worker_id = worker_id or new_worker_id()
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.full_sync_every = full_sync_every
        self.expire_every = expire_every
        self._last_expiry = float("-inf")
        self.clock = clock
        self.stopping = threading.Event()
        self._last_full_sync = float("-inf")

    def stop(self) -> None:
        """Ask the loop to stop after the current batch."""
        self.stopping.set()
        engine_events.wakeup.set()

    def cycle(self) -> CycleResult:
        now = self.clock()
        result = CycleResult()
        full = time.monotonic() - self._last_full_sync >= self.full_sync_every
        if full:
            self._last_full_sync = time.monotonic()
        result.enrolled = sync_campaigns(self.db, now=now, full=full)
        if time.monotonic() - self._last_expiry >= self.expire_every:
            self._last_expiry = time.monotonic()
            with self.db.transaction() as session:
                result.expired_waits = expire_waiting(session, now=now)
        result.traces = drain(
            self.db,
            now=now,
            worker_id=self.worker_id,
            batch_size=self.batch_size,
            should_stop=self.stopping.is_set,
            after_batch=self._batch_committed,
        )
        if self._sender is None:
            deliver_messages(self.db, now=now, worker_id=self.worker_id, lease=self.lease)
        return result

    def _batch_committed(self, result: BatchResult) -> None:
        if self._sender is not None and result.processed:
            self._sender.notify()

    def run(self) -> None:
        log.info("worker %s started", self.worker_id)
        if self.background_delivery:
            self._sender = channel_delivery.BackgroundDelivery(
                self.db,
                clock=self.clock,
                worker_id=self.worker_id,
                lease=self.lease,
                idle_seconds=max(self.poll_interval, 1.0),
            )
            self._sender.start()
        try:
            while not self.stopping.is_set():
                try:
                    result = self.cycle()
                except Exception:
                    log.exception("engine cycle failed; retrying shortly")
                    result = CycleResult()
                    self.stopping.wait(1.0)
                if result.traces.claimed == 0 and not self.stopping.is_set():
                    engine_events.wakeup.wait(self.poll_interval)
                    engine_events.wakeup.clear()
        finally:
            if self._sender is not None:  # finish the round in flight, leave the rest queued
                self._sender.stop(flush=False)
                self._sender = None
            with self.db.transaction() as session:
                released = release_leases(session, worker_id=self.worker_id)
            log.info("worker %s stopped (%d leases released)", self.worker_id, released)
