"""CSV import, column mapping and row checking: which field each column fills, and one row
read, checked and converted (a bad cell is a :class:`RowProblem` naming its field).

A header matches a field by name or label, case-insensitively, unless an explicit mapping
says otherwise; problems with the file itself (unknown mapped column, missing required
column) refuse the whole file before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect

from nurture.errors import NurtureError, ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.csv_cells import restore_cell
from nurture.records.registry import FieldDef, ModelDef, RegistryError
from nurture.records.validation import parse_stripped_phone
from nurture.records.values import is_required, text_converter, validity_column

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
class Column:
    index: int
    header: str
    fdef: FieldDef
    convert: Callable[[str], Any] | None = None  # scalar fields: cell -> column value


def target_model(model: str) -> ModelDef:
    try:
        return REGISTRY.target(model)
    except RegistryError as exc:
        raise ValidationError(str(exc), field="model") from None


def match_header(model: ModelDef, header: str) -> FieldDef | None:
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
) -> tuple[list[Column], list[str]]:
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
    plan: list[Column] = []
    ignored: list[str] = []
    seen: dict[str, str] = {}
    for index, header in enumerate(headers):
        key = header.strip().lower()
        if key in explicit:
            target = explicit[key]
            if target == IGNORE:
                ignored.append(header)
                continue
            fdef = match_header(model, target)
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
            fdef = match_header(model, header)
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
        plan.append(Column(index, header, fdef, convert))
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


class RowProblem(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(slots=True)
class Row:
    line: int
    values: dict[str, Any]  # column values (scalars)
    refs: dict[str, str | None]  # many2one field -> raw reference
    tags: dict[str, list[str]]  # many2many field -> names
    raw: list[str]


class RowParser:
    """Turns a CSV row into a :class:`Row`; the column plan is unpacked once per import."""

    def __init__(self, model: ModelDef, plan: Sequence[Column], width: int) -> None:
        self.width = width
        self.scalars = [(c.index, c.fdef.name, c.convert) for c in plan if c.convert is not None]
        self.many2one = [(c.index, c.fdef.name) for c in plan if c.fdef.type == "many2one"]
        self.many2many = [(c.index, c.fdef.name) for c in plan if c.fdef.type == "many2many"]
        planned = {name for _, name, _ in self.scalars}
        self.phones = [
            (name, validity_column(model, name)) for name in model.phone_fields if name in planned
        ]

    def parse(self, raw: list[str], line: int) -> Row:
        if len(raw) != self.width:
            raise RowProblem(None, f"expected {self.width} columns, got {len(raw)}")
        if any(cell[:1] == "'" for cell in raw):  # a cell neutralised by an export
            raw = [restore_cell(cell) for cell in raw]
        values: dict[str, Any] = {}
        name = ""
        try:
            for index, name, convert in self.scalars:
                values[name] = convert(raw[index])
        except NurtureError as exc:
            raise RowProblem(exc.field or name, exc.message) from None
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
        return Row(line, values, refs, tags, raw)


def many2many_link(model: ModelDef, name: str) -> tuple[Table, str, str]:
    """The link table of a many2many field and its (owner, target) columns."""
    rel = sa_inspect(model.orm).relationships[name]
    secondary = rel.secondary
    assert isinstance(secondary, Table)
    ((_, owner_col),) = rel.synchronize_pairs
    ((_, target_col),) = rel.secondary_synchronize_pairs
    return secondary, str(owner_col.key), str(target_col.key)
