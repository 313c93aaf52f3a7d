from __future__ import annotations

from datetime import timedelta

from nurture.campaigns import campaigns as cs
from nurture.db import Database
from nurture.records.models import Contact
from nurture.worker.loop import tick

from .helpers import T0, add, add_contacts, make_campaign, participants, states, tag_action


def test_begin_action_runs_at_interval_and_completes(db: Database) -> None:
    with db.transaction() as s:
        add_contacts(s, [{"email": "a@x.io"}, {"email": "b@x.io"}])
        cid = make_campaign(s)
        act = add(s, cid, "Tag", server_action_id=tag_action(s), interval_number=1, interval_unit="days")
        cs.start_campaign(session=s, now=T0, campaign_id=cid)
    # the start enrolled at once: the traces are already scheduled
    assert states(db, act) == ["scheduled", "scheduled"]
    result = tick(db, now=T0)
    assert result.enrolled == 0
    assert states(db, act) == ["scheduled", "scheduled"]
    tick(db, now=T0 + timedelta(hours=23))
    assert states(db, act) == ["scheduled", "scheduled"]
    tick(db, now=T0 + timedelta(days=1))
    assert states(db, act) == ["processed", "processed"]
    assert [p.state for p in participants(db, cid)] == ["completed", "completed"]
    with db.read() as s:
        contacts = s.query(Contact).all()
        assert all([t.name for t in c.tags] == ["Hot"] for c in contacts)
