"""Evaluating a domain on one loaded record, with the same meaning as the compiled SQL."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import object_session

from nurture.audience.compile import ascii_lower
from nurture.audience.domain import AND, Branch, Negation
from nurture.audience.validate import IS_SET, CheckedNode, Condition, Constant, analyse, operand_at
from nurture.errors import ValidationError
from nurture.records.catalog import REGISTRY
from nurture.records.computed import computed_value


def evaluate(
    model: str, domain: str | list[Any] | tuple[Any, ...] | None, record: Any, *, now: datetime
) -> bool:
    """Whether ``record`` (a loaded ORM instance of ``model``) matches ``domain``.

    Relations are read through the ORM (lazy loads need the record's session). Archived
    records are not excluded here: that is :func:`active_condition`'s job.
    """
    mdef = REGISTRY.get(model)
    if not isinstance(record, mdef.orm):
        raise ValidationError(
            f"evaluate: expected a {mdef.name} record, got {type(record).__name__}",
            field="record",
        )
    node = analyse(model, domain)
    if node is None:
        return True
    return _node(node, record, now)


def _node(node: CheckedNode, record: Any, now: datetime) -> bool:
    if isinstance(node, Negation):
        return not _node(node.child, record, now)
    if isinstance(node, Branch):
        if node.operator == AND:
            return all(_node(child, record, now) for child in node.children)
        return any(_node(child, record, now) for child in node.children)
    if isinstance(node, Constant):
        return node.value
    return _leaf(node, record, now)


def _leaf(cond: Condition, record: Any, now: datetime) -> bool:
    records = [record]
    for _owner, relation in cond.hops:
        following: list[Any] = []
        for current in records:
            related = getattr(current, relation.name)
            if relation.type == "many2one":
                if related is not None:
                    following.append(related)
            else:
                following.extend(related)
        records = following
    if cond.field.is_to_many:
        found = bool(records)
    else:
        operand = operand_at(cond, now)
        found = any(_test(cond, _value(cond, r), operand) for r in records)
    return found != cond.negative


def _value(cond: Condition, record: Any) -> Any:
    if cond.field.computed:
        # Read through the record's session, as relations are (lazy loads).
        session = object_session(record)
        if session is None:
            raise ValidationError(
                f"evaluate: {cond.path} is computed from the database, so the "
                f"{type(record).__name__} record must belong to a session",
                field=cond.path,
            )
        return computed_value(cond.field, record, session)
    value = getattr(record, cond.attribute)
    if value is None and cond.field.type == "many2one":
        # A relation assigned but not yet flushed has no foreign key value yet.
        related = getattr(record, cond.field.name)
        if related is not None:
            value = related.id
    return value


def _test(cond: Condition, value: Any, operand: Any) -> bool:
    """The positive form of the leaf's test on one value (``None`` = NULL)."""
    op = cond.positive
    text = cond.value_type in ("char", "text", "selection")
    if cond.value_type == "boolean":
        return (value is True or value == 1) if operand else not (value is True or value == 1)
    if op == IS_SET:
        return value is not None and (not text or value != "")
    if op == "in":
        if value is not None and value in operand:
            return True
        return cond.has_null and (value is None or (text and value == ""))
    if value is None:
        return False
    if op == "=":
        return bool(value == operand)
    if op == "<":
        return bool(value < operand)
    if op == "<=":
        return bool(value <= operand)
    if op == ">":
        return bool(value > operand)
    if op == ">=":
        return bool(value >= operand)
    if op == "like":
        return operand in value
    if op == "ilike":
        return ascii_lower(operand) in ascii_lower(value)
    if op == "=like":
        return _like_regex(operand).fullmatch(value) is not None
    if op == "=ilike":
        return _like_regex(ascii_lower(operand)).fullmatch(ascii_lower(value)) is not None
    raise AssertionError(f"unhandled operator {op!r}")  # pragma: no cover


@lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)
