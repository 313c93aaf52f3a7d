"""The filter editor's tree and the domain, converted both ways without loss.

A tree is a group::

    {"type": "group", "match": "all" | "any", "negate": bool, "children": [node, ...]}

whose children are groups or rules::

    {"type": "rule", "field": "tags.name", "operator": "=", "value": "VIP", "negate": bool}

The root is always a group. ``domain_to_tree`` gives the canonical tree of a domain: AND/OR
chains become one group each (a nested group never has its parent's ``match`` unless it is
negated), ``["!", x]`` sets ``negate`` on x, and a domain that is a single rule (or a
negated rule) sits in a root "match all" group. ``tree_to_domain`` accepts any tree; empty
groups are dropped (they add no condition), and for canonical trees the two functions are
inverse: ``tree_to_domain(domain_to_tree(d)) == parse_domain(d)`` and
``domain_to_tree(tree_to_domain(t)) == t``.
"""

from __future__ import annotations

from typing import Any

from nurture.audience.domain import (
    AND,
    MAX_DEPTH,
    OR,
    Branch,
    FilterError,
    Leaf,
    Negation,
    make_branch,
    make_not,
    parse_domain,
    serialise,
    to_tree,
)

_MATCH = {AND: "all", OR: "any"}
_OPERATOR = {"all": AND, "any": OR}


def domain_to_tree(domain: str | list[Any] | tuple[Any, ...] | None) -> dict[str, Any]:
    """The editor tree of ``domain`` (structure only; use ``validate_domain`` for fields)."""
    node = to_tree(parse_domain(domain))
    if node is None:
        return _group("all", False, [])
    negate = False
    inner = node
    if isinstance(inner, Negation) and isinstance(inner.child, Branch):
        negate, inner = True, inner.child
    if isinstance(inner, Branch):
        return _group(_MATCH[inner.operator], negate, [_to_node(c) for c in inner.children])
    return _group("all", False, [_to_node(node)])


def _group(match: str, negate: bool, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "group", "match": match, "negate": negate, "children": children}


def _to_node(node: Any, negate: bool = False) -> dict[str, Any]:
    if isinstance(node, Negation):
        return _to_node(node.child, not negate)
    if isinstance(node, Branch):
        return _group(_MATCH[node.operator], negate, [_to_node(c) for c in node.children])
    path, operator, value = node.as_list()
    return {"type": "rule", "field": path, "operator": operator, "value": value, "negate": negate}


def tree_to_domain(tree: dict[str, Any]) -> list[Any]:
    """The canonical domain of an editor tree."""
    node = _from_node(tree, "tree")
    return serialise(node)


def _from_node(node: Any, where: str, depth: int = 1) -> Any:
    if depth > MAX_DEPTH:
        raise FilterError(
            f"{where}: the filter is nested more than {MAX_DEPTH} levels deep", field=where
        )
    if not isinstance(node, dict):
        raise FilterError(f"{where}: a tree node must be an object, not {node!r}", field=where)
    kind = node.get("type", "rule" if "field" in node else "group")
    negate = node.get("negate", False)
    if not isinstance(negate, bool):
        raise FilterError(f"{where}: 'negate' must be true or false", field=where)
    if kind == "group":
        match = node.get("match", "all")
        if match not in _OPERATOR:
            raise FilterError(
                f"{where}: 'match' must be 'all' or 'any', not {match!r}", field=where
            )
        children = node.get("children", [])
        if not isinstance(children, list):
            raise FilterError(f"{where}: 'children' must be a list", field=where)
        converted = [
            _from_node(c, f"{where}.children[{i}]", depth + 1) for i, c in enumerate(children)
        ]
        converted = [c for c in converted if c is not None]
        if not converted:
            return None
        result = make_branch(_OPERATOR[match], converted)
    elif kind == "rule":
        missing = [k for k in ("field", "operator") if k not in node]
        if missing:
            raise FilterError(f"{where}: a rule needs {' and '.join(missing)}", field=where)
        checked = to_tree(parse_domain([[node["field"], node["operator"], node.get("value")]]))
        assert isinstance(checked, Leaf)
        result = checked
    else:
        raise FilterError(f"{where}: unknown node type {kind!r}", field=where)
    return make_not(result) if negate else result
