"""``nurture scheduler``: finds due work in the database and sends tasks for it.

Each pass (every ``NURTURE_SCHEDULER_INTERVAL`` seconds):

* campaigns awaiting their first enrolment → "enrol model M" (every
  ``NURTURE_FULL_SYNC_INTERVAL`` seconds a full pass of every model with running campaigns);
* waits whose event window closed expire (one set-based statement, here);
* the due backlog of each activity with no task pending → "run due traces of activity X"
  with the backlog as a batch hint;
* channels with messages due (or sends interrupted past their lease) → "deliver".

Sending goes through the pending keys (:mod:`nurture.jobs.pending`): at most one pending
task per activity and kind, however far behind the workers are, so the broker is never
flooded. Tasks lost from the broker (a Redis restart) are found again here once their key
expires.

Two schedulers started by mistake are safe: each pass runs under a lock only one process
holds (a PostgreSQL session advisory lock, released when its connection ends; on SQLite a
file lock in the data directory). The other waits and takes over if the first one stops.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select, text

from nurture.campaigns.models import Activity, Campaign
from nurture.clock import utcnow
from nurture.engine.execute import due_backlog
from nurture.engine.schedule import expire_waiting
from nurture.jobs import adapters
from nurture.jobs.app import Context
from nurture.jobs.tasks import send_deliver, send_enrol, send_run

log = logging.getLogger(__name__)

#: pg_advisory_lock key of the scheduler (any constant unique to Nurture)
LOCK_KEY = 0x6E757274  # "nurt"
EXPIRE_EVERY = 30.0


class SchedulerLock:
    """Held by one scheduler at a time."""

    def __init__(self, ctx: Context) -> None:
        self.db = ctx.rt.db
        self.path = ctx.rt.settings.data_dir / "scheduler.lock"
        self._conn: Any = None
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self.db.dialect == "postgresql":
            if self._conn is not None:
                try:  # still ours while the connection lives
                    self._conn.execute(text("SELECT 1"))
                    return True
                except Exception:
                    self.release()
            conn = self.db.engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        if self._file is not None:
            return True
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held while we run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            except Exception:  # a broken connection: its server session (and lock) is gone
                self._conn.invalidate()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class PassResult:
    enrol_sent: int = 0
    expired: int = 0
    backlog: int = 0
    run_sent: int = 0
    deliver_sent: int = 0


class Scheduler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.lock = SchedulerLock(ctx)
        self.stopping = threading.Event()
        self._last_full = float("-inf")
        self._last_expiry = float("-inf")

    def stop(self) -> None:
        self.stopping.set()

    def run_pass(self, now: datetime | None = None) -> PassResult:
        """One pass (the caller holds the lock)."""
        db = self.ctx.rt.db
        now = now or utcnow()
        result = PassResult()
        full = time.monotonic() - self._last_full >= self.ctx.jobs.full_sync_interval
        with db.read() as session:
            stmt = select(Campaign.model).where(Campaign.state == "running")
            if not full:
                stmt = stmt.where(Campaign.last_sync_at.is_(None))
            models = sorted(set(session.scalars(stmt)))
        if full:
            self._last_full = time.monotonic()
        result.enrol_sent = sum(send_enrol(model, full) for model in models)
        if time.monotonic() - self._last_expiry >= EXPIRE_EVERY:
            self._last_expiry = time.monotonic()
            with db.transaction() as session:
                result.expired = expire_waiting(session, now=now)
        with db.read() as session:
            # activities whose task is pending are skipped: that task (or its continuation)
            # takes their backlog, so a deep backlog costs the scheduler no counting
            activities = list(
                session.scalars(
                    select(Activity.id)
                    .join(Campaign, Campaign.id == Activity.campaign_id)
                    .where(Campaign.state == "running")
                )
            )
            busy = self.ctx.pending.pending([f"run:{a}" for a in activities])
            idle = [a for a in activities if f"run:{a}" not in busy]
            backlog = due_backlog(session, now=now, activity_ids=idle) if idle else {}
            channels = adapters.channels_with_work(session, now=now)
        result.backlog = sum(backlog.values())
        result.run_sent = sum(send_run(a, n) for a, n in sorted(backlog.items()))
        result.deliver_sent = sum(send_deliver(c) for c in channels)
        return result

    def run(self) -> None:
        interval = self.ctx.jobs.scheduler_interval
        log.info("scheduler started (every %.1fs)", interval)
        waiting_logged = False
        try:
            while not self.stopping.is_set():
                try:
                    if self.lock.acquire():
                        waiting_logged = False
                        self.run_pass()
                    elif not waiting_logged:
                        log.info("another scheduler holds the lock; standing by")
                        waiting_logged = True
                except Exception:
                    log.exception("scheduler pass failed; retrying")
                    self.lock.release()
                self.stopping.wait(interval)
        finally:
            self.lock.release()
            log.info("scheduler stopped")
