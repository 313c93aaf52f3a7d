"""crm_activity, create_record and blacklist on both back ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from nurture.actions import validate_action
from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import blacklists
from nurture.records import models as m
from nurture.records import service as records

from .helpers import T0, contact, run_action, save_action, user

# --------------------------------------------------------------------------- CRM activities


def _activities(db: Database) -> list[tuple[str, int, str, str, int | None, Any]]:
    with db.read() as s:
        return [
            (a.res_model, a.res_id, a.activity_type, a.summary, a.user_id, a.due_date)
            for a in s.scalars(select(m.CrmActivity).order_by(m.CrmActivity.id))
        ]


def test_crm_activity_for_the_salesperson_with_fallbacks(db: Database) -> None:
    with db.transaction() as s:
        bob, eve, gone, boss = user(s, "bob"), user(s, "eve"), user(s, "gone", active=False), user(s, "boss")
        c1 = contact(s, "Ann", salesperson=bob)
        c2 = contact(s, "Cid")
        c3 = contact(s, "Dee", salesperson=gone)
        action = save_action(s, "contact", "crm_activity", {
            "activity_type": "call", "summary": "Call {{ record.name }}", "due_in": 2,
            "due_unit": "days", "user_field": "salesperson", "fallback_user_id": eve,
        })
        run = run_action(s, action, [c1, c2, c3], responsible_id=boss)
        no_fallback = save_action(s, "contact", "crm_activity", {"summary": "Todo", "user_field": "salesperson"})
        run2 = run_action(s, no_fallback, [c2], responsible_id=boss)
        run3 = run_action(s, no_fallback, [c2])
    assert run.outcomes == {} and run2.outcomes == {} and run3.outcomes == {}
    due = T0 + timedelta(days=2)
    assert _activities(db) == [
        ("contact", c1, "call", "Call Ann", bob, due),
        ("contact", c2, "call", "Call Cid", eve, due),
        ("contact", c3, "call", "Call Dee", eve, due),
        ("contact", c2, "todo", "Todo", boss, T0),
        ("contact", c2, "todo", "Todo", None, T0),
    ]


def test_crm_activity_user_through_a_relation(db: Database) -> None:
    with db.transaction() as s:
        bob = user(s, "bob")
        c1 = contact(s, "Ann", salesperson=bob)
        lead = records.create_record(session=s, model="lead", values={"name": "L", "contact": c1}, now=T0)
        orphan = records.create_record(session=s, model="lead", values={"name": "O"}, now=T0)
        action = save_action(s, "lead", "crm_activity", {
            "activity_type": "meeting", "summary": "Meet", "user_field": "contact.salesperson",
        })
        run = run_action(s, action, [lead, orphan])
    assert run.outcomes == {}
    assert [(a[1], a[2], a[4]) for a in _activities(db)] == [(lead, "meeting", bob), (orphan, "meeting", None)]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "summary"),
        ({"summary": "x", "activity_type": "lunch"}, "activity_type"),
        ({"summary": "x", "user_field": "nope"}, "user_field"),
        ({"summary": "x", "user_field": "name"}, "user_field"),
        ({"summary": "x", "user_field": "tags"}, "user_field"),
        ({"summary": "x", "due_unit": "years"}, "due_unit"),
        ({"summary": "x", "due_in": -1}, "due_in"),
        ({"summary": "{{ record.nope }}"}, "summary"),
        ({"summary": "x", "fallback_user_id": "bob"}, "fallback_user_id"),
    ],
)
def test_crm_activity_validation(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "crm_activity", payload)
    assert info.value.field == field


# --------------------------------------------------------------------------- create record

LEAD_FROM_CONTACT = {
    "model": "lead",
    "values": {"type": "opportunity", "priority": 2},
    "mapping": {"name": "name", "email": "email", "phone": "mobile", "country_code": "country_code",
                "contact": "id", "salesperson": "salesperson", "tags": "tags"},
}


def test_create_lead_from_contact(db: Database) -> None:
    with db.transaction() as s:
        bob = user(s, "bob")
        c1 = contact(s, "Ann", email="ann@x.io", mobile="06 12 34 56 78", country_code="FR",
                     salesperson=bob, tags=["Hot", "VIP"])
        c2 = contact(s, "Cid")
        action = save_action(s, "contact", "create_record", LEAD_FROM_CONTACT)
        run = run_action(s, action, [c1, c2])
    assert run.outcomes == {}
    with db.read() as s:
        leads = list(s.scalars(select(m.Lead).order_by(m.Lead.id)))
        assert [(ld.name, ld.email, ld.phone, ld.contact_id, ld.salesperson_id, ld.type, ld.priority,
                 sorted(t.name for t in ld.tags)) for ld in leads] == [
            ("Ann", "ann@x.io", "+33612345678", c1, bob, "opportunity", 2, ["Hot", "VIP"]),
            ("Cid", None, None, c2, None, "opportunity", 2, []),
        ]


def test_one_failing_record_fails_only_its_trace(db: Database) -> None:
    with db.transaction() as s:
        a, dup, b = contact(s, "Same"), contact(s, "Same"), contact(s, "Other")
        action = save_action(s, "contact", "create_record", {"model": "mailing_list", "mapping": {"name": "name"}})
        run = run_action(s, action, [a, dup, b])
    assert run.of(a) is None and run.of(b) is None
    failed = run.of(dup)
    assert failed is not None and failed.state == "error" and "already exists" in failed.message
    with db.read() as s:
        assert sorted(s.scalars(select(m.MailingList.name))) == ["Other", "Same"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "model"),
        ({"model": "user", "values": {"name": "x", "login": "x"}}, "model"),
        ({"model": "nope", "values": {"name": "x"}}, "model"),
        ({"model": "lead"}, "mapping"),
        ({"model": "lead", "values": {"stage": "New"}}, "mapping"),  # name is required
        ({"model": "lead", "values": {"nope": 1, "name": "x"}}, "values.nope"),
        ({"model": "lead", "values": {"name": "x", "priority": 9}}, "values.priority"),
        ({"model": "lead", "values": {"name": "x", "created_at": "2026-01-01"}}, "values.created_at"),
        ({"model": "lead", "mapping": {"name": "nope"}}, "mapping.name"),
        ({"model": "lead", "mapping": {"name": "tags"}}, "mapping.name"),
        ({"model": "lead", "mapping": {"name": "name", "contact": "salesperson"}}, "mapping.contact"),
        ({"model": "lead", "mapping": {"name": "name", "salesperson": "id"}}, "mapping.salesperson"),
        ({"model": "lead", "mapping": {"name": "tags.name"}}, "mapping.name"),
        ({"model": "lead", "values": {"name": "x"}, "mapping": {"name": "name"}}, "mapping.name"),
    ],
)
def test_create_record_validation(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "create_record", payload)
    assert info.value.field == field, info.value.message


def test_create_record_mapping_through_relations_is_accepted() -> None:
    payload = validate_action("lead", "create_record", {
        "model": "contact", "mapping": {"name": "name", "city": "contact.city", "salesperson": "contact.salesperson"},
    })
    assert payload["mapping"]["city"] == "contact.city"


# --------------------------------------------------------------------------- blacklist


def test_blacklist_email_and_phones(db: Database) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io", phone="01 23 45 67 89", mobile="06 12 34 56 78", country_code="FR")
        b = contact(s, "Bob", mobile="+447400123456")
        c = contact(s, "Cid")
        both = save_action(s, "contact", "blacklist", {"what": "both", "reason": "Bounced"})
        run = run_action(s, both, [a, b, c])
        email_only = save_action(s, "contact", "blacklist", {})
        run2 = run_action(s, email_only, [b], campaign_name="Welcome")
    assert run.of(a) is None and run.of(b) is None
    skipped = run.of(c)
    assert skipped is not None and skipped.state == "canceled"
    assert skipped.message == "Nothing to blacklist: no email address or phone number"
    other = run2.of(b)
    assert other is not None and other.message == "Nothing to blacklist: no email address"
    with db.read() as s:
        assert [(r.email, r.reason) for r in s.scalars(select(m.EmailBlacklist))] == [("ann@x.io", "Bounced")]
        assert sorted(r.number for r in s.scalars(select(m.PhoneBlacklist))) == [
            "+33123456789", "+33612345678", "+447400123456",
        ]
        assert blacklists.is_phone_blacklisted(session=s, number="06 12 34 56 78", country_code="FR")


def test_blacklist_default_reason_names_the_campaign(db: Database) -> None:
    with db.transaction() as s:
        a = contact(s, "Ann", email="ann@x.io")
        action = save_action(s, "contact", "blacklist", {"what": "email"})
        run_action(s, action, [a], campaign_name="Welcome Flow")
    with db.read() as s:
        row = s.scalars(select(m.EmailBlacklist)).one()
        assert row.reason == "Blacklisted by campaign Welcome Flow"


@pytest.mark.parametrize(("payload", "field"), [({"what": "fax"}, "what"), ({"reason": 3}, "reason"), ({"x": 1}, "x")])
def test_blacklist_validation(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "blacklist", payload)
    assert info.value.field == field
