"""Computed fields of the registry: their SQL condition and their Python value, side by side.

Both read the same stored values and the same rows, so they agree on every record:

* ``is_blacklisted``: an *active* row of ``email_blacklist`` holds exactly the record's
  stored address. Record services and the CSV importer store addresses normalised (lower
  case, see :func:`~nurture.records.validation.normalize_email`), and the blacklist stores
  the same normalised form, so the test is plain equality (which also uses the
  blacklist's unique index). No address (NULL or ``""``): not blacklisted.
* ``phone_blacklisted``: an active row of ``phone_blacklist`` holds exactly one of the
  record's stored numbers (phone fields are stored in E.164 when they parse, as the
  blacklist stores them). No number: not blacklisted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, literal_column, or_, select, true
from sqlalchemy.orm import Session, aliased

from nurture.records import models as m
from nurture.records.registry import EMAIL_BLACKLISTED, PHONE_BLACKLISTED, FieldDef


def _table(fdef: FieldDef) -> tuple[Any, str]:
    """(blacklist ORM class, its value attribute) of a computed blacklist field."""
    if fdef.computed == EMAIL_BLACKLISTED:
        return m.EmailBlacklist, "email"
    if fdef.computed == PHONE_BLACKLISTED:
        return m.PhoneBlacklist, "number"
    raise LookupError(f"{fdef.name}: unknown computed field kind {fdef.computed!r}")


def computed_condition(fdef: FieldDef, entity: Any) -> ColumnElement[bool]:
    """True exactly where computed boolean ``fdef`` is true for ``entity`` (the model or an
    alias of it); never NULL, so ``NOT`` of it is its exact negation.

    ``EXISTS (SELECT 1 FROM email_blacklist b WHERE b.email = entity.email AND
    entity.email <> '' AND b.active)`` (the phone form tests each phone field).
    """
    table, key = _table(fdef)
    entry = aliased(table)
    value = getattr(entry, key)
    matches = [
        and_(value == getattr(entity, name), getattr(entity, name) != "") for name in fdef.depends
    ]
    one: ColumnElement[Any] = literal_column("1")
    return (
        select(one)
        .select_from(entry)
        .where(or_(*matches), entry.active == true())
        .correlate_except(entry)
        .exists()
    )


def computed_value(fdef: FieldDef, record: Any, session: Session) -> bool:
    """The value of computed boolean ``fdef`` on one loaded ``record``."""
    table, key = _table(fdef)
    values = {getattr(record, name) for name in fdef.depends}
    values = {v for v in values if v is not None and v != ""}
    if not values:
        return False
    column = getattr(table, key)
    found = session.scalar(
        select(table.id).where(column.in_(sorted(values)), table.active == true()).limit(1)
    )
    return found is not None
