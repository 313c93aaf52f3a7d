"""The demo data of ``nurture demo`` and of an embedded server's first start.

The records (:mod:`nurture.records.demo`) and, above them, three campaigns with three weeks
of history made by the engine (:mod:`nurture.demo.history`).
"""

from __future__ import annotations

from datetime import datetime

from nurture.clock import utcnow
from nurture.db import Database
from nurture.demo.history import History, load_history
from nurture.records.demo import database_is_empty, load_demo

__all__ = ["History", "load_demo_data", "load_demo_data_if_empty", "load_history"]


def load_demo_data(db: Database, now: datetime) -> tuple[dict[str, int], History | None]:
    """Load the demo records, then the demo campaigns with their history up to ``now``
    (None when the database already held campaigns: their history is not made)."""
    counts = load_demo(db, now)
    return counts, load_history(db, now=now)


def load_demo_data_if_empty(db: Database, now: datetime | None = None) -> bool:
    """:func:`load_demo_data` when the database holds no records; True when loaded."""
    if not database_is_empty(db):
        return False
    load_demo_data(db, now or utcnow())
    return True
