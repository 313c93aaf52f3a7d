"""The demo data of ``nurture demo`` and of an embedded server's first start.

The records (:mod:`nurture.records.demo`) and, above them, three campaigns with three weeks
of history made by the engine (:mod:`nurture.demo.history`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from nurture.clock import utcnow
from nurture.db import Database
from nurture.demo.history import History, load_history
from nurture.records.demo import load_demo

__all__ = ["History", "history_loader", "load_demo_data", "load_history"]

log = logging.getLogger(__name__)


def load_demo_data(db: Database, now: datetime) -> tuple[dict[str, int], History | None]:
    """Load the demo records, then the demo campaigns with their history up to ``now``
    (None when the database already held campaigns: their history is not made)."""
    counts = load_demo(db, now)
    return counts, load_history(db, now=now)


def history_loader(db: Database) -> Callable[[Callable[[], bool]], None]:
    """The demo history as a task for the engine thread of ``nurture serve`` (it runs before
    the worker loop, so the server answers while it is made): ``task(should_stop)``."""

    def task(should_stop: Callable[[], bool]) -> None:
        history = load_history(db, now=utcnow(), should_stop=should_stop)
        if history is not None:
            made = ", ".join(
                f"{history.names[state]} ({state}, id {cid})"
                for state, cid in history.campaigns.items()
            )
            log.info("demo campaigns loaded: %s", made)

    return task
