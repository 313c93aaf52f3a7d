"""The outgoing-message queue: one delivery core for email, SMS and webhooks.

Every outbox table (``mail_message``, ``sms_message``, ``webhook_delivery``) has ``state``,
``trace_id``, ``next_attempt_at``, ``claimed_by``, ``lease_until``, ``attempts``,
``failure_reason`` and ``updated_at``. A channel (:class:`Channel`) knows how to claim its
rows, hand one to the network and record outcomes; :func:`deliver_round` runs the loop that
makes delivery crash-safe, the same for every channel:

* **claim as you go** — a message is claimed (``queued`` → ``sending``, claim token, lease,
  ``attempts + 1``) in the committed transaction right *before* it is handed over, ``group``
  messages at a time (default 1). Nothing is claimed ahead: every message not yet handed
  over stays ``queued``, so any worker can take it — a dead worker holds none of them;
* **record as it comes** — the outcomes of a group are written in the *same* transaction
  that claims the next group, so they are committed before the next hand-over starts
  (the last ones when the round ends, or when it fails);
* **short leases, renewed** — a lease lasts :func:`default_lease` (30 s,
  ``NURTURE_DELIVERY_LEASE``) and a heartbeat thread renews the leases of the round's token
  every third of it while the round runs (a slow SMTP server or provider keeps its
  message); a worker that dies stops renewing;
* **recover, never resend** — a row still ``sending`` after its lease belongs to a worker
  that died *while handing it over*: it may or may not have reached the recipient, so it
  is never resent; the channel fails it as "unknown" (:func:`recover_interrupted`).

So a crash (``kill -9``, power loss) leaves uncertain at most the group that was being
handed over (one message by default), and that one ends ``failed`` with the channel's
"unknown" failure type within a lease; everything delivered before is recorded ``sent``,
everything not yet attempted is sent by the next worker. No network call is made while a
database transaction is open.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.config import ConfigError
from nurture.engine.models import Trace

log = logging.getLogger(__name__)

MSG_UNKNOWN = "Delivery interrupted (worker stopped while sending); not resent to avoid a duplicate"
LEASE_SETTING = "NURTURE_DELIVERY_LEASE"
DEFAULT_LEASE_SECONDS = 30.0
#: the rows of one delivery round when the channel names no ``limit``
DEFAULT_LIMIT = 200


def default_lease(extra: Mapping[str, str] | None = None) -> timedelta:
    """The delivery lease: ``NURTURE_DELIVERY_LEASE`` seconds (default 30, at least 1)."""
    raw = (extra if extra is not None else os.environ).get(LEASE_SETTING, "").strip()
    if not raw:
        return timedelta(seconds=DEFAULT_LEASE_SECONDS)
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"{LEASE_SETTING}: expected a number of seconds, got {raw!r}") from None
    if seconds < 1:
        raise ConfigError(f"{LEASE_SETTING}: must be at least 1 second, got {raw!r}")
    return timedelta(seconds=seconds)


@dataclass
class DeliveryResult:
    """What delivery rounds did (any channel)."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0

    def add(self, other: DeliveryResult) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.unknown += other.unknown


Item = TypeVar("Item")
Out = TypeVar("Out")


class Channel(Protocol[Item, Out]):
    """What :func:`deliver_round` needs from a channel.

    Optional attributes, read with :func:`scope_of` and :func:`limit_of`: ``scope``, a SQL
    condition on ``model`` selecting the channel's rows when several channels share one
    outbox table (:mod:`nurture.channels.outbox`); ``limit``, the rows of one round
    (default :data:`DEFAULT_LIMIT`).
    """

    name: str
    model: Any

    def claim(
        self, session: Session, *, now: datetime, limit: int, token: str, lease: timedelta
    ) -> list[Item]:
        """Claim up to ``limit`` due rows (:func:`claim_queued`) and load what sending needs."""

    def send(self, item: Item, *, now: datetime) -> Out:
        """Hand one message over (network; no transaction open). Never raises."""

    def record(
        self,
        session: Session,
        outcomes: Sequence[tuple[Item, Out]],
        *,
        token: str,
        now: datetime,
        result: DeliveryResult,
    ) -> None:
        """Write the outcomes (every update checks ``claimed_by == token``)."""

    def recover(self, session: Session, *, now: datetime) -> int:
        """Fail the rows left ``sending`` past their lease (:func:`recover_interrupted`)."""


def scope_of(channel: Any) -> Any:
    """The channel's ``scope`` condition (rows of a shared outbox table), or None."""
    return getattr(channel, "scope", None)


def limit_of(channel: Any) -> int:
    """The rows of one delivery round of ``channel`` (its ``limit``, else :data:`DEFAULT_LIMIT`)."""
    limit = getattr(channel, "limit", None)
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_LIMIT


def _due(model: Any, now: datetime, scope: Any) -> Any:
    cond = (model.state == "queued") & (model.next_attempt_at <= now)
    return cond if scope is None else cond & scope


def _stale(model: Any, now: datetime, scope: Any) -> Any:
    cond = (model.state == "sending") & (model.lease_until < now)
    return cond if scope is None else cond & scope


def has_work(session: Session, channel: Any, *, now: datetime) -> tuple[bool, bool]:
    """(a message of ``channel`` is due, a send of it was interrupted past its lease)."""
    model = channel.model
    scope = scope_of(channel)
    due = session.scalar(select(model.id).where(_due(model, now, scope)).limit(1))
    stale = session.scalar(select(model.id).where(_stale(model, now, scope)).limit(1))
    return due is not None, stale is not None


def claim_queued(
    session: Session,
    model: Any,
    *,
    now: datetime,
    limit: int,
    token: str,
    lease: timedelta,
    columns: Sequence[str] = (),
    where: Any = None,
) -> list[Any]:
    """Mark up to ``limit`` due queued rows of ``model`` as ``sending`` (claim token, lease,
    ``attempts + 1``; a SELECT, then one UPDATE … RETURNING); their ``(id, *columns)`` rows by id (``attempts``
    as updated). ``where`` narrows the rows (a channel's ``scope`` in a shared table).

    PostgreSQL skips rows another worker has locked; SQLite's write transaction already
    serialises claimers. The UPDATE re-checks ``queued``, so a row is claimed once.
    """
    if limit <= 0:
        return []
    table = model.__table__
    due = (
        select(table.c.id)
        .where(_due(model, now, where))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    conn = session.connection()
    # the ids first: a LIMIT … SKIP LOCKED subquery inside the UPDATE may be evaluated more
    # than once by PostgreSQL's planner (and claim more than ``limit`` rows)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    stmt = (
        table.update()
        .where(table.c.id.in_(ids), table.c.state == "queued")
        .values(
            state="sending",
            claimed_by=token,
            lease_until=now + lease,
            attempts=table.c.attempts + 1,
            updated_at=now,
        )
        .returning(table.c.id, *(table.c[name] for name in columns))
    )
    return sorted(conn.execute(stmt).all(), key=lambda row: row[0])


def update_claimed(session: Session, model: Any, row_id: int, *, token: str, **values: Any) -> bool:
    """Write an outcome on row ``row_id`` of ``model`` if ``token`` still holds it
    (``sending``); whether it did (a stale worker's outcome is dropped)."""
    table = model.__table__
    res = session.connection().execute(
        table.update()
        .where(table.c.id == row_id, table.c.claimed_by == token, table.c.state == "sending")
        .values(lease_until=None, updated_at=values.pop("now"), **values)
    )
    return bool(res.rowcount)


def stamp_sent(session: Session, trace_id: int, *, now: datetime) -> None:
    """The trace's ``sent_at`` (first delivery only)."""
    table = Trace.__table__
    session.connection().execute(
        table.update()  # type: ignore[attr-defined]
        .where(table.c.id == trace_id, table.c.sent_at.is_(None))  # type: ignore[attr-defined]
        .values(sent_at=now)
    )


def recover_interrupted(
    session: Session,
    model: Any,
    *,
    now: datetime,
    trace_failure: str,
    message_values: Mapping[str, Any] | None = None,
    failure_reason: str = MSG_UNKNOWN,
    where: Any = None,
) -> int:
    """Messages of ``model`` still ``sending`` past their lease → ``failed``, never resent.

    Their worker stopped between handing them over and recording the outcome: they may or
    may not have reached the recipient (at most once, not at least once). Each gets
    ``failure_reason`` (plus ``message_values``), its trace the failure type
    ``trace_failure``. Returns how many. ``where`` narrows the rows (a channel's ``scope``).
    """
    rows = session.execute(select(model.id, model.trace_id).where(_stale(model, now, where))).all()
    if not rows:
        return 0
    session.execute(
        update(model)
        .where(model.id.in_([r[0] for r in rows]), model.state == "sending")
        .values(
            state="failed",
            failure_reason=failure_reason,
            lease_until=None,
            updated_at=now,
            **dict(message_values or {}),
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Trace)
        .where(Trace.id.in_([r[1] for r in rows]))
        .values(failure_reason=trace_failure)
        .execution_options(synchronize_session=False)
    )
    log.warning(
        "%d %s row(s) interrupted while sending marked failed (not resent)", len(rows), model.__tablename__
    )
    return len(rows)


def fail_trace(session: Session, trace_id: int, *, message: str, failure_type: str) -> None:
    """A delivery that failed for good: its trace becomes ``error`` with the reason."""
    session.execute(
        update(Trace)
        .where(Trace.id == trace_id)
        .values(state="error", state_message=message[:1000], failure_reason=failure_type)
        .execution_options(synchronize_session=False)
    )


class Heartbeat:
    """Renews the leases of one claim token while a round runs (a thread).

    Every ``lease / 3`` the rows of ``model`` held by ``token`` and still ``sending`` get
    ``lease_until = now + elapsed + lease`` (``now`` is the round's time, which may be a
    simulated one; the elapsed wall time moves it on). Stopping joins the thread.
    """

    def __init__(self, db: Any, model: Any, *, token: str, now: datetime, lease: timedelta) -> None:
        self.db = db
        self.model = model
        self.token = token
        self.now = now
        self.lease = lease
        self.renewals = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"nurture-lease-{model.__tablename__}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def renew(self) -> int:
        until = self.now + timedelta(seconds=time.monotonic() - self._started) + self.lease
        model = self.model
        with self.db.transaction() as session:
            res = session.execute(
                update(model)
                .where(model.claimed_by == self.token, model.state == "sending")
                .values(lease_until=until)
                .execution_options(synchronize_session=False)
            )
        self.renewals += 1
        return int(getattr(res, "rowcount", 0) or 0)

    def _run(self) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.1)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except Exception:  # the next beat tries again; the lease is three beats long
                log.exception("renewing the %s delivery lease failed", self.model.__tablename__)


def new_token(worker_id: str) -> str:
    return f"{worker_id[:48]}:{uuid.uuid4().hex[:12]}"


def deliver_round(
    db: Any,
    channel: Channel[Item, Out],
    *,
    now: datetime,
    limit: int,
    worker_id: str,
    lease: timedelta | None = None,
    group: int = 1,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryResult:
    """One round of ``channel``: recover, then claim → send → record up to ``limit`` rows.

    See the module doc: ``group`` rows are claimed per transaction (the most a crash can
    leave uncertain), the previous group's outcomes are committed in that same
    transaction, and a heartbeat renews the round's leases while it runs. ``should_stop``
    (checked before each claim) ends the round early, leaving the rest queued.
    """
    result = DeliveryResult()
    model = channel.model
    with db.read() as session:
        due, stale = has_work(session, channel, now=now)
    if not due and not stale:
        return result
    lease = lease or default_lease()
    token = new_token(worker_id)
    group = max(1, group)
    pending: list[tuple[Item, Out]] = []
    with Heartbeat(db, model, token=token, now=now, lease=lease):
        try:
            while True:
                size = min(group, limit - result.claimed) if due else 0
                if should_stop is not None and should_stop():
                    size = 0
                with db.transaction() as session:
                    if stale:
                        result.unknown += channel.recover(session, now=now)
                        stale = False
                    if pending:
                        channel.record(session, pending, token=token, now=now, result=result)
                    items = channel.claim(session, now=now, limit=size, token=token, lease=lease) if size else []
                pending = []
                if not items:
                    break
                result.claimed += len(items)
                for item in items:
                    pending.append((item, channel.send(item, now=now)))
        finally:
            if pending:  # the round failed after a hand-over: record what was handed over
                with db.transaction() as session:
                    channel.record(session, pending, token=token, now=now, result=result)
    return result


def deliver_rounds(
    db: Any,
    channel: Channel[Item, Out],
    *,
    now: datetime,
    limit: int,
    worker_id: str,
    lease: timedelta | None = None,
    group: int = 1,
    max_rounds: int = 1000,
) -> DeliveryResult:
    """Rounds of :func:`deliver_round` until nothing due is left."""
    total = DeliveryResult()
    for _ in range(max_rounds):
        result = deliver_round(
            db, channel, now=now, limit=limit, worker_id=worker_id, lease=lease, group=group
        )
        total.add(result)
        if result.claimed == 0:
            break
    return total
