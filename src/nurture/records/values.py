"""Turning input values (Python objects from the API, text from a CSV cell) into column values.

Shared by the record services and the CSV importer so both accept and refuse exactly the
same things. Every refusal is a :class:`~nurture.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, String

from nurture.clock import parse_iso
from nurture.errors import ValidationError
from nurture.records.registry import FieldDef, ModelDef
from nurture.records.validation import (
    InvalidEmail,
    normalize_country_code,
    normalize_email,
    parse_phone,
)

#: the range of an id and of an integer column (32-bit on PostgreSQL; SQLite refuses
#: integers beyond 64 bits with an error rather than a 422)
MAX_ID = 2_147_483_647
MIN_INT = -2_147_483_648


def check_id(value: int, field: str) -> int:
    """``value`` when it can be a row id, else a ValidationError naming ``field``."""
    if not 1 <= value <= MAX_ID:
        raise ValidationError(f"{field}: {value} is not a valid id (1 to {MAX_ID})", field=field)
    return value


# Range rules the mapping cannot express: (model, field) -> (min, max).
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("lead", "priority"): (0, 3),
    ("lead", "probability"): (0, 100),
    ("lead", "expected_revenue"): (0, float("inf")),
}

_TRUE = frozenset({"1", "true", "yes", "y", "t", "on", "x"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "off", ""})


_NO_DEFAULT = object()


@dataclass(frozen=True)
class ColumnInfo:
    """What the table says about one field's column."""

    key: str  # ORM attribute / column name
    nullable: bool
    max_length: int | None
    unique: bool
    default: Any  # the scalar default, or _NO_DEFAULT


_column_cache: dict[tuple[int, str], ColumnInfo] = {}


def column_info(model: ModelDef, field_name: str) -> ColumnInfo:
    """Column facts of a scalar field, or of a many2one's foreign key."""
    cache_key = (id(model.orm), field_name)
    info = _column_cache.get(cache_key)
    if info is None:
        fdef = model.field(field_name)
        key = fdef.fk_column if fdef.type == "many2one" and fdef.fk_column else field_name
        column: Column[Any] = model.orm.__table__.c[key]
        length = column.type.length if isinstance(column.type, String) else None
        default = _NO_DEFAULT
        if column.default is not None and getattr(column.default, "is_scalar", False):
            default = getattr(column.default, "arg", _NO_DEFAULT)
        info = ColumnInfo(
            key=key,
            nullable=bool(column.nullable),
            max_length=length,
            unique=bool(column.unique),
            default=default,
        )
        _column_cache[cache_key] = info
    return info


def is_required(model: ModelDef, fdef: FieldDef) -> bool:
    """Must be given on create: not nullable, no default, not filled by the service."""
    if fdef.readonly or fdef.is_to_many:
        return False
    if fdef.type == "many2one":
        return not column_info(model, fdef.name).nullable
    return fdef.required


_validity_cache: dict[tuple[int, str], str | None] = {}


def validity_column(model: ModelDef, phone_field: str) -> str | None:
    """The ``<phone>_valid`` flag column of a phone field, when the table has one."""
    key = (id(model.orm), phone_field)
    if key not in _validity_cache:
        name = f"{phone_field}_valid"
        _validity_cache[key] = name if name in model.orm.__table__.c else None
    return _validity_cache[key]


def text_converter(model: ModelDef, fdef: FieldDef) -> Callable[[str], Any]:
    """A function turning one CSV cell into the column value of scalar field ``fdef``.

    Same rules as :func:`coerce_scalar` with ``text=True``, with the column facts looked
    up once, because an import calls it for every cell.
    """
    info = column_info(model, fdef.name)
    limit = info.max_length

    def empty() -> Any:
        if info.nullable:
            return None
        if info.default is not _NO_DEFAULT:
            return info.default
        raise _invalid(fdef, "a value is required")

    def too_long(value: str) -> ValidationError:
        return _invalid(fdef, f"at most {limit} characters (got {len(value)})")

    if (
        fdef.type in ("char", "text")
        and fdef.kind in (None, "phone")
        and fdef.name != "country_code"
    ):

        def plain(cell: str) -> Any:
            cell = cell.strip()
            if not cell:
                return empty()
            if limit is not None and len(cell) > limit:
                raise too_long(cell)
            return cell

        return plain
    if fdef.type in ("char", "text") and fdef.kind == "email":

        def email(cell: str) -> Any:
            cell = cell.strip()
            if not cell:
                return empty()
            try:
                value = normalize_email(cell)
            except InvalidEmail as exc:
                raise _invalid(fdef, f"invalid email address {cell!r}: {exc}") from None
            if limit is not None and len(value) > limit:
                raise too_long(value)
            return value

        return email
    if fdef.name == "country_code" and fdef.type == "char":

        def country(cell: str) -> Any:
            cell = cell.strip()
            if not cell:
                return empty()
            try:
                return _country(cell)
            except ValueError as exc:
                raise _invalid(fdef, str(exc)) from None

        return country
    return lambda cell: coerce_scalar(model, fdef, cell, text=True)


@lru_cache(maxsize=1024)
def _country(value: str) -> str | None:
    return normalize_country_code(value)


def _invalid(fdef: FieldDef, message: str) -> ValidationError:
    return ValidationError(f"{fdef.name}: {message}", field=fdef.name)


def coerce_scalar(model: ModelDef, fdef: FieldDef, value: Any, *, text: bool) -> Any:
    """The column value of a scalar field; ``text`` accepts CSV strings ('' means empty).

    Phone numbers are not parsed here (they need the record's country): see
    :func:`apply_phones`.
    """
    if text and isinstance(value, str):
        value = value.strip()
        if value == "":
            value = None
    if value is None or (isinstance(value, str) and value == ""):
        info = column_info(model, fdef.name)
        if info.nullable:
            return None
        if info.default is not _NO_DEFAULT:
            return info.default
        raise _invalid(fdef, "a value is required")
    ftype = fdef.type
    if ftype in ("char", "text"):
        if not isinstance(value, str):
            raise _invalid(fdef, f"expected text, got {type(value).__name__}")
        if fdef.kind == "email":
            try:
                value = normalize_email(value)
            except InvalidEmail as exc:
                raise _invalid(fdef, f"invalid email address {value!r}: {exc}") from None
        elif fdef.name == "country_code":
            try:
                value = normalize_country_code(value)
            except ValueError as exc:
                raise _invalid(fdef, str(exc)) from None
        limit = column_info(model, fdef.name).max_length
        if limit is not None and len(value) > limit:
            raise _invalid(fdef, f"at most {limit} characters (got {len(value)})")
        return value
    if ftype == "selection":
        if not isinstance(value, str):
            raise _invalid(fdef, f"expected one of {', '.join(fdef.selection)}")
        if value in fdef.selection:
            return value
        if text:
            for option in fdef.selection:
                if option.lower() == value.lower():
                    return option
        raise _invalid(fdef, f"{value!r} is not one of {', '.join(fdef.selection)}")
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str):
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise _invalid(fdef, f"expected true or false, got {value!r}")
    if ftype == "integer":
        if text and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise _invalid(fdef, f"expected a whole number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(fdef, f"expected a whole number, got {value!r}")
        if not MIN_INT <= value <= MAX_ID:
            raise _invalid(fdef, f"{value} is out of range ({MIN_INT} to {MAX_ID})")
        return _check_range(model, fdef, value)
    if ftype == "float":
        if text and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _invalid(fdef, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(fdef, f"expected a number, got {value!r}")
        if not math.isfinite(value):  # NaN, infinities (and integers beyond a float)
            raise _invalid(fdef, f"expected a finite number, got {value!r}"[:200])
        return _check_range(model, fdef, float(value))
    if ftype == "datetime":
        if text and isinstance(value, str):
            try:
                value = parse_iso(value)
            except ValueError:
                raise _invalid(
                    fdef, f"expected a date/time like 2026-01-31 09:00, got {value!r}"
                ) from None
        if not isinstance(value, datetime):
            raise _invalid(fdef, f"expected a date/time, got {value!r}")
        return value
    raise _invalid(fdef, f"{ftype} fields cannot be set directly")


def _check_range(model: ModelDef, fdef: FieldDef, value: float) -> Any:
    bounds = RANGES.get((model.name, fdef.name))
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        low, high = bounds
        upper = "" if high == float("inf") else f" and {high:g}"
        raise _invalid(fdef, f"must be between {low:g}{upper}, got {value!r}")
    return value


def apply_phones(
    model: ModelDef,
    row: dict[str, Any],
    *,
    given: set[str] | None = None,
    country_code: str | None = None,
) -> None:
    """Normalise the phone fields present in ``row`` in place and set their validity flags.

    ``given`` limits which phone fields were supplied (all present keys by default);
    ``country_code`` is the record's country when ``row`` does not carry one.
    """
    country = row.get("country_code", country_code)
    for name in model.phone_fields:
        if name not in row or (given is not None and name not in given):
            continue
        raw = row[name]
        flag = validity_column(model, name)
        if raw is None or raw == "":
            row[name] = None
            if flag:
                row[flag] = None
            continue
        if not isinstance(raw, str):
            fdef = model.field(name)
            raise _invalid(fdef, f"expected text, got {type(raw).__name__}")
        stored, valid = parse_phone(raw, country)
        limit = column_info(model, name).max_length
        if limit is not None and len(stored) > limit:
            raise _invalid(model.field(name), f"at most {limit} characters (got {len(stored)})")
        row[name] = stored or None
        if flag:
            row[flag] = valid if stored else None
