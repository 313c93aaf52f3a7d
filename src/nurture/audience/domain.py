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
#: the largest filter accepted: conditions nested this deep (brackets of the text, groups
#: of the canonical form), this many leaves
MAX_DEPTH = 50
MAX_LEAVES = 500


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
        if _bracket_depth(text) > MAX_DEPTH:
            raise _too_deep()
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
    if _nesting(value) > MAX_DEPTH:
        raise _too_deep()
    leaves = sum(1 for item in value if not isinstance(item, str))
    if leaves > MAX_LEAVES:
        raise FilterError(
            f"the filter has {leaves} conditions; at most {MAX_LEAVES} are allowed",
            field="domain",
        )
    return value


def _too_deep() -> FilterError:
    return FilterError(
        f"the filter is nested more than {MAX_DEPTH} levels deep", field="domain"
    )


def _bracket_depth(text: str) -> int:
    """The deepest nesting of brackets in ``text``, quoted strings skipped."""
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def _nesting(value: Any) -> int:
    """How deeply lists, tuples and dicts nest in ``value`` (iteratively)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        if isinstance(current, list | tuple):
            stack.extend((item, depth + 1) for item in current if isinstance(item, list | tuple | dict))
        elif isinstance(current, dict):
            stack.extend((item, depth + 1) for item in current.values() if isinstance(item, list | tuple | dict))
    return deepest


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
    if _depth(tree) > MAX_DEPTH:
        raise _too_deep()
    return tree


def _depth(tree: Node) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Branch):
            stack.extend((child, depth + 1) for child in node.children)
        elif isinstance(node, Negation):
            stack.append((node.child, depth + 1))
    return deepest


def _read(domain: list[Any], position: int) -> tuple[Node, int]:
    """The term starting at ``position`` and the position after it (iterative: a long
    chain of operators in prefix notation is not a deep recursion)."""
    pending: list[tuple[str, int, list[Node]]] = []  # operators waiting for operands
    while True:
        item = domain[position]
        if isinstance(item, str):
            if item not in OPERATOR_ARITY:
                raise FilterError(
                    f"domain[{position}]: {item!r} is not a term; expected '&', '|', '!' "
                    "or a [field, operator, value] leaf",
                    field=f"domain[{position}]",
                )
            pending.append((item, position, []))
            position += 1
        else:
            node: Node = _leaf(item, position)
            position += 1
            while pending:
                operator, _start, children = pending[-1]
                children.append(node)
                if len(children) < OPERATOR_ARITY[operator]:
                    break
                pending.pop()
                node = make_not(children[0]) if operator == NOT else make_branch(operator, children)
            else:
                return node, position
        if position >= len(domain):
            operator, start, children = pending[-1]
            arity = OPERATOR_ARITY[operator]
            raise FilterError(
                f"domain[{start}]: operator {operator!r} expects {arity} operand"
                f"{'s' if arity > 1 else ''}, found {len(children)}",
                field=f"domain[{start}]",
            )


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
