"""Service functions for business records (create, update, archive, delete)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.records.catalog import REGISTRY


def record_counts(*, session: Session) -> dict[str, int]:
    """Number of rows of each target model."""
    return {
        model.name: int(session.scalar(select(func.count()).select_from(model.orm)) or 0)
        for model in REGISTRY.targets()
    }
