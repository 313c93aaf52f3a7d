"""Campaign-level figures (nurture.reporting.campaign_stats) on both databases, built by the
engine itself (enrolment and execution under simulated time), tests excluded everywhere."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from nurture.campaign_templates import create_from_template
from nurture.campaigns import campaigns as cs
from nurture.channels.email.models import LinkClick, TrackedLink
from nurture.db import Database
from nurture.engine.models import Trace
from nurture.engine.testmode import launch_test
from nurture.reporting import campaign_stats as stats
from nurture.worker.loop import tick
from tests.engine.helpers import T0, add, add_contacts, make_campaign, tag_action


def _two_campaigns(db: Database) -> tuple[int, int, int]:
    """Campaign A: 3 contacts, a tag action at begin (executed on day 0) then one 2 days later;
    campaign B: draft, nothing. Returns (a, b, first contact id)."""
    with db.transaction() as s:
        ids = add_contacts(s, [{"email": f"p{i}@x.io", "name": f"P{i}"} for i in range(3)])
        a = make_campaign(s, name="Alpha welcome")
        first = add(s, a, "Tag", server_action_id=tag_action(s))
        add(s, a, "Later", server_action_id=tag_action(s, "Warm"), trigger_type="activity",
            parent_id=first, interval_number=2, interval_unit="days")
        b = make_campaign(s, name="Beta draft")
        add(s, b, "Tag", server_action_id=tag_action(s, "B"))
        cs.start_campaign(session=s, now=T0, campaign_id=a)
    tick(db, now=T0)
    tick(db, now=T0 + timedelta(days=2))
    with db.transaction() as s:
        launch_test(s, campaign_id=a, res_id=ids[0], now=T0)
    return a, b, ids[0]


def test_board_cards_count_and_series(db: Database) -> None:
    a, b, _ = _two_campaigns(db)
    now = T0 + timedelta(days=3)
    with db.read() as s:
        cards = {c.id: c for c in stats.board_cards(s, now=now)}
    assert set(cards) == {a, b}
    alpha = cards[a]
    assert (alpha.running, alpha.completed, alpha.state, alpha.activities) == (0, 3, "running", 2)
    assert alpha.model_label and len(alpha.processed) == stats.SERIES_DAYS == len(alpha.days)
    assert alpha.days[-1] == now.date()
    # 3 on T0's day (3 days ago), 3 two days later; the test participant's step is not counted
    assert alpha.processed[-4] == 3 and alpha.processed[-2] == 3 and alpha.processed_total == 6
    assert cards[b].processed == [0] * 15 and (cards[b].running, cards[b].completed) == (0, 0)
    with db.read() as s:
        assert [c.id for c in stats.board_cards(s, now=now, q="ALPHA")] == [a]
        assert stats.board_cards(s, now=now, q="100%_") == []


def test_series_window_leaves_out_older_days(db: Database) -> None:
    a, _, _ = _two_campaigns(db)
    with db.read() as s:
        series = stats.processed_series(s, campaign_ids=[a], now=T0 + timedelta(days=16))
    # the window starts on T0 + 2 days: the first execution day (T0) is out
    assert series[a][0] == 3 and sum(series[a]) == 3
    with db.read() as s:
        later = stats.processed_series(s, campaign_ids=[a], now=T0 + timedelta(days=15))
    # T0's day is 15 days before: outside; T0 + 2 days is inside
    assert sum(later[a]) == 3


def test_board_statement_count_does_not_grow(db: Database) -> None:
    from tests.ui.conftest import count_sql

    with db.transaction() as s:
        for i in range(30):
            make_campaign(s, name=f"C{i}")
    with db.read() as s, count_sql(db) as few:
        stats.board_cards(s, now=T0, q="C1")
    with db.read() as s, count_sql(db) as many:
        assert len(stats.board_cards(s, now=T0)) == 30
    assert len(few) == len(many) == 3


def test_counters_participants_tests_clicks_templates(db: Database) -> None:
    a, b, contact = _two_campaigns(db)
    with db.transaction() as s:
        trace = s.scalars(select(Trace).where(Trace.campaign_id == a, Trace.is_test.is_(False))).first()
        test_trace = s.scalars(select(Trace).where(Trace.campaign_id == a, Trace.is_test.is_(True))).first()
        assert trace is not None and test_trace is not None
        link = TrackedLink(code="abc123", campaign_id=a, url="https://shop.example.com/x", created_at=T0)
        s.add(link)
        s.flush()
        for t, machine in ((trace, False), (trace, False), (trace, True), (test_trace, False)):
            s.add(LinkClick(link_id=link.id, trace_id=t.id, at=T0 + timedelta(hours=1), machine=machine))
    with db.read() as s:
        counters = stats.campaign_counters(s, campaign_id=a)
        assert counters.participants == stats.ParticipantCounts(completed=3, tests=1)
        assert counters.participants.total == 3
        assert counters.clicks == 2  # people only, test excluded
        assert counters.templates == 0
        links = stats.link_stats(s, campaign_id=a, include_tests=False)
        assert [(x.clicks, x.unique_clicks, x.machine_clicks) for x in links] == [(2, 1, 1)]
        everything = stats.link_stats(s, campaign_id=a)
        assert [(x.clicks, x.unique_clicks) for x in everything] == [(3, 2)]
        recent = stats.recent_clicks(s, campaign_id=a)
        assert len(recent) == 2 and recent[0].participant_id == trace.participant_id
        assert stats.campaign_counters(s, campaign_id=b).participants.total == 0


def test_templates_of_a_campaign(db: Database) -> None:
    with db.transaction() as s:
        campaign = create_from_template(session=s, now=T0, key="commercial_prospection")
        cid = campaign.id
    with db.read() as s:
        rows = stats.campaign_templates(s, campaign_id=cid)
        counters = stats.campaign_counters(s, campaign_id=cid)
    assert counters.templates == len(rows) == 3
    assert {r.kind for r in rows} == {"email"} and all(r.activity_name for r in rows)
