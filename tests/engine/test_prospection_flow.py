"""The "Commercial prospection" workflow driven by tick across weeks of simulated time."""

from __future__ import annotations

from datetime import timedelta

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine.events import record_event
from nurture.worker.loop import tick

from .conftest import FakeChannel
from .helpers import T0, add, add_contacts, make_campaign, participants, tag_action, traces

D = timedelta(days=1)


def test_prospection_branches_follow_each_recipient(db: Database, channel: FakeChannel) -> None:
    with db.transaction() as s:
        clicker, opener, silent = add_contacts(
            s, [{"email": "click@x.io"}, {"email": "open@x.io"}, {"email": "silent@x.io"}]
        )
        cid = make_campaign(s)
        catalog = add(s, cid, "Free catalog", activity_type="email")
        call = add(s, cid, "Call", server_action_id=tag_action(s, "Call"), trigger_type="mail_click",
                   parent_id=catalog)
        reminder = add(s, cid, "Reminder", activity_type="email", trigger_type="mail_not_open",
                       parent_id=catalog, interval_number=7, interval_unit="days")
        opened = add(s, cid, "Opened", server_action_id=tag_action(s, "Warm"), trigger_type="mail_open",
                     parent_id=catalog)
        offer = add(s, cid, "Special offer", activity_type="email", trigger_type="mail_not_click",
                    parent_id=catalog, interval_number=3, interval_unit="days")
        cs.start_campaign(session=s, now=T0, campaign_id=cid)

    tick(db, now=T0)
    sent = {t.res_id: t.id for t in traces(db, activity_id=catalog)}
    with db.transaction() as s:
        record_event(s, trace_id=sent[clicker], event="click", now=T0 + D)
        record_event(s, trace_id=sent[opener], event="open", now=T0 + D)
    for day in range(1, 40):
        tick(db, now=T0 + day * D)

    def outcome(activity: int) -> dict[int, str]:
        return {t.res_id: t.state for t in traces(db, activity_id=activity)}

    assert outcome(call) == {clicker: "processed", opener: "canceled", silent: "canceled"}
    assert outcome(reminder) == {clicker: "canceled", opener: "canceled", silent: "processed"}
    assert outcome(opened) == {clicker: "processed", opener: "processed", silent: "canceled"}
    assert outcome(offer) == {clicker: "canceled", opener: "processed", silent: "processed"}
    (silent_reminder,) = [t for t in traces(db, activity_id=reminder) if t.res_id == silent]
    assert silent_reminder.executed_at == T0 + 7 * D
    assert {p.state for p in participants(db, cid)} == {"completed"}
