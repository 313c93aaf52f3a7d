"""The outgoing-message queue shared by the email and SMS channels.

Both message tables have ``state``, ``next_attempt_at``, ``claimed_by``, ``lease_until``,
``attempts`` and ``updated_at``; delivery claims due ``queued`` rows here, marks them
``sending`` under a lease with a token, and sends only what that token holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session


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
