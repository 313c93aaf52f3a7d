"""One scenario per trigger type, both outcomes of every "not" trigger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine.events import record_event
from nurture.worker.loop import tick

from .conftest import FakeChannel
from .helpers import T0, add, add_contacts, make_campaign, participants, states, tag_action, traces

H = timedelta(hours=1)


def _setup(db: Database, parent_type: str, trigger: str, interval: int = 2) -> tuple[int, int, int]:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        parent = add(s, cid, "Message", activity_type=parent_type)
        child = add(
            s, cid, "Follow-up", server_action_id=tag_action(s), trigger_type=trigger,
            parent_id=parent, interval_number=interval, interval_unit="hours",
        )
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    assert states(db, parent) == ["processed"]
    return cid, parent, child


def test_activity_trigger_runs_interval_after_parent(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        first = add(s, cid, "First", server_action_id=tag_action(s, "A"))
        second = add(s, cid, "Second", server_action_id=tag_action(s, "B"),
                     trigger_type="activity", parent_id=first, interval_number=1, interval_unit="weeks")
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    (child,) = traces(db, activity_id=second)
    assert child.schedule_date == T0 + timedelta(weeks=1)
    tick(db, now=T0 + timedelta(days=6))
    assert states(db, second) == ["scheduled"]
    tick(db, now=T0 + timedelta(weeks=1))
    assert states(db, second) == ["processed"]
    assert participants(db, cid)[0].state == "completed"


@pytest.mark.parametrize(
    ("parent_type", "trigger", "event"),
    [
        ("email", "mail_open", "open"),
        ("email", "mail_click", "click"),
        ("email", "mail_reply", "reply"),
        ("email", "mail_bounce", "bounce"),
        ("sms", "sms_click", "sms_click"),
        ("sms", "sms_bounce", "sms_bounce"),
    ],
)
def test_event_trigger_waits_then_runs_interval_after_event(
    db: Database, channel: FakeChannel, parent_type: str, trigger: str, event: str
) -> None:
    cid, parent, child = _setup(db, parent_type, trigger)
    (waiting,) = traces(db, activity_id=child)
    assert waiting.state == "scheduled" and waiting.schedule_date is None
    tick(db, now=T0 + timedelta(days=3))
    assert states(db, child) == ["scheduled"]
    (parent_trace,) = traces(db, activity_id=parent)
    when = T0 + timedelta(days=3)
    with db.transaction() as s:
        assert record_event(s, trace_id=parent_trace.id, event=event, now=when) == 1
    (dated,) = traces(db, activity_id=child)
    assert dated.schedule_date == when + 2 * H
    tick(db, now=when + H)
    assert states(db, child) == ["scheduled"]
    tick(db, now=when + 2 * H)
    assert states(db, child) == ["processed"]
    assert participants(db, cid)[0].state == "completed"


@pytest.mark.parametrize(
    ("parent_type", "trigger", "event", "message"),
    [
        ("email", "mail_not_open", "open", "Parent activity mail opened"),
        ("email", "mail_not_click", "click", "Parent activity mail clicked"),
        ("email", "mail_not_reply", "reply", "Parent activity mail replied"),
        ("sms", "sms_not_click", "sms_click", "Parent activity SMS clicked"),
    ],
)
def test_not_trigger_canceled_when_event_happens_in_time(
    db: Database, channel: FakeChannel, parent_type: str, trigger: str, event: str, message: str
) -> None:
    cid, parent, child = _setup(db, parent_type, trigger)
    (dated,) = traces(db, activity_id=child)
    assert dated.schedule_date == T0 + 2 * H
    (parent_trace,) = traces(db, activity_id=parent)
    with db.transaction() as s:
        record_event(s, trace_id=parent_trace.id, event=event, now=T0 + H)
    (canceled,) = traces(db, activity_id=child)
    assert (canceled.state, canceled.state_message) == ("canceled", message)
    assert participants(db, cid)[0].state == "completed"


@pytest.mark.parametrize(
    ("parent_type", "trigger"),
    [
        ("email", "mail_not_open"),
        ("email", "mail_not_click"),
        ("email", "mail_not_reply"),
        ("sms", "sms_not_click"),
    ],
)
def test_not_trigger_runs_when_no_event_within_interval(
    db: Database, channel: FakeChannel, parent_type: str, trigger: str
) -> None:
    cid, parent, child = _setup(db, parent_type, trigger)
    tick(db, now=T0 + 2 * H)
    assert states(db, child) == ["processed"]
    (parent_trace,) = traces(db, activity_id=parent)
    # a late event changes nothing
    event = "sms_click" if parent_type == "sms" else "click"
    with db.transaction() as s:
        record_event(s, trace_id=parent_trace.id, event=event, now=T0 + 3 * H)
    assert states(db, child) == ["processed"]


def test_not_trigger_rechecked_at_execution(db: Database, channel: FakeChannel) -> None:
    """An open stamped without the event service (e.g. by a channel) still cancels not_open."""
    from sqlalchemy import update

    from nurture.engine.models import Trace

    _, parent, child = _setup(db, "email", "mail_not_open")
    with db.transaction() as s:
        s.execute(update(Trace).where(Trace.activity_id == parent).values(opened_at=T0 + H))
    tick(db, now=T0 + 2 * H)
    (canceled,) = traces(db, activity_id=child)
    assert (canceled.state, canceled.state_message) == ("canceled", "Parent activity mail opened")


def test_click_implies_open_and_reply_implies_open(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email")
        opened = add(s, cid, "Opened", server_action_id=tag_action(s), trigger_type="mail_open", parent_id=mail)
        not_opened = add(s, cid, "Not opened", server_action_id=tag_action(s), trigger_type="mail_not_open",
                         parent_id=mail, interval_number=1, interval_unit="days")
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    (mt,) = traces(db, activity_id=mail)
    with db.transaction() as s:
        record_event(s, trace_id=mt.id, event="click", now=T0 + H)
    (o,) = traces(db, activity_id=opened)
    assert o.schedule_date == T0 + H
    assert states(db, not_opened) == ["canceled"]
    (mt,) = traces(db, activity_id=mail)
    assert mt.opened_at == T0 + H and mt.clicked_at == T0 + H
    # repeated events change nothing
    with db.transaction() as s:
        assert record_event(s, trace_id=mt.id, event="click", now=T0 + 2 * H) == 0
        assert record_event(s, trace_id=mt.id, event="reply", now=T0 + 2 * H) == 0
    (mt,) = traces(db, activity_id=mail)
    assert mt.opened_at == T0 + H and mt.replied_at == T0 + 2 * H
    (o,) = traces(db, activity_id=opened)
    assert o.schedule_date == T0 + H


def test_bounce_cancels_every_child_but_bounce_children(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email")
        kids = {
            trig: add(s, cid, trig, server_action_id=tag_action(s), trigger_type=trig, parent_id=mail,
                      interval_number=1, interval_unit="days")
            for trig in ("activity", "mail_open", "mail_not_click", "mail_bounce")
        }
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    (mt,) = traces(db, activity_id=mail)
    with db.transaction() as s:
        record_event(s, trace_id=mt.id, event="bounce", now=T0 + H)
    for trig in ("activity", "mail_open", "mail_not_click"):
        (t,) = traces(db, activity_id=kids[trig])
        assert (t.state, t.state_message) == ("canceled", "Parent activity mail bounced")
    (b,) = traces(db, activity_id=kids["mail_bounce"])
    assert b.state == "scheduled" and b.schedule_date == T0 + H + timedelta(days=1)
    tick(db, now=T0 + timedelta(days=2))
    assert states(db, kids["mail_bounce"]) == ["processed"]
    assert participants(db, cid)[0].state == "completed"


def test_wrong_channel_event_is_refused(db: Database, channel: FakeChannel) -> None:
    from nurture.errors import ValidationError

    _, parent, _ = _setup(db, "email", "mail_open")
    (mt,) = traces(db, activity_id=parent)
    with db.transaction() as s, pytest.raises(ValidationError):
        record_event(s, trace_id=mt.id, event="sms_click", now=T0)


def test_failed_send_errors_and_makes_no_children(db: Database, channel: FakeChannel) -> None:
    from nurture.engine.executors import Outcome

    with db.transaction() as s:
        (rid,) = add_contacts(s, [{"email": "a@x.io"}])
        cid = make_campaign(s)
        mail = add(s, cid, "Mail", activity_type="email")
        child = add(s, cid, "Next", server_action_id=tag_action(s), trigger_type="activity", parent_id=mail)
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    channel.fail[rid] = Outcome("error", "Email failed")
    tick(db, now=T0)
    (mt,) = traces(db, activity_id=mail)
    assert (mt.state, mt.state_message) == ("error", "Email failed")
    assert traces(db, activity_id=child) == []
    assert participants(db, cid)[0].state == "completed"
