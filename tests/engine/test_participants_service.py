"""Participants of a campaign as the UI lists them (nurture.engine.participants): keyset
pages, filters, the timeline, Cancel on a scheduled step and Remove, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.engine import participants as ep
from nurture.engine.models import Participant
from nurture.errors import Conflict
from nurture.reporting.timeline import timeline
from nurture.worker.loop import tick

from .helpers import T0, add, add_contacts, make_campaign, tag_action


def test_participant_list_timeline_cancel_and_remove(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": f"q{i}@x.io", "name": f"Q{i}"} for i in range(5)])
        cid = make_campaign(s)
        first = add(s, cid, "Tag", server_action_id=tag_action(s))
        later = add(s, cid, "Later", server_action_id=tag_action(s, "W"), trigger_type="activity",
                    parent_id=first, interval_number=1, interval_unit="days")
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    tick(db, now=T0)
    with db.read() as s:
        page = ep.list_participants(s, campaign_id=cid, limit=2)
        assert page.total == 5 and not page.capped and len(page.rows) == 2
        assert page.rows[0].id > page.rows[1].id and page.next_after == page.rows[1].id
        row = page.rows[0]
        assert row.record_name.startswith("Q") and row.record_email
        assert (row.steps_done, row.steps_scheduled, row.last_activity) == (1, 1, "Tag")
        rest = ep.list_participants(s, campaign_id=cid, after=page.next_after, limit=10)
        assert len(rest.rows) == 3 and rest.next_after is None
        by_activity = ep.list_participants(s, campaign_id=cid, activity_id=later, trace_state="scheduled")
        assert by_activity.total == 5
        pid = row.id
        steps = timeline(s, participant_id=pid)
        assert [(x.activity_name, x.state) for x in steps] == [("Tag", "processed"), ("Later", "scheduled")]
        scheduled = steps[1].trace_id
    with db.transaction() as s:
        trace = ep.cancel_trace(s, trace_id=scheduled, now=T0 + timedelta(hours=1))
        assert trace.state == "canceled" and trace.state_message == ep.MSG_CANCELED_BY_HAND
        assert s.get(Participant, pid).state == "completed"  # type: ignore[union-attr]
    with db.transaction() as s:
        with pytest.raises(Conflict):
            ep.cancel_trace(s, trace_id=scheduled, now=T0)
    with db.read() as s:
        other = ep.list_participants(s, campaign_id=cid, state="running").rows[0].id
    with db.transaction() as s:
        removed = ep.remove_participant(s, participant_id=other, now=T0 + timedelta(hours=2))
        assert removed.state == "removed"
    with db.read() as s:
        steps = timeline(s, participant_id=other)
        assert steps[-1].state == "canceled" and steps[-1].state_message == ep.MSG_REMOVED_BY_HAND
        assert ep.list_participants(s, campaign_id=cid, state="removed").total == 1
        assert ep.list_participants(s, campaign_id=cid, event="opened").total == 0
