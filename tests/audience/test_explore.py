"""The filter editor's questions: fields along a path, related records, AND, first matches."""

from __future__ import annotations

import pytest

from nurture import audience
from nurture.audience import FilterError
from nurture.audience.listing import list_page

from .conftest import NOW, People


def test_fields_at_follows_relation_paths() -> None:
    model, fields = audience.fields_at("lead", "")
    assert model.name == "lead" and fields == audience.fields_for_ui("lead")
    model, fields = audience.fields_at("lead", "contact")
    assert model.name == "contact"
    assert {"name": "country_code", "label": "Country"}.items() <= fields[8].items()
    model, fields = audience.fields_at("lead", "contact.tags")
    assert model.name == "tag" and [f["name"] for f in fields] == ["id", "name", "color"]


@pytest.mark.parametrize(
    ("model", "path", "message"),
    [
        ("contact", "email", "email: Email is a char field, not a relation"),
        ("contact", "tagz", "unknown field 'tagz' on contact"),
        ("contact", "email.name", "'email' on contact is a char field, not a relation"),
        ("contacts", "", "unknown model 'contacts'"),
    ],
)
def test_fields_at_names_what_is_wrong(model: str, path: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        audience.fields_at(model, path)
    assert message in caught.value.message


def test_related_choices_by_name_and_by_id(people: People) -> None:
    with people.db.read() as s:
        found = audience.related_choices(s, model="contact", path="tags", query="vi", now=NOW)
        assert [c.label for c in found] == ["vip", "VIP"]  # both cases, newest first
        assert audience.related_choices(s, model="contact", path="tags", now=NOW) != []
        first = audience.related_choices(s, model="contact", path="tags", ids=[found[1].id], now=NOW)
        assert first == [found[1]]
        sales = audience.related_choices(s, model="contact", path="salesperson", query="car", now=NOW)
        assert [c.label for c in sales] == ["Carol"]
        assert audience.related_choices(s, model="contact", path="tags", query="%", now=NOW) == []
        on_lead = audience.related_choices(s, model="lead", path="contact", query="gmail", now=NOW)
        assert [(c.label, c.detail) for c in on_lead] == [
            ("Fay", "FAY@GMAIL.COM"), ("Ann", "ann@Gmail.com"),
        ]  # fmt: skip
        with pytest.raises(FilterError, match="not a relation"):
            audience.related_choices(s, model="contact", path="email", query="x", now=NOW)


def test_and_domains_reads_json_and_odoo_text() -> None:
    assert audience.and_domains(None, "[]", []) == []
    assert audience.and_domains('[["email", "!=", false]]', None) == [["email", "!=", False]]
    assert audience.and_domains(
        "['|', ('a', '=', 1), ('b', '=', 2)]", [["c", "=", 3]]
    ) == ["&", "|", ["a", "=", 1], ["b", "=", 2], ["c", "=", 3]]


def test_list_page_of_a_filter_with_or_without_archived_records(people: People) -> None:
    domain = [["country_code", "=", "FR"]]
    with people.db.read() as s:
        page = list_page(s, model="contact", domain=domain, now=NOW, limit=2)
        assert [r["name"] for r in page.rows] == ["Fay", "Cid"] and page.total == 3
        every = list_page(s, model="contact", domain=[], now=NOW, include_archived=True)
        assert page.columns[0].name == "name" and every.total == len(every.rows) == 6
