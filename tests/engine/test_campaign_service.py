"""Campaign and activity services: validation, tree rules, states, duplicate, delete."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from nurture.actions import service as action_service
from nurture.campaigns import activities as activity_service
from nurture.campaigns import campaigns as cs
from nurture.campaigns.timing import add_interval
from nurture.db import Database
from nurture.engine import campaign_changes
from nurture.errors import Conflict, ValidationError
from nurture.worker.loop import tick

from .helpers import T0, add, add_contacts, make_campaign, participants, states, tag_action, traces


def test_add_interval_calendar_arithmetic() -> None:
    assert add_interval(datetime(2026, 1, 31, 8), 1, "months") == datetime(2026, 2, 28, 8)
    assert add_interval(datetime(2028, 1, 31), 1, "months") == datetime(2028, 2, 29)
    assert add_interval(datetime(2026, 11, 30), 3, "months") == datetime(2027, 2, 28)
    assert add_interval(datetime(2026, 3, 31), -1, "months") == datetime(2026, 2, 28)
    assert add_interval(datetime(2026, 1, 1), 2, "weeks") == datetime(2026, 1, 15)
    assert add_interval(datetime(2026, 1, 1), 0, "hours") == datetime(2026, 1, 1)


def test_campaign_defaults_and_validation(db: Database) -> None:
    with db.transaction() as s:
        c = cs.create_campaign(session=s, now=T0, name="Welcome", model="contact")
        assert (c.state, c.unicity_field, c.domain, c.include_archived) == ("draft", "email", "[]", False)
        lead = cs.create_campaign(session=s, now=T0, name="L", model="lead", unicity_field="contact")
        assert lead.unicity_field == "contact"
    cases = [
        ({"model": "nope"}, "model"),
        ({"name": " "}, "name"),
        ({"unicity_field": "tags"}, "unicity_field"),
        ({"unicity_field": "missing"}, "unicity_field"),
        ({"domain": [["missing", "=", 1]]}, "missing"),  # invalid_filter names the path
        ({"responsible_id": 999}, "responsible_id"),
    ]
    for changes, field in cases:
        kwargs = {"name": "X", "model": "contact", **changes}
        with db.transaction() as s, pytest.raises(ValidationError) as info:
            cs.create_campaign(session=s, now=T0, **kwargs)
        assert info.value.field == field, changes


def test_activity_tree_rules(db: Database) -> None:
    with db.transaction() as s:
        cid = make_campaign(s)
        other = make_campaign(s, name="Other")
        mail = add(s, cid, "Mail", activity_type="email")
        sms = add(s, cid, "SMS", activity_type="sms")
        act = add(s, cid, "Act", server_action_id=tag_action(s), trigger_type="activity", parent_id=mail)
        foreign = add(s, other, "Foreign", activity_type="email")
    bad = [
        ({"trigger_type": "begin", "parent_id": mail}, "parent_id"),
        ({"trigger_type": "activity"}, "parent_id"),
        ({"trigger_type": "mail_open", "parent_id": sms}, "parent_id"),
        ({"trigger_type": "sms_click", "parent_id": mail}, "parent_id"),
        ({"trigger_type": "mail_click", "parent_id": act}, "parent_id"),
        ({"trigger_type": "mail_open", "parent_id": foreign}, "parent_id"),
        ({"trigger_type": "nope"}, "trigger_type"),
        ({"interval_number": -1}, "interval_number"),
        ({"interval_number": 1.5}, "interval_number"),
        ({"interval_unit": "years"}, "interval_unit"),
        ({"expiry_number": -2}, "expiry_number"),
        ({"activity_type": "fax"}, "activity_type"),
        ({"domain": [["nope", "=", 1]]}, "nope"),
    ]
    for changes, field in bad:
        with db.transaction() as s, pytest.raises(ValidationError) as info:
            add(s, cid, "Bad", **changes)
        assert info.value.field == field, changes
    with db.transaction() as s:
        add(s, cid, "Open", trigger_type="mail_open", parent_id=mail)
        add(s, cid, "Sms click", trigger_type="sms_not_click", parent_id=sms, interval_number=2)
        # no cycles: an activity cannot hang below its own descendant
        with pytest.raises(ValidationError) as info:
            campaign_changes.edit_activity(session=s, now=T0, activity_id=mail, trigger_type="activity", parent_id=act)
        assert info.value.field == "parent_id"
    with db.transaction() as s, pytest.raises(ValidationError) as info:
        # the email parent cannot become an SMS while it has mail_* children
        campaign_changes.edit_activity(session=s, now=T0, activity_id=mail, activity_type="sms")
    assert info.value.field == "activity_type"


def test_server_action_validation(db: Database) -> None:
    with db.transaction() as s:
        ok = action_service.create_server_action(session=s, now=T0, name="Prio", model="lead", values={"priority": 3})
        assert ok.id
    bad = [
        ({"values": {"nope": 1}}, "set.nope"),
        ({"values": {"priority": "high"}}, "set.priority"),
        ({"values": {"priority": 7}}, "set.priority"),
        ({"values": {"id": 7}}, "set.id"),
        ({"values": {"stage": "Nowhere"}}, "set.stage"),
        ({"values": {}}, "set"),
    ]
    for changes, field in bad:
        with db.transaction() as s, pytest.raises(ValidationError) as info:
            action_service.create_server_action(session=s, now=T0, name="X", model="lead", **changes)
        assert info.value.field == field, changes
    with db.transaction() as s:
        cid = make_campaign(s)
        lead_action = action_service.create_server_action(
            session=s, now=T0, name="Prio", model="lead", values={"priority": 1}
        ).id
        with pytest.raises(ValidationError) as info:
            add(s, cid, "Wrong model", server_action_id=lead_action)
        assert info.value.field == "server_action_id"


def test_states_and_start_requires_an_activity(db: Database) -> None:
    with db.transaction() as s:
        cid = make_campaign(s)
    with db.transaction() as s, pytest.raises(ValidationError) as info:
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    assert info.value.field == "activities"
    with db.transaction() as s:
        add(s, cid, "One", server_action_id=tag_action(s))
        assert cs.start_campaign(session=s, now=T0, campaign_id=cid).state == "running"
        with pytest.raises(Conflict):
            cs.start_campaign(session=s, now=T0, campaign_id=cid)
        assert cs.stop_campaign(session=s, now=T0, campaign_id=cid).state == "stopped"
        with pytest.raises(Conflict):
            cs.stop_campaign(session=s, now=T0, campaign_id=cid)
        assert cs.start_campaign(session=s, now=T0, campaign_id=cid).state == "running"


def test_duplicate_copies_the_tree(db: Database) -> None:
    with db.transaction() as s:
        cid = make_campaign(s, domain=[["country_code", "=", "FR"]])
        mail = add(s, cid, "Mail", activity_type="email", interval_number=1, interval_unit="days")
        add(s, cid, "Click", server_action_id=tag_action(s), trigger_type="mail_click", parent_id=mail)
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
        copy = cs.duplicate_campaign(session=s, now=T0, campaign_id=cid)
        assert (copy.state, copy.name, copy.domain) == ("draft", "Camp (copy)", '[["country_code", "=", "FR"]]')
        new_mail, new_click = copy.activities
        assert new_mail.id != mail and new_click.parent_id == new_mail.id
        assert (new_mail.interval_number, new_mail.interval_unit) == (1, "days")


def test_delete_activity_deletes_descendants_and_completes_participants(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        first = add(s, cid, "First", server_action_id=tag_action(s))
        second = add(s, cid, "Second", server_action_id=tag_action(s), trigger_type="activity",
                     parent_id=first, interval_number=1, interval_unit="days")
        add(s, cid, "Third", server_action_id=tag_action(s), trigger_type="activity", parent_id=second)
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    assert states(db, second) == ["scheduled"]
    with db.transaction() as s:
        campaign_changes.delete_activity(session=s, now=T0 + timedelta(hours=1), activity_id=second)
        assert [a.name for a in cs.get_campaign(session=s, campaign_id=cid).activities] == ["First"]
    assert traces(db, activity_id=second) == []
    assert participants(db, cid)[0].state == "completed"
    with db.transaction() as s:
        campaign_changes.delete_campaign(session=s, now=T0, campaign_id=cid)
    assert participants(db, cid) == []


def test_applied_filter_count_is_live(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io", "country_code": "FR", "city": "Paris"},
                         {"email": "b@x.io", "country_code": "FR"},
                         {"email": "c@x.io", "country_code": "BE", "city": "Paris"}])
        cid = make_campaign(s, domain=[["country_code", "=", "FR"]])
        act = add(s, cid, "Paris", server_action_id=tag_action(s), domain=[["city", "=", "Paris"]])
        assert cs.campaign_count(session=s, campaign_id=cid, now=T0) == 2
        assert activity_service.applied_count(session=s, activity_id=act, now=T0) == 1


def test_tree_shape_is_frozen_once_an_activity_has_traces(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        first = add(s, cid, "First", server_action_id=tag_action(s))
        second = add(s, cid, "Second", server_action_id=tag_action(s))
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    with db.transaction() as s, pytest.raises(Conflict) as info:
        campaign_changes.edit_activity(session=s, now=T0, activity_id=second, trigger_type="activity", parent_id=first)
    assert info.value.field == "trigger_type"
    with db.transaction() as s:  # name, interval and filter stay editable
        campaign_changes.edit_activity(session=s, now=T0, activity_id=second, name="Renamed", interval_number=2)
    with db.transaction() as s, pytest.raises(Conflict) as info:
        campaign_changes.edit_campaign(session=s, now=T0, campaign_id=cid, unicity_field="id")
    assert info.value.field == "unicity_field"
    with db.transaction() as s:  # the filter stays editable; enrolment follows it
        campaign_changes.edit_campaign(session=s, now=T0, campaign_id=cid, domain=[["email", "!=", False]])
