"""The outgoing-message queue shared by the email and SMS channels.

Both message tables have ``state``, ``next_attempt_at``, ``claimed_by``, ``lease_until``,
``attempts`` and ``updated_at``; delivery claims due ``queued`` rows here, marks them
``sending`` under a lease with a token, and sends only what that token holds; a row still
``sending`` after its lease is failed here, never resent (:func:`recover_interrupted`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.engine.models import Trace

log = logging.getLogger(__name__)

MSG_UNKNOWN = "Delivery interrupted (worker stopped while sending); not resent to avoid a duplicate"


@dataclass
class DeliveryResult:
    """What delivery rounds did (either channel)."""

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


def claim_queued(
    session: Session, model: Any, *, now: datetime, limit: int, token: str, lease: timedelta
) -> list[int]:
    """Mark up to ``limit`` due queued messages of ``model`` as ``sending``; their ids.

    PostgreSQL skips rows another worker has locked; SQLite's write transaction already
    serialises claimers. The UPDATE re-checks ``queued``, so a row is claimed once.
    """
    stmt = (
        select(model.id)
        .where(model.state == "queued", model.next_attempt_at <= now)
        .order_by(model.next_attempt_at, model.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.scalars(stmt))
    if ids:
        session.execute(
            update(model)
            .where(model.id.in_(ids), model.state == "queued")
            .values(
                state="sending",
                claimed_by=token,
                lease_until=now + lease,
                attempts=model.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return ids


def recover_interrupted(
    session: Session,
    model: Any,
    *,
    now: datetime,
    trace_failure: str,
    message_values: Mapping[str, Any] | None = None,
) -> int:
    """Messages of ``model`` still ``sending`` past their lease → ``failed``, never resent.

    Their worker stopped between handing them over and recording the outcome: they may or
    may not have reached the recipient (at most once, not at least once). Each gets
    :data:`MSG_UNKNOWN` (plus ``message_values``), its trace the failure type
    ``trace_failure``. Returns how many.
    """
    rows = session.execute(
        select(model.id, model.trace_id).where(model.state == "sending", model.lease_until < now)
    ).all()
    if not rows:
        return 0
    session.execute(
        update(model)
        .where(model.id.in_([r[0] for r in rows]), model.state == "sending")
        .values(
            state="failed",
            failure_reason=MSG_UNKNOWN,
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
        "%d %s message(s) interrupted while sending marked failed (not resent)", len(rows), model.__tablename__
    )
    return len(rows)
