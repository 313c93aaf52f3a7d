"""Tags by name (the ``tags`` many2many of records): parsing lists of names, creating the missing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.errors import ValidationError
from nurture.records import models as m
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


def get_or_create_tags(*, session: Session, names: Iterable[str]) -> list[int]:
    """Ids of the tags named ``names`` (matched case-insensitively), creating missing ones."""
    wanted = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not wanted:
        return []
    for name in wanted:
        if len(name) > 100:
            raise ValidationError(f"tags: tag name too long: {name[:20]!r}…", field="tags")
    lowered = {n.lower() for n in wanted}
    existing: dict[str, int] = {}
    for tag_id, name in session.execute(
        select(m.Tag.id, m.Tag.name).where(func.lower(m.Tag.name).in_(lowered))
    ):
        existing.setdefault(name.lower(), tag_id)
    ids: list[int] = []
    for name in wanted:
        key = name.lower()
        if key not in existing:
            tag = m.Tag(name=name, color=0)
            session.add(tag)
            session.flush()
            existing[key] = tag.id
        ids.append(existing[key])
    return list(dict.fromkeys(ids))
