"""Follow-up tasks sent at once when records change or an event dates a child.

The engine already hears both inside the transaction that wrote them (record changes enrol
continuously: :func:`nurture.engine.enrol.on_records_changed`; an open or click dates the
waiting children: :func:`nurture.engine.events.execute_writes`). With the Celery engine
those listeners also note which activities now have due work; when the transaction
commits (never before: a task must see the rows), one "run due traces" task per activity
is sent (at most one pending). Event → child latency is then the broker's, not the
scheduler's interval. A rolled-back transaction sends nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from nurture.campaigns.activities import begin_activities
from nurture.engine import events as engine_events
from nurture.engine.models import Trace
from nurture.jobs.tasks import send_runs
from nurture.records import events as record_events

log = logging.getLogger(__name__)

_noted = threading.local()
_installed = False


def _activities() -> set[int]:
    found: set[int] | None = getattr(_noted, "ids", None)
    if found is None:
        found = _noted.ids = set()
    return found


def on_records_changed(session: Session, model: str, ids: Sequence[int], now: datetime) -> None:
    """New participants (enrolled by the engine's listener just before) start at once."""
    _activities().update(begin_activities(session, model=model))


def on_dated(conn: Connection, child_ids: Sequence[int]) -> None:
    """Children an event dated: their activities have work (due now or later)."""
    _activities().update(
        conn.scalars(select(Trace.activity_id).where(Trace.id.in_(list(child_ids))).distinct())
    )


def _after_commit(session: Session) -> None:
    found = _activities()
    if not found:
        return
    ids = sorted(found)
    found.clear()
    try:
        send_runs(ids)
    except Exception:  # never fail the caller: the scheduler finds the work anyway
        log.exception("could not send follow-up tasks for activities %s", ids)


def _after_rollback(session: Session, *args: Any) -> None:
    _activities().clear()


def install() -> None:
    """Register the listeners (once per process; only where the Celery engine is used)."""
    global _installed
    if _installed:
        return
    record_events.on_changed(on_records_changed)
    engine_events.on_dated(on_dated)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _installed = True
