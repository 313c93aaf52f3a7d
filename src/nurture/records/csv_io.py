"""CSV import and export for every target model.

Import streams the file: rows are read, checked and converted one at a time and written in
batches of a few thousand with SQLAlchemy Core ``executemany``, one transaction per batch,
so a file of any size runs in constant memory. A bad row (wrong type, invalid email,
unknown salesperson, …) is reported with its line number and skipped; the valid rows
around it are imported. Problems with the file itself (unknown column, missing required
column) refuse the whole file before anything is written.

Ids of new rows are allocated before the insert (a PostgreSQL sequence, or SQLite's next
rowids under the write lock), so tag links and the ``records_changed`` notification of a
batch need no ``RETURNING`` round trip.

Export streams rows with ``yield_per`` (a server-side cursor on PostgreSQL).
"""

from __future__ import annotations

import csv
import gc
import io
import os
import queue
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, cast

from sqlalchemy import Table, bindparam, func, insert, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.db import Database
from nurture.errors import NurtureError, ValidationError
from nurture.records import models as m
from nurture.records.catalog import REGISTRY
from nurture.records.events import records_changed
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.service import get_or_create_mailing_list, get_or_create_tags
from nurture.records.validation import parse_stripped_phone
from nurture.records.values import column_info, is_required, text_converter, validity_column

DEFAULT_BATCH_SIZE = 5000
MAX_ERRORS_KEPT = 1000
IGNORE = ""  # --map col= : skip the column


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RowError:
    line: int  # line of the file where the row starts (the header is line 1)
    field: str | None
    message: str


@dataclass
class ImportResult:
    model: str
    created: int = 0
    updated: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first MAX_ERRORS_KEPT
    ignored_columns: list[str] = field(default_factory=list)
    #: columns that match no field: not imported, listed in ``ignored_columns`` too
    unknown_columns: list[str] = field(default_factory=list)
    rows: int = 0

    @property
    def imported(self) -> int:
        return self.created + self.updated

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error)


# --------------------------------------------------------------------------- column plan


@dataclass(frozen=True)
class _Column:
    index: int
    header: str
    fdef: FieldDef
    convert: Callable[[str], Any] | None = None  # scalar fields: cell -> column value


def _target_model(model: str) -> ModelDef:
    try:
        return REGISTRY.target(model)
    except RegistryError as exc:
        raise ValidationError(str(exc), field="model") from None


def _match_header(model: ModelDef, header: str) -> FieldDef | None:
    wanted = header.strip().lower()
    # Computed fields are read-only: a column of one is skipped like created_at.
    for fdef in [*model.fields.values(), *model.computed.values()]:
        if wanted in (fdef.name.lower(), fdef.label.lower()) or (
            fdef.fk_column is not None and wanted == fdef.fk_column.lower()
        ):
            return fdef
    return None


def plan_columns(
    model: ModelDef,
    headers: Sequence[str],
    *,
    mapping: Mapping[str, str] | None = None,
    upsert_by: str | None = None,
) -> tuple[list[_Column], list[str]]:
    """Which field each CSV column fills; raises ValidationError naming a bad column."""
    explicit = {k.strip().lower(): v.strip() for k, v in (mapping or {}).items()}
    known_headers = {h.strip().lower() for h in headers}
    for source in explicit:
        if source not in known_headers:
            raise ValidationError(
                f"--map names column {source!r}, which is not in the file "
                f"(columns: {', '.join(headers)})",
                field=source,
            )
    plan: list[_Column] = []
    ignored: list[str] = []
    seen: dict[str, str] = {}
    for index, header in enumerate(headers):
        key = header.strip().lower()
        if key in explicit:
            target = explicit[key]
            if target == IGNORE:
                ignored.append(header)
                continue
            fdef = _match_header(model, target)
            if fdef is None:
                raise ValidationError(
                    f"--map {header}={target}: {model.name} has no field {target!r} "
                    f"(fields: {', '.join(model.fields)})",
                    field=header,
                )
        else:
            if not key:
                ignored.append(header)
                continue
            fdef = _match_header(model, header)
            if fdef is None:  # imported without it and reported (see unknown_columns)
                ignored.append(header)
                continue
        if fdef.readonly and not (fdef.name == "id" and upsert_by == "id"):
            ignored.append(header)  # id, created_at, … of an export: set by Nurture
            continue
        if fdef.type == "one2many":
            raise ValidationError(
                f"column {header!r}: {fdef.name} cannot be imported on {model.name}",
                field=header,
            )
        if fdef.name in seen:
            raise ValidationError(
                f"columns {seen[fdef.name]!r} and {header!r} both fill {fdef.name}",
                field=header,
            )
        seen[fdef.name] = header
        convert = None if fdef.is_relation else text_converter(model, fdef)
        plan.append(_Column(index, header, fdef, convert))
    if upsert_by is not None:
        try:
            key_field = model.field(upsert_by)
        except RegistryError as exc:
            raise ValidationError(f"--upsert-by: {exc}", field=upsert_by) from None
        if key_field.is_relation:
            raise ValidationError(
                f"--upsert-by {upsert_by}: choose a plain field such as email", field=upsert_by
            )
        if upsert_by not in seen:
            raise ValidationError(
                f"--upsert-by {upsert_by}: the file has no {upsert_by} column", field=upsert_by
            )
    else:
        for fdef in model.fields.values():
            if is_required(model, fdef) and fdef.name not in seen:
                raise ValidationError(
                    f"the file has no column for the required field {fdef.name!r} ({fdef.label})",
                    field=fdef.name,
                )
    return plan, ignored


# --------------------------------------------------------------------------- row parsing


class _RowProblem(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class _Batch:
    rows: list[_Row]
    rejected: list[tuple[RowError, list[str]]]  # rows the reader refused, with the raw cells


@dataclass(slots=True)
class _Row:
    line: int
    values: dict[str, Any]  # column values (scalars)
    refs: dict[str, str | None]  # many2one field -> raw reference
    tags: dict[str, list[str]]  # many2many field -> names
    raw: list[str]


class _RowParser:
    """Turns a CSV row into a :class:`_Row`; the column plan is unpacked once per import."""

    def __init__(self, model: ModelDef, plan: Sequence[_Column], width: int) -> None:
        self.width = width
        self.scalars = [(c.index, c.fdef.name, c.convert) for c in plan if c.convert is not None]
        self.many2one = [(c.index, c.fdef.name) for c in plan if c.fdef.type == "many2one"]
        self.many2many = [(c.index, c.fdef.name) for c in plan if c.fdef.type == "many2many"]
        planned = {name for _, name, _ in self.scalars}
        self.phones = [
            (name, validity_column(model, name)) for name in model.phone_fields if name in planned
        ]

    def parse(self, raw: list[str], line: int) -> _Row:
        if len(raw) != self.width:
            raise _RowProblem(None, f"expected {self.width} columns, got {len(raw)}")
        if any(cell[:1] == "'" for cell in raw):  # a cell neutralised by an export
            raw = [restore_cell(cell) for cell in raw]
        values: dict[str, Any] = {}
        name = ""
        try:
            for index, name, convert in self.scalars:
                values[name] = convert(raw[index])
        except NurtureError as exc:
            raise _RowProblem(exc.field or name, exc.message) from None
        refs: dict[str, str | None] = {}
        for index, name in self.many2one:
            refs[name] = raw[index].strip() or None
        tags: dict[str, list[str]] = {}
        for index, name in self.many2many:
            tags[name] = [n.strip() for n in raw[index].split(",") if n.strip()]
        if self.phones:
            country = values.get("country_code")
            for name, flag in self.phones:
                number = values[name]  # already stripped, None when empty
                if number is None:
                    if flag:
                        values[flag] = None
                    continue
                stored, valid = parse_stripped_phone(number, country)
                values[name] = stored
                if flag:
                    values[flag] = valid
        return _Row(line, values, refs, tags, raw)


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

    def resolve(self, conn: Connection, rows: Sequence[_Row]) -> None:
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

    def apply(self, row: _Row) -> None:
        for name, ref in row.refs.items():
            fdef = self.model.fields[name]
            info = column_info(self.model, name)
            if ref is None:
                if not info.nullable:
                    raise _RowProblem(name, f"{name}: a value is required")
                row.values[info.key] = None
                continue
            resolved = self.cache[(name, ref)]
            if isinstance(resolved, str):
                raise _RowProblem(fdef.name, resolved)
            row.values[info.key] = resolved


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- writing


def _many2many(model: ModelDef, name: str) -> tuple[Table, str, str]:
    """The link table of a many2many field and its (owner, target) columns."""
    rel = sa_inspect(model.orm).relationships[name]
    secondary = rel.secondary
    assert isinstance(secondary, Table)
    ((_, owner_col),) = rel.synchronize_pairs
    ((_, target_col),) = rel.secondary_synchronize_pairs
    return secondary, str(owner_col.key), str(target_col.key)


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


class _Writer:
    def __init__(
        self,
        db: Database,
        model: ModelDef,
        plan: Sequence[_Column],
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
            c.fdef.name: _many2many(model, c.fdef.name) for c in plan if c.fdef.type == "many2many"
        }
        self.has_created = "created_at" in self.table.c
        self.has_updated = "updated_at" in self.table.c
        self.list_id: int | None = None
        self.rejected: list[tuple[RowError, list[str]]] = []

    def _fail(self, row: _Row, problem: _RowProblem) -> None:
        self.rejected.append((RowError(row.line, problem.field, problem.message), row.raw))

    def write(self, batch: _Batch) -> None:
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

    def _write(self, rows: list[_Row]) -> None:
        with self.db.transaction() as session:
            conn = session.connection()
            if rows and rows[0].refs:
                self.refs.resolve(conn, rows)
                good: list[_Row] = []
                for row in rows:
                    try:
                        self.refs.apply(row)
                        good.append(row)
                    except _RowProblem as problem:
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
        self, conn: Connection, rows: list[_Row]
    ) -> tuple[list[_Row], list[tuple[int, _Row]]]:
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
        inserts: list[_Row] = []
        updates: dict[int, _Row] = {}
        pending: dict[Any, _Row] = {}
        for row in rows:
            value = row.values.get(key)
            if value is None:
                if key == "id":
                    self._fail(row, _RowProblem("id", "id: a value is required to update"))
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
                    row, _RowProblem("id", f"id: no {self.model.label.lower()} with id {value}")
                )
            elif value in pending:
                _merge(pending[value], row)
            else:
                pending[value] = row
                inserts.append(row)
        inserts = [r for r in inserts if not self._missing_required(r)]
        return inserts, list(updates.items())

    def _missing_required(self, row: _Row) -> bool:
        for fdef in self.model.fields.values():
            key = column_info(self.model, fdef.name).key if not fdef.is_to_many else fdef.name
            if is_required(self.model, fdef) and row.values.get(key) is None:
                self._fail(row, _RowProblem(fdef.name, f"{fdef.name}: a value is required"))
                return True
        return False

    def _update(self, conn: Connection, updates: list[tuple[int, _Row]]) -> None:
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
        inserts: list[_Row],
        new_ids: list[int],
        updates: list[tuple[int, _Row]],
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


def _merge(into: _Row, row: _Row) -> None:
    """A later row with the same upsert key: its values win."""
    into.values.update(row.values)
    into.refs.update(row.refs)
    into.tags.update(row.tags)


# --------------------------------------------------------------------------- import


class _CountingLines:
    """Iterates a text file's lines and counts the characters read (for the progress bar)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.consumed = 0
        self.nul = False  # a NUL byte was read since the flag was last cleared

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.consumed += len(line)
            if "\x00" in line:
                self.nul = True
            yield line


def import_csv(
    *,
    db: Database,
    model: str,
    source: str | os.PathLike[str] | TextIO,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    upsert_by: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    errors_to: IO[str] | None = None,
    progress: bool = False,
    delimiter: str | None = None,
    subscribe_list: str | None = None,
) -> ImportResult:
    """Import a CSV file into ``model``; one transaction per batch of valid rows.

    ``mapping`` maps CSV column headers to field names (``""`` skips a column); without it a
    header matches a field by name or label, case-insensitively. ``upsert_by`` updates the
    record whose field has the row's value instead of creating one. Bad rows are reported
    in the result (and to ``errors_to`` as CSV: line, field, error, then the row).
    ``subscribe_list`` (mailing contacts) subscribes every imported row to that list.
    """
    mdef = _target_model(model)
    if subscribe_list is not None and mdef.name != "mailing_contact":
        raise ValidationError("--list only applies to mailing_contact imports", field="list")
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise ValidationError(f"{path}: no such file", field="file")
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return _import_stream(
                db, mdef, stream, now=now, mapping=mapping, upsert_by=upsert_by,
                batch_size=batch_size, errors_to=errors_to, total=path.stat().st_size,
                progress=progress, delimiter=delimiter, subscribe_list=subscribe_list,
            )  # fmt: skip
    return _import_stream(
        db, mdef, source, now=now, mapping=mapping, upsert_by=upsert_by, batch_size=batch_size,
        errors_to=errors_to, total=None, progress=progress, delimiter=delimiter,
        subscribe_list=subscribe_list,
    )  # fmt: skip


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _import_stream(
    db: Database,
    model: ModelDef,
    stream: TextIO,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None,
    upsert_by: str | None,
    batch_size: int,
    errors_to: IO[str] | None,
    total: int | None,
    progress: bool,
    delimiter: str | None,
    subscribe_list: str | None,
) -> ImportResult:
    from tqdm import tqdm

    lines = _CountingLines(stream)
    line_iter = iter(lines)
    first = next(line_iter, None)
    if first is None or not first.strip():
        raise ValidationError("the file is empty (expected a header row)", field="file")
    sep = delimiter or _sniff_delimiter(first)

    def chained() -> Iterator[str]:
        yield first
        yield from line_iter

    reader = csv.reader(chained(), delimiter=sep)
    headers = next(reader)
    plan, ignored = plan_columns(model, headers, mapping=mapping, upsert_by=upsert_by)
    mapped = {k.strip().lower() for k in (mapping or {})}
    unknown = [
        h for h in ignored
        if h.strip() and h.strip().lower() not in mapped and _match_header(model, h) is None
    ]
    result = ImportResult(model=model.name, ignored_columns=ignored, unknown_columns=unknown)
    width = len(headers)
    error_writer = SafeCSVWriter(errors_to) if errors_to is not None else None
    if error_writer is not None:
        error_writer.writerow(["line", "field", "error", *headers])

    def on_error(error: RowError, raw: list[str]) -> None:  # called by the writing thread
        result.add_error(error)
        if error_writer is not None:
            error_writer.writerow([error.line, error.field or "", error.message, *raw])

    writer = _Writer(
        db, model, plan, now=now, upsert_by=upsert_by, subscribe_list=subscribe_list,
        result=result, on_error=on_error,
    )  # fmt: skip
    bar = tqdm(
        total=total, unit="B", unit_scale=True, desc=f"import {model.name}",
        file=sys.stderr, disable=not progress, mininterval=0.5,
    )  # fmt: skip
    parser = _RowParser(model, plan, width)
    batch = _Batch([], [])
    last_line = reader.line_num
    reported = 0
    pipeline = _Pipeline(writer.write)
    with _heap_frozen():
        try:
            for raw in reader:
                line = last_line + 1
                last_line = reader.line_num
                if not raw or (len(raw) == 1 and not raw[0].strip()):
                    continue  # blank line
                result.rows += 1
                if lines.nul:  # no database stores NUL in text
                    lines.nul = False
                    error = RowError(line, None, "the row contains a NUL byte")
                    batch.rejected.append((error, raw))
                    continue
                try:
                    batch.rows.append(parser.parse(raw, line))
                except _RowProblem as problem:
                    batch.rejected.append((RowError(line, problem.field, problem.message), raw))
                if len(batch.rows) >= batch_size:
                    pipeline.submit(batch)
                    batch = _Batch([], [])
                    bar.update(lines.consumed - reported)
                    reported = lines.consumed
            pipeline.submit(batch)
            pipeline.finish()
            bar.update(max(lines.consumed, total or 0) - reported)
        except csv.Error as exc:
            raise ValidationError(
                f"line {reader.line_num}: malformed CSV: {exc}", field="file"
            ) from None
        finally:
            pipeline.stop()
            bar.close()
    return result


_gc_lock = threading.Lock()
_gc_pauses = 0


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off the long-lived heap while rows stream through.

    Every batch in flight made the collector's full passes rescan the whole heap
    (SQLAlchemy, phonenumbers' metadata), which cost a fifth of the import's time.
    ``gc.freeze()`` moves the objects alive at the start out of the collector's view;
    the collector itself stays on for everything the import allocates, and the heap is
    handed back (``gc.unfreeze()``) when the last concurrent import ends.
    """
    global _gc_pauses
    with _gc_lock:
        if _gc_pauses == 0:
            gc.freeze()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0:
                gc.unfreeze()


class _Pipeline:
    """Writes batches on a second thread while the caller reads and checks the next one.

    The database driver releases the GIL while SQLite or PostgreSQL works, so parsing and
    writing overlap. The queue holds one batch: memory stays bounded, and a slow database
    slows the reader down instead of piling batches up.
    """

    def __init__(self, write: Callable[[_Batch], None]) -> None:
        self.write = write
        self.queue: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        #: set by the writer on its first error and never cleared: batches still queued
        #: behind a failed one are dropped, even after the caller has taken the error
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="nurture-import", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            if not self.failed:
                try:
                    self.write(batch)
                except BaseException as exc:  # re-raised in the caller's thread
                    self.error = exc
                    self.failed = True

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def submit(self, batch: _Batch) -> None:
        self._raise()
        if batch.rows or batch.rejected:
            self.queue.put(batch)

    def finish(self) -> None:
        """Wait until every submitted batch is written; raise what the writer raised."""
        self.stop()
        self._raise()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


# --------------------------------------------------------------------------- export


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


#: first characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .,]*")


def neutralise_cell(cell: str) -> str:
    """``cell`` made inert for spreadsheets: a leading ``'`` when it starts like a formula
    (numbers such as ``-5`` or ``+33612345678`` stay as they are)."""
    if cell.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def restore_cell(cell: str) -> str:
    """The inverse of :func:`neutralise_cell` (what import does with a cell)."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell


class SafeCSVWriter:
    """``csv.writer`` whose cells are neutralised unless ``raw`` (every CSV Nurture writes
    goes through it)."""

    def __init__(self, out: Any, *, raw: bool = False) -> None:
        self._writer = csv.writer(out)
        self._raw = raw

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow(row if self._raw else [self._cell(c) for c in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    @staticmethod
    def _cell(value: Any) -> Any:
        return neutralise_cell(value) if isinstance(value, str) else value


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
    mdef = _target_model(model)
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
            link, owner, target_col = _many2many(mdef, fdef.name)
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
        from nurture.audience import compile_domain

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
