"""Domain text and structure: parsing, prefix-notation checking and the canonical form.

A domain is a list in prefix notation: ``"&"`` and ``"|"`` take two operands, ``"!"`` one,
and terms written side by side are joined by AND. Leaves are ``[path, operator, value]``;
``[1, "=", 1]`` and ``[0, "=", 1]`` are Odoo's always-true and always-false leaves.

The canonical form (what :func:`canonical` and ``validate_domain`` return) writes every
AND/OR chain flat, operators first (``["&", "&", a, b, c]``), drops double negations, turns
tuples into lists and is plain JSON.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from nurture.errors import ValidationError

AND, OR, NOT = "&", "|", "!"
OPERATOR_ARITY = {AND: 2, OR: 2, NOT: 1}


class FilterError(ValidationError):
    """A filter that cannot be used; the message names the offending path, operator or value.

    ``field`` is the path at fault, or ``"domain[i]"`` for a structural problem at index i.
    """

    code = "invalid_filter"


@dataclass(frozen=True)
class Leaf:
    path: str | int  # int only for the constant leaves 1 (true) and 0 (false)
    operator: str
    value: Any
    index: int = 0  # position in the domain as written, for error messages

    def as_list(self) -> list[Any]:
        return [self.path, self.operator, self.value]


@dataclass(frozen=True)
class Branch:
    operator: str  # "&" or "|"
    children: tuple[Any, ...]  # nodes (leaves or checked conditions)


@dataclass(frozen=True)
class Negation:
    child: Any  # a node


Node = Leaf | Branch | Negation


def parse_domain(value: str | list[Any] | tuple[Any, ...] | None) -> list[Any]:
    """Read a domain from JSON text, Odoo Python-literal text or a list; check its structure.

    ``None``, ``""`` and ``"[]"`` mean all records (``[]``). Returns the canonical form.
    Python-literal text is read with :func:`ast.literal_eval`, never evaluated.
    """
    return serialise(to_tree(load_domain(value)))


def load_domain(value: Any) -> list[Any]:
    """The domain list as written (text read, structure not yet checked)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            loaded: Any = json.loads(text)
        except ValueError:
            try:
                loaded = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                raise FilterError(
                    f"the filter is neither JSON nor a Python literal list: {_reason(exc)}",
                    field="domain",
                ) from None
        value = loaded
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise FilterError(
            f"a filter must be a list of terms, not {type(value).__name__}", field="domain"
        )
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.msg:
        where = f" (line {exc.lineno}, column {exc.offset})" if exc.lineno else ""
        return f"{exc.msg}{where}"
    return str(exc) or type(exc).__name__


def to_tree(domain: list[Any]) -> Node | None:
    """The AST of a domain list (``None`` for the empty domain = all records)."""
    terms: list[Node] = []
    position = 0
    while position < len(domain):
        node, position = _read(domain, position)
        terms.append(node)
    if not terms:
        return None
    tree: Node = make_and(terms)
    return tree


def _read(domain: list[Any], position: int) -> tuple[Node, int]:
    item = domain[position]
    if isinstance(item, str):
        if item not in OPERATOR_ARITY:
            raise FilterError(
                f"domain[{position}]: {item!r} is not a term; expected '&', '|', '!' "
                "or a [field, operator, value] leaf",
                field=f"domain[{position}]",
            )
        arity = OPERATOR_ARITY[item]
        children: list[Node] = []
        cursor = position + 1
        for found in range(arity):
            if cursor >= len(domain):
                raise FilterError(
                    f"domain[{position}]: operator {item!r} expects {arity} operand"
                    f"{'s' if arity > 1 else ''}, found {found}",
                    field=f"domain[{position}]",
                )
            child, cursor = _read(domain, cursor)
            children.append(child)
        if item == NOT:
            return make_not(children[0]), cursor
        return make_branch(item, children), cursor
    return _leaf(item, position), position + 1


def _leaf(item: Any, position: int) -> Leaf:
    where = f"domain[{position}]"
    if not isinstance(item, list | tuple) or len(item) != 3:
        raise FilterError(
            f"{where}: {item!r} is not a term; a leaf is [field, operator, value]", field=where
        )
    path, operator, value = item
    if isinstance(path, bool) or not isinstance(path, str | int):
        raise FilterError(f"{where}: the field of a leaf must be text, not {path!r}", field=where)
    if isinstance(path, int) and (path not in (0, 1) or operator != "=" or value != 1):
        raise FilterError(
            f"{where}: {item!r} is not a term; only [1, '=', 1] and [0, '=', 1] "
            "may use a number as field",
            field=where,
        )
    if not isinstance(operator, str):
        raise FilterError(
            f"{where}: the operator of {path!r} must be text, not {operator!r}", field=str(path)
        )
    return Leaf(path=path, operator=operator, value=_plain(value), index=position)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (Python-literal input)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def make_and(children: list[Any]) -> Any:
    return make_branch(AND, children)


def make_branch(operator: str, children: list[Any]) -> Any:
    flat: list[Any] = []
    for child in children:
        if isinstance(child, Branch) and child.operator == operator:
            flat.extend(child.children)
        else:
            flat.append(child)
    if len(flat) == 1:
        return flat[0]
    return Branch(operator, tuple(flat))


def make_not(child: Any) -> Any:
    if isinstance(child, Negation):
        return child.child
    return Negation(child)


def serialise(node: Any) -> list[Any]:
    """The canonical list form of an AST."""
    out: list[Any] = []
    if node is not None:
        _write(node, out)
    return out


def _write(node: Any, out: list[Any]) -> None:
    if isinstance(node, Negation):
        out.append(NOT)
        _write(node.child, out)
    elif isinstance(node, Branch):
        out.extend([node.operator] * (len(node.children) - 1))
        for child in node.children:
            _write(child, out)
    else:
        out.append(node.as_list())


def canonical(value: str | list[Any] | tuple[Any, ...] | None) -> list[Any]:
    """Alias of :func:`parse_domain` for callers that already hold a list."""
    return parse_domain(value)
