"""CSV export of the records of a target model matching a filter.

Rows stream with ``yield_per`` (a server-side cursor on PostgreSQL); headers are field names,
which import reads back.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.audience.compile import compile_domain
from nurture.records.catalog import REGISTRY
from nurture.records.csv_cells import SafeCSVWriter
from nurture.records.csv_mapping import many2many_link, target_model
from nurture.records.registry import FieldDef, ModelDef
from nurture.records.values import column_info


def export_fields(model: ModelDef) -> list[FieldDef]:
    """The fields an export writes, in registry order (to-one and scalar, plus tags)."""
    return [f for f in model.fields.values() if f.type != "one2many"]


def _reference_column(target: ModelDef) -> ColumnElement[Any] | None:
    """A unique text naming a related record (a user's login, a tag's name), if any."""
    table: Table = target.orm.__table__
    for fdef in target.scalar_fields():
        if fdef.type == "char" and column_info(target, fdef.name).unique:
            return table.c[fdef.name]
    return None


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float):
        return repr(value)
    return str(value)


class TextSink(Protocol):
    """Anything with ``write(str)``: a text file, ``sys.stdout``, a streaming response."""

    def write(self, text: str, /) -> Any: ...


def export_csv(
    *,
    session: Session,
    model: str,
    out: TextSink,
    now: datetime,
    domain: str | list[Any] | None = None,
    batch_size: int = 2000,
    raw: bool = False,
) -> int:
    """Write the records of ``model`` matching ``domain`` to ``out``; returns the row count.

    Headers are field names (which import reads back); a many2one holds the related
    record's unique name (a user's login) or else its id, tags a comma-separated list of
    names. Cells that a spreadsheet would run as a formula get a leading ``'`` (import
    removes it again) unless ``raw``.
    """
    mdef = target_model(model)
    table: Table = mdef.orm.__table__
    fields = export_fields(mdef)
    columns: list[Any] = []
    for fdef in fields:
        if fdef.type == "many2one":
            assert fdef.relation is not None and fdef.fk_column is not None
            target = REGISTRY.get(fdef.relation)
            ref = _reference_column(target)
            target_table: Table = target.orm.__table__
            if ref is None:  # names may repeat (contacts, events): the id is exact
                columns.append(table.c[fdef.fk_column].label(fdef.name))
            else:
                columns.append(
                    select(ref)
                    .where(target_table.c.id == table.c[fdef.fk_column])
                    .scalar_subquery()
                    .label(fdef.name)
                )
        elif fdef.type == "many2many":
            link, owner, target_col = many2many_link(mdef, fdef.name)
            assert fdef.relation is not None
            target = REGISTRY.get(fdef.relation)
            target_table = target.orm.__table__
            name_col = target_table.c[target.rec_name]
            columns.append(
                select(func.aggregate_strings(name_col, ","))
                .where(link.c[owner] == table.c.id, link.c[target_col] == target_table.c.id)
                .scalar_subquery()
                .label(fdef.name)
            )
        else:
            columns.append(table.c[fdef.name])
    query = select(*columns).select_from(table).order_by(table.c.id)
    if domain not in (None, "", []):
        query = query.where(compile_domain(mdef.name, domain, now=now))
    writer = SafeCSVWriter(out, raw=raw)
    writer.writerow([f.name for f in fields])
    count = 0
    tag_positions = [i for i, f in enumerate(fields) if f.type == "many2many"]
    result = session.execute(query.execution_options(yield_per=batch_size))
    for partition in result.partitions():
        rows = []
        for row in partition:
            cells = [_format(v) for v in row]
            for i in tag_positions:
                if cells[i]:
                    cells[i] = ",".join(sorted(cells[i].split(",")))
            rows.append(cells)
        writer.writerows(rows)
        count += len(rows)
    return count


def export_to_string(*, session: Session, model: str, now: datetime, domain: Any = None) -> str:
    buffer = io.StringIO()
    export_csv(session=session, model=model, out=buffer, now=now, domain=domain)
    return buffer.getvalue()
