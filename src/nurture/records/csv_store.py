"""CSV import, storing: batches of checked rows written with SQLAlchemy Core ``executemany``,
one transaction per batch.

Many2one cells (an id or a name / login / email) are resolved per batch with a cache; ids of
new rows are allocated before the insert (a PostgreSQL sequence, or SQLite's next rowids
under the write lock), so tag links and the ``records_changed`` notification of a batch need
no ``RETURNING`` round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.db import Database
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.records.csv_mapping import (
    Column,
    ImportResult,
    Row,
    RowError,
    RowProblem,
    many2many_link,
)
from nurture.records.events import records_changed
from nurture.records.mailing_lists import get_or_create_mailing_list
from nurture.records.registry import ModelDef
from nurture.records.tags import get_or_create_tags
from nurture.records.values import column_info, is_required


@dataclass(slots=True)
class Batch:
    rows: list[Row]
    rejected: list[tuple[RowError, list[str]]]  # rows the reader refused, with the raw cells


# --------------------------------------------------------------------------- reference lookup


def _lookup_columns(target: ModelDef) -> list[ColumnElement[Any]]:
    """Columns a CSV reference to ``target`` may name: rec_name, unique texts, email."""
    table: Table = target.orm.__table__
    names = [target.rec_name]
    for fdef in target.scalar_fields():
        if fdef.type == "char" and (column_info(target, fdef.name).unique or fdef.kind == "email"):
            names.append(fdef.name)
    return [table.c[n] for n in dict.fromkeys(names) if n in table.c]


class _References:
    """Resolves many2one cells (an id or a name/login/email) with a per-import cache."""

    def __init__(self, model: ModelDef) -> None:
        self.model = model
        self.cache: dict[tuple[str, str], int | str] = {}  # id, or an error message

    def resolve(self, conn: Connection, rows: Sequence[Row]) -> None:
        pending: dict[str, set[str]] = {}
        for row in rows:
            for name, ref in row.refs.items():
                if ref is not None and (name, ref) not in self.cache:
                    pending.setdefault(name, set()).add(ref)
        for name, refs in pending.items():
            fdef = self.model.fields[name]
            assert fdef.relation is not None
            target = REGISTRY.get(fdef.relation)
            label = target.label.lower()
            table: Table = target.orm.__table__
            found: dict[str, set[int]] = {r: set() for r in refs}
            numeric = [int(r) for r in refs if r.isdigit()]
            for chunk in _chunks(numeric, 500):
                for (record_id,) in conn.execute(select(table.c.id).where(table.c.id.in_(chunk))):
                    found[str(record_id)].add(record_id)
            texts = [r for r in refs if not r.isdigit() or not found[r]]
            lowered = {r.lower(): r for r in texts}
            for column in _lookup_columns(target):
                for chunk in _chunks(list(lowered), 500):
                    query = select(table.c.id, column).where(func.lower(column).in_(chunk))
                    for record_id, value in conn.execute(query):
                        original = lowered.get(str(value).lower())
                        if original is not None:
                            found[original].add(record_id)
            for ref, ids in found.items():
                if len(ids) == 1:
                    self.cache[(name, ref)] = next(iter(ids))
                elif not ids:
                    self.cache[(name, ref)] = f"{name}: no {label} {ref!r}"
                else:
                    self.cache[(name, ref)] = (
                        f"{name}: {ref!r} matches {len(ids)} {label} records; use the id"
                    )

    def apply(self, row: Row) -> None:
        for name, ref in row.refs.items():
            fdef = self.model.fields[name]
            info = column_info(self.model, name)
            if ref is None:
                if not info.nullable:
                    raise RowProblem(name, f"{name}: a value is required")
                row.values[info.key] = None
                continue
            resolved = self.cache[(name, ref)]
            if isinstance(resolved, str):
                raise RowProblem(fdef.name, resolved)
            row.values[info.key] = resolved


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Ids for ``count`` new rows of ``table``, reserved inside the current transaction."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name}
        ).scalar_one()
        query = text("SELECT nextval(CAST(:s AS regclass)) FROM generate_series(1, :n)")
        return [int(v) for v in conn.execute(query, {"s": sequence, "n": count}).scalars()]
    # SQLite: write transactions start with BEGIN IMMEDIATE, so nobody else inserts until
    # we commit and the next rowids are ours.
    top = conn.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(top + 1, top + 1 + count))


class Writer:
    def __init__(
        self,
        db: Database,
        model: ModelDef,
        plan: Sequence[Column],
        *,
        now: datetime,
        upsert_by: str | None,
        subscribe_list: str | None,
        result: ImportResult,
        on_error: Callable[[RowError, list[str]], None],
    ) -> None:
        self.db = db
        self.model = model
        self.table: Table = model.orm.__table__
        self.now = now
        self.upsert_by = upsert_by
        self.subscribe_list = subscribe_list
        self.result = result
        self.on_error = on_error
        self.refs = _References(model)
        self.tag_cache: dict[str, int] = {}
        self.to_many = {
            c.fdef.name: many2many_link(model, c.fdef.name) for c in plan if c.fdef.type == "many2many"
        }
        self.has_created = "created_at" in self.table.c
        self.has_updated = "updated_at" in self.table.c
        self.list_id: int | None = None
        self.rejected: list[tuple[RowError, list[str]]] = []

    def _fail(self, row: Row, problem: RowProblem) -> None:
        self.rejected.append((RowError(row.line, problem.field, problem.message), row.raw))

    def write(self, batch: Batch) -> None:
        """Write one batch; report its rejected rows (the reader's and ours) in line order."""
        rows, self.rejected = batch.rows, list(batch.rejected)
        try:
            if rows:
                self._write(rows)
        finally:
            self.rejected.sort(key=lambda item: item[0].line)
            for error, raw in self.rejected:
                self.on_error(error, raw)
            self.rejected = []

    def _write(self, rows: list[Row]) -> None:
        with self.db.transaction() as session:
            conn = session.connection()
            if rows and rows[0].refs:
                self.refs.resolve(conn, rows)
                good: list[Row] = []
                for row in rows:
                    try:
                        self.refs.apply(row)
                        good.append(row)
                    except RowProblem as problem:
                        self._fail(row, problem)
                rows = good
            inserts, updates = self._split(conn, rows)
            new_ids = allocate_ids(conn, self.table, len(inserts))
            if inserts:
                params = []
                for record_id, row in zip(new_ids, inserts, strict=True):
                    values = row.values
                    values["id"] = record_id
                    if self.has_created:
                        values["created_at"] = self.now
                    if self.has_updated:
                        values["updated_at"] = self.now
                    params.append(values)
                conn.execute(insert(self.table), params)
            if updates:
                self._update(conn, updates)
            touched = [*new_ids, *(rid for rid, _ in updates)]
            self._write_links(session, conn, inserts, new_ids, updates)
            if self.subscribe_list is not None:
                self._subscribe(session, conn, touched)
            records_changed(session, model=self.model.name, ids=touched, now=self.now)
        self.result.created += len(inserts)
        self.result.updated += len(updates)

    def _split(
        self, conn: Connection, rows: list[Row]
    ) -> tuple[list[Row], list[tuple[int, Row]]]:
        if self.upsert_by is None:
            return rows, []
        key = self.upsert_by
        keys = {r.values.get(key) for r in rows} - {None}
        existing: dict[Any, int] = {}
        column = self.table.c[column_info(self.model, key).key]
        for chunk in _chunks(list(keys), 500):
            query = (
                select(column, self.table.c.id).where(column.in_(chunk)).order_by(self.table.c.id)
            )
            for value, record_id in conn.execute(query):
                existing.setdefault(value, record_id)
        inserts: list[Row] = []
        updates: dict[int, Row] = {}
        pending: dict[Any, Row] = {}
        for row in rows:
            value = row.values.get(key)
            if value is None:
                if key == "id":
                    self._fail(row, RowProblem("id", "id: a value is required to update"))
                    continue
                inserts.append(row)
            elif value in existing:
                record_id = existing[value]
                if record_id in updates:
                    _merge(updates[record_id], row)
                else:
                    updates[record_id] = row
            elif key == "id":
                self._fail(
                    row, RowProblem("id", f"id: no {self.model.label.lower()} with id {value}")
                )
            elif value in pending:
                _merge(pending[value], row)
            else:
                pending[value] = row
                inserts.append(row)
        inserts = [r for r in inserts if not self._missing_required(r)]
        return inserts, list(updates.items())

    def _missing_required(self, row: Row) -> bool:
        for fdef in self.model.fields.values():
            key = column_info(self.model, fdef.name).key if not fdef.is_to_many else fdef.name
            if is_required(self.model, fdef) and row.values.get(key) is None:
                self._fail(row, RowProblem(fdef.name, f"{fdef.name}: a value is required"))
                return True
        return False

    def _update(self, conn: Connection, updates: list[tuple[int, Row]]) -> None:
        params = []
        for record_id, row in updates:
            values = {k: v for k, v in row.values.items() if k != "id"}
            if self.has_updated:
                values["updated_at"] = self.now
            values["_id"] = record_id
            params.append(values)
        names = [k for k in params[0] if k != "_id"]
        if not names:
            return
        statement = (
            update(self.table)
            .where(self.table.c.id == bindparam("_id"))
            .values({n: bindparam(n) for n in names})
        )
        conn.execute(statement, params)

    def _write_links(
        self,
        session: Session,
        conn: Connection,
        inserts: list[Row],
        new_ids: list[int],
        updates: list[tuple[int, Row]],
    ) -> None:
        for name, (link, owner, target) in self.to_many.items():
            pairs = [(rid, row) for rid, row in zip(new_ids, inserts, strict=True)]
            pairs.extend(updates)
            if updates:
                updated_ids = [rid for rid, _ in updates]
                for chunk in _chunks(updated_ids, 500):
                    conn.execute(link.delete().where(link.c[owner].in_(chunk)))
            wanted = {n for _, row in pairs for n in row.tags.get(name, ())}
            self._tag_ids(session, wanted)
            links: list[dict[str, int]] = []
            for record_id, row in pairs:
                tag_ids = dict.fromkeys(self.tag_cache[n.lower()] for n in row.tags.get(name, ()))
                links.extend({owner: record_id, target: tag_id} for tag_id in tag_ids)
            if links:
                conn.execute(insert(link), links)

    def _tag_ids(self, session: Session, names: set[str]) -> None:
        missing = [n for n in names if n.lower() not in self.tag_cache]
        if missing:
            ids = get_or_create_tags(session=session, names=missing)
            unique_missing = list(dict.fromkeys(n.strip() for n in missing))
            lowered = list(dict.fromkeys(n.lower() for n in unique_missing))
            for name, tag_id in zip(lowered, ids, strict=True):
                self.tag_cache[name] = tag_id

    def _subscribe(self, session: Session, conn: Connection, ids: list[int]) -> None:
        assert self.subscribe_list is not None
        if self.list_id is None:
            self.list_id = get_or_create_mailing_list(
                session=session, name=self.subscribe_list, now=self.now
            )
        sub = cast(Table, m.MailingSubscription.__table__)
        already: set[int] = set()
        for chunk in _chunks(ids, 500):
            already.update(
                conn.execute(
                    select(sub.c.contact_id).where(
                        sub.c.list_id == self.list_id, sub.c.contact_id.in_(chunk)
                    )
                ).scalars()
            )
        rows = [
            {
                "contact_id": i,
                "list_id": self.list_id,
                "opted_out": False,
                "subscribed_at": self.now,
            }
            for i in ids
            if i not in already
        ]
        if rows:
            conn.execute(insert(sub), rows)


def _merge(into: Row, row: Row) -> None:
    """A later row with the same upsert key: its values win."""
    into.values.update(row.values)
    into.refs.update(row.refs)
    into.tags.update(row.tags)
