"""Find records by what a person types: the record pickers of the UI (test page, relation
values of the filter builder)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.audience.compile import active_condition, compile_domain
from nurture.records.catalog import REGISTRY


@dataclass(frozen=True)
class RecordRef:
    id: int
    label: str
    detail: str | None  # the email address when the model has one


def has_email(model: str) -> bool:
    """Whether ``model`` has a plain ``email`` field (searched beside the name)."""
    fields = REGISTRY.get(model).fields
    return "email" in fields and not fields["email"].is_relation


def text_domain(model: str, text: str) -> list[Any]:
    """The filter leaves of a typed search: the name (or the email) contains ``text``,
    case-insensitive; ``[]`` for an empty search."""
    text = text.strip()[:200]
    if not text:
        return []
    leaves: list[Any] = [[REGISTRY.get(model).rec_name, "ilike", text]]
    if has_email(model):
        leaves = ["|", *leaves, ["email", "ilike", text]]
    return leaves


def search_records(
    session: Session,
    *,
    model: str,
    text: str,
    now: datetime,
    domain: list[Any] | None = None,
    limit: int = 20,
) -> list[RecordRef]:
    """Up to ``limit`` active records of ``model`` whose name (or email) contains ``text``
    (case-insensitive), within ``domain`` when given; newest first."""
    mdef = REGISTRY.get(model)
    rec = getattr(mdef.orm, mdef.rec_name)
    email = has_email(model)
    condition = compile_domain(model, [*(domain or []), *text_domain(model, text)], now=now)
    columns = [mdef.orm.id, rec] + ([mdef.orm.email] if email else [])
    rows = session.execute(
        select(*columns)
        .where(condition, active_condition(model, include_archived=False))
        .order_by(mdef.orm.id.desc())
        .limit(max(1, min(limit, 100)))
    ).all()
    return [
        RecordRef(id=int(r[0]), label=str(r[1] or f"#{r[0]}"), detail=r[2] if email else None)
        for r in rows
    ]
