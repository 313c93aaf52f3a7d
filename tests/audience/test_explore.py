"""The filter editor's questions: fields along a path, related records, AND, first matches."""

from __future__ import annotations

import pytest

from nurture import audience
from nurture.audience import FilterError

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
        found = audience.related_choices(s, model="contact", path="tags", query="vi")
        assert [label for _i, label in found] == ["VIP", "vip"]  # both cases, by name
        assert audience.related_choices(s, model="contact", path="tags", query="") != []
        ids = [i for i, _l in found]
        assert audience.related_choices(s, model="contact", path="tags", ids=ids[:1]) == found[:1]
        people_found = audience.related_choices(s, model="contact", path="salesperson", query="car")
        assert [label for _i, label in people_found] == ["Carol"]
        assert audience.related_choices(s, model="contact", path="tags", query="%") == []
        with pytest.raises(FilterError, match="not a relation"):
            audience.related_choices(s, model="contact", path="email", query="x")


def test_and_domains_reads_json_and_odoo_text() -> None:
    assert audience.and_domains(None, "[]", []) == []
    assert audience.and_domains('[["email", "!=", false]]', None) == [["email", "!=", False]]
    assert audience.and_domains(
        "['|', ('a', '=', 1), ('b', '=', 2)]", [["c", "=", 3]]
    ) == ["&", "|", ["a", "=", 1], ["b", "=", 2], ["c", "=", 3]]


def test_first_matching_lists_records_by_id_without_archived(people: People) -> None:
    domain = [["country_code", "=", "FR"]]
    with people.db.read() as s:
        rows = audience.first_matching(s, model="contact", domain=domain, now=NOW)
        assert [r.name for r in rows] == ["Ann", "Cid", "Fay"]
        limited = audience.first_matching(s, model="contact", domain=domain, now=NOW, limit=2)
        assert [r.name for r in limited] == ["Ann", "Cid"]
        every = audience.first_matching(
            s, model="contact", domain=[], now=NOW, include_archived=True, limit=10
        )
        assert len(every) == 6
        with pytest.raises(FilterError, match="unknown field 'emial'"):
            audience.first_matching(s, model="contact", domain=[["emial", "=", "x"]], now=NOW)
