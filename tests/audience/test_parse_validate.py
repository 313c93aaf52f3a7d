"""Reading domain text and checking domains against the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from nurture.audience import FilterError, parse_domain, resolve_relative, validate_domain
from nurture.errors import ValidationError


@pytest.mark.parametrize("empty", [None, "", "   ", "[]", [], ()])
def test_empty_filter_means_all_records(empty: Any) -> None:
    assert parse_domain(empty) == []
    assert validate_domain("contact", empty) == []


def test_json_text_is_read() -> None:
    text = '["|", ["email", "!=", false], ["phone", "!=", null]]'
    assert parse_domain(text) == ["|", ["email", "!=", False], ["phone", "!=", None]]


def test_odoo_python_literal_text_is_read_without_evaluating_code() -> None:
    text = "['|', ('email', '!=', False), ('tag_ids', 'in', (1, 2))]"
    assert parse_domain(text) == ["|", ["email", "!=", False], ["tag_ids", "in", [1, 2]]]


def test_python_expressions_are_refused_not_run() -> None:
    with pytest.raises(FilterError, match="neither JSON nor a Python literal"):
        parse_domain("[('name', '=', __import__('os').getcwd())]")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[('email', '=', 'x'", "neither JSON nor a Python literal"),
        ('{"email": 1}', "must be a list"),
        ("42", "must be a list"),
        ('["&", ["email", "=", "x"]]', r"domain\[0\]: operator '&' expects 2 operands, found 1"),
        ('["!"]', r"domain\[0\]: operator '!' expects 1 operand, found 0"),
        ('["email", "=", "x"]', r"domain\[0\]: 'email' is not a term"),
        ('[["email", "="]]', r"domain\[0\]: .* a leaf is \[field, operator, value\]"),
        ('[["email", "=", "x"], "^"]', r"domain\[1\]: '\^' is not a term"),
        ('[[true, "=", 1]]', "field of a leaf must be text"),
        ('[[2, "=", 1]]', "only \\[1, '=', 1\\]"),
        ('[["email", 3, 1]]', "operator of 'email' must be text"),
    ],
)
def test_malformed_filters_are_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as caught:
        parse_domain(text)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.field is not None


def test_structural_error_names_the_index() -> None:
    with pytest.raises(FilterError) as caught:
        parse_domain('[["email", "=", "x"], "|", ["name", "=", "y"]]')
    assert caught.value.field == "domain[1]"


def test_canonical_form_is_flat_prefix_without_double_negation() -> None:
    a, b, c = ["name", "=", "a"], ["name", "=", "b"], ["name", "=", "c"]
    assert parse_domain([a, b, c]) == ["&", "&", a, b, c]
    assert parse_domain(["&", a, "&", b, c]) == ["&", "&", a, b, c]
    assert parse_domain(["|", a, "|", b, c]) == ["|", "|", a, b, c]
    assert parse_domain(["!", "!", a]) == [a]
    assert parse_domain(["|", a, "&", b, c]) == ["|", a, "&", b, c]


@pytest.mark.parametrize(
    ("domain", "field", "message"),
    [
        ([["emial", "=", "x"]], "emial", "unknown field 'emial' on contact"),
        ([["tags.nam", "=", "x"]], "tags.nam", "unknown field 'nam' on tag"),
        (
            [["email.name", "=", "x"]],
            "email.name",
            "'email' on contact is a char field, not a relation",
        ),
        ([["email", "~", "x"]], "email", "unknown operator '~'"),
        (
            [["created_at", "ilike", "x"]],
            "created_at",
            "operator 'ilike' does not apply to a datetime field",
        ),
        ([["active", "in", [True]]], "active", "operator 'in' does not apply to a boolean field"),
        ([["email", "=", 3]], "email", "needs text, not 3"),
        ([["salesperson.id", "=", "3"]], "salesperson.id", "needs a whole number, not '3'"),
        ([["id", ">", 1.5]], "id", "needs a whole number, not 1.5"),
        ([["id", "=", True]], "id", "needs a whole number, not True"),
        ([["id", "in", 3]], "id", "needs a list of values, not 3"),
        ([["country_code", "in", ["FR", 3]]], "country_code", "needs text, not 3"),
        ([["created_at", ">", "yesterday"]], "created_at", "'yesterday' is not a date and time"),
        ([["created_at", ">", {"relative": "-7y"}]], "created_at", "'-7y' is not a relative date"),
        ([["created_at", ">", {"days": 7}]], "created_at", "needs a date"),
        ([["email", "=like", "abc\\"]], "email", "ends with an escape character"),
        ([["email", "is set", "yes"]], "email", "takes no value"),
        ([["active", "=", "yes"]], "active", "compared with true or false"),
        ([["tags", "=", 1.5]], "tags", "compared with record ids"),
        (
            [["salesperson", ">", 3]],
            "salesperson",
            "operator '>' does not apply to a many2one field",
        ),
        ([["salesperson", "like", 3]], "salesperson", "needs a name"),
        ([["name", "=", "a\x00b"]], "name", "NUL character"),
    ],
)
def test_invalid_leaves_name_the_path_operator_or_value(
    domain: Any, field: str, message: str
) -> None:
    with pytest.raises(FilterError, match=message) as caught:
        validate_domain("contact", domain)
    assert caught.value.field == field
    assert field in caught.value.message


def test_empty_field_name_is_refused() -> None:
    with pytest.raises(FilterError, match=r"domain\[2\]: a leaf needs a field name") as caught:
        validate_domain("contact", ["&", ["name", "=", "a"], [" ", "=", "b"]])
    assert caught.value.field == "domain[2]"
    with pytest.raises(FilterError, match=r"domain\[1\]: a leaf needs a field name"):
        validate_domain("contact", [["name", "=", "a"], ["", "=", "b"]])  # index as written


def test_selection_values_are_checked() -> None:
    with pytest.raises(FilterError, match=r"'Done' is not a value of Stage \(values: New, ") as e:
        validate_domain("lead", [["stage", "in", ["New", "Done"]]])
    assert e.value.field == "stage"
    assert validate_domain("lead", [["stage", "in", ["New", "Won"]]]) == [
        ["stage", "in", ["New", "Won"]]
    ]


def test_unknown_model_is_refused() -> None:
    with pytest.raises(FilterError, match="unknown model 'contacts'"):
        validate_domain("contacts", [])


@pytest.mark.parametrize(
    ("leaf", "normalised"),
    [
        (["email", "!=", False], ["email", "is set", None]),
        (["email", "=", False], ["email", "is not set", None]),
        (["email", "=", None], ["email", "is not set", None]),
        (["email", "IS  SET", None], ["email", "is set", None]),
        (["email", "<>", "x"], ["email", "!=", "x"]),
        (["active", "!=", False], ["active", "=", True]),
        (["active", "!=", True], ["active", "=", False]),
        (["active", "is not set", None], ["active", "=", False]),
        (["active", "=", 1], ["active", "=", True]),
        (["tags", "in", ["VIP"]], ["tags.name", "in", ["VIP"]]),
        (["tags", "=", 4], ["tags.id", "=", 4]),
        (["tags", "!=", False], ["tags", "is set", None]),
        (["salesperson", "in", [1, 2]], ["salesperson", "in", [1, 2]]),
        (["salesperson", "ilike", "bo"], ["salesperson.name", "ilike", "bo"]),
        (["created_at", ">", "2026-01-01"], ["created_at", ">", "2026-01-01T00:00:00"]),
        (
            ["created_at", ">", "2026-01-01T10:00:00+02:00"],
            ["created_at", ">", "2026-01-01T08:00:00"],
        ),
        (["created_at", ">", {"relative": " +3d "}], ["created_at", ">", {"relative": "3d"}]),
        (["country_code", "in", ["FR", False]], ["country_code", "in", ["FR", None]]),
    ],
)
def test_leaves_are_normalised(leaf: list[Any], normalised: list[Any]) -> None:
    assert validate_domain("contact", [leaf]) == [normalised]


def test_odoo_style_domain_validates_on_each_target_model() -> None:
    assert validate_domain("mailing_contact", "[('subscriptions.list.name', '=', 'Newsletter')]")
    assert validate_domain("lead", [["contact.tags.name", "=", "VIP"], ["type", "=", "lead"]])
    assert validate_domain("event_registration", [["event.name", "ilike", "conf"]])


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("-7d", datetime(2026, 3, 24, 9, 30)),
        ("2h", datetime(2026, 3, 31, 11, 30)),
        ("-1w", datetime(2026, 3, 24, 9, 30)),
        ("-1m", datetime(2026, 2, 28, 9, 30)),  # calendar months clamp to the month's end
        ("1m", datetime(2026, 4, 30, 9, 30)),
        ("-13m", datetime(2025, 2, 28, 9, 30)),
        ("0d", datetime(2026, 3, 31, 9, 30)),
    ],
)
def test_relative_dates_resolve_against_now(relative: str, expected: datetime) -> None:
    now = datetime(2026, 3, 31, 9, 30)
    assert resolve_relative({"relative": relative}, now) == expected
    assert resolve_relative(relative, now) == expected


def test_field_catalogue_describes_types_relations_operators_and_values() -> None:
    from nurture.audience import fields_for_ui

    fields = {f["name"]: f for f in fields_for_ui("lead")}
    assert fields["stage"]["type"] == "selection"
    assert fields["stage"]["selection"] == ["New", "Qualified", "Proposition", "Won", "Lost"]
    assert "in" in fields["stage"]["operators"] and "ilike" not in fields["stage"]["operators"]
    assert fields["contact"] | {"operators": None} == {
        "name": "contact", "label": "Contact", "type": "many2one", "relation": "contact",
        "operators": None, "selection": [], "readonly": False, "computed": False,
    }  # fmt: skip
    assert fields["tags"]["relation"] == "tag" and fields["tags"]["type"] == "many2many"
    assert ">=" in fields["expected_revenue"]["operators"]
    assert fields["active"]["operators"] == ["=", "!="]
    for entry in fields.values():  # every operator offered is accepted by validation
        assert set(entry["operators"]) <= {
            "=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "not like", "ilike",
            "not ilike", "=like", "=ilike", "is set", "is not set",
        }  # fmt: skip
