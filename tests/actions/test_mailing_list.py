"""add_to_list / remove_from_list on both back ends."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from nurture.db import Database
from nurture.errors import ValidationError
from nurture.records import mailing_lists
from nurture.records import models as m
from nurture.records import service as records

from .helpers import T0, contact, run_action, save_action


def _subs(db: Database) -> list[tuple[str, str | None, bool]]:
    with db.read() as s:
        rows = s.execute(
            select(m.MailingList.name, m.MailingContact.email, m.MailingSubscription.opted_out)
            .join(m.MailingList, m.MailingList.id == m.MailingSubscription.list_id)
            .join(m.MailingContact, m.MailingContact.id == m.MailingSubscription.contact_id)
            .order_by(m.MailingList.name, m.MailingContact.email)
        ).all()
        return [(a, b, c) for a, b, c in rows]


def _mc(s, email: str, name: str = "M") -> int:  # type: ignore[no-untyped-def]
    return records.create_record(session=s, model="mailing_contact", values={"name": name, "email": email}, now=T0)


def test_add_mailing_contacts_by_list_name_without_duplicates(db: Database) -> None:
    with db.transaction() as s:
        a, b = _mc(s, "a@x.io"), _mc(s, "b@x.io")
        action = save_action(s, "mailing_contact", "add_to_list", {"list": "Newsletter"})
        first = run_action(s, action, [a, b])
        second = run_action(s, action, [a, b])
    assert first.outcomes == {} and second.outcomes == {}
    assert _subs(db) == [("Newsletter", "a@x.io", False), ("Newsletter", "b@x.io", False)]


def test_opted_out_contact_stays_opted_out(db: Database) -> None:
    with db.transaction() as s:
        a = _mc(s, "a@x.io")
        list_id = mailing_lists.get_or_create_mailing_list(session=s, name="News", now=T0)
        mailing_lists.opt_out(session=s, contact_id=a, list_id=list_id, now=T0)
        action = save_action(s, "mailing_contact", "add_to_list", {"list": list_id})
        run = run_action(s, action, [a])
    assert run.outcomes == {}
    assert _subs(db) == [("News", "a@x.io", True)]


def test_add_contacts_goes_through_mailing_contacts_by_email(db: Database) -> None:
    with db.transaction() as s:
        existing = _mc(s, "ann@x.io", "Ann (list)")
        ann = contact(s, "Ann", email="ANN@x.io")
        bob = contact(s, "Bob", email="bob@x.io", phone="06 12 34 56 78", country_code="FR")
        nobody = contact(s, "No Mail")
        action = save_action(s, "contact", "add_to_list", {"list": "Newsletter"})
        run = run_action(s, action, [ann, bob, nobody])
    assert run.of(ann) is None and run.of(bob) is None
    skipped = run.of(nobody)
    assert skipped is not None and (skipped.state, skipped.message) == ("canceled", "no email address")
    assert _subs(db) == [("Newsletter", "ann@x.io", False), ("Newsletter", "bob@x.io", False)]
    with db.read() as s:
        mcs = {c.email: c for c in s.scalars(select(m.MailingContact))}
        assert mcs["ann@x.io"].id == existing
        assert (mcs["bob@x.io"].name, mcs["bob@x.io"].phone) == ("Bob", "+33612345678")


def test_unknown_list_id_fails_every_trace(db: Database) -> None:
    with db.transaction() as s:
        a = _mc(s, "a@x.io")
        action = save_action(s, "mailing_contact", "add_to_list", {"list": 999})
        run = run_action(s, action, [a])
    outcome = run.of(a)
    assert outcome is not None and outcome.state == "error" and "999" in outcome.message


def test_remove_deletes_or_opts_out(db: Database) -> None:
    with db.transaction() as s:
        a, b = _mc(s, "a@x.io"), _mc(s, "b@x.io")
        ann = contact(s, "Ann", email="a@x.io")
        list_id = mailing_lists.get_or_create_mailing_list(session=s, name="News", now=T0)
        for cid in (a, b):
            mailing_lists.subscribe(session=s, contact_id=cid, list_id=list_id, now=T0)
        remove = save_action(s, "contact", "remove_from_list", {"list": "News"})
        opt = save_action(s, "mailing_contact", "remove_from_list", {"list": list_id, "opt_out": True})
        first = run_action(s, remove, [ann])
        second = run_action(s, opt, [b])
        again = run_action(s, opt, [b, a])
    assert first.outcomes == {} and second.outcomes == {} and again.outcomes == {}
    assert _subs(db) == [("News", "b@x.io", True)]


def test_remove_from_missing_list_changes_nothing(db: Database) -> None:
    with db.transaction() as s:
        a = _mc(s, "a@x.io")
        action = save_action(s, "mailing_contact", "remove_from_list", {"list": "Ghost"})
        run = run_action(s, action, [a])
    assert run.outcomes == {}
    with db.read() as s:
        assert s.scalar(select(m.MailingList.id)) is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "list"), ({"list": ""}, "list"), ({"list": True}, "list"), ({"list": -1}, "list"),
     ({"list": "N", "extra": 1}, "extra")],
)
def test_validation(payload: dict[str, object], field: str) -> None:
    from nurture.actions import validate_action

    with pytest.raises(ValidationError) as info:
        validate_action("contact", "add_to_list", payload)
    assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        validate_action("contact", "remove_from_list", {"list": "N", "opt_out": "yes"})
    assert info.value.field == "opt_out"
