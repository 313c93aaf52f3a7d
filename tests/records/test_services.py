"""Record services on SQLite and PostgreSQL: validation, CRUD, archive, lists, blacklists."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from nurture.db import Database
from nurture.errors import Conflict, NotFound, ValidationError
from nurture.records import blacklists, crm_activities, mailing_lists, tags
from nurture.records import models as m
from nurture.records import service as svc
from nurture.records.registry import model_from_orm

from .helpers import NOW, listening


def _contact(db: Database, **values: object) -> int:
    with db.transaction() as s:
        return svc.create_record(
            session=s, model="contact", values={"name": "Ann", **values}, now=NOW
        )


def _count(db: Database, orm: type) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(orm)) or 0)


def test_create_contact_normalises_email_and_phones(db: Database) -> None:
    cid = _contact(
        db, email="Ann.Smith@EXAMPLE.com", phone="06 12 34 56 78", mobile="+1 212 555 0123",
        country_code="fr",
    )  # fmt: skip
    with db.read() as s:
        c = s.get(m.Contact, cid)
        assert c is not None
        assert c.email == "ann.smith@example.com"
        assert c.country_code == "FR"
        assert (c.phone, c.phone_valid) == ("+33612345678", True)
        assert (c.mobile, c.mobile_valid) == ("+12125550123", True)
        assert c.created_at == NOW and c.updated_at == NOW and c.active is True


def test_idn_email_stored_in_unicode_form(db: Database) -> None:
    cid = _contact(db, email="Info@XN--BCHER-KVA.de")
    with db.read() as s:
        assert s.get(m.Contact, cid).email == "info@bücher.de"  # type: ignore[union-attr]


def test_invalid_phone_is_kept_and_flagged_not_refused(db: Database) -> None:
    cid = _contact(db, phone="12 34", country_code="FR")
    with db.read() as s:
        c = s.get(m.Contact, cid)
        assert c is not None and (c.phone, c.phone_valid) == ("12 34", False)


def test_changing_the_country_revalidates_a_number_entered_without_prefix(db: Database) -> None:
    cid = _contact(db, phone="020 7946 0958")
    with db.transaction() as s:
        assert s.get(m.Contact, cid).phone_valid is False  # type: ignore[union-attr]
        svc.update_record(
            session=s, model="contact", record_id=cid, values={"country_code": "GB"},
            now=NOW + timedelta(hours=1),
        )  # fmt: skip
    with db.read() as s:
        c = s.get(m.Contact, cid)
        assert c is not None
        assert (c.phone, c.phone_valid) == ("+442079460958", True)
        assert c.updated_at == NOW + timedelta(hours=1) and c.created_at == NOW


def test_invalid_email_refused_naming_the_field_and_nothing_written(db: Database) -> None:
    with pytest.raises(ValidationError) as info, db.transaction() as s:
        svc.create_record(
            session=s, model="contact", values={"name": "X", "email": "x@@y", "tags": ["New"]},
            now=NOW,
        )  # fmt: skip
    assert info.value.field == "email"
    assert _count(db, m.Contact) == 0
    assert _count(db, m.Tag) == 0


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "X", "favourite_colour": "blue"}, "favourite_colour"),
        ({"name": 42}, "name"),
        ({"email": "a@example.com"}, "name"),
        ({"name": "X", "active": "yes"}, "active"),
        ({"name": "X", "country_code": "France"}, "country_code"),
        ({"name": "X", "salesperson": 999}, "salesperson"),
        ({"name": "X", "id": 5}, "id"),
        ({"name": "X" * 201}, "name"),
    ],
)
def test_bad_contact_values_are_refused_naming_the_field(
    db: Database, values: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info, db.transaction() as s:
        svc.create_record(session=s, model="contact", values=values, now=NOW)
    assert info.value.field == field
    assert field in info.value.message
    assert _count(db, m.Contact) == 0


def test_lead_selection_and_range_rules(db: Database) -> None:
    with db.transaction() as s:
        lid = svc.create_record(
            session=s, model="lead",
            values={"name": "Deal", "stage": "Qualified", "type": "opportunity", "priority": 3},
            now=NOW,
        )  # fmt: skip
    for values, field in (({"stage": "Maybe"}, "stage"), ({"priority": 4}, "priority"),
                          ({"probability": 120.0}, "probability"), ({"priority": True}, "priority")):  # fmt: skip
        with pytest.raises(ValidationError) as info, db.transaction() as s:
            svc.update_record(session=s, model="lead", record_id=lid, values=values, now=NOW)
        assert info.value.field == field
    with db.read() as s:
        lead = s.get(m.Lead, lid)
        assert lead is not None and (lead.stage, lead.priority) == ("Qualified", 3)


def test_duplicate_unique_value_is_a_conflict_naming_the_field(db: Database) -> None:
    with db.transaction() as s:
        svc.create_record(
            session=s, model="user", values={"login": "ann@example.com", "name": "Ann"}, now=NOW
        )
    with pytest.raises(Conflict) as info, db.transaction() as s:
        svc.create_record(
            session=s, model="user", values={"login": "ann@example.com", "name": "Other"}, now=NOW
        )
    assert info.value.field == "login"
    assert _count(db, m.User) == 1


def test_tags_by_name_are_get_or_create_and_salesperson_by_id(db: Database) -> None:
    with db.transaction() as s:
        uid = svc.create_record(
            session=s, model="user", values={"login": "sam", "name": "Sam", "role": "marketer"},
            now=NOW,
        )  # fmt: skip
        vip = tags.get_or_create_tags(session=s, names=["VIP"])[0]
        cid = svc.create_record(
            session=s, model="contact",
            values={"name": "Ann", "tags": ["vip", "Hot", "Hot"], "salesperson": uid}, now=NOW,
        )  # fmt: skip
    with db.read() as s:
        c = s.get(m.Contact, cid)
        assert c is not None
        assert sorted(t.name for t in c.tags) == ["Hot", "VIP"]
        assert vip in {t.id for t in c.tags}
        assert c.salesperson_id == uid
    assert _count(db, m.Tag) == 2


def test_update_archive_unarchive_delete(db: Database) -> None:
    cid = _contact(db, email="a@example.com", tags=["VIP"])
    later = NOW + timedelta(days=1)
    with db.transaction() as s:
        svc.update_record(
            session=s, model="contact", record_id=cid,
            values={"name": "Ann B", "tags": [], "email": None}, now=later,
        )  # fmt: skip
        svc.archive_records(session=s, model="contact", ids=[cid], now=later)
    with db.read() as s:
        c = s.get(m.Contact, cid)
        assert c is not None
        assert (c.name, c.email, c.tags, c.active) == ("Ann B", None, [], False)
    with db.transaction() as s:
        svc.unarchive_records(session=s, model="contact", ids=[cid], now=later)
    with db.read() as s:
        assert s.get(m.Contact, cid).active is True  # type: ignore[union-attr]
    with db.transaction() as s:
        svc.delete_records(session=s, model="contact", ids=[cid], now=later)
    assert _count(db, m.Contact) == 0
    with pytest.raises(NotFound), db.transaction() as s:
        svc.update_record(session=s, model="contact", record_id=cid, values={"name": "Z"}, now=NOW)


def test_models_without_active_cannot_be_archived(db: Database) -> None:
    with db.transaction() as s:
        tid = tags.get_or_create_tags(session=s, names=["VIP"])[0]
    with pytest.raises(ValidationError) as info, db.transaction() as s:
        svc.archive_records(session=s, model="tag", ids=[tid], now=NOW)
    assert info.value.field == "active"


def test_event_registration_needs_an_event(db: Database) -> None:
    with pytest.raises(ValidationError) as info, db.transaction() as s:
        svc.create_record(session=s, model="event_registration", values={"name": "Ann"}, now=NOW)
    assert info.value.field == "event"
    with db.transaction() as s:
        eid = svc.create_record(
            session=s, model="event", values={"name": "Expo", "date_begin": NOW + timedelta(days=9)},
            now=NOW,
        )  # fmt: skip
        rid = svc.create_record(
            session=s, model="event_registration",
            values={"name": "Ann", "event": eid, "email": "ANN@example.com", "state": "open"},
            now=NOW,
        )  # fmt: skip
    with db.read() as s:
        reg = s.get(m.EventRegistration, rid)
        assert reg is not None and (reg.event_id, reg.email) == (eid, "ann@example.com")


def test_records_changed_and_deleted_are_notified_with_the_ids(db: Database) -> None:
    with listening() as heard:
        first = _contact(db)
        second = _contact(db)
        with db.transaction() as s:
            svc.update_record(session=s, model="contact", record_id=first, values={"city": "Lyon"}, now=NOW)  # fmt: skip
            svc.archive_records(session=s, model="contact", ids=[second], now=NOW)
            tags.get_or_create_tags(session=s, names=["Not a target"])
            svc.delete_records(session=s, model="contact", ids=[first], now=NOW)
    assert heard.changed_ids("contact") == [first, second, first, second]
    assert heard.deleted_ids("contact") == [first]
    assert [model for model, _ in heard.changed] == ["contact"] * 4


def test_a_failed_listener_rolls_back_the_record(db: Database) -> None:
    from nurture.records import events

    def refuse(*_args: object) -> None:
        raise RuntimeError("engine down")

    events.on_changed(refuse)
    try:
        with pytest.raises(RuntimeError):
            _contact(db)
    finally:
        events._changed.remove(refuse)
    assert _count(db, m.Contact) == 0


def test_a_newly_registered_model_works_with_the_generic_services(db: Database) -> None:
    conference = model_from_orm(
        "conference", m.Event, label="Conference", relations={}, labels={"name": "Title"}
    )
    with db.transaction() as s:
        rid = svc.create_record(
            session=s, model=conference, values={"name": "PyCon", "date_begin": NOW}, now=NOW
        )
        svc.update_record(session=s, model=conference, record_id=rid, values={"name": "EuroPython"}, now=NOW)  # fmt: skip
        with pytest.raises(ValidationError) as info:
            svc.create_record(session=s, model=conference, values={"name": "X"}, now=NOW)
        assert info.value.field == "date_begin"
    with db.read() as s:
        assert s.get(m.Event, rid).name == "EuroPython"  # type: ignore[union-attr]


def test_subscriptions_never_duplicate_and_record_opt_out(db: Database) -> None:
    later, latest = NOW + timedelta(days=1), NOW + timedelta(days=2)
    with db.transaction() as s:
        mc = svc.create_record(session=s, model="mailing_contact", values={"name": "Ann", "email": "a@example.com"}, now=NOW)  # fmt: skip
        news = mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=NOW)
        assert mailing_lists.get_or_create_mailing_list(session=s, name="Newsletter", now=NOW) == news
        sub = mailing_lists.subscribe(session=s, contact_id=mc, list_id=news, now=NOW)
        assert mailing_lists.subscribe(session=s, contact_id=mc, list_id=news, now=later) == sub
        assert mailing_lists.opt_out(session=s, contact_id=mc, list_id=news, now=later) == sub
        # Subscribing again does not silently undo an opt-out.
        mailing_lists.subscribe(session=s, contact_id=mc, list_id=news, now=latest)
        assert mailing_lists.is_opted_out(session=s, contact_id=mc, list_id=news)
    with db.read() as s:
        row = s.get(m.MailingSubscription, sub)
        assert row is not None and (row.opted_out, row.unsubscribed_at) == (True, later)
    with db.transaction() as s:
        assert mailing_lists.resubscribe(session=s, contact_id=mc, list_id=news, now=latest) == sub
    with db.read() as s:
        row = s.get(m.MailingSubscription, sub)
        assert row is not None
        assert (row.opted_out, row.unsubscribed_at, row.subscribed_at) == (False, None, latest)
    assert _count(db, m.MailingSubscription) == 1


def test_opting_out_of_a_list_never_joined_is_remembered(db: Database) -> None:
    with db.transaction() as s:
        mc = svc.create_record(session=s, model="mailing_contact", values={"name": "Bo"}, now=NOW)
        news = mailing_lists.get_or_create_mailing_list(session=s, name="News", now=NOW)
        mailing_lists.opt_out(session=s, contact_id=mc, list_id=news, now=NOW)
        assert mailing_lists.is_opted_out(session=s, contact_id=mc, list_id=news)
        with pytest.raises(NotFound):
            mailing_lists.subscribe(session=s, contact_id=mc + 100, list_id=news, now=NOW)


def test_email_blacklist_is_normalised_idempotent_and_reversible(db: Database) -> None:
    with db.transaction() as s:
        first = blacklists.blacklist_email(
            session=s, email="Spam.Me@Example.COM", now=NOW, reason="bounce"
        )
        again = blacklists.blacklist_email(session=s, email="spam.me@example.com", now=NOW)
        assert first == again
        assert blacklists.is_email_blacklisted(session=s, email="SPAM.ME@example.com")
        assert not blacklists.is_email_blacklisted(session=s, email="other@example.com")
        assert blacklists.blacklisted_emails(session=s, emails=["spam.me@example.com", "x@example.com"]) == {"spam.me@example.com"}  # fmt: skip
    with db.read() as s:
        row = s.scalar(select(m.EmailBlacklist))
        assert row is not None and (row.email, row.reason) == ("spam.me@example.com", "bounce")
    with db.transaction() as s:
        assert blacklists.unblacklist_email(session=s, email="spam.me@EXAMPLE.com", now=NOW)
        assert not blacklists.unblacklist_email(session=s, email="spam.me@example.com", now=NOW)
        assert not blacklists.is_email_blacklisted(session=s, email="spam.me@example.com")
    with pytest.raises(ValidationError) as info, db.transaction() as s:
        blacklists.blacklist_email(session=s, email="not an email", now=NOW)
    assert info.value.field == "email"


def test_phone_blacklist_matches_any_spelling_of_the_number(db: Database) -> None:
    with db.transaction() as s:
        blacklists.blacklist_phone(session=s, number="06 12 34 56 78", country_code="FR", now=NOW)
        assert blacklists.is_phone_blacklisted(session=s, number="+33 6 12 34 56 78")
        assert blacklists.is_phone_blacklisted(session=s, number="0612345678", country_code="FR")
        assert not blacklists.is_phone_blacklisted(session=s, number="+33 6 12 34 56 79")
        assert blacklists.unblacklist_phone(session=s, number="+33612345678", now=NOW)
        assert not blacklists.is_phone_blacklisted(session=s, number="+33612345678")


def test_crm_activity_on_a_record(db: Database) -> None:
    cid = _contact(db)
    with db.transaction() as s:
        uid = svc.create_record(session=s, model="user", values={"login": "u", "name": "U"}, now=NOW)  # fmt: skip
        aid = crm_activities.schedule_activity(
            session=s, res_model="contact", res_id=cid, activity_type="call",
            summary="Call back", due_date=NOW + timedelta(days=2), user_id=uid, now=NOW,
        )  # fmt: skip
        crm_activities.mark_activity_done(session=s, activity_id=aid, now=NOW)
        with pytest.raises(NotFound):
            crm_activities.schedule_activity(
                session=s, res_model="contact", res_id=cid + 1, activity_type="call",
                summary="x", due_date=NOW, now=NOW,
            )  # fmt: skip
        with pytest.raises(ValidationError) as info:
            crm_activities.schedule_activity(
                session=s, res_model="contact", res_id=cid, activity_type="lunch",
                summary="x", due_date=NOW, now=NOW,
            )  # fmt: skip
        assert info.value.field == "activity_type"
    with db.read() as s:
        act = s.get(m.CrmActivity, aid)
        assert act is not None and (act.done, act.user_id, act.res_model) == (True, uid, "contact")
    with db.transaction() as s:
        svc.delete_records(session=s, model="contact", ids=[cid], now=NOW)
    assert _count(db, m.CrmActivity) == 0


def test_record_counts(db: Database) -> None:
    _contact(db)
    with db.read() as s:
        counts = svc.record_counts(session=s)
    assert counts["contact"] == 1 and counts["lead"] == 0
