"""Demo data (``nurture demo``, and the first start of an embedded server)."""

from __future__ import annotations

from nurture.db import Database


def load_demo_if_empty(db: Database) -> bool:
    """Load the demo dataset when the database holds no records; True when loaded."""
    return False
