"""The editor tree and the domain convert both ways without loss."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.audience import FilterError, domain_to_tree, parse_domain, tree_to_domain

A, B, C = ["name", "=", "a"], ["email", "is set", None], ["tags.name", "in", ["VIP", "New"]]


def rule(leaf: list[Any], negate: bool = False) -> dict[str, Any]:
    return {"type": "rule", "field": leaf[0], "operator": leaf[1], "value": leaf[2],
            "negate": negate}  # fmt: skip


def group(match: str, children: list[dict[str, Any]], negate: bool = False) -> dict[str, Any]:
    return {"type": "group", "match": match, "negate": negate, "children": children}


def test_empty_domain_is_an_empty_match_all_group() -> None:
    assert domain_to_tree([]) == group("all", [])
    assert tree_to_domain(group("all", [])) == []


def test_match_all_of_rules_with_a_nested_any_branch() -> None:
    domain = ["&", "&", A, B, "|", C, "!", A]
    tree = group("all", [rule(A), rule(B), group("any", [rule(C), rule(A, negate=True)])])
    assert domain_to_tree(domain) == tree
    assert tree_to_domain(tree) == domain


def test_match_any_at_the_root_and_negated_branches() -> None:
    domain = ["!", "|", A, "!", "&", B, C]
    tree = group("any", [rule(A), group("all", [rule(B), rule(C)], negate=True)], negate=True)
    assert domain_to_tree(domain) == tree
    assert tree_to_domain(tree) == domain


def test_a_single_rule_sits_in_a_match_all_root() -> None:
    assert domain_to_tree([A]) == group("all", [rule(A)])
    assert domain_to_tree(["!", A]) == group("all", [rule(A, negate=True)])


def test_a_nested_group_with_the_parents_match_joins_the_parent() -> None:
    tree = group("all", [rule(A), group("all", [rule(B), rule(C)])])
    assert tree_to_domain(tree) == ["&", "&", A, B, C]
    assert domain_to_tree(tree_to_domain(tree)) == group("all", [rule(A), rule(B), rule(C)])


def test_empty_groups_add_no_condition() -> None:
    tree = group("any", [rule(A), group("all", []), rule(B)])
    assert tree_to_domain(tree) == ["|", A, B]


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"type": "group", "match": "some", "children": []}, "'match' must be 'all' or 'any'"),
        (group("all", [{"type": "rule", "field": "name"}]), "a rule needs operator"),
        (group("all", [{"type": "branch"}]), "unknown node type 'branch'"),
        (group("all", ["name = a"]), "a tree node must be an object"),  # type: ignore[list-item]
        (group("all", [rule(A) | {"negate": "yes"}]), "'negate' must be true or false"),
    ],
)
def test_malformed_trees_are_refused(tree: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        tree_to_domain(tree)


# -- round trip on random domains --------------------------------------------------------

leaves = st.tuples(
    st.sampled_from(["name", "email", "tags.name", "salesperson.name", "created_at"]),
    st.sampled_from(["=", "!=", "in", "ilike", "is set", "<"]),
    st.none() | st.text(max_size=3) | st.integers() | st.lists(st.text(max_size=2), max_size=2)
    | st.just({"relative": "-7d"}),
).map(list)  # fmt: skip


def _extend(children: st.SearchStrategy[list[Any]]) -> st.SearchStrategy[list[Any]]:
    return (
        st.tuples(st.sampled_from(["&", "|"]), children, children).map(
            lambda t: [t[0], *t[1], *t[2]]
        )
        | children.map(lambda c: ["!", *c])
        | st.tuples(children, children).map(lambda t: [*t[0], *t[1]])
    )


domains = st.recursive(leaves.map(lambda leaf: [leaf]), _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(domains)
def test_domain_to_tree_and_back_is_lossless(domain: list[Any]) -> None:
    canonical = parse_domain(domain)
    tree = domain_to_tree(domain)
    assert tree_to_domain(tree) == canonical
    assert domain_to_tree(tree_to_domain(tree)) == tree
    assert domain_to_tree(canonical) == tree
