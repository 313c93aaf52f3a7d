"""Checking a domain against the model registry and normalising its leaves."""

from __future__ import annotations

import json
import math
import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from nurture.audience.domain import (
    Branch,
    FilterError,
    Leaf,
    Negation,
    Node,
    load_domain,
    make_branch,
    make_not,
    serialise,
    to_tree,
)
from nurture.clock import parse_iso
from nurture.records.catalog import REGISTRY
from nurture.records.registry import FieldDef, ModelDef, RegistryError

IS_SET, IS_NOT_SET = "is set", "is not set"
ORDER_OPERATORS = ("<", "<=", ">", ">=")
LIKE_OPERATORS = ("like", "not like", "ilike", "not ilike", "=like", "=ilike")
ALL_OPERATORS = (
    "=", "!=", *ORDER_OPERATORS, "in", "not in", *LIKE_OPERATORS, IS_SET, IS_NOT_SET,
)  # fmt: skip
# A negative operator on a relation path means "no related record matches the positive form".
NEGATIVE = {"!=": "=", "not in": "in", "not like": "like", "not ilike": "ilike", IS_NOT_SET: IS_SET}
_ALIASES = {"<>": "!=", "==": "=", "not_in": "not in", "is_set": IS_SET, "is_not_set": IS_NOT_SET,
            "set": IS_SET, "not set": IS_NOT_SET}  # fmt: skip

OPERATORS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "char": ("=", "!=", "ilike", "not ilike", "like", "not like", "=like", "=ilike", "in",
             "not in", *ORDER_OPERATORS, IS_SET, IS_NOT_SET),
    "integer": ("=", "!=", *ORDER_OPERATORS, "in", "not in", IS_SET, IS_NOT_SET),
    "float": ("=", "!=", *ORDER_OPERATORS, "in", "not in", IS_SET, IS_NOT_SET),
    "datetime": ("=", "!=", *ORDER_OPERATORS, IS_SET, IS_NOT_SET),
    "selection": ("=", "!=", "in", "not in", IS_SET, IS_NOT_SET),
    "boolean": ("=", "!=", IS_SET, IS_NOT_SET),
    "many2one": ("=", "!=", "in", "not in", "ilike", "not ilike", "like", "not like", "=like",
                 "=ilike", IS_SET, IS_NOT_SET),
}  # fmt: skip
OPERATORS_BY_TYPE["text"] = OPERATORS_BY_TYPE["char"]
OPERATORS_BY_TYPE["one2many"] = OPERATORS_BY_TYPE["many2one"]
OPERATORS_BY_TYPE["many2many"] = OPERATORS_BY_TYPE["many2one"]

_RELATIVE = re.compile(r"^\s*([+-]?)\s*(\d{1,6})\s*([hdwm])\s*$")
_INT64 = 2**63


@dataclass(frozen=True)
class Relative:
    """A date relative to the evaluation time: ``amount`` ``unit`` (h, d, w, m) from now."""

    amount: int
    unit: str

    def as_json(self) -> dict[str, str]:
        return {"relative": f"{self.amount}{self.unit}"}


@dataclass(frozen=True)
class Condition:
    """A checked leaf: how to reach the value and how to test it."""

    path: str
    operator: str  # canonical operator as written in the domain
    value: Any  # canonical JSON value
    hops: tuple[tuple[ModelDef, FieldDef], ...]  # relations followed before the last field
    model: ModelDef  # model holding the last field
    field: FieldDef  # the last field (a to-many last field is a hop with no test)
    attribute: str  # ORM attribute tested (the fk column for many2one)
    value_type: str  # the type the test compares as
    positive: str  # the positive form of the operator
    negative: bool  # True when the operator is the negation of ``positive``
    operand: Any  # Python operand: datetime/Relative, list for in, bool for booleans
    has_null: bool = False  # ``in`` lists that also accept "not set"

    def as_list(self) -> list[Any]:
        return [self.path, self.operator, self.value]


@dataclass(frozen=True)
class Constant:
    value: bool

    def as_list(self) -> list[Any]:
        return [1 if self.value else 0, "=", 1]


Checked = Condition | Constant
CheckedNode = Checked | Branch | Negation


def validate_domain(model: str, domain: str | list[Any] | tuple[Any, ...] | None) -> list[Any]:
    """Check ``domain`` against ``model``'s fields and return the normalised canonical domain.

    Raises :class:`FilterError` naming the offending path, operator or value.
    """
    return serialise(analyse(model, domain))


def analyse(model: str, domain: str | list[Any] | tuple[Any, ...] | None) -> CheckedNode | None:
    """The checked AST of ``domain`` (``None`` = all records), cached by its JSON text."""
    if isinstance(domain, list | tuple):
        try:
            key = json.dumps(domain, separators=(",", ":"))
        except (TypeError, ValueError):
            key = None
        if key is not None:
            return _analyse_cached(model, key)
    return _analyse(model, domain)


@lru_cache(maxsize=512)
def _analyse_cached(model: str, key: str) -> CheckedNode | None:
    return _analyse(model, json.loads(key))


def _analyse(model: str, domain: str | list[Any] | tuple[Any, ...] | None) -> CheckedNode | None:
    try:
        mdef = REGISTRY.get(model)
    except RegistryError as exc:
        raise FilterError(str(exc), field="model") from None
    tree = to_tree(load_domain(domain))  # leaves keep their index as written
    if tree is None:
        return None
    return _check_node(mdef, tree)


def _check_node(mdef: ModelDef, node: Node) -> CheckedNode:
    if isinstance(node, Leaf):
        return check_leaf(mdef, node)
    if isinstance(node, Negation):
        result: CheckedNode = make_not(_check_node(mdef, node.child))
        return result
    branch: CheckedNode = make_branch(node.operator, [_check_node(mdef, c) for c in node.children])
    return branch


def check_leaf(mdef: ModelDef, leaf: Leaf) -> Checked:
    if isinstance(leaf.path, int):
        return Constant(leaf.path == 1)
    path = leaf.path.strip()
    if not path:
        where = f"domain[{leaf.index}]"
        raise FilterError(f"{where}: a leaf needs a field name", field=where)
    operator = " ".join(leaf.operator.lower().split())
    operator = _ALIASES.get(operator, operator)
    if operator not in ALL_OPERATORS:
        raise FilterError(
            f"{path}: unknown operator {leaf.operator!r} (operators: {', '.join(ALL_OPERATORS)})",
            field=path,
        )
    value = leaf.value
    steps = _resolve(mdef, path)
    last = steps[-1][1]
    # Odoo writes "is set" / "is not set" as != False / = False.
    if operator in ("=", "!=") and last.type != "boolean" and (value is False or value is None):
        operator = IS_SET if operator == "!=" else IS_NOT_SET
        value = None
    _check_operator(path, last, operator)
    if last.is_relation and operator not in (IS_SET, IS_NOT_SET):
        path, steps = _relation_target(mdef, path, steps, operator, value)
        last = steps[-1][1]
        _check_operator(path, last, operator)
    if last.type == "boolean":
        return _boolean(path, steps, operator, value)
    return _condition(path, steps, operator, value)


def _check_operator(path: str, last: FieldDef, operator: str) -> None:
    allowed = OPERATORS_BY_TYPE[last.type]
    if operator not in allowed:
        raise FilterError(
            f"{path}: operator {operator!r} does not apply to a {last.type} field "
            f"(allowed: {', '.join(allowed)})",
            field=path,
        )


def _resolve(mdef: ModelDef, path: str) -> list[tuple[ModelDef, FieldDef]]:
    try:
        return REGISTRY.resolve_path(mdef, path, computed=True)
    except RegistryError as exc:
        message = str(exc).strip("\"'").removeprefix(f"in path {path!r}: ")
        raise FilterError(f"{path}: {message}", field=path) from None


def _relation_target(
    mdef: ModelDef,
    path: str,
    steps: list[tuple[ModelDef, FieldDef]],
    operator: str,
    value: Any,
) -> tuple[str, list[tuple[ModelDef, FieldDef]]]:
    """A relation compared to ids or names: follow it to ``id`` or the related name field."""
    last = steps[-1][1]
    assert last.relation is not None
    related = REGISTRY.get(last.relation)
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(v, str) for v in items):
        target = related.rec_name
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        if operator not in ("=", "!=", "in", "not in"):
            raise FilterError(
                f"{path}: operator {operator!r} needs a name (text), not {value!r}", field=path
            )
        if last.type == "many2one":
            return path, steps  # compared on the foreign key itself
        target = "id"
    else:
        raise FilterError(
            f"{path}: a {last.type} field is compared with record ids (whole numbers) or "
            f"names (text), not {value!r}",
            field=path,
        )
    new_path = f"{path}.{target}"
    return new_path, _resolve(mdef, new_path)


def _boolean(
    path: str, steps: list[tuple[ModelDef, FieldDef]], operator: str, value: Any
) -> Checked:
    """Booleans normalise to ``= true`` / ``= false``; an unset boolean counts as false."""
    if operator in (IS_SET, IS_NOT_SET):
        _no_value(path, operator, value)
        flag = operator == IS_SET
    else:
        if value is None:
            value = False
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            value = bool(value)
        if not isinstance(value, bool):
            raise FilterError(
                f"{path}: a boolean field is compared with true or false, not {value!r}",
                field=path,
            )
        flag = value if operator == "=" else not value
    return _make(path, steps, "=", flag, "=", False, flag)


def _no_value(path: str, operator: str, value: Any) -> None:
    if value is not None and value is not True:
        raise FilterError(
            f"{path}: operator {operator!r} takes no value, got {value!r}", field=path
        )


def _condition(
    path: str, steps: list[tuple[ModelDef, FieldDef]], operator: str, value: Any
) -> Checked:
    positive = NEGATIVE.get(operator, operator)
    negative = positive != operator
    last = steps[-1][1]
    value_type = "integer" if last.type == "many2one" else last.type
    if positive == IS_SET:
        _no_value(path, operator, value)
        return _make(path, steps, operator, None, positive, negative, None)
    if positive == "in":
        if not isinstance(value, list):
            raise FilterError(
                f"{path}: operator {operator!r} needs a list of values, not {value!r}", field=path
            )
        has_null = any(v is None or v is False for v in value)
        items = [v for v in value if v is not None and v is not False]
        checked = [_scalar(path, value_type, last, v, operator) for v in items]
        operand = [c[1] for c in checked]
        canon = [c[0] for c in checked] + ([None] if has_null else [])
        return _make(path, steps, operator, canon, positive, negative, operand, has_null)
    if positive in ("like", "ilike", "=like", "=ilike"):
        if not isinstance(value, str):
            raise FilterError(
                f"{path}: operator {operator!r} needs text, not {value!r}", field=path
            )
        _no_nul(path, value)
        if positive.startswith("=") and _dangling_escape(value):
            raise FilterError(
                f"{path}: pattern {value!r} ends with an escape character '\\'", field=path
            )
        return _make(path, steps, operator, value, positive, negative, value)
    canon, operand = _scalar(path, value_type, last, value, operator)
    return _make(path, steps, operator, canon, positive, negative, operand)


def _make(
    path: str,
    steps: list[tuple[ModelDef, FieldDef]],
    operator: str,
    value: Any,
    positive: str,
    negative: bool,
    operand: Any,
    has_null: bool = False,
) -> Condition:
    model, last = steps[-1]
    hops = tuple(steps[:-1])
    if last.is_to_many:
        # "tags is set": the relation itself is the last hop, tested for existence only.
        hops = tuple(steps)
        model = REGISTRY.get(last.relation or "")
    attribute = last.fk_column or last.name
    value_type = "integer" if last.type == "many2one" else last.type
    return Condition(
        path=path,
        operator=operator,
        value=value,
        hops=hops,
        model=model,
        field=last,
        attribute=attribute,
        value_type=value_type,
        positive=positive,
        negative=negative,
        operand=operand,
        has_null=has_null,
    )


def _dangling_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _no_nul(path: str, value: str) -> None:
    if "\x00" in value:
        raise FilterError(f"{path}: the value {value!r} contains a NUL character", field=path)


def _scalar(
    path: str, value_type: str, fdef: FieldDef, value: Any, operator: str
) -> tuple[Any, Any]:
    """(canonical JSON value, Python operand) of one comparison value."""

    def wrong(expected: str) -> FilterError:
        return FilterError(
            f"{path}: operator {operator!r} on a {fdef.type} field needs {expected}, not {value!r}",
            field=path,
        )

    if value_type in ("char", "text"):
        if not isinstance(value, str):
            raise wrong("text")
        _no_nul(path, value)
        return value, value
    if value_type == "selection":
        if not isinstance(value, str):
            raise wrong("one of " + ", ".join(repr(s) for s in fdef.selection))
        if fdef.selection and value not in fdef.selection:
            raise FilterError(
                f"{path}: {value!r} is not a value of {fdef.label} "
                f"(values: {', '.join(fdef.selection)})",
                field=path,
            )
        return value, value
    if value_type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
        if not -_INT64 <= value < _INT64:
            raise wrong("a whole number in the 64-bit range")
        return value, value
    if value_type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise wrong("a finite number")
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise wrong("a number in the 64-bit range")
        return value, value
    if value_type == "datetime":
        return _datetime(path, value, wrong)
    raise wrong("a value")  # pragma: no cover - every type is handled above


def _datetime(path: str, value: Any, wrong: Any) -> tuple[Any, Any]:
    if isinstance(value, datetime):
        parsed = value
        if parsed.tzinfo is not None:
            parsed = parse_iso(parsed.isoformat())
        return parsed.isoformat(), parsed
    if isinstance(value, dict):
        if set(value) != {"relative"} or not isinstance(value["relative"], str):
            raise wrong('a date or {"relative": "-7d"}')
        rel = parse_relative(value["relative"], path)
        return rel.as_json(), rel
    if isinstance(value, str):
        try:
            parsed = parse_iso(value.strip())
        except ValueError:
            raise FilterError(
                f"{path}: {value!r} is not a date and time (use ISO 8601, e.g. "
                '2024-05-01T09:00:00, or {"relative": "-7d"})',
                field=path,
            ) from None
        return parsed.isoformat(), parsed
    raise wrong('a date (ISO 8601 text) or {"relative": "-7d"}')


def parse_relative(text: str, path: str = "value") -> Relative:
    match = _RELATIVE.match(text)
    if not match:
        raise FilterError(
            f"{path}: {text!r} is not a relative date; use a signed number and a unit "
            'h (hours), d (days), w (weeks) or m (months), e.g. "-7d"',
            field=path,
        )
    sign, amount, unit = match.groups()
    number = int(amount)
    return Relative(-number if sign == "-" else number, unit)


def resolve_relative(value: Any, now: datetime) -> datetime:
    """The moment a relative date (``{"relative": "-7d"}``, ``"-7d"`` or a :class:`Relative`)
    stands for at ``now``. Months use calendar arithmetic (31 Jan + 1m = 28/29 Feb)."""
    if isinstance(value, dict):
        value = value.get("relative")
    if isinstance(value, str):
        value = parse_relative(value)
    if not isinstance(value, Relative):
        raise FilterError(f"{value!r} is not a relative date", field="value")
    if value.unit == "h":
        return now + timedelta(hours=value.amount)
    if value.unit == "d":
        return now + timedelta(days=value.amount)
    if value.unit == "w":
        return now + timedelta(weeks=value.amount)
    return add_months(now, value.amount)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    if not 1 <= year <= 9999:
        raise FilterError(f"relative date of {months} months is out of range", field="value")
    day = min(moment.day, monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def operand_at(condition: Condition, now: datetime) -> Any:
    """The comparison operand with relative dates resolved at ``now``."""
    if isinstance(condition.operand, Relative):
        return resolve_relative(condition.operand, now)
    return condition.operand
