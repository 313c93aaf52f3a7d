"""A page of records for people to read: the columns worth showing, one query a page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from nurture.audience.compile import active_condition, compile_domain
from nurture.audience.search import text_domain
from nurture.records.catalog import REGISTRY
from nurture.records.registry import FieldDef

#: columns shown first when a model has them; then other scalar fields up to MAX_COLUMNS
PREFERRED = (
    "email", "phone", "salesperson", "event", "stage", "type", "state", "company_name",
    "country_code", "city", "priority", "created_at",
)
MAX_COLUMNS = 7
PAGE_SIZE = 50


@dataclass(frozen=True)
class RecordPage:
    columns: list[FieldDef]
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int


def list_page(
    session: Session,
    *,
    model: str,
    now: datetime,
    text: str = "",
    domain: list[Any] | None = None,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    include_archived: bool = False,
) -> RecordPage:
    """Active records of ``model`` (archived ones too with ``include_archived``) matching
    ``domain`` and ``text`` (name or email), newest first; many2one columns show the related
    record's name (joined, not one query a row)."""
    mdef = REGISTRY.get(model)
    names = [mdef.rec_name] + [f for f in PREFERRED if f in mdef.fields and f != mdef.rec_name]
    fields = [mdef.fields[n] for n in names if mdef.fields[n].computed is None][:MAX_COLUMNS]
    fields = [f for f in fields if not f.is_to_many]
    condition = compile_domain(model, [*(domain or []), *text_domain(model, text)], now=now)
    where = (condition, active_condition(model, include_archived=include_archived))
    total = int(session.scalar(select(func.count()).select_from(mdef.orm).where(*where)) or 0)
    columns: list[Any] = [mdef.orm.id]
    joins: list[Any] = []
    for f in fields:
        if f.type == "many2one" and f.relation and f.fk_column:
            target = REGISTRY.get(f.relation)
            alias = aliased(target.orm, name=f"rel_{f.name}")
            columns.append(getattr(alias, target.rec_name).label(f.name))
            joins.append((alias, alias.id == getattr(mdef.orm, f.fk_column)))
        else:
            columns.append(getattr(mdef.orm, f.name).label(f.name))
    stmt = select(*columns).select_from(mdef.orm)
    for alias, on in joins:
        stmt = stmt.outerjoin(alias, on)
    offset = max(0, offset)
    limit = max(1, min(limit, 200))
    rows = [
        dict(r._mapping)
        for r in session.execute(
            stmt.where(*where).order_by(mdef.orm.id.desc()).offset(offset).limit(limit)
        )
    ]
    return RecordPage(columns=fields, rows=rows, total=total, offset=offset, limit=limit)
