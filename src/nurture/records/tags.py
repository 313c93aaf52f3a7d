"""Tags by name (the ``tags`` many2many of records): parsing lists of names, creating the missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.errors import ValidationError
from nurture.records.models import Tag


def tag_names(value: Any, field: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValidationError(f"{field} takes a list of tag names", field=field)
    return [str(v) for v in value]


def ensure_tags(session: Session, names: Sequence[str]) -> dict[str, int]:
    """Tag ids by name, creating the missing ones."""
    existing = {t.name: t.id for t in session.scalars(select(Tag).where(Tag.name.in_(names)))}
    for name in names:
        if name not in existing:
            tag = Tag(name=name, color=0)
            session.add(tag)
            session.flush()
            existing[name] = tag.id
    return existing
